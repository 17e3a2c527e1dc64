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
    /// An SQLite file, the flag server's embedded store (crate feature `sqlite`).
    Sqlite,
    /// LaunchDarkly (crate feature `launchdarkly`).
    LaunchDarkly,
    /// Unleash (crate feature `unleash`).
    Unleash,
    /// A flag server's SDK stream (crate feature `relay`).
    Relay,
}

impl ProviderKind {
    /// The name used in `FEATURE_PROVIDER`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Memory => "memory",
            ProviderKind::File => "file",
            ProviderKind::Postgres => "postgres",
            ProviderKind::Redis => "redis",
            ProviderKind::Sqlite => "sqlite",
            ProviderKind::LaunchDarkly => "launchdarkly",
            ProviderKind::Unleash => "unleash",
            ProviderKind::Relay => "relay",
        }
    }

    fn parse(s: &str) -> Option<ProviderKind> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "memory" => ProviderKind::Memory,
            "file" => ProviderKind::File,
            "postgres" | "postgresql" => ProviderKind::Postgres,
            "redis" => ProviderKind::Redis,
            "sqlite" => ProviderKind::Sqlite,
            "launchdarkly" => ProviderKind::LaunchDarkly,
            "unleash" => ProviderKind::Unleash,
            "relay" => ProviderKind::Relay,
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

/// Settings of the PostgreSQL, Redis and SQLite providers (crate features `postgres`, `redis`,
/// `sqlite`). Its `Debug` output hides the URLs' credentials.
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
    /// SQLite database (`FEATURE_SQLITE_URL`: `sqlite://path/to/feature.db`), required with
    /// `FEATURE_PROVIDER=sqlite`.
    pub sqlite_url: Option<String>,
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
            .field("sqlite_url", &self.sqlite_url)
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
            sqlite_url: None,
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
        c.sqlite_url = set("FEATURE_SQLITE_URL").or(c.sqlite_url);
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
    /// The flag server a relay provider follows, e.g. `https://flags.internal.example`
    /// (`FEATURE_RELAY_URL`), required with `FEATURE_PROVIDER=relay`.
    pub relay_url: Option<String>,
    /// The flag server token (`FEATURE_TOKEN`; scope `evaluate` is enough). Never shown by
    /// `Debug`.
    pub relay_token: Option<String>,
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
            relay_url: None,
            relay_token: None,
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
            .field(
                "relay_url",
                &self
                    .relay_url
                    .as_deref()
                    .map(feature_core::provider::redact_url),
            )
            .field("relay_token", &secret(&self.relay_token))
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
        c.relay_url = set("FEATURE_RELAY_URL").or(c.relay_url);
        c.relay_token = set("FEATURE_TOKEN").or(c.relay_token);
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

/// Which analytics exporter a [`Config`] selects (`FEATURE_EVENTS_EXPORTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExporterKind {
    /// JSON lines on standard output (`stdout`).
    Stdout,
    /// JSON lines appended to [`EventsConfig::file`] (`file`).
    File,
    /// Batches posted to [`EventsConfig::webhook_url`] (`webhook`, crate feature `webhook`).
    Webhook,
    /// Records produced to [`EventsConfig::kafka_topic`] (`kafka`, crate feature `kafka`).
    Kafka,
}

impl ExporterKind {
    /// The name used in `FEATURE_EVENTS_EXPORTER`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExporterKind::Stdout => "stdout",
            ExporterKind::File => "file",
            ExporterKind::Webhook => "webhook",
            ExporterKind::Kafka => "kafka",
        }
    }
}

/// The Kafka TLS and SASL variables (`FEATURE_KAFKA_*`) as read, handed to the Kafka
/// exporter's own parsing when the client is built.
#[cfg(feature = "kafka")]
const KAFKA_SECURITY_VARS: [&str; 5] = [
    crate::analytics::exporters::kafka::TLS_ENV,
    crate::analytics::exporters::kafka::TLS_CA_FILE_ENV,
    crate::analytics::exporters::kafka::SASL_MECHANISM_ENV,
    crate::analytics::exporters::kafka::SASL_USERNAME_ENV,
    crate::analytics::exporters::kafka::SASL_PASSWORD_ENV,
];

/// Where a client built from a [`Config`] sends its analytics events. `Debug` hides the
/// webhook URL's credentials and the Kafka SASL settings.
#[derive(Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// The exporter (`FEATURE_EVENTS_EXPORTER`: stdout, file, webhook, kafka; default: none,
    /// no events leave the process).
    pub exporter: Option<ExporterKind>,
    /// The events file of the `file` exporter (`FEATURE_EVENTS_FILE`, default
    /// `feature-events.jsonl`).
    pub file: Option<PathBuf>,
    /// The endpoint of the `webhook` exporter (`FEATURE_EVENTS_WEBHOOK_URL`, required with it):
    /// `https://`, or `http://` to loopback.
    pub webhook_url: Option<String>,
    /// Lets the webhook post over plain `http://` to a host that is not loopback
    /// (`FEATURE_WEBHOOK_ALLOW_INSECURE_HTTP`, default `false`).
    pub webhook_allow_insecure_http: bool,
    /// Bootstrap brokers of the `kafka` exporter, `host:port` (`FEATURE_EVENTS_KAFKA_BROKERS`,
    /// comma-separated, required with it).
    pub kafka_brokers: Vec<String>,
    /// The topic of the `kafka` exporter (`FEATURE_EVENTS_KAFKA_TOPIC`, default
    /// `feature-events`).
    pub kafka_topic: String,
    /// Create the topic (one partition) when it does not exist
    /// (`FEATURE_EVENTS_KAFKA_CREATE_TOPIC`, default `false`).
    pub kafka_create_topic: bool,
    /// `FEATURE_KAFKA_*` TLS and SASL variables as read (parsed by the Kafka exporter).
    pub(crate) kafka_security: Vec<(&'static str, String)>,
}

impl fmt::Debug for EventsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kafka_security: Vec<&str> = self.kafka_security.iter().map(|(k, _)| *k).collect();
        f.debug_struct("EventsConfig")
            .field("exporter", &self.exporter)
            .field("file", &self.file)
            .field(
                "webhook_url",
                &self
                    .webhook_url
                    .as_deref()
                    .map(feature_core::provider::redact_url),
            )
            .field(
                "webhook_allow_insecure_http",
                &self.webhook_allow_insecure_http,
            )
            .field("kafka_brokers", &self.kafka_brokers)
            .field("kafka_topic", &self.kafka_topic)
            .field("kafka_create_topic", &self.kafka_create_topic)
            .field("kafka_security_set", &kafka_security)
            .finish()
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            exporter: None,
            file: None,
            webhook_url: None,
            webhook_allow_insecure_http: false,
            kafka_brokers: Vec::new(),
            kafka_topic: "feature-events".into(),
            kafka_create_topic: false,
            kafka_security: Vec::new(),
        }
    }
}

impl EventsConfig {
    fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
        mut c: EventsConfig,
    ) -> Result<EventsConfig, ConfigError> {
        let set = |variable: &'static str| get(variable).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("FEATURE_EVENTS_EXPORTER") {
            c.exporter = match v.trim().to_ascii_lowercase().as_str() {
                "" | "none" => None,
                "stdout" => Some(ExporterKind::Stdout),
                "file" => Some(ExporterKind::File),
                "webhook" if cfg!(feature = "webhook") => Some(ExporterKind::Webhook),
                "kafka" if cfg!(feature = "kafka") => Some(ExporterKind::Kafka),
                "webhook" => return Err(ConfigError::ExporterUnavailable("webhook")),
                "kafka" => return Err(ConfigError::ExporterUnavailable("kafka")),
                "launchdarkly" => return Err(ConfigError::ExporterUnavailable("launchdarkly")),
                _ => {
                    return Err(ConfigError::Invalid {
                        variable: "FEATURE_EVENTS_EXPORTER",
                        value: v,
                        expected: "one of none, stdout, file, webhook, kafka",
                    })
                }
            };
        }
        c.file = set("FEATURE_EVENTS_FILE").map(PathBuf::from).or(c.file);
        c.webhook_url = set("FEATURE_EVENTS_WEBHOOK_URL").or(c.webhook_url);
        c.webhook_allow_insecure_http = bool_var(
            get,
            "FEATURE_WEBHOOK_ALLOW_INSECURE_HTTP",
            c.webhook_allow_insecure_http,
        )?;
        if let Some(v) = set("FEATURE_EVENTS_KAFKA_BROKERS") {
            c.kafka_brokers = v
                .split(',')
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(str::to_owned)
                .collect();
        }
        c.kafka_topic = set("FEATURE_EVENTS_KAFKA_TOPIC").unwrap_or(c.kafka_topic);
        c.kafka_create_topic = bool_var(
            get,
            "FEATURE_EVENTS_KAFKA_CREATE_TOPIC",
            c.kafka_create_topic,
        )?;
        #[cfg(feature = "kafka")]
        for name in KAFKA_SECURITY_VARS {
            if let Some(v) = get(name) {
                c.kafka_security.retain(|(k, _)| *k != name);
                c.kafka_security.push((name, v));
            }
        }
        match c.exporter {
            Some(ExporterKind::Webhook) if c.webhook_url.is_none() => {
                return Err(ConfigError::Missing {
                    variable: "FEATURE_EVENTS_WEBHOOK_URL",
                    needed_by: "FEATURE_EVENTS_EXPORTER=webhook",
                })
            }
            Some(ExporterKind::Kafka) if c.kafka_brokers.is_empty() => {
                return Err(ConfigError::Missing {
                    variable: "FEATURE_EVENTS_KAFKA_BROKERS",
                    needed_by: "FEATURE_EVENTS_EXPORTER=kafka",
                })
            }
            _ => {}
        }
        Ok(c)
    }

    /// The events file of the `file` exporter: [`EventsConfig::file`] or
    /// `feature-events.jsonl`.
    pub fn file_path(&self) -> PathBuf {
        self.file
            .clone()
            .unwrap_or_else(|| PathBuf::from("feature-events.jsonl"))
    }
}

/// Client configuration. [`Config::default`] gives the documented defaults;
/// [`Config::from_env`] reads them from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Provider (`FEATURE_PROVIDER`: memory, file, postgres, redis, sqlite, launchdarkly, unleash, relay;
    /// default `memory`).
    pub provider: ProviderKind,
    /// How often remote providers poll or resynchronise (`FEATURE_REFRESH_INTERVAL`, default
    /// `30s`; accepts `500ms`, `30s`, `5m`, `1h`, or a number of seconds).
    pub refresh_interval: Duration,
    /// Offline mode (`FEATURE_OFFLINE`, default `false`): remote providers are not contacted and
    /// no events are sent; local providers (memory, file) work as usual.
    pub offline: bool,
    /// Send analytics events (`FEATURE_SEND_EVENTS`, default `true`). `false` turns events
    /// off for a client built from this configuration, whatever exporter or sink it is given.
    pub send_events: bool,
    /// The analytics exporter and its settings (`FEATURE_EVENTS_*`).
    pub events: EventsConfig,
    /// Metrics settings (`FEATURE_METRICS_*`). `FEATURE_METRICS_ENABLED=false` turns metrics
    /// off for a client built from this configuration, whatever metrics it is given.
    pub metrics: crate::metrics::MetricsConfig,
    /// File provider settings.
    pub file: FileConfig,
    /// PostgreSQL, Redis and SQLite provider settings.
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
            events: EventsConfig::default(),
            metrics: crate::metrics::MetricsConfig::default(),
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
    /// The analytics exporter selected (`FEATURE_EVENTS_EXPORTER`) is not available in this
    /// build (`webhook`, `kafka`: enable the crate feature of the same name) or not yet
    /// (`launchdarkly`).
    #[error(
        "events exporter {0:?} is not available in this build (webhook and kafka need the crate \
         feature of the same name; a LaunchDarkly events exporter does not exist yet)"
    )]
    ExporterUnavailable(&'static str),
    /// A variable the selected setting needs is not set.
    #[error("{variable} must be set with {needed_by}")]
    Missing {
        /// The variable that is missing.
        variable: &'static str,
        /// The setting that needs it.
        needed_by: &'static str,
    },
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
                expected:
                    "one of memory, file, postgres, redis, sqlite, launchdarkly, unleash, relay",
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
        c.events = EventsConfig::from_lookup(&get, c.events)?;
        c.metrics = crate::metrics::MetricsConfig::from_lookup(&get)?;
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
    fn events_exporter_selection_is_checked_when_read() {
        let c = Config::from_lookup(env(&[
            ("FEATURE_EVENTS_EXPORTER", "file"),
            ("FEATURE_EVENTS_FILE", "/var/log/events.jsonl"),
        ]))
        .unwrap();
        assert_eq!(c.events.exporter, Some(ExporterKind::File));
        assert_eq!(c.events.file_path(), PathBuf::from("/var/log/events.jsonl"));
        // Nothing selected: no exporter, even with the LaunchDarkly provider.
        let c = Config::from_lookup(env(&[("FEATURE_PROVIDER", "launchdarkly")])).unwrap();
        assert_eq!(c.events.exporter, None);
        let e = Config::from_lookup(env(&[("FEATURE_EVENTS_EXPORTER", "launchdarkly")]));
        assert_eq!(e, Err(ConfigError::ExporterUnavailable("launchdarkly")));
        let e = Config::from_lookup(env(&[("FEATURE_EVENTS_EXPORTER", "syslog")])).unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::Invalid {
                    variable: "FEATURE_EVENTS_EXPORTER",
                    ..
                }
            ),
            "{e}"
        );
        #[cfg(feature = "webhook")]
        {
            let e = Config::from_lookup(env(&[("FEATURE_EVENTS_EXPORTER", "webhook")]));
            assert!(
                matches!(
                    e,
                    Err(ConfigError::Missing {
                        variable: "FEATURE_EVENTS_WEBHOOK_URL",
                        ..
                    })
                ),
                "{e:?}"
            );
        }
        #[cfg(not(feature = "webhook"))]
        assert_eq!(
            Config::from_lookup(env(&[("FEATURE_EVENTS_EXPORTER", "webhook")])),
            Err(ConfigError::ExporterUnavailable("webhook"))
        );
        #[cfg(feature = "kafka")]
        {
            let e = Config::from_lookup(env(&[("FEATURE_EVENTS_EXPORTER", "kafka")]));
            assert!(
                matches!(
                    e,
                    Err(ConfigError::Missing {
                        variable: "FEATURE_EVENTS_KAFKA_BROKERS",
                        ..
                    })
                ),
                "{e:?}"
            );
            let c = Config::from_lookup(env(&[
                ("FEATURE_EVENTS_EXPORTER", "kafka"),
                ("FEATURE_EVENTS_KAFKA_BROKERS", "k1:9092, k2:9092"),
                ("FEATURE_KAFKA_SASL_PASSWORD", "hunter2"),
            ]))
            .unwrap();
            assert_eq!(c.events.kafka_brokers, ["k1:9092", "k2:9092"]);
            assert_eq!(c.events.kafka_topic, "feature-events");
            assert!(!format!("{c:?}").contains("hunter2"));
        }
        #[cfg(not(feature = "kafka"))]
        assert_eq!(
            Config::from_lookup(env(&[("FEATURE_EVENTS_EXPORTER", "kafka")])),
            Err(ConfigError::ExporterUnavailable("kafka"))
        );
    }

    #[test]
    fn metrics_variables_are_part_of_the_config() {
        let c = Config::from_lookup(env(&[
            ("FEATURE_METRICS_ENABLED", "false"),
            ("FEATURE_METRICS_NAMESPACE", "app_flags"),
        ]))
        .unwrap();
        assert!(!c.metrics.enabled);
        assert_eq!(c.metrics.namespace, "app_flags");
        assert!(Config::from_lookup(env(&[("FEATURE_METRICS_PER_FLAG", "often")])).is_err());
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
