//! Durations (`FEATURE_REFRESH_INTERVAL` and the other interval settings): `parse_duration`
//! never panics, never accepts zero, and what it accepts reads back as the same duration
//! when written in seconds; the configuration that reads it rejects what it rejects.

use feature::{parse_duration, Config};
use std::time::Duration;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let parsed = parse_duration(text);
        if let Some(d) = parsed {
            assert!(!d.is_zero(), "{text:?} accepted as zero");
            let secs = format!("{}", d.as_secs_f64());
            let back = parse_duration(&secs);
            let Some(back) = back else {
                panic!("{text:?} read as {d:?}, but {secs:?} is refused");
            };
            let diff = back.abs_diff(d);
            // f64 seconds keep 52 bits: allow that rounding, and a nanosecond.
            let tolerance = Duration::from_nanos(1).max(d.mul_f64(1e-15));
            assert!(
                diff <= tolerance,
                "{text:?}: {d:?} vs {back:?} via {secs:?}"
            );
        }
        let config = Config::from_lookup(|name| {
            (name == "FEATURE_REFRESH_INTERVAL").then(|| text.to_owned())
        });
        if parsed.is_none() {
            assert!(
                config.is_err(),
                "{text:?} refused but the config accepted it"
            );
        }
    });
}
