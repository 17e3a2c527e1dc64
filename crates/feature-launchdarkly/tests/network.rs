//! Enterprise network settings ([`NetworkConfig`]): the proxy really carries the flag-data and
//! events requests (a small HTTP/CONNECT proxy on 127.0.0.1 records what passes through it),
//! and an extra root certificate file really lets a TLS stand-in, whose certificate authority
//! is made at run time, be trusted (and without it the stand-in is refused).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature_core::provider::{Provider, ProviderState};
use feature_core::Context;
use feature_launchdarkly::events::{EventProcessor, EventsConfig};
use feature_launchdarkly::{BuildError, LaunchDarklyProvider, Mode, NetworkConfig};
use feature_store::testing::RecordingSink;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;

fn data() -> Value {
    json!({"flags": {"beta": {"key": "beta", "version": 1, "on": true, "salt": "b",
        "variations": [false, true], "offVariation": 0, "fallthrough": {"variation": 1}}},
        "segments": {}})
}

/// Reads an HTTP request head (up to the blank line) from `s`.
async fn read_head<S: AsyncReadExt + Unpin>(s: &mut S) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    head
}

/// Answers every request with `body` (and reads a request body it announces).
async fn answer<S: AsyncReadExt + AsyncWriteExt + Unpin>(mut s: S, body: &str) {
    let head = String::from_utf8_lossy(&read_head(&mut s).await).to_string();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut rest = vec![0u8; len];
    let _ = s.read_exact(&mut rest).await;
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(response.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// A plain HTTP stand-in for LaunchDarkly's polling and events endpoints.
async fn plain_stand_in() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(answer(s, Box::leak(data().to_string().into_boxed_str())));
        }
    });
    uri
}

/// A forward proxy: absolute-form HTTP requests and `CONNECT` tunnels, each request line
/// recorded.
async fn proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}", l.local_addr().unwrap());
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut client, _) = l.accept().await.unwrap();
            let log = log.clone();
            tokio::spawn(async move {
                let head = read_head(&mut client).await;
                let text = String::from_utf8_lossy(&head).to_string();
                let line = text.lines().next().unwrap_or("").to_owned();
                log.lock().unwrap().push(line.clone());
                let mut parts = line.split_whitespace();
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                if method == "CONNECT" {
                    let mut upstream = TcpStream::connect(target).await.unwrap();
                    client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                } else {
                    let authority = target
                        .strip_prefix("http://")
                        .and_then(|r| r.split('/').next())
                        .unwrap();
                    let mut upstream = TcpStream::connect(authority).await.unwrap();
                    upstream.write_all(&head).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    (uri, seen)
}

#[tokio::test]
async fn the_proxy_carries_flag_data_and_events() {
    let target = plain_stand_in().await;
    let (proxy_uri, seen) = proxy().await;
    let net = NetworkConfig::new().proxy(&proxy_uri);
    let p = LaunchDarklyProvider::builder("sdk-key")
        .base_uri(&target)
        .mode(Mode::polling())
        .network(net.clone())
        .build()
        .unwrap();
    let sink = RecordingSink::new();
    p.start(sink.clone()).await.unwrap();
    assert_eq!(p.status().state, ProviderState::Ready);
    assert_eq!(
        sink.snapshot()
            .unwrap()
            .evaluate("beta", &Context::new("u"))
            .value(),
        Some(&json!(true))
    );
    p.close().await;

    let events = EventProcessor::start(
        "sdk-key",
        EventsConfig::default().events_uri(&target).network(net),
        p.flag_metadata(),
    )
    .unwrap();
    events.custom(&Context::new("u"), "e", None, None);
    events.close().await;
    assert_eq!(events.stats().payloads_sent, 1);

    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains(&format!("GET {target}/sdk/latest-all HTTP/1.1")),
        "{seen:?}"
    );
    assert!(
        seen.contains(&format!("POST {target}/bulk HTTP/1.1")),
        "{seen:?}"
    );
}

/// A certificate authority made now, and a `localhost` server certificate it signed.
fn pki() -> (String, Arc<rustls::ServerConfig>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "feature test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let der_key = rustls::pki_types::PrivateKeyDer::Pkcs8(
        rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
    );
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], der_key)
    .unwrap();
    (ca_cert.pem(), Arc::new(config))
}

/// A TLS stand-in (`https://localhost:PORT`) serving the flag data.
async fn tls_stand_in(config: Arc<rustls::ServerConfig>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("https://localhost:{}", l.local_addr().unwrap().port());
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(s).await {
                    answer(tls, Box::leak(data().to_string().into_boxed_str())).await;
                }
            });
        }
    });
    uri
}

#[tokio::test]
async fn an_extra_root_certificate_lets_a_private_ca_be_trusted() {
    let (ca_pem, server) = pki();
    let uri = tls_stand_in(server).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();

    // Without the file, the private CA is not trusted: no data.
    let p = LaunchDarklyProvider::builder("sdk-key")
        .base_uri(&uri)
        .mode(Mode::polling())
        .start_timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    let sink = RecordingSink::new();
    p.start(sink.clone()).await.unwrap();
    assert_eq!(p.status().state, ProviderState::Unavailable);
    assert!(sink.snapshot().is_none());
    p.close().await;

    // With it, the stand-in is trusted.
    let p = LaunchDarklyProvider::builder("sdk-key")
        .base_uri(&uri)
        .mode(Mode::polling())
        .network(NetworkConfig::new().ca_file(&ca_file))
        .build()
        .unwrap();
    let sink = RecordingSink::new();
    p.start(sink.clone()).await.unwrap();
    assert_eq!(p.status().state, ProviderState::Ready);
    assert!(sink.snapshot().unwrap().flag("beta").is_some());
    p.close().await;

    // A file without certificates is refused when the provider is built.
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate").unwrap();
    let e = LaunchDarklyProvider::builder("sdk-key")
        .network(NetworkConfig::new().ca_file(&empty))
        .build()
        .unwrap_err();
    assert!(matches!(e, BuildError::CaFile { .. }), "{e:?}");
}
