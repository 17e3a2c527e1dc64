//! Removing private attributes from the contexts events carry.

use feature_core::Context;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Which context attributes leave the process with analytics events.
///
/// By default `email` and `ip` are private; [`Redaction::allow`] makes one public again,
/// [`Redaction::private`] adds more, [`Redaction::all_private`] keeps only the key (and kind
/// and `anonymous`). Removed attribute names are listed under
/// `_meta.redactedAttributes`, so analysts know they existed.
///
/// ```
/// use feature::analytics::Redaction;
/// use feature::Context;
///
/// let user = Context::new("u1").with_email("jo@example.com").with_ip("10.0.0.1").with_attribute("plan", "pro");
/// let ctx = Redaction::default().allow("ip").private("plan").apply(&user);
/// assert!(ctx.get("email").is_none() && ctx.get("plan").is_none());
/// assert_eq!(ctx["ip"], "10.0.0.1");
/// assert_eq!(ctx["_meta"]["redactedAttributes"], serde_json::json!(["email", "plan"]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    private: BTreeSet<String>,
    all_private: bool,
    include_context: bool,
}

impl Default for Redaction {
    fn default() -> Self {
        Redaction {
            private: ["email", "ip"].into_iter().map(str::to_owned).collect(),
            all_private: false,
            include_context: true,
        }
    }
}

/// Attributes never removed.
const ALWAYS_KEPT: [&str; 3] = ["key", "kind", "anonymous"];

impl Redaction {
    /// Makes `attribute` public (e.g. `email` or `ip`).
    pub fn allow(mut self, attribute: &str) -> Self {
        self.private.remove(attribute);
        self
    }

    /// Makes `attribute` private.
    pub fn private(mut self, attribute: &str) -> Self {
        self.private.insert(attribute.to_owned());
        self
    }

    /// Makes every attribute but the key private.
    pub fn all_private(mut self, all: bool) -> Self {
        self.all_private = all;
        self
    }

    /// Whether events carry the context at all (default `true`); without it they carry only
    /// `user_key`.
    pub fn include_context(mut self, include: bool) -> Self {
        self.include_context = include;
        self
    }

    /// Whether `name` is removed.
    pub fn is_private(&self, name: &str) -> bool {
        !ALWAYS_KEPT.contains(&name) && (self.all_private || self.private.contains(name))
    }

    /// The context's attributes as JSON, private ones removed.
    pub fn apply(&self, context: &Context) -> Map<String, Value> {
        let Value::Object(mut obj) = context.to_json() else {
            return Map::new();
        };
        if context.kind() == "multi" {
            for (kind, part) in obj.iter_mut() {
                if let (false, Value::Object(p)) = (kind == "kind", part) {
                    self.strip(p);
                }
            }
        } else {
            self.strip(&mut obj);
        }
        obj
    }

    pub(crate) fn apply_opt(&self, context: &Context) -> Option<Map<String, Value>> {
        self.include_context.then(|| self.apply(context))
    }

    fn strip(&self, obj: &mut Map<String, Value>) {
        let mut removed: Vec<String> = obj.keys().filter(|k| self.is_private(k)).cloned().collect();
        if removed.is_empty() {
            return;
        }
        removed.sort();
        for k in &removed {
            obj.remove(k);
        }
        let mut meta = Map::new();
        meta.insert(
            "redactedAttributes".to_owned(),
            Value::Array(removed.into_iter().map(Value::String).collect()),
        );
        obj.insert("_meta".to_owned(), Value::Object(meta));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn email_and_ip_are_private_by_default_in_every_kind() {
        let user = Context::new("u1")
            .with_email("jo@example.com")
            .with_ip("1.2.3.4")
            .with_country("FR");
        let org = Context::of_kind("org", "acme")
            .unwrap()
            .with_email("ops@acme.test");
        let multi = Context::multi([user.clone(), org]).unwrap();
        let r = Redaction::default();
        let one = r.apply(&user);
        assert_eq!(one["key"], "u1");
        assert_eq!(one["country"], "FR");
        assert!(one.get("email").is_none() && one.get("ip").is_none());
        let text = serde_json::to_string(&r.apply(&multi)).unwrap();
        assert!(
            !text.contains("example.com")
                && !text.contains("acme.test")
                && !text.contains("1.2.3.4")
        );
        assert!(text.contains("\"acme\""));
        let all = Redaction::default().all_private(true).apply(&user);
        assert_eq!(all.len(), 2, "{all:?}"); // key and _meta
        assert_eq!(
            all["_meta"]["redactedAttributes"],
            json!(["country", "email", "ip"])
        );
    }
}
