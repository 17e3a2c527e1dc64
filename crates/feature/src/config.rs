//! Configuration from code or from the environment (`FEATURE_*` variables).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Which provider a [`Config`] selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderKind {
    /// Flags held in memory, set from code ([`crate::MemoryProvider`]).
    Memory,
    /// A YAML or JSON file, reloaded on change ([`crate::FileProvider`]).
    File,
    /// A PostgreSQL table (crate feature `postgres`).
    Postgres,
    /// A Redis hash (crate feature `redis`).
    Redis,
    /// LaunchDarkly (crate feature `launchdarkly`).
    LaunchDarkly,
    /// Unleash (crate feature `unleash`).
    Unleash,
}

impl ProviderKind {
    /// The name used in `FEATURE_PROVIDER`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Memory => "memory",
            ProviderKind::File => "file",
            ProviderKind::Postgres => "postgres",
            ProviderKind::Redis => "redis",
            ProviderKind::LaunchDarkly => "launchdarkly",
            ProviderKind::Unleash => "unleash",
        }
    }

    fn parse(s: &str) -> Option<ProviderKind> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "memory" => ProviderKind::Memory,
            "file" => ProviderKind::File,
            "postgres" | "postgresql" => ProviderKind::Postgres,
            "redis" => ProviderKind::Redis,
            "launchdarkly" => ProviderKind::LaunchDarkly,
            "unleash" => ProviderKind::Unleash,
            _ => return None,
        })
    }
}

/// Settings of the file provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// The flag file (`FEATURE_FILE_PATH`, default `features.yaml`).
    pub path: PathBuf,
    /// Reload when the file changes (`FEATURE_FILE_WATCH`, default `true`).
    pub watch: bool,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            path: PathBuf::from("features.yaml"),
            watch: true,
        }
    }
}

/// Settings of the PostgreSQL and Redis providers (crate features `postgres`, `redis`). Its
/// `Debug` output hides the URLs' credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// PostgreSQL URL (`FEATURE_POSTGRES_URL`), required with `FEATURE_PROVIDER=postgres`; with
    /// `FEATURE_PROVIDER=redis` it makes Redis a read-through cache in front of this database.
    pub postgres_url: Option<String>,
    /// The flag table (`FEATURE_TABLE`, default `feature_flags`).
    pub table: String,
    /// Redis URL (`FEATURE_REDIS_URL`), required with `FEATURE_PROVIDER=redis`.
    pub redis_url: Option<String>,
    /// Redis key prefix (`FEATURE_REDIS_PREFIX`, default `feature`).
    pub redis_prefix: String,
    /// Where the last good flags are written, and read back when the store is down at start
    /// (`FEATURE_SNAPSHOT_PATH`, default: none).
    pub snapshot_path: Option<PathBuf>,
    /// A flag file served when the store is down at start and no snapshot exists
    /// (`FEATURE_BOOTSTRAP_FILE`, default: none).
    pub bootstrap_file: Option<PathBuf>,
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = |u: &Option<String>| u.as_deref().map(feature_core::provider::redact_url);
        f.debug_struct("StoreConfig")
            .field("postgres_url", &url(&self.postgres_url))
            .field("table", &self.table)
            .field("redis_url", &url(&self.redis_url))
            .field("redis_prefix", &self.redis_prefix)
            .field("snapshot_path", &self.snapshot_path)
            .field("bootstrap_file", &self.bootstrap_file)
            .finish()
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            postgres_url: None,
            table: "feature_flags".into(),
            redis_url: None,
            redis_prefix: "feature".into(),
            snapshot_path: None,
            bootstrap_file: None,
        }
    }
}

impl StoreConfig {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>, mut c: StoreConfig) -> StoreConfig {
        let set = |variable: &'static str| get(variable).filter(|v| !v.trim().is_empty());
        c.postgres_url = set("FEATURE_POSTGRES_URL").or(c.postgres_url);
        c.redis_url = set("FEATURE_REDIS_URL").or(c.redis_url);
        c.table = set("FEATURE_TABLE").unwrap_or(c.table);
        c.redis_prefix = set("FEATURE_REDIS_PREFIX").unwrap_or(c.redis_prefix);
        c.snapshot_path = set("FEATURE_SNAPSHOT_PATH")
            .map(PathBuf::from)
            .or(c.snapshot_path);
        c.bootstrap_file = set("FEATURE_BOOTSTRAP_FILE")
            .map(PathBuf::from)
            .or(c.bootstrap_file);
        c
    }
}

/// Settings of the hosted-service providers (crate features `launchdarkly`, `unleash`).
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// LaunchDarkly server-side SDK key (`LAUNCHDARKLY_SDK_KEY`), required with
    /// `FEATURE_PROVIDER=launchdarkly`. Never shown by `Debug`.
    pub launchdarkly_sdk_key: Option<String>,
    /// LaunchDarkly polling base URL (`LAUNCHDARKLY_BASE_URL`, default: LaunchDarkly's).
    pub launchdarkly_base_url: Option<String>,
    /// LaunchDarkly streaming URL (`LAUNCHDARKLY_STREAM_URL`, default: LaunchDarkly's).
    pub launchdarkly_stream_url: Option<String>,
    /// Poll LaunchDarkly every `FEATURE_REFRESH_INTERVAL` instead of streaming
    /// (`LAUNCHDARKLY_POLLING`, default `false`; LaunchDarkly asks for 30 s or more).
    pub launchdarkly_polling: bool,
    /// Unleash API URL, e.g. `https://unleash.example.com/api` (`UNLEASH_URL`), required
    /// with `FEATURE_PROVIDER=unleash`.
    pub unleash_url: Option<String>,
    /// Unleash client API token (`UNLEASH_API_TOKEN`), required with
    /// `FEATURE_PROVIDER=unleash`. Never shown by `Debug`.
    pub unleash_token: Option<String>,
    /// The application name Unleash sees (`UNLEASH_APP_NAME`, default `feature`).
    pub unleash_app_name: String,
    /// Headers sent with every Unleash request, e.g. for a proxy (`UNLEASH_CUSTOM_HEADERS`:
    /// `Name: value` pairs separated by `;`). Values are never shown by `Debug`.
    pub unleash_custom_headers: Vec<(String, String)>,
    /// Only the toggles of these Unleash projects (`UNLEASH_PROJECTS`: names separated by
    /// `,`; default: every project the token can see).
    pub unleash_projects: Vec<String>,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            launchdarkly_sdk_key: None,
            launchdarkly_base_url: None,
            launchdarkly_stream_url: None,
            launchdarkly_polling: false,
            unleash_url: None,
            unleash_token: None,
            unleash_app_name: "feature".into(),
            unleash_custom_headers: Vec::new(),
            unleash_projects: Vec::new(),
        }
    }
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "<set>");
        f.debug_struct("RemoteConfig")
            .field("launchdarkly_sdk_key", &secret(&self.launchdarkly_sdk_key))
            .field("launchdarkly_base_url", &self.launchdarkly_base_url)
            .field("launchdarkly_stream_url", &self.launchdarkly_stream_url)
            .field("launchdarkly_polling", &self.launchdarkly_polling)
            .field("unleash_url", &self.unleash_url)
            .field("unleash_token", &secret(&self.unleash_token))
            .field("unleash_app_name", &self.unleash_app_name)
            .field(
                "unleash_custom_headers",
                &self
                    .unleash_custom_headers
                    .iter()
                    .map(|(n, _)| (n.as_str(), "<set>"))
                    .collect::<Vec<_>>(),
            )
            .field("unleash_projects", &self.unleash_projects)
            .finish()
    }
}

impl RemoteConfig {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>, mut c: RemoteConfig) -> RemoteConfig {
        let set = |variable: &'static str| get(variable).filter(|v| !v.trim().is_empty());
        c.launchdarkly_sdk_key = set("LAUNCHDARKLY_SDK_KEY").or(c.launchdarkly_sdk_key);
        c.launchdarkly_base_url = set("LAUNCHDARKLY_BASE_URL").or(c.launchdarkly_base_url);
        c.launchdarkly_stream_url = set("LAUNCHDARKLY_STREAM_URL").or(c.launchdarkly_stream_url);
        c.unleash_url = set("UNLEASH_URL").or(c.unleash_url);
        c.unleash_token = set("UNLEASH_API_TOKEN").or(c.unleash_token);
        c.unleash_app_name = set("UNLEASH_APP_NAME").unwrap_or(c.unleash_app_name);
        if let Some(headers) = set("UNLEASH_CUSTOM_HEADERS") {
            c.unleash_custom_headers = headers
                .split(';')
                .filter(|pair| !pair.trim().is_empty())
                .map(|pair| match pair.split_once(':') {
                    Some((n, v)) => (n.trim().to_owned(), v.trim().to_owned()),
                    // No value: kept as a name the provider refuses, so the mistake is seen.
                    None => (pair.trim().to_owned(), String::new()),
                })
                .collect();
        }
        if let Some(projects) = set("UNLEASH_PROJECTS") {
            c.unleash_projects = projects
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
        }
        c
    }
}

/// Client configuration. [`Config::default`] gives the documented defaults;
/// [`Config::from_env`] reads them from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Provider (`FEATURE_PROVIDER`: memory, file, postgres, redis, launchdarkly, unleash;
    /// default `memory`).
    pub provider: ProviderKind,
    /// How often remote providers poll or resynchronise (`FEATURE_REFRESH_INTERVAL`, default
    /// `30s`; accepts `500ms`, `30s`, `5m`, `1h`, or a number of seconds).
    pub refresh_interval: Duration,
    /// Offline mode (`FEATURE_OFFLINE`, default `false`): remote providers are not contacted and
    /// no events are sent; local providers (memory, file) work as usual.
    pub offline: bool,
    /// Send analytics events (`FEATURE_SEND_EVENTS`, default `true`).
    pub send_events: bool,
    /// File provider settings.
    pub file: FileConfig,
    /// PostgreSQL and Redis provider settings.
    pub store: StoreConfig,
    /// LaunchDarkly and Unleash provider settings.
    pub remote: RemoteConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            provider: ProviderKind::Memory,
            refresh_interval: Duration::from_secs(30),
            offline: false,
            send_events: true,
            file: FileConfig::default(),
            store: StoreConfig::default(),
            remote: RemoteConfig::default(),
        }
    }
}

/// A configuration value is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An environment variable has a value that cannot be used.
    #[error("{variable}={value:?} is invalid: expected {expected}")]
    Invalid {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What it should look like.
        expected: &'static str,
    },
    /// The provider selected is not compiled into this build.
    #[error(
        "provider {0:?} is not available in this build: enable the crate feature of the same name"
    )]
    ProviderUnavailable(&'static str),
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration from any variable lookup (for tests and embedding).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        if let Some(v) = get("FEATURE_PROVIDER") {
            c.provider = ProviderKind::parse(&v).ok_or(ConfigError::Invalid {
                variable: "FEATURE_PROVIDER",
                value: v,
                expected: "one of memory, file, postgres, redis, launchdarkly, unleash",
            })?;
        }
        if let Some(v) = get("FEATURE_REFRESH_INTERVAL") {
            c.refresh_interval = parse_duration(&v).ok_or(ConfigError::Invalid {
                variable: "FEATURE_REFRESH_INTERVAL",
                value: v,
                expected: "a positive duration such as 500ms, 30s, 5m or 1h",
            })?;
        }
        c.offline = bool_var(&get, "FEATURE_OFFLINE", c.offline)?;
        c.send_events = bool_var(&get, "FEATURE_SEND_EVENTS", c.send_events)?;
        if let Some(v) = get("FEATURE_FILE_PATH") {
            if v.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    variable: "FEATURE_FILE_PATH",
                    value: v,
                    expected: "a file path",
                });
            }
            c.file.path = PathBuf::from(v);
        }
        c.file.watch = bool_var(&get, "FEATURE_FILE_WATCH", c.file.watch)?;
        c.store = StoreConfig::from_lookup(&get, c.store);
        c.remote = RemoteConfig::from_lookup(&get, c.remote);
        c.remote.launchdarkly_polling =
            bool_var(&get, "LAUNCHDARKLY_POLLING", c.remote.launchdarkly_polling)?;
        Ok(c)
    }
}

fn bool_var(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(variable) {
        None => Ok(default),
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::Invalid {
                variable,
                value: v,
                expected: "true or false",
            }),
        },
    }
}

/// Parses `500ms`, `30s`, `5m`, `1h` or a plain number of seconds; zero is rejected.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    // Zero (or a value that rounds to zero nanoseconds) and values beyond what a `Duration`
    // holds are refused: no interval may spin, and no setting may panic.
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn durations_that_round_to_zero_or_overflow_are_refused() {
        for bad in [
            "0",
            "0ms",
            "0.0000001ms",
            "0.0000000001",
            "1e400",
            "99999999999999999999h",
            "184467440737095516160",
            "-5s",
            "",
            "ms",
            "1.5d",
            "NaN",
            "inf",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("0.001ms"), Some(Duration::from_micros(1)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        let err = Config::from_lookup(env(&[("FEATURE_REFRESH_INTERVAL", "0.0000001ms")]));
        assert!(err.is_err(), "{err:?}");
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::from_lookup(env(&[])).unwrap();
        assert_eq!(c.provider, ProviderKind::Memory);
        assert_eq!(c.refresh_interval, Duration::from_secs(30));
        assert!(!c.offline);
        assert!(c.send_events);
        assert_eq!(c.file.path, PathBuf::from("features.yaml"));
        assert!(c.file.watch);
    }

    #[test]
    fn reads_every_variable() {
        let c = Config::from_lookup(env(&[
            ("FEATURE_PROVIDER", "file"),
            ("FEATURE_REFRESH_INTERVAL", "500ms"),
            ("FEATURE_OFFLINE", "true"),
            ("FEATURE_SEND_EVENTS", "0"),
            ("FEATURE_FILE_PATH", "flags/prod.json"),
            ("FEATURE_FILE_WATCH", "no"),
        ]))
        .unwrap();
        assert_eq!(c.provider, ProviderKind::File);
        assert_eq!(c.refresh_interval, Duration::from_millis(500));
        assert!(c.offline);
        assert!(!c.send_events);
        assert_eq!(c.file.path, PathBuf::from("flags/prod.json"));
        assert!(!c.file.watch);
    }

    #[test]
    fn rejects_bad_values_clearly() {
        let e = Config::from_lookup(env(&[("FEATURE_PROVIDER", "etcd")])).unwrap_err();
        assert!(
            e.to_string()
                .contains("FEATURE_PROVIDER=\"etcd\" is invalid"),
            "{e}"
        );
        for (k, v) in [
            ("FEATURE_REFRESH_INTERVAL", "soon"),
            ("FEATURE_REFRESH_INTERVAL", "0s"),
            ("FEATURE_OFFLINE", "maybe"),
            ("FEATURE_SEND_EVENTS", ""),
            ("FEATURE_FILE_WATCH", "2"),
            ("FEATURE_FILE_PATH", " "),
        ] {
            let e = Config::from_lookup(env(&[(k, v)])).unwrap_err();
            assert!(
                matches!(e, ConfigError::Invalid { variable, .. } if variable == k),
                "{k}={v}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("15"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("1d"), None);
    }
}
