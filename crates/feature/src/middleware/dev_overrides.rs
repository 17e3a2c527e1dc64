//! [`DevOverrides`]: per-request flag overrides, for development only.

use ::http::{HeaderMap, HeaderName};
use serde_json::Value;

/// **Development only**: lets requests override flags, from a header and a query parameter.
///
/// Off unless passed to a layer's `dev_overrides`: then anyone who can send a request can
/// choose the flags it gets, so never switch it on in production. The layer logs a warning
/// when it is switched on. Overrides apply to that one request only (reason `OVERRIDE`, see
/// [`RequestFlags::with_overrides`](crate::RequestFlags::with_overrides)).
///
/// Each override is `key=value`: the value is read as JSON when it parses (`true`, `3`,
/// `"dark"`, `{"a":1}`) and as a string otherwise (`dark`). Repeat the header (or the query
/// parameter) for several overrides; at most 64 are read per request. The query parameter is
/// percent-decoded; gRPC requests have no query string, so only the header applies there.
///
/// ```
/// use feature::middleware::DevOverrides;
/// use http::HeaderName;
/// // Header `x-feature-override: new-feature=true`, query `?feature-override=theme=dark`:
/// let dev = DevOverrides::new();
/// // Or other names:
/// let dev = DevOverrides::new()
///     .header(HeaderName::from_static("x-flag"))
///     .query("flag");
/// # let _ = dev;
/// ```
#[derive(Debug, Clone)]
pub struct DevOverrides {
    pub(super) header: Option<HeaderName>,
    pub(super) query: Option<String>,
}

impl Default for DevOverrides {
    fn default() -> Self {
        DevOverrides::new()
    }
}

/// At most this many per-request overrides are read.
const MAX_DEV_OVERRIDES: usize = 64;

impl DevOverrides {
    /// Header `x-feature-override` and query parameter `feature-override`.
    pub fn new() -> Self {
        DevOverrides {
            header: Some(HeaderName::from_static("x-feature-override")),
            query: Some("feature-override".to_owned()),
        }
    }

    /// Reads overrides from this header instead.
    pub fn header(mut self, name: HeaderName) -> Self {
        self.header = Some(name);
        self
    }

    /// Reads no header.
    pub fn without_header(mut self) -> Self {
        self.header = None;
        self
    }

    /// Reads overrides from this query parameter instead.
    pub fn query(mut self, name: impl Into<String>) -> Self {
        self.query = Some(name.into());
        self
    }

    /// Reads no query parameter.
    pub fn without_query(mut self) -> Self {
        self.query = None;
        self
    }

    /// The overrides a request asks for.
    pub(crate) fn read(&self, headers: &HeaderMap, query: Option<&str>) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        if let Some(name) = &self.header {
            for v in headers.get_all(name).iter().take(MAX_DEV_OVERRIDES) {
                if let Some(o) = v.to_str().ok().and_then(parse_override) {
                    out.push(o);
                }
            }
        }
        if let (Some(param), Some(query)) = (&self.query, query) {
            for pair in query.split('&') {
                if out.len() >= MAX_DEV_OVERRIDES {
                    break;
                }
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if percent_decode(k).as_deref() != Some(param.as_str()) {
                    continue;
                }
                if let Some(o) = percent_decode(v).as_deref().and_then(parse_override) {
                    out.push(o);
                }
            }
        }
        out.truncate(MAX_DEV_OVERRIDES);
        out
    }
}

fn parse_override(s: &str) -> Option<(String, Value)> {
    let (key, value) = s.split_once('=')?;
    let key = key.trim();
    if key.is_empty() {
        return None;
    }
    let value = value.trim();
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Some((key.to_owned(), value))
}

/// Decodes `%XX` escapes and `+` (a space) of a query string component.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::http::HeaderMap;

    #[test]
    fn dev_overrides_parse_json_or_strings_from_headers_and_query() {
        let dev = DevOverrides::new();
        let mut h = HeaderMap::new();
        h.append("x-feature-override", "a=true".parse().unwrap());
        h.append("x-feature-override", "b = 3".parse().unwrap());
        h.append("x-feature-override", "c=dark mode".parse().unwrap());
        h.append("x-feature-override", "no-equals".parse().unwrap());
        h.append("x-feature-override", "=1".parse().unwrap());
        let got = dev.read(&h, Some("x=1&feature-override=d%3D%7B%22k%22%3A1%7D&feature-override=e=hello+world&feature-override=%zz"));
        assert_eq!(
            got,
            vec![
                ("a".to_owned(), Value::Bool(true)),
                ("b".to_owned(), Value::from(3)),
                ("c".to_owned(), Value::from("dark mode")),
                ("d".to_owned(), serde_json::json!({"k": 1})),
                ("e".to_owned(), Value::from("hello world")),
            ]
        );
        let off = DevOverrides::new().without_header().without_query();
        assert!(off.read(&h, Some("feature-override=a=1")).is_empty());
        let many: String = (0..100)
            .map(|i| format!("feature-override=k{i}=1&"))
            .collect();
        assert_eq!(
            dev.read(&HeaderMap::new(), Some(&many)).len(),
            MAX_DEV_OVERRIDES
        );
    }

    #[test]
    fn percent_decoding_rejects_bad_escapes() {
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(percent_decode("%FF"), None);
    }
}
