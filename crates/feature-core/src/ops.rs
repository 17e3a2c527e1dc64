//! Operand parsing shared by the compiler and the evaluator: numbers, dates, versions.

use serde_json::Value;

/// A date as Unix milliseconds: an RFC 3339 string or a number of milliseconds.
pub(crate) fn parse_date(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.abs() <= 9_007_199_254_740_991.0)
            .map(f64::trunc),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.timestamp_micros() as f64 / 1000.0),
        _ => None,
    }
}

/// A semantic version, leniently: `2` and `2.1` are read as `2.0.0` and `2.1.0`.
/// Leading zeros, a `v` prefix and a fourth component are rejected.
pub(crate) fn parse_version(s: &str) -> Option<semver::Version> {
    if let Ok(v) = semver::Version::parse(s) {
        return Some(v);
    }
    let split = s.find(['-', '+']).unwrap_or(s.len());
    let (core, rest) = s.split_at(split);
    let parts = core.split('.').count();
    if core.is_empty()
        || parts > 2
        || !core
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let padded = if parts == 1 {
        format!("{core}.0.0{rest}")
    } else {
        format!("{core}.0{rest}")
    };
    semver::Version::parse(&padded).ok()
}

/// A requirement operand of the `semver` operator.
#[derive(Debug, Clone)]
pub(crate) enum VersionRule {
    /// A bare version: exactly this version (build metadata ignored).
    Exact(semver::Version),
    /// A requirement such as `>=1.2.0, <2` or `^1.4`.
    Req(semver::VersionReq),
}

impl VersionRule {
    pub(crate) fn parse(s: &str) -> Result<VersionRule, String> {
        let t = s.trim();
        if t.starts_with(|c: char| c.is_ascii_digit()) && !t.contains([',', ' ', '*', 'x', 'X']) {
            return parse_version(t)
                .map(VersionRule::Exact)
                .ok_or_else(|| format!("{s:?} is not a semantic version"));
        }
        semver::VersionReq::parse(t)
            .map(VersionRule::Req)
            .map_err(|e| format!("{s:?} is not a version requirement: {e}"))
    }

    pub(crate) fn matches(&self, v: &semver::Version) -> bool {
        match self {
            VersionRule::Exact(e) => e.cmp_precedence(v).is_eq(),
            VersionRule::Req(r) => r.matches(v),
        }
    }
}

/// JSON equality as flag rules mean it: numbers compare by value (`1 == 1.0`), never equal to
/// booleans; strings and booleans compare exactly; arrays and objects structurally.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lenient_versions() {
        assert_eq!(parse_version("2"), parse_version("2.0.0"));
        assert_eq!(parse_version("2.1"), parse_version("2.1.0"));
        assert_eq!(parse_version("2.1-beta"), parse_version("2.1.0-beta"));
        assert!(parse_version("02.0.0").is_none());
        assert!(parse_version("v2.0.0").is_none());
        assert!(parse_version("2.0.0.0").is_none());
    }

    #[test]
    fn version_rules() {
        let v = parse_version("1.4.2").unwrap();
        assert!(VersionRule::parse(">=1.2.0, <2").unwrap().matches(&v));
        assert!(VersionRule::parse("1.4.2").unwrap().matches(&v));
        assert!(!VersionRule::parse("1.4").unwrap().matches(&v));
        assert!(VersionRule::parse("^1.4").unwrap().matches(&v));
        assert!(VersionRule::parse(">>1").is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date(&json!(1000)), Some(1000.0));
        assert_eq!(parse_date(&json!("1970-01-01T00:00:01Z")), Some(1000.0));
        assert_eq!(parse_date(&json!("1970-01-01T01:00:01+01:00")), Some(1000.0));
        assert_eq!(parse_date(&json!("nope")), None);
        assert_eq!(parse_date(&json!(true)), None);
    }

    #[test]
    fn equality() {
        assert!(json_eq(&json!(1), &json!(1.0)));
        assert!(!json_eq(&json!(1), &json!(true)));
        assert!(!json_eq(&json!("1"), &json!(1)));
    }
}
