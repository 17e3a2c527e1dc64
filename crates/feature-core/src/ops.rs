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

/// A version string as read at evaluation time: the common `major[.minor[.patch]]` form is read
/// without building a [`semver::Version`], anything else through [`parse_version`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QuickVersion {
    /// Plain numbers, no pre-release and no build metadata.
    Release(u64, u64, u64),
    /// A version with a pre-release or build metadata.
    Full(semver::Version),
}

impl QuickVersion {
    /// Reads a version exactly as [`parse_version`] does (same accepted strings, same value).
    #[inline(always)]
    pub(crate) fn parse(s: &str) -> Option<QuickVersion> {
        match release_triple(s.as_bytes()) {
            Some((a, b, c)) => Some(QuickVersion::Release(a, b, c)),
            None => QuickVersion::parse_full(s),
        }
    }

    /// The general case, out of line.
    #[inline(never)]
    fn parse_full(s: &str) -> Option<QuickVersion> {
        parse_version(s).map(QuickVersion::Full)
    }

    /// The ordering of `self` against `other` by semantic-version precedence.
    #[inline]
    pub(crate) fn cmp_precedence(&self, other: &semver::Version) -> std::cmp::Ordering {
        match self {
            QuickVersion::Release(a, b, c) => (*a, *b, *c)
                .cmp(&(other.major, other.minor, other.patch))
                // Same numbers: a release ranks above any pre-release of it.
                .then(if other.pre.is_empty() {
                    std::cmp::Ordering::Equal
                } else {
                    std::cmp::Ordering::Greater
                }),
            QuickVersion::Full(v) => v.cmp_precedence(other),
        }
    }

    /// The version as a [`semver::Version`] (for requirement matching).
    #[inline]
    pub(crate) fn to_version(&self) -> std::borrow::Cow<'_, semver::Version> {
        match self {
            QuickVersion::Release(a, b, c) => {
                std::borrow::Cow::Owned(semver::Version::new(*a, *b, *c))
            }
            QuickVersion::Full(v) => std::borrow::Cow::Borrowed(v),
        }
    }
}

/// `major`, `major.minor` or `major.minor.patch` of decimal numbers without leading zeros of
/// at most 19 digits (so that they fit in `u64`): strings for which [`parse_version`] yields a
/// plain release version. Anything else (`1.2.3-beta`, `01.2.3`, `1.2.3.4`, a 20-digit number,
/// ...) is `None`, for the general parser, which decides it.
#[inline(always)]
pub(crate) fn release_triple(s: &[u8]) -> Option<(u64, u64, u64)> {
    let (major, i) = release_number(s, 0)?;
    if i == s.len() {
        return Some((major, 0, 0));
    }
    if s[i] != b'.' {
        return None;
    }
    let (minor, i) = release_number(s, i + 1)?;
    if i == s.len() {
        return Some((major, minor, 0));
    }
    if s[i] != b'.' {
        return None;
    }
    let (patch, i) = release_number(s, i + 1)?;
    if i == s.len() {
        Some((major, minor, patch))
    } else {
        None
    }
}

/// The number of decimal digits at `start` of `s` and the position after them: at least one
/// digit, no leading zero, at most 19 digits (which cannot overflow `u64`).
#[inline(always)]
fn release_number(s: &[u8], start: usize) -> Option<(u64, usize)> {
    // The common one-digit number (`2.5.1`): no loop.
    let first = u64::from(s.get(start)?.wrapping_sub(b'0'));
    if first > 9 {
        return None;
    }
    if !s.get(start + 1).is_some_and(u8::is_ascii_digit) {
        return Some((first, start + 1));
    }
    let mut n = 0u64;
    let mut i = start;
    while let Some(&b) = s.get(i) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        n = n.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    let len = i - start;
    if len == 0 || len > 19 || (len > 1 && s[start] == b'0') {
        return None;
    }
    Some((n, i))
}

/// A version operand of a comparison (`semVerGreaterThan`, ...), split when the flag is
/// compiled: a plain release version read from a context compares against the numbers and the
/// pre-release flag without touching the [`semver::Version`].
#[derive(Debug, Clone)]
pub(crate) struct VersionOperand {
    major: u64,
    minor: u64,
    patch: u64,
    /// Whether the operand has a pre-release (it then ranks below the release of its numbers).
    pre: bool,
    version: semver::Version,
}

impl VersionOperand {
    pub(crate) fn new(version: semver::Version) -> VersionOperand {
        VersionOperand {
            major: version.major,
            minor: version.minor,
            patch: version.patch,
            pre: !version.pre.is_empty(),
            version,
        }
    }

    /// The operand as a version.
    pub(crate) fn version(&self) -> &semver::Version {
        &self.version
    }

    /// The ordering of the plain release `(major, minor, patch)` against the operand by
    /// semantic-version precedence (build metadata never counts).
    #[inline(always)]
    pub(crate) fn release_cmp(&self, (a, b, c): (u64, u64, u64)) -> std::cmp::Ordering {
        use std::cmp::Ordering::*;
        if a != self.major {
            return if a < self.major { Less } else { Greater };
        }
        if b != self.minor {
            return if b < self.minor { Less } else { Greater };
        }
        if c != self.patch {
            return if c < self.patch { Less } else { Greater };
        }
        // Same numbers: a release ranks above any pre-release of it.
        if self.pre {
            Greater
        } else {
            Equal
        }
    }
}

/// Byte equality, with the short lengths of attribute names, kinds and keys compared inline
/// (a handful of loads) instead of through a `memcmp` call.
#[inline(always)]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    match n {
        0 => true,
        // First, middle and last byte cover every byte of 1 to 3.
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        // Two overlapping words cover every byte.
        4..=7 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        8..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        17..=32 => {
            word8(a, 0) == word8(b, 0)
                && word8(a, 8) == word8(b, 8)
                && word8(a, n - 16) == word8(b, n - 16)
                && word8(a, n - 8) == word8(b, n - 8)
        }
        _ => a == b,
    }
}

#[inline(always)]
fn word4(s: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&s[at..at + 4]);
    u32::from_ne_bytes(w)
}

#[inline(always)]
fn word8(s: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_ne_bytes(w)
}

/// String equality through [`bytes_eq`].
#[inline(always)]
pub(crate) fn str_eq(a: &str, b: &str) -> bool {
    bytes_eq(a.as_bytes(), b.as_bytes())
}

/// Whether `haystack` contains `needle`. Attribute values are short, so a scan for the needle's
/// first and last byte with an inline comparison of the rest beats setting up a general
/// substring searcher on every call; long haystacks use the standard library's.
#[inline]
pub(crate) fn contains(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let Some((&first, _)) = n.split_first() else {
        return true;
    };
    if h.len() < n.len() {
        return false;
    }
    if h.len() > 64 {
        return haystack.contains(needle);
    }
    let last = n[n.len() - 1];
    let end = h.len() - n.len();
    let mut i = 0;
    while i <= end {
        if h[i] == first && h[i + n.len() - 1] == last && bytes_eq(&h[i..i + n.len()], n) {
            return true;
        }
        i += 1;
    }
    false
}

/// A regular expression of the simple shape flag rules mostly use, matched without the
/// general engine: a sequence of ASCII characters and ASCII character classes, each optionally
/// repeated (`+`, `*`) or optional (`?`), optionally anchored (`^`, `$`), as in
/// `^[a-z0-9.]+@example\.com$`. Anything else (groups, alternation, counted repetition, `.`,
/// escapes such as `\d`, flags, negated classes, non-ASCII) is left to the `regex` crate.
///
/// The pattern becomes a bit-parallel automaton (Baeza-Yates and Gonnet's shift-and, extended to
/// classes and repetition): bit `k` of the state means "the atoms before `k` have matched", so a
/// byte advances every live position at once with a table lookup, a mask and a shift. Because
/// every atom is ASCII, a byte of a multi-byte character matches nothing, as the character
/// would not: the answer is the `regex` crate's (a test compares them on generated patterns).
#[derive(Debug, Clone)]
pub(crate) struct SimpleRegex {
    /// For each ASCII byte, the atoms that accept it (bit `k`: atom `k`).
    accepts: Box<[u64; 128]>,
    /// Atoms that may match again (`+`, `*`).
    repeat: u64,
    /// Atoms that may be skipped (`*`, `?`).
    skip: u64,
    /// The state before any byte: bit 0 and what skipping reaches from it.
    start: u64,
    /// The bit of a complete match.
    accept: u64,
    /// `^`: a match starts at the beginning only.
    anchored_start: bool,
    /// `$`: a match ends at the end only.
    anchored_end: bool,
    /// With `$`: the bytes of the single-character atoms that end the pattern (each matched
    /// exactly once, as in `@example\.com$`). They are compared with the end of the haystack
    /// directly, and the automaton runs over the bytes before them only.
    suffix: Box<[u8]>,
}

/// Characters that are literal outside a class.
fn plain_literal(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b" !\"#%&',-/:;<=>@_`~".contains(&c)
}

/// Characters that are literal inside a class (besides ranges of alphanumerics).
fn class_literal(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b" !\"#%',./:;<=>@_`*+?(){}|$".contains(&c)
}

/// Characters an escape (`\.`) makes literal.
fn escapable(c: u8) -> bool {
    b"\\.+*?()|[]{}^$-".contains(&c)
}

impl SimpleRegex {
    /// The automaton of `pattern`, when the pattern has the simple shape (see the type).
    pub(crate) fn new(pattern: &str) -> Option<SimpleRegex> {
        let p = pattern.as_bytes();
        let mut accepts = Box::new([0u64; 128]);
        let (mut repeat, mut skip) = (0u64, 0u64);
        let mut i = 0;
        let anchored_start = p.first() == Some(&b'^');
        if anchored_start {
            i = 1;
        }
        let mut anchored_end = false;
        let mut atoms = 0u32;
        while i < p.len() {
            // One atom: the set of bytes it accepts.
            let mut set = [false; 128];
            match p[i] {
                b'$' if i + 1 == p.len() => {
                    anchored_end = true;
                    i += 1;
                    continue;
                }
                b'\\' => {
                    let c = *p.get(i + 1).filter(|c| escapable(**c))?;
                    set[c as usize] = true;
                    i += 2;
                }
                b'[' => {
                    i += 1;
                    let mut any = false;
                    loop {
                        let c = *p.get(i)?;
                        if c == b']' && any {
                            i += 1;
                            break;
                        }
                        if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|e| *e != b']') {
                            let e = p[i + 2];
                            let alnum = |x: u8| x.is_ascii_alphanumeric();
                            if !alnum(c) || !alnum(e) || c > e {
                                return None;
                            }
                            (c..=e).for_each(|x| set[x as usize] = true);
                            i += 3;
                        } else if class_literal(c) {
                            set[c as usize] = true;
                            i += 1;
                        } else {
                            return None;
                        }
                        any = true;
                    }
                }
                c if plain_literal(c) => {
                    set[c as usize] = true;
                    i += 1;
                }
                _ => return None,
            }
            if atoms == 63 {
                return None;
            }
            let bit = 1u64 << atoms;
            for (byte, accepted) in set.iter().enumerate() {
                if *accepted {
                    accepts[byte] |= bit;
                }
            }
            match p.get(i) {
                Some(b'+') => repeat |= bit,
                Some(b'*') => {
                    repeat |= bit;
                    skip |= bit;
                }
                Some(b'?') => skip |= bit,
                _ => {}
            }
            if matches!(p.get(i), Some(b'+' | b'*' | b'?')) {
                i += 1;
                // Lazy (`+?`), doubled or counted repetition: not this simple shape.
                if matches!(p.get(i), Some(b'+' | b'*' | b'?' | b'{')) {
                    return None;
                }
            }
            atoms += 1;
        }
        // With `$`, the atoms at the end that accept one byte each, exactly once, are a literal
        // the haystack must end with: they leave the automaton, which then accepts where they
        // began.
        let mut suffix = Vec::new();
        if anchored_end {
            while atoms > 0 {
                let bit = 1u64 << (atoms - 1);
                if (repeat | skip) & bit != 0 {
                    break;
                }
                let mut bytes = accepts.iter().enumerate().filter(|(_, a)| **a & bit != 0);
                let (Some((byte, _)), None) = (bytes.next(), bytes.next()) else {
                    break;
                };
                suffix.push(byte as u8);
                accepts.iter_mut().for_each(|a| *a &= !bit);
                atoms -= 1;
            }
            suffix.reverse();
        }
        let mut m = SimpleRegex {
            accepts,
            repeat,
            skip,
            start: 1,
            accept: 1u64 << atoms,
            anchored_start,
            anchored_end,
            suffix: suffix.into(),
        };
        m.start = m.closure(1);
        Some(m)
    }

    /// `state` with every position reachable by skipping optional atoms.
    #[inline(always)]
    fn closure(&self, mut state: u64) -> u64 {
        loop {
            let next = state | ((state & self.skip) << 1);
            if next == state {
                return state;
            }
            state = next;
        }
    }

    /// Whether the pattern matches somewhere in `haystack` (as `Regex::is_match`).
    #[inline]
    pub(crate) fn is_match(&self, haystack: &str) -> bool {
        let mut haystack = haystack.as_bytes();
        if !self.suffix.is_empty() {
            let Some(before) = haystack.len().checked_sub(self.suffix.len()) else {
                return false;
            };
            if !bytes_eq(&haystack[before..], &self.suffix) {
                return false;
            }
            haystack = &haystack[..before];
        }
        // Without optional atoms there is nothing to close over: a shorter dependency chain.
        if self.skip == 0 {
            self.run::<false>(haystack)
        } else {
            self.run::<true>(haystack)
        }
    }

    #[inline(always)]
    fn run<const SKIPS: bool>(&self, haystack: &[u8]) -> bool {
        let mut state = self.start;
        if !self.anchored_end && state & self.accept != 0 {
            return true;
        }
        for &b in haystack {
            let accepted = self.accepts.get(b as usize).copied().unwrap_or(0) & state;
            state = (accepted << 1) | (accepted & self.repeat);
            if SKIPS {
                state = self.closure(state);
            }
            if !self.anchored_start {
                state |= self.start;
            } else if state == 0 {
                return false;
            }
            if !self.anchored_end && state & self.accept != 0 {
                return true;
            }
        }
        state & self.accept != 0
    }
}

/// A compiled `matches` operand: the bit-parallel matcher when the pattern is simple enough for
/// it (every pattern of that shape is a valid regular expression, and the answers are the same),
/// the `regex` crate's engine otherwise. Simple patterns also compile much faster.
#[derive(Debug, Clone)]
pub(crate) enum Pattern {
    Simple(SimpleRegex),
    General(regex::Regex),
}

impl Pattern {
    /// Compiles a pattern; an invalid one is the `regex` crate's error.
    pub(crate) fn new(pattern: &str) -> Result<Pattern, regex::Error> {
        match SimpleRegex::new(pattern) {
            Some(m) => Ok(Pattern::Simple(m)),
            None => regex::Regex::new(pattern).map(Pattern::General),
        }
    }

    /// Whether the pattern matches somewhere in `s`.
    #[inline]
    pub(crate) fn is_match(&self, s: &str) -> bool {
        match self {
            Pattern::Simple(m) => m.is_match(s),
            Pattern::General(r) => r.is_match(s),
        }
    }
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

    pub(crate) fn matches(&self, v: &QuickVersion) -> bool {
        match self {
            VersionRule::Exact(e) => v.cmp_precedence(e).is_eq(),
            VersionRule::Req(r) => r.matches(&v.to_version()),
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
    fn quick_versions_agree_with_the_general_parser() {
        let strings = [
            "0",
            "1",
            "2.1",
            "1.2.3",
            "10.20.30",
            "0.0.0",
            "01",
            "1.02",
            "1.2.03",
            "1.2.3.4",
            "",
            ".",
            "1.",
            ".1",
            "1..2",
            "v1",
            "1.2.3-beta",
            "1.2-rc.1",
            "1.2.3+build",
            "1.2.3-0",
            "18446744073709551615.0.0",
            "18446744073709551616.0.0",
            " 1.2.3",
            "1.2.3 ",
            "1 .2",
            "+1.2.3",
            "-1",
            "1.2.x",
            "١.٢.٣",
        ];
        let others = ["1.2.3", "1.2.3-beta", "1.2.4-0", "0.0.0", "2.0.0", "1.2.2"];
        for s in strings {
            let quick = QuickVersion::parse(s);
            let full = parse_version(s);
            assert_eq!(quick.is_some(), full.is_some(), "{s:?}");
            let (Some(q), Some(f)) = (quick, full) else {
                continue;
            };
            assert_eq!(*q.to_version(), f, "{s:?}");
            for o in others {
                let o = parse_version(o).unwrap();
                assert_eq!(q.cmp_precedence(&o), f.cmp_precedence(&o), "{s:?} vs {o}");
            }
        }
    }

    #[test]
    fn inline_equality_and_search() {
        let words = [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "abcdefg",
            "abcdefgh",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
        ];
        for a in words {
            for b in words {
                assert_eq!(str_eq(a, b), a == b, "{a:?} {b:?}");
            }
            let mut changed = a.to_owned().into_bytes();
            for i in 0..changed.len() {
                changed[i] ^= 1;
                assert!(!bytes_eq(a.as_bytes(), &changed), "{a:?} at {i}");
                changed[i] ^= 1;
            }
        }
        let long = "x".repeat(70) + "needle";
        for (h, n) in [
            ("jo@example.com", "@example.com"),
            ("jo@example.co", "@example.com"),
            ("", ""),
            ("a", ""),
            ("", "a"),
            ("aaa", "aa"),
            ("abab", "bab"),
            ("abcabd", "abd"),
            ("abcabc", "abd"),
            (long.as_str(), "needle"),
            (long.as_str(), "needles"),
            ("héllo wörld", "ö"),
        ] {
            assert_eq!(contains(h, n), h.contains(n), "{h:?} {n:?}");
        }
    }

    /// A small deterministic generator (xorshift), so that the test needs no extra crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
            xs[(self.next() % xs.len() as u64) as usize]
        }
    }

    #[test]
    fn simple_regexes_answer_as_the_regex_crate() {
        let atoms = [
            "a",
            "b",
            "c",
            "@",
            "-",
            "_",
            " ",
            "1",
            "\\.",
            "\\+",
            "\\$",
            "\\\\",
            "[ab]",
            "[a-c]",
            "[a-z0-9.]",
            "[b.@]",
            "[0-9]",
            "[-a]",
            "[a-]",
            "x",
            "#",
            "~",
            "&",
            "\\-",
            "\\^",
            "\\[",
            "\\]",
            "\\(",
            "\\)",
            "\\{",
            "\\}",
            "\\|",
            "\\*",
            "\\?",
            "[.*+?(){}|$]",
            "[ @#]",
        ];
        let quantifiers = ["", "", "", "+", "*", "?"];
        let letters = [
            "a", "b", "c", "@", "-", "_", " ", "1", "9", ".", "+", "$", "\\", "x", "é", "\n", "#",
            "~", "&", "z", "-", "^", "[", "]", "(", ")", "{", "}", "|", "*", "?",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut simple = 0;
        for _ in 0..3000 {
            let mut pattern = String::new();
            if rng.next().is_multiple_of(2) {
                pattern.push('^');
            }
            for _ in 0..rng.next() % 6 {
                pattern.push_str(rng.pick(&atoms));
                pattern.push_str(rng.pick(&quantifiers));
            }
            if rng.next().is_multiple_of(2) {
                pattern.push('$');
            }
            let regex = regex::Regex::new(&pattern).unwrap();
            let Some(fast) = SimpleRegex::new(&pattern) else {
                continue;
            };
            simple += 1;
            for _ in 0..40 {
                let hay: String = (0..rng.next() % 9).map(|_| rng.pick(&letters)).collect();
                assert_eq!(
                    fast.is_match(&hay),
                    regex.is_match(&hay),
                    "{pattern:?} on {hay:?}"
                );
            }
        }
        assert!(simple > 2000, "only {simple} patterns were simple");
        let email = SimpleRegex::new(r"^[a-z0-9.]+@example\.com$").unwrap();
        assert!(email.is_match("jo@example.com"));
        assert!(!email.is_match("jo@example.org"));
        assert!(!email.is_match("@example.com"));
        assert!(!email.is_match("Jo@example.com"));
        // The literal end is compared apart from the automaton.
        assert_eq!(&*email.suffix, b"@example.com");
        for (hay, expected) in [
            ("a@example.com", true),
            ("a.b@example.com", true),
            ("example.com", false),
            ("a@example.comx", false),
            ("a@example.co", false),
            ("é@example.com", false),
            ("a@@example.com", false),
            ("", false),
        ] {
            assert_eq!(email.is_match(hay), expected, "{hay:?}");
        }
        // Only single characters matched exactly once are a literal end.
        let rest = |p: &str| SimpleRegex::new(p).map(|m| m.suffix.to_vec());
        assert_eq!(rest(r"a+bc$"), Some(b"bc".to_vec()));
        assert_eq!(rest(r"^abc$"), Some(b"abc".to_vec()));
        assert_eq!(rest(r"ab?$"), Some(Vec::new()));
        assert_eq!(rest(r"a[bc]$"), Some(Vec::new()));
        assert_eq!(rest(r"abc"), Some(Vec::new()));
        for (pattern, hay, expected) in [
            (r"^abc$", "abc", true),
            (r"^abc$", "xabc", false),
            (r"abc$", "xabc", true),
            (r"^a?bc$", "bc", true),
            (r"^a?bc$", "abc", true),
            (r"^a?bc$", "aabc", false),
            (r"b*c$", "c", true),
            (r"^x+c$", "c", false),
        ] {
            let m = SimpleRegex::new(pattern).unwrap();
            assert_eq!(m.is_match(hay), expected, "{pattern:?} on {hay:?}");
        }
        for complex in [
            r"^a.c$",
            r"(a|b)",
            r"a{2}",
            r"\d+",
            r"[^a]",
            r"(?i)abc",
            r"a+?",
            r"[[:alpha:]]",
            r"é",
            r"\w",
            r"a|b",
            r"[a&&b]",
            r"[]a]",
            r"[z-a]",
            r"\bword\b",
            r"^^a",
            r"a$b",
            r"[a",
        ] {
            assert!(SimpleRegex::new(complex).is_none(), "{complex:?}");
        }
    }

    #[test]
    fn version_rules() {
        let v = QuickVersion::parse("1.4.2").unwrap();
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
        assert_eq!(
            parse_date(&json!("1970-01-01T01:00:01+01:00")),
            Some(1000.0)
        );
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
