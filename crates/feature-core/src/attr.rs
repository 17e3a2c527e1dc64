//! Attribute references: which value of a context a clause or rollout reads.

use crate::context::Part;
use serde_json::Value;

/// A parsed attribute reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AttrPath {
    Key,
    Name,
    Anonymous,
    Kind,
    Custom(Box<str>),
    Nested(Box<[Box<str>]>),
}

/// Why an attribute reference is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AttrError {
    #[error("attribute is empty")]
    Empty,
    #[error("attribute reference has an empty path component")]
    EmptyComponent,
    #[error("attribute reference has `~` not followed by 0 or 1")]
    BadEscape,
}

impl AttrPath {
    /// Parses an attribute name; a leading `/` makes it a reference path (`/address/city`,
    /// with `~1` for `/` and `~0` for `~` inside a component).
    pub(crate) fn parse(s: &str) -> Result<AttrPath, AttrError> {
        if s.is_empty() {
            return Err(AttrError::Empty);
        }
        let Some(rest) = s.strip_prefix('/') else {
            return Ok(AttrPath::named(s));
        };
        let mut comps: Vec<Box<str>> = Vec::new();
        for raw in rest.split('/') {
            if raw.is_empty() {
                return Err(AttrError::EmptyComponent);
            }
            comps.push(unescape(raw)?.into_boxed_str());
        }
        if comps.len() == 1 {
            return Ok(AttrPath::named(&comps[0]));
        }
        Ok(AttrPath::Nested(comps.into_boxed_slice()))
    }

    /// A reference to a single top-level attribute with this literal name.
    pub(crate) fn named(s: &str) -> AttrPath {
        match s {
            "key" => AttrPath::Key,
            "name" => AttrPath::Name,
            "anonymous" => AttrPath::Anonymous,
            "kind" => AttrPath::Kind,
            other => AttrPath::Custom(other.into()),
        }
    }

    /// Reads the attribute from one part of a context (`Kind` is answered by the caller).
    #[inline(always)]
    pub(crate) fn get<'c>(&self, part: &'c Part) -> Option<&'c Value> {
        match self {
            AttrPath::Key => Some(&part.key),
            AttrPath::Name => part.name.as_ref(),
            AttrPath::Anonymous => part.get("anonymous"),
            AttrPath::Kind => None,
            AttrPath::Custom(name) => part.custom(name),
            AttrPath::Nested(comps) => nested(part, comps),
        }
    }
}

/// Reads a reference path (`/address/city`) from a part of a context.
#[inline(never)]
fn nested<'c>(part: &'c Part, comps: &[Box<str>]) -> Option<&'c Value> {
    let (first, rest) = comps.split_first()?;
    let mut v = part.get(first)?;
    for c in rest {
        v = v.as_object()?.get(&**c)?;
    }
    Some(v)
}

fn unescape(raw: &str) -> Result<String, AttrError> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return Err(AttrError::BadEscape),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Escapes a literal attribute name into a reference that reads exactly that name.
pub fn escape_literal(name: &str) -> String {
    if name.starts_with('/') {
        format!("/{}", name.replace('~', "~0").replace('/', "~1"))
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        assert_eq!(AttrPath::parse("plan"), Ok(AttrPath::Custom("plan".into())));
        assert_eq!(AttrPath::parse("/key"), Ok(AttrPath::Key));
        assert_eq!(
            AttrPath::parse("/a/b~1c~0"),
            Ok(AttrPath::Nested(vec!["a".into(), "b/c~".into()].into()))
        );
        assert_eq!(AttrPath::parse(""), Err(AttrError::Empty));
        assert_eq!(AttrPath::parse("///"), Err(AttrError::EmptyComponent));
        assert_eq!(AttrPath::parse("/a~b"), Err(AttrError::BadEscape));
        assert_eq!(AttrPath::parse("/a~"), Err(AttrError::BadEscape));
        assert_eq!(
            AttrPath::parse(&escape_literal("/weird~name")),
            Ok(AttrPath::Custom("/weird~name".into()))
        );
    }
}
