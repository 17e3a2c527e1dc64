//! Helpers shared by the tests that build a client from configuration.
#![allow(dead_code)] // each test file uses its own subset

use feature::{Config, ConfigError};
use std::collections::HashMap;
use std::time::Duration;

/// A [`Config`] read from `vars` alone, as [`Config::from_env`] reads the environment.
pub(crate) fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let m: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| m.get(k).cloned())
}

/// Whether a service accepts connections on `addr`; under `CI=true` an unreachable one fails
/// the test instead of letting it skip.
pub(crate) fn up(addr: &str) -> bool {
    let ok = std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))
        .is_ok();
    if !ok && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{addr} unreachable (CI=true: the test must not skip)");
    }
    ok
}
