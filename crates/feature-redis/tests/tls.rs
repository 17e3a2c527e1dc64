//! `rediss://`, for real: the shared test server speaks no TLS, so each test puts a TLS
//! terminator (with a CA made at run time) in front of it on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

#[path = "../../feature-postgres/tests/tls_proxy/mod.rs"]
mod tls_proxy;

use feature_core::model::Flag;
use feature_core::provider::{Provider, ProviderState, Sink};
use feature_redis::{FlagStore, RedisProvider, RedisStore};
use feature_store::testing::RecordingSink;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tls_proxy::{Protocol, TestPki, TlsProxy};

const WAIT: Duration = Duration::from_secs(10);

/// The shared server's address, or `None` outside CI when it is down.
fn server() -> Option<(String, SocketAddr)> {
    let url =
        std::env::var("FEATURE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let addr: SocketAddr = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("the test URL names an IP address and a port");
    if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok() {
        return Some((url, addr));
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("Redis is unreachable at {url} (CI=true: the test must not skip)");
    }
    eprintln!("skipping: Redis is unreachable at {url}");
    None
}

/// A key prefix of one test; its keys are deleted when dropped.
struct Prefix {
    url: String,
    prefix: String,
}

impl Drop for Prefix {
    fn drop(&mut self) {
        if let Ok(mut c) = redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection()) {
            for k in ["flags", "segments", "revs", "version", "fill", "audit"] {
                let _: Result<(), _> = redis::cmd("DEL")
                    .arg(format!("{}:{k}", self.prefix))
                    .query(&mut c);
            }
        }
    }
}

async fn prefix_with_a_flag(url: &str, tag: &str) -> Prefix {
    let px = Prefix {
        url: url.to_owned(),
        prefix: format!("test:{tag}:{:08x}", fastrand::u32(..)),
    };
    let store = RedisStore::new(url, &px.prefix).unwrap();
    store
        .create(&Flag::boolean("tls-flag", true), "alice")
        .await
        .unwrap();
    px
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_loads_and_follows_flags_over_verified_tls() {
    let Some((url, addr)) = server() else { return };
    let px = prefix_with_a_flag(&url, "tls_ok").await;
    let pki = TestPki::new("feature test CA");
    let proxy = TlsProxy::start(&pki, Protocol::Tls, addr).await;
    let tls_url = format!("rediss://{}", proxy.addr);

    let provider = RedisProvider::builder(&tls_url)
        .prefix(&px.prefix)
        .tls_root_certificate(pki.ca_pem.as_bytes())
        .start_timeout(WAIT)
        .build()
        .unwrap();
    let sink = RecordingSink::new();
    provider.start(sink.clone() as Arc<dyn Sink>).await.unwrap();
    assert_eq!(provider.status().state, ProviderState::Ready);
    assert_eq!(sink.value("tls-flag"), Some(json!(true)));
    assert!(proxy.handshakes() >= 1, "the provider spoke TLS");

    // A change (made over a plain connection) arrives through the TLS pub/sub connection.
    let store = RedisStore::new(&url, &px.prefix).unwrap();
    store
        .update(&Flag::boolean("tls-flag", false), "bob")
        .await
        .unwrap();
    assert!(sink.wait_value(WAIT, "tls-flag", Some(json!(false))).await);
    provider.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_refused() {
    let Some((url, addr)) = server() else { return };
    let px = prefix_with_a_flag(&url, "tls_bad").await;
    let pki = TestPki::new("the server's CA");
    let other = TestPki::new("some other CA");
    let proxy = TlsProxy::start(&pki, Protocol::Tls, addr).await;
    let tls_url = format!("rediss://{}", proxy.addr);

    // A private CA that did not sign the server's certificate, then the system's roots.
    let builders = [
        RedisProvider::builder(&tls_url).tls_root_certificate(other.ca_pem.as_bytes()),
        RedisProvider::builder(&tls_url),
    ];
    for builder in builders {
        let provider = builder
            .prefix(&px.prefix)
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
        let why = format!("{why} {:?}", std::error::Error::source(&*why));
        assert!(why.to_lowercase().contains("certificate"), "{why}");
        provider.close().await;
    }
    assert_eq!(proxy.handshakes(), 0, "no handshake may complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_is_refused() {
    let Some((url, addr)) = server() else { return };
    let px = prefix_with_a_flag(&url, "tls_host").await;
    // A trusted CA, but a certificate for another host than the one connected to.
    let pki = TestPki::for_hosts("feature test CA", &["cache.example"]);
    let proxy = TlsProxy::start(&pki, Protocol::Tls, addr).await;
    let provider = RedisProvider::builder(format!("rediss://{}", proxy.addr))
        .prefix(&px.prefix)
        .tls_root_certificate(pki.ca_pem.as_bytes())
        .start_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let sink = RecordingSink::new();
    let _ = provider.start(sink.clone() as Arc<dyn Sink>).await;
    assert_eq!(provider.status().state, ProviderState::Unavailable);
    assert!(sink.snapshot().is_none());
    assert_eq!(proxy.handshakes(), 0);
    provider.close().await;
}

#[test]
fn a_root_certificate_that_is_not_pem_is_refused_when_building() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _g = rt.enter();
    let err = RedisProvider::builder("rediss://127.0.0.1:1")
        .tls_root_certificate(
            &b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"[..],
        )
        .build()
        .unwrap_err();
    assert!(
        matches!(err, feature_redis::RedisError::InvalidTls(_)),
        "{err:?}"
    );
}
