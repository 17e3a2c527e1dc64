//! Removing private attributes from the contexts events carry.

use feature_core::Context;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Which context attributes leave the process with analytics events.
///
/// By default `email` and `ip` are private; [`Redaction::allow`] makes one public again,
/// [`Redaction::private`] adds more, [`Redaction::all_private`] keeps only the key (and kind
/// and `anonymous`). Besides, every attribute a context marks private itself
/// ([`Context::with_private_attribute`], or LaunchDarkly's `_meta.privateAttributes` and
/// `privateAttributeNames` in context JSON) is removed, whatever this configuration allows.
/// Attributes are named by reference: a name (`email`) or a path into an object attribute
/// (`/address/city`). Removed references are listed under `_meta.redactedAttributes`, so
/// analysts know they existed.
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

    /// Makes `attribute` private: a name, or a path such as `/address/city`.
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

    /// The context's attributes as JSON, private ones removed (those this configuration makes
    /// private, and those the context marks private).
    pub fn apply(&self, context: &Context) -> Map<String, Value> {
        let Value::Object(mut obj) = context.to_json() else {
            return Map::new();
        };
        if context.kind() == "multi" {
            for (kind, part) in obj.iter_mut() {
                if let (false, Value::Object(p)) = (kind == "kind", part) {
                    self.strip(p, context.private_attributes_of(kind));
                }
            }
        } else {
            self.strip(&mut obj, context.private_attributes());
        }
        obj
    }

    pub(crate) fn apply_opt(&self, context: &Context) -> Option<Map<String, Value>> {
        self.include_context.then(|| self.apply(context))
    }

    fn strip<'a>(&self, obj: &mut Map<String, Value>, marked: impl Iterator<Item = &'a str>) {
        // The context's own `_meta` (its private attribute list) is not exported as such.
        obj.remove("_meta");
        let mut removed: Vec<String> = if self.all_private {
            obj.keys().filter(|k| self.is_private(k)).cloned().collect()
        } else {
            self.private
                .iter()
                .map(String::as_str)
                .filter(|r| remove_reference(obj, r))
                .map(str::to_owned)
                .collect()
        };
        for r in marked {
            if remove_reference(obj, r) {
                removed.push(r.to_owned());
            }
        }
        if removed.is_empty() {
            return;
        }
        removed.sort();
        removed.dedup();
        if self.all_private {
            for k in &removed {
                obj.remove(k);
            }
        }
        let mut meta = Map::new();
        meta.insert(
            "redactedAttributes".to_owned(),
            Value::Array(removed.into_iter().map(Value::String).collect()),
        );
        obj.insert("_meta".to_owned(), Value::Object(meta));
    }
}

/// Removes the attribute `reference` names (a name, or a `/`-path into objects) from `obj`:
/// `true` when it was there. `key`, `kind` and `anonymous` are never removed.
fn remove_reference(obj: &mut Map<String, Value>, reference: &str) -> bool {
    let Some(path) = reference.strip_prefix('/') else {
        return !ALWAYS_KEPT.contains(&reference) && obj.remove(reference).is_some();
    };
    let steps: Vec<String> = path
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    if parents.is_empty() && ALWAYS_KEPT.contains(&last.as_str()) {
        return false;
    }
    let mut at = obj;
    for step in parents {
        match at.get_mut(step) {
            Some(Value::Object(inner)) => at = inner,
            _ => return false,
        }
    }
    at.remove(last).is_some()
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

    #[test]
    fn attributes_a_context_marks_private_are_removed_by_path_in_every_kind() {
        let user = Context::new("u1")
            .with_attribute(
                "address",
                json!({"city": "SECRET-CITY", "zip": "69001", "a/b": {"c~d": "SECRET-ODD"}}),
            )
            .with_attribute("plan", "SECRET-PLAN")
            .with_country("FR")
            .with_private_attribute("/address/city")
            .with_private_attribute("/address/a~1b/c~0d")
            .with_private_attribute("plan")
            .with_private_attribute("key")
            .with_private_attribute("/missing/x");
        let org = Context::of_kind("org", "acme")
            .unwrap()
            .with_attribute("billing", json!({"iban": "SECRET-IBAN", "plan": "gold"}))
            .with_private_attribute("/billing/iban");
        let multi = Context::multi([user.clone(), org]).unwrap();
        // Even a configuration that allows everything keeps them out.
        let open = Redaction::default().allow("email").allow("ip");
        for ctx in [&user, &multi] {
            let text = serde_json::to_string(&open.apply(ctx)).unwrap();
            assert!(!text.contains("SECRET"), "{text}");
            assert!(
                text.contains("69001") && text.contains("\"FR\"") && text.contains("u1"),
                "{text}"
            );
            assert!(!text.contains("privateAttributes"), "{text}");
        }
        let one = open.apply(&user);
        assert_eq!(
            one["_meta"]["redactedAttributes"],
            json!(["/address/a~1b/c~0d", "/address/city", "plan"])
        );
        assert_eq!(one["address"], json!({"zip": "69001", "a/b": {}}));
        let m = open.apply(&multi);
        assert_eq!(m["org"]["billing"], json!({"plan": "gold"}));
        assert_eq!(
            m["org"]["_meta"]["redactedAttributes"],
            json!(["/billing/iban"])
        );
        // Configured references may be paths too.
        let cfg = Redaction::default()
            .private("/address/zip")
            .apply(&Context::new("u").with_attribute("address", json!({"zip": "1"})));
        assert_eq!(cfg["address"], json!({}));
    }
}
