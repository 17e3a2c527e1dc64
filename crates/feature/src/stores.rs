//! Building the PostgreSQL and Redis providers from a [`Config`] (crate features `postgres`,
//! `redis`).

#[cfg(any(feature = "postgres", feature = "redis"))]
use crate::config::{Config, ConfigError};

#[cfg(any(feature = "postgres", feature = "redis"))]
fn invalid(variable: &'static str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::Invalid {
        variable,
        value: value.to_owned(),
        expected,
    }
}

#[cfg(any(feature = "postgres", feature = "redis"))]
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
pub(crate) fn postgres(config: &Config) -> Result<feature_postgres::PostgresProvider, ConfigError> {
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

/// `FEATURE_PROVIDER=redis`: `FEATURE_REDIS_URL`, `FEATURE_REDIS_PREFIX`; with
/// `FEATURE_POSTGRES_URL` too (and the `postgres` feature), Redis is a read-through cache in
/// front of that database.
#[cfg(feature = "redis")]
pub(crate) fn redis(config: &Config) -> Result<feature_redis::RedisProvider, ConfigError> {
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
        builder = builder.cache_for(std::sync::Arc::new(origin));
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
