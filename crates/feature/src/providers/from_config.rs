//! Building the provider a [`Config`] names (`FEATURE_PROVIDER`): memory, file, and the
//! PostgreSQL, Redis, SQLite, LaunchDarkly and Unleash providers (crate features `postgres`,
//! `redis`, `sqlite`, `launchdarkly`, `unleash`).

use super::{FileProvider, MemoryProvider, Provider};
use crate::config::{Config, ConfigError, ProviderKind};
use std::sync::Arc;

/// The provider `config` names, or [`ConfigError::ProviderUnavailable`] when its crate feature
/// is not compiled in.
pub(crate) fn from_config(config: &Config) -> Result<Arc<dyn Provider>, ConfigError> {
    Ok(match config.provider {
        ProviderKind::Memory => Arc::new(MemoryProvider::new()),
        ProviderKind::File => {
            Arc::new(FileProvider::new(&config.file.path).watch(config.file.watch))
        }
        #[cfg(feature = "postgres")]
        ProviderKind::Postgres => Arc::new(postgres(config)?),
        #[cfg(feature = "redis")]
        ProviderKind::Redis => Arc::new(redis(config)?),
        #[cfg(feature = "sqlite")]
        ProviderKind::Sqlite => Arc::new(sqlite(config)?),
        #[cfg(feature = "unleash")]
        ProviderKind::Unleash => Arc::new(unleash(config)?),
        #[cfg(feature = "launchdarkly")]
        ProviderKind::LaunchDarkly => Arc::new(launchdarkly(config)?),
        #[cfg(feature = "relay")]
        ProviderKind::Relay => Arc::new(relay(config)?),
        #[allow(unreachable_patterns)] // every provider kind compiled in
        other => return Err(ConfigError::ProviderUnavailable(other.as_str())),
    })
}

#[cfg(any(
    feature = "postgres",
    feature = "redis",
    feature = "sqlite",
    feature = "unleash",
    feature = "launchdarkly",
    feature = "relay"
))]
fn invalid(variable: &'static str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::Invalid {
        variable,
        // A URL may carry a password: never into an error message.
        value: if variable.ends_with("_URL") {
            feature_core::provider::redact_url(value)
        } else {
            value.to_owned()
        },
        expected,
    }
}

#[cfg(any(
    feature = "postgres",
    feature = "redis",
    feature = "sqlite",
    feature = "relay"
))]
fn sync_options(config: &Config) -> feature_store::SyncOptions {
    feature_store::SyncOptions {
        refresh_interval: config.refresh_interval,
        snapshot_path: config.store.snapshot_path.clone(),
        bootstrap_file: config.store.bootstrap_file.clone(),
        ..Default::default()
    }
}

/// `FEATURE_PROVIDER=postgres`: `FEATURE_POSTGRES_URL`, `FEATURE_TABLE`.
#[cfg(feature = "postgres")]
fn postgres(config: &Config) -> Result<feature_postgres::PostgresProvider, ConfigError> {
    let url = config.store.postgres_url.as_deref().ok_or_else(|| {
        invalid(
            "FEATURE_POSTGRES_URL",
            "",
            "a postgres:// URL (required with FEATURE_PROVIDER=postgres)",
        )
    })?;
    feature_postgres::PostgresProvider::builder(url)
        .table(&config.store.table)
        .options(sync_options(config))
        .build()
        .map_err(|e| match e {
            feature_postgres::PostgresError::InvalidTable { .. } => invalid(
                "FEATURE_TABLE",
                &config.store.table,
                "at most 40 lower-case ASCII letters, digits and _, not starting with a digit",
            ),
            _ => invalid("FEATURE_POSTGRES_URL", url, "a postgres:// URL"),
        })
}

/// `FEATURE_PROVIDER=relay`: `FEATURE_RELAY_URL` (the flag server), `FEATURE_TOKEN`, and the
/// store providers' `FEATURE_SNAPSHOT_PATH` / `FEATURE_BOOTSTRAP_FILE`.
#[cfg(feature = "relay")]
fn relay(config: &Config) -> Result<feature_relay::RelayProvider, ConfigError> {
    let url = config.remote.relay_url.as_deref().ok_or_else(|| {
        invalid(
            "FEATURE_RELAY_URL",
            "",
            "the flag server's URL (required with FEATURE_PROVIDER=relay)",
        )
    })?;
    let mut builder = feature_relay::RelayProvider::builder(url).options(sync_options(config));
    if let Some(token) = &config.remote.relay_token {
        builder = builder.token(token);
    }
    builder
        .build()
        .map_err(|_| invalid("FEATURE_RELAY_URL", url, "an http:// or https:// URL"))
}

/// `FEATURE_PROVIDER=sqlite`: `FEATURE_SQLITE_URL` (`sqlite://path/to/feature.db`; the file
/// and its schema are created on first use). Writes of any process on the file are seen
/// within the poll interval (200 ms).
#[cfg(feature = "sqlite")]
fn sqlite(config: &Config) -> Result<feature_sqlite::SqliteProvider, ConfigError> {
    let url = config.store.sqlite_url.as_deref().ok_or_else(|| {
        invalid(
            "FEATURE_SQLITE_URL",
            "",
            "a sqlite:// URL (required with FEATURE_PROVIDER=sqlite)",
        )
    })?;
    feature_sqlite::SqliteProvider::builder(url)
        .options(sync_options(config))
        .build()
        .map_err(|e| match e {
            feature_sqlite::SqliteError::InMemory => invalid(
                "FEATURE_SQLITE_URL",
                url,
                "a database file (an in-memory database cannot be shared)",
            ),
            _ => invalid("FEATURE_SQLITE_URL", url, "sqlite://path/to/feature.db"),
        })
}

/// `FEATURE_PROVIDER=redis`: `FEATURE_REDIS_URL`, `FEATURE_REDIS_PREFIX`; with
/// `FEATURE_POSTGRES_URL` too (and the `postgres` feature), Redis is a read-through cache in
/// front of that database.
#[cfg(feature = "redis")]
fn redis(config: &Config) -> Result<feature_redis::RedisProvider, ConfigError> {
    let url = config.store.redis_url.as_deref().ok_or_else(|| {
        invalid(
            "FEATURE_REDIS_URL",
            "",
            "a redis:// URL (required with FEATURE_PROVIDER=redis)",
        )
    })?;
    #[allow(unused_mut)]
    let mut builder = feature_redis::RedisProvider::builder(url)
        .prefix(&config.store.redis_prefix)
        .options(sync_options(config));
    #[cfg(feature = "postgres")]
    if let Some(pg) = config.store.postgres_url.as_deref() {
        let origin =
            feature_postgres::PostgresStore::lazy(pg, &config.store.table).map_err(|_| {
                invalid(
                    "FEATURE_POSTGRES_URL / FEATURE_TABLE",
                    pg,
                    "a postgres:// URL and a valid table name",
                )
            })?;
        builder = builder.cache_for(Arc::new(origin));
    }
    builder.build().map_err(|e| match e {
        feature_redis::RedisError::InvalidPrefix(p) => invalid(
            "FEATURE_REDIS_PREFIX",
            &p,
            "1 to 100 bytes without whitespace or control characters",
        ),
        _ => invalid("FEATURE_REDIS_URL", url, "a redis:// URL"),
    })
}

/// `FEATURE_PROVIDER=unleash`: `UNLEASH_URL`, `UNLEASH_API_TOKEN`, `UNLEASH_APP_NAME`,
/// `UNLEASH_CUSTOM_HEADERS`, `UNLEASH_PROJECTS`;
/// `FEATURE_REFRESH_INTERVAL` is the polling interval.
#[cfg(feature = "unleash")]
fn unleash(config: &Config) -> Result<feature_unleash::UnleashProvider, ConfigError> {
    let r = &config.remote;
    let url = r.unleash_url.as_deref().ok_or_else(|| {
        invalid(
            "UNLEASH_URL",
            "",
            "the Unleash API URL, e.g. https://unleash.example.com/api (required with FEATURE_PROVIDER=unleash)",
        )
    })?;
    let token = r.unleash_token.as_deref().ok_or_else(|| {
        invalid(
            "UNLEASH_API_TOKEN",
            "",
            "a client API token (required with FEATURE_PROVIDER=unleash)",
        )
    })?;
    let mut builder = feature_unleash::UnleashProvider::builder(url, token)
        .app_name(r.unleash_app_name.as_str())
        .refresh_interval(config.refresh_interval);
    for (name, value) in &r.unleash_custom_headers {
        builder = builder.header(name, value);
    }
    for project in &r.unleash_projects {
        builder = builder.project(project);
    }
    builder.build().map_err(|e| match e {
        feature_unleash::UnleashError::EmptyAppName => invalid(
            "UNLEASH_APP_NAME",
            &r.unleash_app_name,
            "a non-empty application name",
        ),
        feature_unleash::UnleashError::InvalidHeader {
            name: "Authorization",
            ..
        } => invalid(
            "UNLEASH_API_TOKEN",
            "<hidden>",
            "a token of visible ASCII characters",
        ),
        feature_unleash::UnleashError::InvalidCustomHeader { name } => invalid(
            "UNLEASH_CUSTOM_HEADERS",
            &name,
            "`Name: value` pairs separated by `;`, of visible ASCII characters",
        ),
        _ => invalid("UNLEASH_URL", url, "an http:// or https:// URL"),
    })
}

/// `FEATURE_PROVIDER=launchdarkly`: `LAUNCHDARKLY_SDK_KEY`, `LAUNCHDARKLY_BASE_URL`,
/// `LAUNCHDARKLY_STREAM_URL`; streaming unless `LAUNCHDARKLY_POLLING=true`, which polls every
/// `FEATURE_REFRESH_INTERVAL`.
#[cfg(feature = "launchdarkly")]
fn launchdarkly(
    config: &Config,
) -> Result<feature_launchdarkly::LaunchDarklyProvider, ConfigError> {
    let r = &config.remote;
    let key = r.launchdarkly_sdk_key.as_deref().ok_or_else(|| {
        invalid(
            "LAUNCHDARKLY_SDK_KEY",
            "",
            "a server-side SDK key (required with FEATURE_PROVIDER=launchdarkly)",
        )
    })?;
    let mut builder = feature_launchdarkly::LaunchDarklyProvider::builder(key);
    if let Some(u) = &r.launchdarkly_base_url {
        builder = builder.base_uri(u.as_str());
    }
    if let Some(u) = &r.launchdarkly_stream_url {
        builder = builder.stream_uri(u.as_str());
    }
    if r.launchdarkly_polling {
        builder = builder.mode(feature_launchdarkly::Mode::Polling {
            interval: config.refresh_interval,
        });
    }
    builder.build().map_err(|e| match e {
        feature_launchdarkly::BuildError::InvalidSdkKey => invalid(
            "LAUNCHDARKLY_SDK_KEY",
            "<hidden>",
            "a non-empty key of visible ASCII characters",
        ),
        feature_launchdarkly::BuildError::InvalidUri {
            which: "stream",
            uri,
        } => invalid("LAUNCHDARKLY_STREAM_URL", &uri, "an absolute http(s) URL"),
        feature_launchdarkly::BuildError::InvalidUri { uri, .. } => {
            invalid("LAUNCHDARKLY_BASE_URL", &uri, "an absolute http(s) URL")
        }
        _ => invalid(
            "LAUNCHDARKLY_BASE_URL",
            r.launchdarkly_base_url.as_deref().unwrap_or(""),
            "a URL the HTTP client can use",
        ),
    })
}
