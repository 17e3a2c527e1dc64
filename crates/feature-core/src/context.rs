//! The evaluation context: who (or what) a flag is evaluated for.

use crate::ops::str_eq;
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;

/// The default context kind.
pub const USER_KIND: &str = "user";

static TRUE: Value = Value::Bool(true);
static FALSE: Value = Value::Bool(false);

/// Errors building a [`Context`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// The context JSON is not an object.
    #[error("a context must be a JSON object")]
    NotAnObject,
    /// The kind is empty, `kind`, or has characters other than letters, digits, `.`, `_`, `-`.
    #[error("invalid context kind {0:?}")]
    InvalidKind(String),
    /// A context of a kind other than the old-style user has no key, or a non-string key.
    #[error("context of kind {0:?} has no string key")]
    MissingKey(String),
    /// A built-in attribute has the wrong type (`name` must be a string, `anonymous` a bool).
    #[error("attribute {attribute:?} must be a {expected}")]
    WrongType {
        /// The attribute.
        attribute: &'static str,
        /// The type it must have.
        expected: &'static str,
    },
    /// A multi-kind context names the same kind twice, or has no kinds, or nests a multi-kind.
    #[error("invalid multi-kind context: {0}")]
    InvalidMulti(&'static str),
}

/// One single-kind part of a context.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Part {
    pub(crate) kind: String,
    pub(crate) key: Value,
    pub(crate) name: Option<Value>,
    pub(crate) anonymous: bool,
    pub(crate) attrs: Vec<(String, Value)>,
    /// Attribute references the caller marked private (`email`, `/address/city`): analytics
    /// never export them. Empty (no allocation) for most contexts; evaluation never reads it.
    pub(crate) private: Vec<String>,
}

impl Part {
    fn new(kind: String, key: String) -> Part {
        Part {
            kind,
            key: Value::String(key),
            name: None,
            anonymous: false,
            attrs: Vec::new(),
            private: Vec::new(),
        }
    }

    fn add_private(&mut self, reference: String) {
        if !reference.is_empty() && !self.private.contains(&reference) {
            self.private.push(reference);
        }
    }

    pub(crate) fn key_str(&self) -> &str {
        self.key.as_str().unwrap_or("")
    }

    /// A top-level attribute by name (`kind` is answered by the clause matcher, not here).
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        match name {
            "key" => Some(&self.key),
            "name" => self.name.as_ref(),
            "anonymous" => Some(if self.anonymous { &TRUE } else { &FALSE }),
            _ => self.custom(name),
        }
    }

    #[inline(always)]
    pub(crate) fn custom(&self, name: &str) -> Option<&Value> {
        // A plain loop: `Iterator::find` is left out of line by the compiler, a call per
        // attribute read.
        for (k, v) in &self.attrs {
            if str_eq(k, name) {
                return Some(v);
            }
        }
        None
    }

    fn set(&mut self, name: &str, value: Value) {
        match name {
            "name" => self.name = (!value.is_null()).then_some(value),
            "anonymous" => self.anonymous = value.as_bool().unwrap_or(false),
            "key" => {
                if let Value::String(_) = value {
                    self.key = value
                }
            }
            // `_meta` is never an attribute (LaunchDarkly keeps private-attribute settings
            // there), and `null` is no value: both would not survive `to_json`.
            "kind" | "_meta" => {}
            _ if value.is_null() => self.attrs.retain(|(k, _)| k != name),
            _ => {
                if let Some(slot) = self.attrs.iter_mut().find(|(k, _)| k == name) {
                    slot.1 = value;
                } else {
                    self.attrs.push((name.to_owned(), value));
                }
            }
        }
    }
}

/// The attributes a flag is evaluated against: a user (the default kind) or any other kind of
/// entity (`org`, `device`), or several of them at once (a multi-kind context).
///
/// ```
/// use feature_core::Context;
/// let user = Context::new("user-123")
///     .with_email("jo@example.com")
///     .with_country("US")
///     .with_attribute("plan", "pro")
///     .with_group("beta-testers");
/// assert_eq!(user.key(), "user-123");
/// assert_eq!(user.get("plan"), Some(&serde_json::json!("pro")));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// Shared, copied on write: cloning a context (analytics keep the contexts of the
    /// events they queue) is one reference-count increment, not a deep copy.
    pub(crate) parts: Arc<[Part]>,
    multi: bool,
}

impl Context {
    /// A user context with this key.
    pub fn new(key: impl Into<String>) -> Self {
        Context {
            parts: Arc::new([Part::new(USER_KIND.to_owned(), key.into())]),
            multi: false,
        }
    }

    /// A context of another kind (`org`, `device`, ...).
    pub fn of_kind(kind: impl Into<String>, key: impl Into<String>) -> Result<Self, ContextError> {
        let kind = kind.into();
        validate_kind(&kind)?;
        Ok(Context {
            parts: Arc::new([Part::new(kind, key.into())]),
            multi: false,
        })
    }

    /// A multi-kind context made of single-kind contexts of distinct kinds.
    pub fn multi(contexts: impl IntoIterator<Item = Context>) -> Result<Self, ContextError> {
        let mut parts: Vec<Part> = Vec::new();
        for c in contexts {
            if c.multi {
                return Err(ContextError::InvalidMulti(
                    "a multi-kind context cannot nest",
                ));
            }
            for p in c.parts.iter() {
                if parts.iter().any(|q| q.kind == p.kind) {
                    return Err(ContextError::InvalidMulti("a kind appears twice"));
                }
                parts.push(p.clone());
            }
        }
        match parts.len() {
            0 => Err(ContextError::InvalidMulti("no kinds")),
            1 => Ok(Context {
                parts: parts.into(),
                multi: false,
            }),
            _ => Ok(Context {
                parts: parts.into(),
                multi: true,
            }),
        }
    }

    /// Whether `other` is a clone of this context (clones share their attributes until one
    /// of them is changed): a test in constant time, for caches keyed by context.
    pub fn shares_attributes_with(&self, other: &Context) -> bool {
        Arc::ptr_eq(&self.parts, &other.parts) && self.multi == other.multi
    }

    /// The key (of the first kind, for a multi-kind context).
    pub fn key(&self) -> &str {
        self.parts.first().map(Part::key_str).unwrap_or("")
    }

    /// The kind: `user`, another kind, or `multi`.
    pub fn kind(&self) -> &str {
        if self.multi {
            "multi"
        } else {
            self.parts
                .first()
                .map(|p| p.kind.as_str())
                .unwrap_or(USER_KIND)
        }
    }

    /// The kinds this context has.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().map(|p| p.kind.as_str())
    }

    /// The key of one kind, if the context has that kind.
    pub fn key_of(&self, kind: &str) -> Option<&str> {
        self.part(kind).map(Part::key_str)
    }

    /// A top-level attribute of the (first) kind: `key`, `name`, `anonymous`, or a custom one.
    pub fn get(&self, attribute: &str) -> Option<&Value> {
        self.parts.first().and_then(|p| p.get(attribute))
    }

    /// The custom attributes of the (first) kind, in the order they were set.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.parts
            .first()
            .into_iter()
            .flat_map(|p| p.attrs.iter().map(|(k, v)| (k.as_str(), v)))
    }

    #[inline(always)]
    #[allow(clippy::manual_find)] // `Iterator::find` is left out of line (see `Part::custom`)
    pub(crate) fn part(&self, kind: &str) -> Option<&Part> {
        for p in self.parts.iter() {
            if str_eq(&p.kind, kind) {
                return Some(p);
            }
        }
        None
    }

    /// The part of compiled kind `kind`. For `user` (nearly every lookup) the name compared
    /// is a constant, which compiles to a length test and one four-byte comparison instead of a
    /// comparison of two strings of unknown lengths.
    #[inline(always)]
    pub(crate) fn part_of(&self, kind: &crate::program::Kind) -> Option<&Part> {
        match kind {
            crate::program::Kind::User => self.part(USER_KIND),
            crate::program::Kind::Other(name) => self.part(name),
        }
    }

    /// The first part, copied first when another context shares it.
    fn first_mut(&mut self) -> &mut Part {
        if self.parts.is_empty() {
            self.parts = Arc::new([Part::new(USER_KIND.to_owned(), String::new())]);
        }
        &mut Arc::make_mut(&mut self.parts)[0]
    }

    /// Sets an attribute. `name` and `anonymous` set the built-ins; anything else is custom.
    pub fn with_attribute(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.first_mut().set(name, value.into());
        self
    }

    /// Sets the display name.
    pub fn with_name(self, name: impl Into<String>) -> Self {
        self.with_attribute("name", Value::String(name.into()))
    }

    /// Sets the e-mail address (attribute `email`).
    pub fn with_email(self, email: impl Into<String>) -> Self {
        self.with_attribute("email", Value::String(email.into()))
    }

    /// Sets the IP address (attribute `ip`).
    pub fn with_ip(self, ip: impl Into<String>) -> Self {
        self.with_attribute("ip", Value::String(ip.into()))
    }

    /// Sets the country code (attribute `country`).
    pub fn with_country(self, country: impl Into<String>) -> Self {
        self.with_attribute("country", Value::String(country.into()))
    }

    /// Marks the context anonymous.
    pub fn with_anonymous(mut self, anonymous: bool) -> Self {
        self.first_mut().anonymous = anonymous;
        self
    }

    /// Adds a group membership (attribute `groups`, a list).
    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        let part = self.first_mut();
        let group = Value::String(group.into());
        match part.attrs.iter_mut().find(|(k, _)| k == "groups") {
            Some((_, Value::Array(list))) => list.push(group),
            Some((_, other)) => *other = Value::Array(vec![group]),
            None => part
                .attrs
                .push(("groups".to_owned(), Value::Array(vec![group]))),
        }
        self
    }

    /// Marks an attribute of the (first) kind private: analytics events never carry it, whatever
    /// the exporter's configuration. `reference` is an attribute name (`email`), or a path
    /// starting with `/` into an object attribute (`/address/city`; `~1` stands for `/` and
    /// `~0` for `~` in a name), as LaunchDarkly's `_meta.privateAttributes`. `key`, `kind` and
    /// `anonymous` are always exported.
    ///
    /// ```
    /// use feature_core::Context;
    /// let user = Context::new("u1")
    ///     .with_attribute("address", serde_json::json!({"city": "Lyon", "zip": "69001"}))
    ///     .with_private_attribute("/address/city");
    /// assert_eq!(user.private_attributes().collect::<Vec<_>>(), ["/address/city"]);
    /// ```
    pub fn with_private_attribute(mut self, reference: impl Into<String>) -> Self {
        self.first_mut().add_private(reference.into());
        self
    }

    /// The attribute references marked private in the (first) kind (see
    /// [`Context::with_private_attribute`]).
    pub fn private_attributes(&self) -> impl Iterator<Item = &str> {
        self.parts
            .first()
            .into_iter()
            .flat_map(|p| p.private.iter().map(String::as_str))
    }

    /// The attribute references marked private in the part of kind `kind` (empty when the
    /// context has no such kind).
    pub fn private_attributes_of(&self, kind: &str) -> impl Iterator<Item = &str> {
        self.part(kind)
            .into_iter()
            .flat_map(|p| p.private.iter().map(String::as_str))
    }

    /// Whether the context is anonymous.
    pub fn anonymous(&self) -> bool {
        self.parts.first().is_some_and(|p| p.anonymous)
    }

    /// Reads a context from JSON.
    ///
    /// Accepted shapes: this project's context object (`key`, `name`, `email`, `ip`, `country`,
    /// `anonymous`, `groups`, `custom`, and any other top-level field as a custom attribute),
    /// which is also LaunchDarkly's old-style user; a single-kind context with `kind`; and a
    /// multi-kind context (`"kind": "multi"` with one object per kind).
    ///
    /// Private attributes are read from `_meta.privateAttributes` (attribute references, in
    /// every shape) and from the old-style user's `privateAttributeNames` (attribute names);
    /// entries that are not strings are ignored.
    pub fn from_json(value: &Value) -> Result<Self, ContextError> {
        let obj = value.as_object().ok_or(ContextError::NotAnObject)?;
        match obj.get("kind") {
            None => Ok(Context {
                parts: Arc::new([part_from_object(USER_KIND.to_owned(), obj, true)?]),
                multi: false,
            }),
            Some(Value::String(k)) if k == "multi" => {
                let mut parts = Vec::new();
                for (kind, v) in obj {
                    if kind == "kind" {
                        continue;
                    }
                    validate_kind(kind)?;
                    let o = v.as_object().ok_or(ContextError::NotAnObject)?;
                    parts.push(part_from_object(kind.clone(), o, false)?);
                }
                Context::multi(parts.into_iter().map(|p| Context {
                    parts: Arc::new([p]),
                    multi: false,
                }))
            }
            Some(Value::String(k)) => {
                validate_kind(k)?;
                Ok(Context {
                    parts: Arc::new([part_from_object(k.clone(), obj, false)?]),
                    multi: false,
                })
            }
            Some(_) => Err(ContextError::InvalidKind("(not a string)".to_owned())),
        }
    }

    /// The context as JSON, in the shape [`Context::from_json`] reads.
    pub fn to_json(&self) -> Value {
        /// Attribute names the old-style user shape (no `kind`) reads as something else at
        /// the top level: such attributes are written inside its `custom` object.
        const OLD_STYLE_RESERVED: [&str; 4] = [
            "custom",
            "privateAttributeNames",
            "privateAttributes",
            "secondary",
        ];
        fn part_json(p: &Part, with_kind: bool, old_style: bool) -> Map<String, Value> {
            let mut m = Map::new();
            if with_kind {
                m.insert("kind".into(), Value::String(p.kind.clone()));
            }
            m.insert("key".into(), p.key.clone());
            if let Some(n) = &p.name {
                m.insert("name".into(), n.clone());
            }
            if p.anonymous {
                m.insert("anonymous".into(), Value::Bool(true));
            }
            let mut custom = Map::new();
            for (k, v) in &p.attrs {
                if old_style && OLD_STYLE_RESERVED.contains(&k.as_str()) {
                    custom.insert(k.clone(), v.clone());
                } else {
                    m.insert(k.clone(), v.clone());
                }
            }
            if !custom.is_empty() {
                m.insert("custom".into(), Value::Object(custom));
            }
            if !p.private.is_empty() {
                let refs = p.private.iter().cloned().map(Value::String).collect();
                let mut meta = Map::new();
                meta.insert("privateAttributes".into(), Value::Array(refs));
                m.insert("_meta".into(), Value::Object(meta));
            }
            m
        }
        if self.multi {
            let mut m = Map::new();
            m.insert("kind".into(), Value::String("multi".into()));
            for p in self.parts.iter() {
                m.insert(p.kind.clone(), Value::Object(part_json(p, false, false)));
            }
            Value::Object(m)
        } else {
            match self.parts.first() {
                Some(p) => {
                    let user = p.kind == USER_KIND;
                    Value::Object(part_json(p, !user, user))
                }
                None => Value::Object(Map::new()),
            }
        }
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

pub(crate) fn validate_kind(kind: &str) -> Result<(), ContextError> {
    let ok = !kind.is_empty()
        && kind != "kind"
        && kind != "multi"
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ContextError::InvalidKind(kind.to_owned()))
    }
}

/// Sets attribute `name` of `part`, `at` holding the positions of those read so far.
fn put_attribute<'a>(
    part: &mut Part,
    at: &mut rustc_hash::FxHashMap<&'a str, usize>,
    name: &'a str,
    value: &Value,
) {
    if matches!(name, "name" | "anonymous" | "key" | "kind" | "_meta") || value.is_null() {
        part.set(name, value.clone());
        return;
    }
    match at.get(name) {
        Some(&i) => part.attrs[i].1 = value.clone(),
        None => {
            at.insert(name, part.attrs.len());
            part.attrs.push((name.to_owned(), value.clone()));
        }
    }
}

/// The attribute reference naming the top-level attribute `name`.
fn name_to_reference(name: &str) -> String {
    if name.starts_with('/') {
        format!("/{}", name.replace('~', "~0").replace('/', "~1"))
    } else {
        name.to_owned()
    }
}

fn part_from_object(
    kind: String,
    obj: &Map<String, Value>,
    old_style: bool,
) -> Result<Part, ContextError> {
    let key = match obj.get("key") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None if old_style => String::new(),
        _ => return Err(ContextError::MissingKey(kind)),
    };
    if !old_style && key.is_empty() {
        return Err(ContextError::MissingKey(kind));
    }
    let mut part = Part::new(kind, key);
    // Positions of the attributes read so far: one look-up per attribute, where `Part::set`
    // scans the list (quadratic for a context of many attributes).
    let mut at: rustc_hash::FxHashMap<&str, usize> = rustc_hash::FxHashMap::default();
    for (k, v) in obj {
        match k.as_str() {
            "key" | "kind" => {}
            "_meta" => {
                if let Some(Value::Array(refs)) = v.get("privateAttributes") {
                    for r in refs.iter().filter_map(Value::as_str) {
                        part.add_private(r.to_owned());
                    }
                }
            }
            "name" => match v {
                Value::String(_) => part.name = Some(v.clone()),
                Value::Null => {}
                _ => {
                    return Err(ContextError::WrongType {
                        attribute: "name",
                        expected: "string",
                    })
                }
            },
            "anonymous" => match v {
                Value::Bool(b) => part.anonymous = *b,
                Value::Null => {}
                _ => {
                    return Err(ContextError::WrongType {
                        attribute: "anonymous",
                        expected: "bool",
                    })
                }
            },
            "custom" if old_style => {
                if let Value::Object(custom) = v {
                    for (ck, cv) in custom {
                        if !matches!(ck.as_str(), "key" | "kind" | "name" | "anonymous") {
                            put_attribute(&mut part, &mut at, ck, cv);
                        }
                    }
                }
            }
            "privateAttributeNames" | "privateAttributes" if old_style => {
                // Names, not references: a name starting with `/` becomes a one-step path.
                if let Value::Array(names) = v {
                    for n in names.iter().filter_map(Value::as_str) {
                        part.add_private(name_to_reference(n));
                    }
                }
            }
            "secondary" if old_style => {}
            _ if v.is_null() => {}
            _ => put_attribute(&mut part, &mut at, k, v),
        }
    }
    Ok(part)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn private_attributes_are_read_from_every_json_shape_and_kept() {
        let ld = Context::from_json(&json!({
            "kind": "user", "key": "u1", "address": {"city": "Lyon"},
            "_meta": {"privateAttributes": ["/address/city", "email", 7]}
        }))
        .unwrap();
        assert_eq!(
            ld.private_attributes().collect::<Vec<_>>(),
            ["/address/city", "email"]
        );
        let old = Context::from_json(&json!({
            "key": "u2", "custom": {"plan": "pro"},
            "privateAttributeNames": ["plan", "/odd"]
        }))
        .unwrap();
        assert_eq!(
            old.private_attributes().collect::<Vec<_>>(),
            ["plan", "/~1odd"]
        );
        let multi = Context::from_json(&json!({
            "kind": "multi",
            "user": {"key": "u3", "_meta": {"privateAttributes": ["name"]}},
            "org": {"key": "o1", "billing": "x", "_meta": {"privateAttributes": ["billing"]}}
        }))
        .unwrap();
        assert_eq!(
            multi.private_attributes_of("org").collect::<Vec<_>>(),
            ["billing"]
        );
        assert_eq!(
            multi.private_attributes_of("user").collect::<Vec<_>>(),
            ["name"]
        );
        // Built by hand, and back through JSON.
        let built = Context::new("u4")
            .with_attribute("plan", "pro")
            .with_private_attribute("plan")
            .with_private_attribute("plan");
        assert_eq!(built.private_attributes().collect::<Vec<_>>(), ["plan"]);
        for c in [ld, old, multi, built] {
            assert_eq!(Context::from_json(&c.to_json()).unwrap(), c, "{c}");
        }
        // Marking private changes nothing else: evaluation sees the same attributes.
        assert_eq!(
            Context::new("u").with_private_attribute("x").get("x"),
            Context::new("u").get("x")
        );
    }

    /// Found by fuzzing (fuzz target `context_json`): an old-style user whose custom
    /// attributes are named like the fields that shape reserves (`custom`, `secondary`, ...)
    /// lost them when written with `to_json` and read back, and a `null` custom value came
    /// back absent.
    #[test]
    fn json_round_trip_keeps_attributes_named_like_reserved_fields() {
        let input = serde_json::json!({
            "key": "u1",
            "custom": {
                "custom": "zuo",
                "secondary": "s",
                "privateAttributes": ["a"],
                "privateAttributeNames": ["b"],
                "plan": "pro",
                "gone": null,
                "_meta": {"privateAttributes": ["c"]},
            },
        });
        let ctx = Context::from_json(&input).unwrap();
        let json = ctx.to_json();
        let back = Context::from_json(&json).unwrap();
        for name in [
            "custom",
            "secondary",
            "privateAttributes",
            "privateAttributeNames",
            "plan",
        ] {
            assert!(ctx.get(name).is_some(), "{name} read from {input}");
            assert_eq!(back.get(name), ctx.get(name), "{name} in {json}");
        }
        // `null` is no value, and `_meta` is never an attribute, in every shape.
        assert_eq!(ctx.get("gone"), None);
        assert_eq!(ctx.get("_meta"), None);
        assert_eq!(
            back.attributes().count(),
            ctx.attributes().count(),
            "{json}"
        );
        assert_eq!(back.to_json(), json);
        // The same through the builder, for another kind and inside a multi-kind context.
        let org = Context::of_kind("org", "o1")
            .unwrap()
            .with_attribute("custom", "c")
            .with_attribute("_meta", 1)
            .with_attribute("gone", Value::Null);
        let user = Context::new("u2").with_attribute("secondary", "x");
        let multi = Context::multi([user, org.clone()]).unwrap();
        for c in [org, multi] {
            let back = Context::from_json(&c.to_json()).unwrap();
            assert_eq!(back.to_json(), c.to_json());
            assert_eq!(
                back.attributes().count(),
                c.attributes().count(),
                "{}",
                c.to_json()
            );
        }
    }

    #[test]
    fn clones_share_until_one_changes() {
        let a = Context::new("u").with_attribute("plan", "pro");
        let b = a.clone();
        assert!(a.shares_attributes_with(&b) && a == b);
        let c = b.with_attribute("plan", "free").with_group("beta");
        assert!(!a.shares_attributes_with(&c));
        assert_eq!(a.get("plan"), Some(&Value::from("pro")));
        assert_eq!(c.get("plan"), Some(&Value::from("free")));
        assert_eq!(a.get("groups"), None);
        let equal_not_shared = Context::new("u").with_attribute("plan", "pro");
        assert!(!a.shares_attributes_with(&equal_not_shared) && a == equal_not_shared);
    }
}
