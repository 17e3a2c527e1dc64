//! What the server's tests share: the stores' URLs (a test fails, not skips, when a store is
//! missing and `CI=true`), tables and key prefixes of their own, a server over each store with
//! a token of each scope, and requests through the router.
#![allow(dead_code, unreachable_pub)] // each test binary uses its own part

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use feature::Client;
use feature_server::Server;
use feature_store::tokens::{create_token, Scope, TokenStore};
use feature_store::FlagStore;
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

fn reachable(url: &str, default: &str, what: &str) -> bool {
    let addr = url
        .rsplit('@')
        .next()
        .unwrap_or(url)
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or(default)
        .to_owned();
    let up = addr
        .parse()
        .ok()
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    if !up && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is unreachable at {addr} (CI=true: the test must not skip)");
    }
    if !up {
        eprintln!("skipping: {what} is unreachable at {addr} (run scripts/test.sh to start it)");
    }
    up
}

pub fn pg_url() -> Option<String> {
    let url = std::env::var("FEATURE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/test".into());
    reachable(&url, "127.0.0.1:5432", "PostgreSQL").then_some(url)
}

pub fn redis_url() -> Option<String> {
    let url =
        std::env::var("FEATURE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    reachable(&url, "127.0.0.1:6379", "Redis").then_some(url)
}

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
    Redis,
}

pub const KINDS: [Kind; 3] = [Kind::Sqlite, Kind::Postgres, Kind::Redis];

/// Removes a test's table or keys when dropped, even when the test failed.
pub enum Cleanup {
    Dir(tempfile::TempDir),
    Table { url: String, table: String },
    Prefix { url: String, prefix: String },
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        match self {
            Cleanup::Dir(_) => {}
            Cleanup::Table { url, table } => {
                let (url, t) = (url.clone(), table.clone());
                let _ = std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    rt.block_on(async move {
                        use sqlx::Connection;
                        let Ok(mut c) = sqlx::PgConnection::connect(&url).await else {
                            return;
                        };
                        let sql = format!(
                            "DROP TABLE IF EXISTS {t}, {t}_segments, {t}_audit, {t}_audit_head, {t}_migrations, {t}_tokens CASCADE; \
                             DROP FUNCTION IF EXISTS {t}_changed() CASCADE; \
                             DROP FUNCTION IF EXISTS {t}_truncated(), {t}_audit_chain(), {t}_audit_guard(), {t}_audit_commit() CASCADE;"
                        );
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut c).await;
                    });
                })
                .join();
            }
            Cleanup::Prefix { url, prefix } => {
                if let Ok(c) = redis::Client::open(url.as_str()) {
                    if let Ok(mut c) = c.get_connection() {
                        let keys: Vec<String> = redis::cmd("KEYS")
                            .arg(format!("{prefix}:*"))
                            .query(&mut c)
                            .unwrap_or_default();
                        for k in keys {
                            let _: Result<(), _> = redis::cmd("DEL").arg(k).query(&mut c);
                        }
                    }
                }
            }
        }
    }
}

/// A store of `kind` of its own, a client fed by its provider, and how to make more of both.
pub struct StoreEnv {
    pub kind: Kind,
    pub store: Arc<dyn FlagStore>,
    /// The same store, as the token store.
    pub tokens: Arc<dyn TokenStore>,
    pub url: String,
    pub name: String,
    pub _cleanup: Cleanup,
}

impl StoreEnv {
    pub async fn new(kind: Kind, tag: &str) -> Option<StoreEnv> {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}", dir.path().join("feature.db").display());
                let store = Arc::new(feature_sqlite::SqliteStore::open(&url).await.expect("open"));
                Some(StoreEnv {
                    kind,
                    tokens: store.clone(),
                    store,
                    url,
                    name: tag.to_owned(),
                    _cleanup: Cleanup::Dir(dir),
                })
            }
            Kind::Postgres => {
                let url = pg_url()?;
                let table = format!("t_srv_{tag}_{:08x}", fastrand::u32(..));
                let cleanup = Cleanup::Table {
                    url: url.clone(),
                    table: table.clone(),
                };
                let store = Arc::new(
                    feature_postgres::PostgresStore::connect(&url, &table)
                        .await
                        .expect("connect"),
                );
                Some(StoreEnv {
                    kind,
                    tokens: store.clone(),
                    store,
                    url,
                    name: table,
                    _cleanup: cleanup,
                })
            }
            Kind::Redis => {
                let url = redis_url()?;
                let prefix = format!("test:srv:{tag}:{:08x}", fastrand::u32(..));
                let cleanup = Cleanup::Prefix {
                    url: url.clone(),
                    prefix: prefix.clone(),
                };
                let store = Arc::new(feature_redis::RedisStore::new(&url, &prefix).expect("store"));
                Some(StoreEnv {
                    kind,
                    tokens: store.clone(),
                    store,
                    url,
                    name: prefix,
                    _cleanup: cleanup,
                })
            }
        }
    }

    /// A new client following the store through its provider.
    pub async fn client(&self) -> Client {
        Self::client_for(self.kind, &self.url, &self.name).await
    }

    /// A new client following the store `kind` at `url` (table or prefix `name`).
    pub async fn client_for(kind: Kind, url: &str, name: &str) -> Client {
        let (url, name) = (url.to_owned(), name.to_owned());
        let builder = Client::builder();
        let builder = match kind {
            Kind::Sqlite => {
                builder.provider(feature_sqlite::SqliteProvider::new(&url).expect("provider"))
            }
            Kind::Postgres => builder.provider(
                feature_postgres::PostgresProvider::builder(url.clone())
                    .table(name.clone())
                    .build()
                    .expect("provider"),
            ),
            Kind::Redis => builder.provider(
                feature_redis::RedisProvider::builder(url)
                    .prefix(name)
                    .build()
                    .expect("provider"),
            ),
        };
        builder.build().await.expect("client")
    }
}

/// A server over a store, with one token of each scope and a revoked one.
pub struct Env {
    pub store: StoreEnv,
    pub server: Server,
    pub router: axum::Router,
    pub tokens: Arc<dyn TokenStore>,
    /// evaluate, read, write, admin
    pub token: [String; 4],
    pub revoked: String,
}

impl Env {
    pub async fn new(kind: Kind, tag: &str) -> Option<Env> {
        let store = StoreEnv::new(kind, tag).await?;
        let client = store.client().await;
        let tokens = store.tokens.clone();
        let mut token: [String; 4] = Default::default();
        for (i, scope) in Scope::ALL.into_iter().enumerate() {
            token[i] = create_token(tokens.as_ref(), &format!("{scope}-bot"), scope, "setup")
                .await
                .expect("token")
                .1;
        }
        let (rec, revoked) = create_token(tokens.as_ref(), "gone", Scope::Admin, "setup")
            .await
            .expect("token");
        tokens.revoke_token(&rec.id, "setup").await.expect("revoke");
        let server = Server::builder()
            .store(store.store.clone())
            .tokens(tokens.clone())
            .client(client)
            .build()
            .expect("server");
        let router = server.router();
        Some(Env {
            store,
            server,
            router,
            tokens,
            token,
            revoked,
        })
    }

    pub fn writer(&self) -> &str {
        &self.token[2]
    }

    pub fn admin(&self) -> &str {
        &self.token[3]
    }
}

/// An answer: status, headers and body (JSON when it is JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn etag(&self) -> String {
        self.headers
            .get("etag")
            .expect("an ETag")
            .to_str()
            .unwrap()
            .to_owned()
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A request built step by step.
pub struct Call {
    req: axum::http::request::Builder,
    body: Body,
}

pub fn call(method: &str, path: &str) -> Call {
    Call {
        req: Request::builder().method(method).uri(path),
        body: Body::empty(),
    }
}

impl Call {
    pub fn token(mut self, token: &str) -> Call {
        self.req = self.req.header("authorization", format!("Bearer {token}"));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Call {
        self.req = self.req.header(name, value);
        self
    }

    pub fn json(mut self, body: &Value) -> Call {
        self.req = self.req.header("content-type", "application/json");
        self.body = Body::from(body.to_string());
        self
    }

    pub fn text(mut self, body: &str) -> Call {
        self.body = Body::from(body.to_owned());
        self
    }

    pub async fn send(self, router: &axum::Router) -> Answer {
        let resp: Response<Body> = router
            .clone()
            .oneshot(self.req.body(self.body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        // A stream (server-sent events) never ends: its status and headers are the answer.
        let streaming = headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let bytes = if streaming {
            Default::default()
        } else {
            resp.into_body().collect().await.unwrap().to_bytes()
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }
}
