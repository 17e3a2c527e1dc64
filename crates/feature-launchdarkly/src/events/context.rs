//! Contexts as LaunchDarkly's events carry them: `kind`, `key`, `anonymous`, `name` and the
//! custom attributes, with private attributes (configured ones and the context's own
//! `_meta.privateAttributes`, by attribute reference) removed and listed in
//! `_meta.redactedAttributes`; and the canonical key that deduplicates index events.

use feature_core::Context;
use serde_json::{Map, Value};

/// One attribute reference: `name`, or `/a/b` (a path into object attributes, `~1` for `/`
/// and `~0` for `~` in a component). Invalid references are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttrRef {
    /// The reference as written (what `redactedAttributes` lists for a nested one).
    text: String,
    components: Vec<String>,
}

impl AttrRef {
    pub(crate) fn parse(text: &str) -> Option<AttrRef> {
        if text.is_empty() {
            return None;
        }
        let components = match text.strip_prefix('/') {
            None => vec![text.to_owned()],
            Some(path) => {
                let mut out = Vec::new();
                for c in path.split('/') {
                    if c.is_empty() {
                        return None;
                    }
                    let mut s = String::with_capacity(c.len());
                    let mut chars = c.chars();
                    while let Some(ch) = chars.next() {
                        if ch == '~' {
                            match chars.next() {
                                Some('0') => s.push('~'),
                                Some('1') => s.push('/'),
                                _ => return None,
                            }
                        } else {
                            s.push(ch);
                        }
                    }
                    out.push(s);
                }
                out
            }
        };
        Some(AttrRef {
            text: text.to_owned(),
            components,
        })
    }
}

/// How contexts are redacted: LaunchDarkly's `all_attributes_private` and
/// `private_attributes` settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    pub(crate) all_private: bool,
    pub(crate) private: Vec<AttrRef>,
}

impl Redactor {
    pub(crate) fn new(all_private: bool, private: &[String]) -> Redactor {
        Redactor {
            all_private,
            private: private.iter().filter_map(|p| AttrRef::parse(p)).collect(),
        }
    }

    /// The context as an event carries it. `redact_anonymous`: an anonymous context keeps
    /// only `key`, `kind` and `anonymous` (feature and custom events).
    pub(crate) fn format(&self, ctx: &Context, redact_anonymous: bool) -> Value {
        let parts = parts(ctx);
        if ctx.kind() == "multi" {
            let mut out = Map::new();
            out.insert("kind".into(), Value::String("multi".into()));
            for (kind, part) in &parts {
                out.insert(
                    kind.clone(),
                    Value::Object(self.format_single(kind, part, false, redact_anonymous)),
                );
            }
            Value::Object(out)
        } else {
            match parts.first() {
                Some((kind, part)) => {
                    Value::Object(self.format_single(kind, part, true, redact_anonymous))
                }
                None => Value::Object(Map::new()),
            }
        }
    }

    fn format_single(
        &self,
        kind: &str,
        part: &Map<String, Value>,
        include_kind: bool,
        redact_anonymous: bool,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert(
            "key".into(),
            part.get("key")
                .cloned()
                .unwrap_or(Value::String(String::new())),
        );
        if include_kind {
            out.insert("kind".into(), Value::String(kind.to_owned()));
        }
        let anonymous = part.get("anonymous") == Some(&Value::Bool(true));
        if anonymous {
            out.insert("anonymous".into(), Value::Bool(true));
        }
        let mut refs: Vec<AttrRef> = self.private.clone();
        if let Some(meta) = part.get("_meta").and_then(Value::as_object) {
            for r in meta
                .get("privateAttributes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter_map(AttrRef::parse)
            {
                refs.push(r);
            }
        }
        let redact_all = self.all_private || (anonymous && redact_anonymous);
        let mut redacted: Vec<Value> = Vec::new();
        for (name, value) in part {
            if matches!(name.as_str(), "key" | "kind" | "anonymous" | "_meta") {
                continue;
            }
            let whole = redact_all
                || refs
                    .iter()
                    .any(|r| r.components.len() == 1 && r.components[0] == *name);
            if whole {
                redacted.push(Value::String(name.clone()));
                continue;
            }
            let mut path = vec![name.clone()];
            let v = redact_value(&mut path, value, &refs, &mut redacted);
            out.insert(name.clone(), v);
        }
        if !redacted.is_empty() {
            let mut meta = Map::new();
            meta.insert("redactedAttributes".into(), Value::Array(redacted));
            out.insert("_meta".into(), Value::Object(meta));
        }
        out
    }
}

/// `value` at `path` with the properties that references name removed (listed in
/// `redacted` by their reference text).
fn redact_value(
    path: &mut Vec<String>,
    value: &Value,
    refs: &[AttrRef],
    redacted: &mut Vec<Value>,
) -> Value {
    let Some(obj) = value.as_object().filter(|o| !o.is_empty()) else {
        return value.clone();
    };
    let mut out = Map::new();
    for (k, v) in obj {
        let hit = refs.iter().find(|r| {
            r.components.len() == path.len() + 1
                && r.components[path.len()] == *k
                && r.components[..path.len()] == path[..]
        });
        if let Some(r) = hit {
            redacted.push(Value::String(r.text.clone()));
            continue;
        }
        path.push(k.clone());
        out.insert(k.clone(), redact_value(path, v, refs, redacted));
        path.pop();
    }
    Value::Object(out)
}

/// Each kind of the context with its attributes as one object (the shape of
/// [`Context::to_json`], the old-style user's `custom` object merged back).
fn parts(ctx: &Context) -> Vec<(String, Map<String, Value>)> {
    let json = ctx.to_json();
    let Value::Object(mut obj) = json else {
        return Vec::new();
    };
    if ctx.kind() == "multi" {
        obj.remove("kind");
        obj.into_iter()
            .filter_map(|(k, v)| match v {
                Value::Object(m) => Some((k, m)),
                _ => None,
            })
            .collect()
    } else {
        let kind = match obj.remove("kind") {
            Some(Value::String(k)) => k,
            _ => "user".to_owned(),
        };
        if let Some(Value::Object(custom)) = obj.remove("custom") {
            for (k, v) in custom {
                obj.insert(k, v);
            }
        }
        vec![(kind, obj)]
    }
}

/// LaunchDarkly's fully qualified key: the key of a user context; `kind:key` for another
/// kind; for a multi-kind context, `kind:key` of each kind sorted by kind, joined by `:`
/// (`%` and `:` in keys escaped as `%25` and `%3A`). Written into `out` (cleared first),
/// so a reused buffer costs no allocation. The secure mode hash signs this key.
pub fn canonical_key(ctx: &Context, out: &mut String) {
    out.clear();
    fn escaped(key: &str, out: &mut String) {
        for ch in key.chars() {
            match ch {
                '%' => out.push_str("%25"),
                ':' => out.push_str("%3A"),
                c => out.push(c),
            }
        }
    }
    if ctx.kind() == "user" {
        out.push_str(ctx.key());
        return;
    }
    // Kinds sorted without a heap allocation for up to 8 of them (nearly always).
    let mut few: [&str; 8] = [""; 8];
    let mut many: Vec<&str> = Vec::new();
    let n = ctx.kinds().count();
    let kinds: &mut [&str] = if n <= few.len() {
        for (slot, k) in few.iter_mut().zip(ctx.kinds()) {
            *slot = k;
        }
        &mut few[..n]
    } else {
        many.extend(ctx.kinds());
        &mut many
    };
    kinds.sort_unstable();
    for (i, kind) in kinds.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(kind);
        out.push(':');
        escaped(ctx.key_of(kind).unwrap_or(""), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> Context {
        Context::from_json(&v).unwrap()
    }

    #[test]
    fn private_attributes_are_removed_and_listed() {
        let r = Redactor::new(false, &["email".into(), "/address/city".into()]);
        let c = ctx(
            json!({"kind": "user", "key": "u", "name": "Jo", "email": "j@x",
            "address": {"city": "Lyon", "zip": "1"}, "plan": "pro",
            "_meta": {"privateAttributes": ["plan"]}}),
        );
        assert_eq!(
            r.format(&c, false),
            json!({"kind": "user", "key": "u", "name": "Jo", "address": {"zip": "1"},
                   "_meta": {"redactedAttributes": ["/address/city", "email", "plan"]}})
        );
        let anon = ctx(json!({"kind": "org", "key": "o", "anonymous": true, "name": "N"}));
        assert_eq!(
            r.format(&anon, true),
            json!({"kind": "org", "key": "o", "anonymous": true,
                   "_meta": {"redactedAttributes": ["name"]}})
        );
        assert_eq!(
            r.format(&anon, false),
            json!({"kind": "org", "key": "o", "anonymous": true, "name": "N"})
        );
        let all = Redactor::new(true, &[]);
        let m = ctx(json!({"kind": "multi", "user": {"key": "u", "a": 1}, "org": {"key": "o"}}));
        assert_eq!(
            all.format(&m, false),
            json!({"kind": "multi", "user": {"key": "u", "_meta": {"redactedAttributes": ["a"]}},
                   "org": {"key": "o"}})
        );
    }

    #[test]
    fn canonical_keys_are_launchdarklys() {
        let mut s = String::new();
        canonical_key(&Context::new("a:b"), &mut s);
        assert_eq!(s, "a:b");
        canonical_key(&Context::of_kind("org", "x:y%").unwrap(), &mut s);
        assert_eq!(s, "org:x%3Ay%25");
        let m = ctx(json!({"kind": "multi", "user": {"key": "u"}, "org": {"key": "o"}}));
        canonical_key(&m, &mut s);
        assert_eq!(s, "org:o:user:u");
        assert!(AttrRef::parse("/a//b").is_none() && AttrRef::parse("/a~2").is_none());
        assert_eq!(
            AttrRef::parse("/a~1b/c~0").unwrap().components,
            ["a/b", "c~"]
        );
    }
}
