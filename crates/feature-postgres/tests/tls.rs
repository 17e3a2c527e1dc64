//! TLS to PostgreSQL, for real: the shared test server speaks no TLS, so each test puts a TLS
//! terminator (with a CA made at run time) in front of it on loopback, and connects through
//! it with `sslmode=verify-full`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;
mod tls_proxy;

use common::{shared_url, unique_table, DropTables};
use feature_core::model::Flag;
use feature_core::provider::{Provider, ProviderState, Sink};
use feature_postgres::{FlagStore, PostgresProvider, PostgresStore};
use feature_store::testing::RecordingSink;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tls_proxy::{Protocol, TestPki, TlsProxy};

const WAIT: Duration = Duration::from_secs(10);

/// The server's address in a `postgres://user:pw@host:port/db` URL.
fn server_addr(url: &str) -> SocketAddr {
    let host = url
        .rsplit('@')
        .next()
        .unwrap()
        .split(['/', '?'])
        .next()
        .unwrap();
    host.parse()
        .expect("the test URL names an IP address and a port")
}

/// `url` with the proxy's address instead of the server's, and `query` appended.
fn through(url: &str, proxy: SocketAddr, query: &str) -> String {
    let server = server_addr(url).to_string();
    let url = url.replacen(&server, &proxy.to_string(), 1);
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

/// A table with one flag, written over a plain connection.
async fn table_with_a_flag(url: &str, tag: &str) -> (String, DropTables) {
    let table = unique_table(tag);
    let guard = DropTables {
        url: url.to_owned(),
        table: table.clone(),
    };
    let store = PostgresStore::connect(url, &table).await.expect("connect");
    store
        .create(&Flag::boolean("tls-flag", true), "alice")
        .await
        .unwrap();
    store.close().await;
    (table, guard)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_and_store_work_over_verified_tls() {
    let Some(url) = shared_url() else { return };
    let (table, _g) = table_with_a_flag(&url, "tls_ok").await;
    let pki = TestPki::new("feature test CA");
    let proxy = TlsProxy::start(&pki, Protocol::Postgres, server_addr(&url)).await;

    // The provider: CA given to the builder, host name checked.
    let provider = PostgresProvider::builder(through(&url, proxy.addr, "sslmode=verify-full"))
        .table(&table)
        .tls_root_certificate(pki.ca_pem.as_bytes())
        .start_timeout(WAIT)
        .build()
        .unwrap();
    let sink = RecordingSink::new();
    provider.start(sink.clone() as Arc<dyn Sink>).await.unwrap();
    assert_eq!(provider.status().state, ProviderState::Ready);
    assert_eq!(sink.value("tls-flag"), Some(json!(true)));
    let after_load = proxy.handshakes();
    assert!(
        after_load >= 2,
        "pool and listener connect through TLS ({after_load})"
    );

    // The store: CA named in the URL (`sslrootcert`), as libpq users write it. A change made
    // over TLS reaches the provider's TLS listener.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let query = format!("sslmode=verify-full&sslrootcert={}", ca.display());
    let store = PostgresStore::connect(&through(&url, proxy.addr, &query), &table)
        .await
        .expect("store over TLS");
    store
        .update(&Flag::boolean("tls-flag", false), "bob")
        .await
        .unwrap();
    assert!(sink.wait_value(WAIT, "tls-flag", Some(json!(false))).await);
    assert!(proxy.handshakes() > after_load);

    // `require` encrypts without checking the certificate (libpq's meaning).
    let plain_ca = PostgresStore::connect(&through(&url, proxy.addr, "sslmode=require"), &table)
        .await
        .expect("sslmode=require");
    assert_eq!(plain_ca.rows().await.unwrap().len(), 1);

    store.close().await;
    plain_ca.close().await;
    provider.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_refused() {
    let Some(url) = shared_url() else { return };
    let (table, _g) = table_with_a_flag(&url, "tls_bad").await;
    let pki = TestPki::new("the server's CA");
    let other = TestPki::new("some other CA");
    let proxy = TlsProxy::start(&pki, Protocol::Postgres, server_addr(&url)).await;

    let provider = PostgresProvider::builder(through(&url, proxy.addr, "sslmode=verify-full"))
        .table(&table)
        .tls_root_certificate(other.ca_pem.as_bytes())
        .start_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let sink = RecordingSink::new();
    let _ = provider.start(sink.clone() as Arc<dyn Sink>).await;
    let status = provider.status();
    assert_eq!(status.state, ProviderState::Unavailable, "{status}");
    assert!(
        sink.snapshot().is_none(),
        "no flags through an untrusted server"
    );
    let why = status.last_error.expect("the refusal is reported").0;
    let why = format!("{why}: {:?}", std::error::Error::source(&*why));
    assert!(why.to_lowercase().contains("certificate"), "{why}");
    provider.close().await;

    // Same for the store, with the wrong CA in the URL, and with none (built-in roots only).
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("other.pem");
    std::fs::write(&ca, &other.ca_pem).unwrap();
    for query in [
        format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        "sslmode=verify-ca".to_owned(),
    ] {
        let refused = PostgresStore::connect(&through(&url, proxy.addr, &query), &table).await;
        assert!(
            refused.is_err(),
            "{query}: connected through an untrusted server"
        );
    }
    assert_eq!(proxy.handshakes(), 0, "no handshake may complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let Some(url) = shared_url() else { return };
    let (table, _g) = table_with_a_flag(&url, "tls_host").await;
    // A trusted CA, but a certificate for another host than the one connected to.
    let pki = TestPki::for_hosts("feature test CA", &["db.example"]);
    let proxy = TlsProxy::start(&pki, Protocol::Postgres, server_addr(&url)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();

    let full = format!("sslmode=verify-full&sslrootcert={}", ca.display());
    let refused = PostgresStore::connect(&through(&url, proxy.addr, &full), &table).await;
    assert!(
        refused.is_err(),
        "verify-full accepted a certificate for db.example"
    );
    assert_eq!(proxy.handshakes(), 0);

    let chain_only = format!("sslmode=verify-ca&sslrootcert={}", ca.display());
    let store = PostgresStore::connect(&through(&url, proxy.addr, &chain_only), &table)
        .await
        .expect("verify-ca checks the chain only");
    assert_eq!(store.rows().await.unwrap().len(), 1);
    assert!(proxy.handshakes() >= 1);
    store.close().await;
}
