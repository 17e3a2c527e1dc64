//! The SDK endpoints end to end: a `RelayProvider` (and a `feature::Client` built with it)
//! following a real server over a real store (SQLite, PostgreSQL, Redis, a flag file) sees
//! writes made through the admin API, resyncs after the server restarts, and stops when its
//! token is revoked. `GET /sdk/v1/flags` answers 304 to its own ETag; streams send heartbeats.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use common::{Kind, StoreEnv, WAIT};
use feature::{Client, Context, FileProvider, Provider, ProviderState};
use feature_relay::RelayProvider;
use feature_server::Server;
use feature_store::tokens::{create_token, Scope, TokenStore};
use feature_store::FlagStore;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADMIN: &str = "bootstrap-admin-token-for-tests";

/// Where the server's flags come from.
#[derive(Clone)]
enum Source {
    Store(Arc<dyn FlagStore>, Arc<dyn TokenStore>, StoreKind),
    File(std::path::PathBuf, Arc<dyn TokenStore>),
}

#[derive(Clone)]
enum StoreKind {
    Sqlite(String),
    Other(Kind, String, String),
}

/// A server in a runtime of its own: stopping it drops the runtime, which ends every
/// connection at once (as a process that exits would).
struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(source: Source, addr: SocketAddr) -> Running {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let builder = Server::builder()
                    .bootstrap_token(Some(ADMIN.into()))
                    .stream_heartbeat(Duration::from_millis(200));
                let (builder, client) = match source {
                    Source::Store(store, tokens, kind) => {
                        let client = match kind {
                            StoreKind::Sqlite(url) => Client::builder()
                                .provider(
                                    feature_sqlite::SqliteProvider::builder(url)
                                        .poll_interval(Duration::from_millis(50))
                                        .build()
                                        .unwrap(),
                                )
                                .build()
                                .await
                                .unwrap(),
                            StoreKind::Other(kind, url, name) => {
                                StoreEnv::client_for(kind, &url, &name).await
                            }
                        };
                        (builder.store(store).tokens(tokens), client)
                    }
                    Source::File(path, tokens) => {
                        let client = Client::builder()
                            .provider(FileProvider::new(path))
                            .build()
                            .await
                            .unwrap();
                        (builder.read_only("a flag file").tokens(tokens), client)
                    }
                };
                let server = builder.client(client).build().unwrap();
                let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
                ready_tx.send(listener.local_addr().unwrap()).unwrap();
                tokio::select! {
                    _ = axum::serve(listener, server.router()) => {},
                    _ = stop_rx => {},
                }
            });
            rt.shutdown_timeout(Duration::from_secs(1));
        });
        let addr = ready_rx.recv_timeout(WAIT).expect("the server started");
        Running {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn put_flag(base: &str, key: &str, value: Value, create: bool) -> reqwest::StatusCode {
    let (h, v) = if create {
        ("if-none-match", "*")
    } else {
        ("if-match", "*")
    };
    reqwest::Client::new()
        .put(format!("{base}/api/v1/flags/{key}"))
        .bearer_auth(ADMIN)
        .header(h, v)
        .json(&json!({"default": value}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn relay_client(base: &str, token: &str) -> (Client, Arc<RelayProvider>) {
    let provider = Arc::new(
        RelayProvider::builder(base)
            .token(token)
            .build()
            .expect("relay provider"),
    );
    let client = Client::builder()
        .shared_provider(provider.clone())
        .build()
        .await
        .expect("client over the relay provider");
    (client, provider)
}

/// Waits up to `limit` for the client to serve `want` for `key`; the time it took.
async fn seen(client: &Client, key: &str, want: &Value, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let user = Context::new("u-1");
    while start.elapsed() < limit {
        if &client.variation(&user, key).value == want {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

async fn sqlite_source(dir: &tempfile::TempDir) -> (Source, Arc<dyn TokenStore>) {
    let url = format!("sqlite://{}", dir.path().join("flags.db").display());
    let store = Arc::new(feature_sqlite::SqliteStore::open(&url).await.unwrap());
    (
        Source::Store(store.clone(), store.clone(), StoreKind::Sqlite(url)),
        store,
    )
}

async fn check_propagation(source: Source, tokens: Arc<dyn TokenStore>, what: &str) {
    let mut server = Running::start(source, any_port());
    let base = server.url();
    let (_, token) = create_token(tokens.as_ref(), "fleet", Scope::Evaluate, "setup")
        .await
        .unwrap();
    assert_eq!(put_flag(&base, "banner", json!("v1"), true).await, 201);
    let (client, _provider) = relay_client(&base, &token).await;
    assert!(
        seen(&client, "banner", &json!("v1"), WAIT).await.is_some(),
        "{what}: the first state"
    );
    // A write through the admin API reaches the relay's client within 1 s.
    for (i, v) in ["v2", "v3", "v4"].into_iter().enumerate() {
        assert_eq!(put_flag(&base, "banner", json!(v), false).await, 200);
        let took = seen(&client, "banner", &json!(v), Duration::from_secs(1)).await;
        assert!(took.is_some(), "{what}: write {i} not seen within 1 s");
    }
    // A deletion too: the flag is gone (the caller's default, FLAG_NOT_FOUND).
    let deleted = reqwest::Client::new()
        .delete(format!("{base}/api/v1/flags/banner"))
        .bearer_auth(ADMIN)
        .header("if-match", "*")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(deleted, 204, "{what}");
    assert!(
        seen(&client, "banner", &Value::Null, Duration::from_secs(1))
            .await
            .is_some(),
        "{what}: the deletion"
    );
    // Re-created: its version is newer than the deletion's, so it is taken.
    assert_eq!(put_flag(&base, "banner", json!("back"), true).await, 201);
    assert!(
        seen(&client, "banner", &json!("back"), Duration::from_secs(1))
            .await
            .is_some(),
        "{what}: the re-creation"
    );
    client.close().await;
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_sees_admin_writes_within_a_second_over_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (source, tokens) = sqlite_source(&dir).await;
    check_propagation(source, tokens, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_sees_admin_writes_within_a_second_over_postgres_and_redis() {
    for kind in common::KINDS {
        let Some(env) = StoreEnv::new(kind, "sdk").await else {
            continue;
        };
        let source = Source::Store(
            env.store.clone(),
            env.tokens.clone(),
            StoreKind::Other(kind, env.url.clone(), env.name.clone()),
        );
        check_propagation(source, env.tokens.clone(), &format!("{kind:?}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_follows_a_read_only_server_over_a_flag_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.yaml");
    std::fs::write(&path, "flags:\n  theme: {default: dark}\n").unwrap();
    let tokens: Arc<dyn TokenStore> = Arc::new(feature_server::MemoryTokenStore::new());
    let (_, token) = create_token(tokens.as_ref(), "fleet", Scope::Evaluate, "setup")
        .await
        .unwrap();
    let server = Running::start(Source::File(path.clone(), tokens), any_port());
    let (client, _p) = relay_client(&server.url(), &token).await;
    assert!(seen(&client, "theme", &json!("dark"), WAIT).await.is_some());
    std::fs::write(
        &path,
        "flags:\n  theme: {default: light}\n  extra: {default: 3}\n",
    )
    .unwrap();
    assert!(seen(&client, "theme", &json!("light"), WAIT)
        .await
        .is_some());
    assert!(seen(&client, "extra", &json!(3), WAIT).await.is_some());
    std::fs::write(&path, "flags:\n  theme: {default: light}\n").unwrap();
    assert!(
        seen(&client, "extra", &Value::Null, WAIT).await.is_some(),
        "a flag removed from the file is deleted"
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_reconnects_and_resyncs_after_the_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (source, tokens) = sqlite_source(&dir).await;
    let Source::Store(store, ..) = source.clone() else {
        unreachable!()
    };
    let mut first = Running::start(source.clone(), any_port());
    let addr = first.addr;
    let (_, token) = create_token(tokens.as_ref(), "fleet", Scope::Evaluate, "setup")
        .await
        .unwrap();
    assert_eq!(put_flag(&first.url(), "f", json!(1), true).await, 201);
    let (client, provider) = relay_client(&first.url(), &token).await;
    assert!(seen(&client, "f", &json!(1), WAIT).await.is_some());
    first.stop();
    // While the server is down: the provider is degraded, the last flags keep serving, and
    // the store changes behind its back.
    let f: feature::Flag = serde_json::from_value(json!({"key": "f", "default": 2})).unwrap();
    store.update(&f, "someone").await.unwrap();
    let degraded = Instant::now();
    while provider.status().state != ProviderState::Degraded && degraded.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(provider.status().state, ProviderState::Degraded);
    assert_eq!(client.variation(&Context::new("u"), "f").value, json!(1));
    let _second = Running::start(source, addr);
    assert!(
        seen(&client, "f", &json!(2), WAIT).await.is_some(),
        "the change made while the server was down is seen after the reconnection"
    );
    assert_eq!(provider.status().state, ProviderState::Ready);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_stops_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let (source, tokens) = sqlite_source(&dir).await;
    let server = Running::start(source, any_port());
    let base = server.url();
    let (record, token) = create_token(tokens.as_ref(), "fleet", Scope::Evaluate, "setup")
        .await
        .unwrap();
    assert_eq!(put_flag(&base, "f", json!("before"), true).await, 201);
    let (client, provider) = relay_client(&base, &token).await;
    assert!(seen(&client, "f", &json!("before"), WAIT).await.is_some());
    let revoked = reqwest::Client::new()
        .delete(format!("{base}/api/v1/tokens/{}", record.id))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(revoked, 204);
    // The open stream ends; the reconnection is refused and the provider stops retrying.
    let start = Instant::now();
    let refused = |p: &RelayProvider| {
        p.status()
            .last_error
            .is_some_and(|(e, _)| e.to_string().contains("refused the token"))
    };
    while !refused(&provider) && start.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused(&provider), "{:?}", provider.status());
    assert_eq!(put_flag(&base, "f", json!("after"), false).await, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        client.variation(&Context::new("u"), "f").value,
        json!("before"),
        "nothing more reaches a revoked client; its last flags keep serving"
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_flags_answer_304_to_their_etag_and_streams_send_heartbeats() {
    let dir = tempfile::tempdir().unwrap();
    let (source, tokens) = sqlite_source(&dir).await;
    let server = Running::start(source, any_port());
    let base = server.url();
    let (_, token) = create_token(tokens.as_ref(), "fleet", Scope::Evaluate, "setup")
        .await
        .unwrap();
    assert_eq!(put_flag(&base, "f", json!(true), true).await, 201);
    let http = reqwest::Client::new();
    let get = |etag: Option<String>| {
        let mut r = http.get(format!("{base}/sdk/v1/flags")).bearer_auth(&token);
        if let Some(t) = etag {
            r = r.header("if-none-match", t);
        }
        r.send()
    };
    // The flag written is in the document once the server's client has it.
    let start = Instant::now();
    let (doc, etag) = loop {
        let r = get(None).await.unwrap();
        assert_eq!(r.status(), 200);
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        let doc: Value = r.json().await.unwrap();
        if doc["flags"]["f"].is_object() || start.elapsed() > WAIT {
            break (doc, etag);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(doc["flags"]["f"]["default"], json!(true));
    assert_eq!(doc["flags"]["f"]["version"], json!(1));
    assert_eq!(get(Some(etag.clone())).await.unwrap().status(), 304);
    assert_eq!(put_flag(&base, "f", json!(false), false).await, 200);
    let start = Instant::now();
    loop {
        let status = get(Some(etag.clone())).await.unwrap().status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 304);
        assert!(start.elapsed() < WAIT, "the ETag never changed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Without a token: 401; the stream starts with `put` and sends heartbeat comments.
    let r = http
        .get(format!("{base}/sdk/v1/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let mut r = http
        .get(format!("{base}/sdk/v1/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let start = Instant::now();
    while text.matches("\n:").count() < 2 && start.elapsed() < WAIT {
        let chunk = tokio::time::timeout(WAIT, r.chunk())
            .await
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(text.starts_with("event: put\n"), "{text}");
    assert!(text.matches("\n:").count() >= 2, "heartbeats: {text}");
}
