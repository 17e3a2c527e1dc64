//! No password or token reaches a log line: every public type that can hold one formats it
//! redacted (`{:?}` and, for errors, `{}`), whatever the URL's shape.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![cfg(all(feature = "postgres", feature = "redis", feature = "webhook"))]

mod common;

use common::config;
use feature::analytics::exporters::webhook::HttpExporter;
use feature::providers::postgres::{PostgresProvider, PostgresStore};
use feature::providers::redis::{RedisProvider, RedisStore};
use feature::Client;

const SECRET: &str = "s3cr3t-pw";

fn assert_hidden(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows the secret: {text}");
}

fn postgres_urls() -> Vec<String> {
    vec![
        format!("postgres://app:{SECRET}@127.0.0.1:5432/flags"),
        format!("postgresql://app:{SECRET}@db.internal/flags?sslmode=require"),
        format!("postgres://127.0.0.1/flags?user=app&password={SECRET}"),
    ]
}

fn redis_urls() -> Vec<String> {
    vec![
        format!("redis://:{SECRET}@127.0.0.1:6379"),
        format!("redis://default:{SECRET}@127.0.0.1:6379/2"),
    ]
}

#[tokio::test]
async fn configuration_and_store_types_redact_credentials() {
    for url in postgres_urls() {
        let cfg = config(&[
            ("FEATURE_PROVIDER", "postgres"),
            ("FEATURE_POSTGRES_URL", &url),
            ("LAUNCHDARKLY_SDK_KEY", SECRET),
            ("UNLEASH_API_TOKEN", SECRET),
        ])
        .unwrap();
        assert_hidden("Config", &format!("{cfg:?}"));
        assert_hidden("StoreConfig", &format!("{:?}", cfg.store));
        assert_hidden(
            "PostgresBuilder",
            &format!("{:?}", PostgresProvider::builder(url.clone())),
        );
        let provider = PostgresProvider::builder(url.clone()).build().unwrap();
        assert_hidden("PostgresProvider", &format!("{provider:?}"));
        let store = PostgresStore::lazy(&url, "feature_flags").unwrap();
        assert_hidden("PostgresStore", &format!("{store:?}"));
    }
    for url in redis_urls() {
        let cfg = config(&[("FEATURE_PROVIDER", "redis"), ("FEATURE_REDIS_URL", &url)]).unwrap();
        assert_hidden("Config", &format!("{cfg:?}"));
        assert_hidden(
            "RedisBuilder",
            &format!("{:?}", RedisProvider::builder(url.clone())),
        );
        let provider = RedisProvider::new(&url).unwrap();
        assert_hidden("RedisProvider", &format!("{provider:?}"));
        let store = RedisStore::new(&url, "feature").unwrap();
        assert_hidden("RedisStore", &format!("{store:?}"));
    }
}

#[tokio::test]
async fn a_bad_store_url_is_reported_without_its_password() {
    for url in [
        format!("postgres://app:{SECRET}@127.0.0.1:notaport/flags"),
        format!("postgres://app:{SECRET}@[::1/flags"),
    ] {
        let cfg = config(&[
            ("FEATURE_PROVIDER", "postgres"),
            ("FEATURE_POSTGRES_URL", &url),
        ]);
        let err = match cfg {
            Err(e) => format!("{e} {e:?}"),
            Ok(cfg) => match Client::new(cfg).await {
                Err(e) => format!("{e} {e:?}"),
                Ok(_) => panic!("{url} accepted"),
            },
        };
        assert_hidden("the error", &err);
    }
    let err = RedisProvider::new(&format!("redis://:{SECRET}@127.0.0.1:notaport")).unwrap_err();
    assert_hidden("RedisError", &format!("{err} {err:?}"));
}

#[test]
fn the_webhook_exporter_hides_its_authorization_header() {
    let exporter = HttpExporter::new("http://127.0.0.1:9/events")
        .unwrap()
        .header("authorization", &format!("Bearer {SECRET}"))
        .unwrap()
        .header("x-api-key", SECRET)
        .unwrap();
    assert_hidden("HttpExporter", &format!("{exporter:?}"));
}
