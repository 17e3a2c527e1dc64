//! `featurectl serve`: the flag server of `feature-server` on a TCP address, over a store
//! (`sqlite://`, the default `sqlite://feature.db`; `postgres://`, `redis://`), read-only over a
//! flag file, or read-only as a relay of another server (`--upstream`).
//!
//! The server's client follows the store through the store's provider (or the file through the
//! file provider); its metrics and the HTTP metrics share one Prometheus registry (`/metrics`).
//! Request logs go to stderr through `tracing` (text, or JSON lines with `--log-json`;
//! `RUST_LOG` filters, default `info`). SIGINT or SIGTERM stops accepting connections, lets
//! requests in flight finish, closes the client and exits 0.

use crate::cli::ServeArgs;
use anyhow::{bail, Context as _};
use feature::metrics::prometheus::PrometheusMetrics;
use feature::metrics::{EvaluationStats, MetricsConfig, Tee};
use feature::{Client, FileProvider, Provider};
use feature_server::Server;
use feature_store::tokens::TokenStore;
use feature_store::FlagStore;
use std::sync::Arc;
use std::time::Duration;

/// The store without `--store` or `--file`: an SQLite file in the working directory.
const DEFAULT_STORE: &str = "sqlite://feature.db";

/// A store for the server: written through, read for tokens, followed by a provider.
struct Opened {
    flags: Arc<dyn FlagStore>,
    tokens: Arc<dyn TokenStore>,
    provider: Box<dyn FnOnce(feature::ClientBuilder) -> feature::ClientBuilder>,
}

/// Opens the store a `postgres://` or `redis://` URL names, migrating a PostgreSQL table.
async fn open(a: &ServeArgs, url: &str) -> anyhow::Result<Opened> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = Arc::new(feature_postgres::PostgresStore::lazy(url, &a.table)?);
        store
            .migrate()
            .await
            .context("cannot prepare the PostgreSQL table")?;
        let provider = feature_postgres::PostgresProvider::builder(url)
            .table(a.table.clone())
            .build()?;
        Ok(Opened {
            flags: store.clone(),
            tokens: store,
            provider: Box::new(move |b| b.provider(provider)),
        })
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        let store = Arc::new(feature_redis::RedisStore::new(url, &a.prefix)?);
        let provider = feature_redis::RedisProvider::builder(url)
            .prefix(a.prefix.clone())
            .build()?;
        Ok(Opened {
            flags: store.clone(),
            tokens: store,
            provider: Box::new(move |b| b.provider(provider)),
        })
    } else if url.starts_with("sqlite:") {
        let store = Arc::new(
            feature_sqlite::SqliteStore::open(url)
                .await
                .context("cannot open the SQLite store")?,
        );
        let provider = feature_sqlite::SqliteProvider::new(url)?;
        Ok(Opened {
            flags: store.clone(),
            tokens: store,
            provider: Box::new(move |b| b.provider(provider)),
        })
    } else {
        bail!(
            "unsupported store URL {:?}: expected sqlite://..., postgres://... or redis://...",
            feature_core::provider::redact_url(url)
        )
    }
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second initialisation (tests calling `run` twice) keeps the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Runs `featurectl serve` until SIGINT or SIGTERM.
pub fn run(a: &ServeArgs) -> anyhow::Result<u8> {
    init_logs(a.log_json);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(a))?;
    Ok(0)
}

async fn serve(a: &ServeArgs) -> anyhow::Result<()> {
    let registry = prometheus::Registry::new();
    let prom = PrometheusMetrics::new(&MetricsConfig::default())?;
    prom.register(&registry)?;
    let stats = EvaluationStats::new();
    let metrics = Tee(stats.clone(), prom);
    let builder = Server::builder()
        .evaluation_stats(stats)
        .registry(registry)
        .bootstrap_token(std::env::var("FEATURE_SERVER_ADMIN_TOKEN").ok())
        .body_limit(a.body_limit)
        .request_timeout(Duration::from_secs(a.request_timeout.max(1)))
        .cors_origins(a.cors_origins.clone())
        .linter(Arc::new(|snapshot, locator| {
            crate::lint::check(snapshot, locator, None)
        }));
    let demo = match a.demo {
        true => Some(crate::demo::Demo::create().await?),
        false => None,
    };
    let store_url = demo.as_ref().map(|d| d.url.clone()).or(a.store.clone());
    let store_url = match (&store_url, &a.file, &a.upstream) {
        (None, None, None) => {
            tracing::info!(
                store = DEFAULT_STORE,
                "no --store, --file or --upstream: the embedded SQLite store"
            );
            Some(DEFAULT_STORE.to_owned())
        }
        _ => store_url,
    };
    let (builder, client) = match (&store_url, &a.file) {
        (Some(url), _) => {
            let opened = open(a, url).await?;
            if let Some(d) = &demo {
                d.seed(opened.flags.as_ref(), opened.tokens.as_ref())
                    .await?;
            }
            let client = (opened.provider)(Client::builder().metrics(metrics))
                .build()
                .await?;
            (builder.store(opened.flags).tokens(opened.tokens), client)
        }
        (None, Some(path)) => {
            let provider = FileProvider::new(path);
            let name = provider.name();
            let client = Client::builder()
                .provider(provider)
                .metrics(metrics)
                .build()
                .await?;
            tracing::info!(provider = name, file = %path.display(), "serving a flag file, read-only");
            let reason = format!("flags come from the file {}", file_name(path));
            (builder.read_only(reason), client)
        }
        (None, None) => match &a.upstream {
            // A relay: the source is another server's SDK stream; clients use the bootstrap
            // token (this server has no token store).
            Some(url) => {
                let mut relay = feature_relay::RelayProvider::builder(url.clone());
                if let Ok(token) = std::env::var("FEATURE_TOKEN") {
                    relay = relay.token(token);
                }
                let client = Client::builder()
                    .provider(relay.build()?)
                    .metrics(metrics)
                    .build()
                    .await?;
                tracing::info!(upstream = %feature_core::provider::redact_url(url), "relaying another flag server, read-only");
                (
                    builder.read_only("flags come from the upstream flag server"),
                    client,
                )
            }
            None => bail!("give --store URL, --file FLAGS.yaml or --upstream URL"),
        },
    };
    let server = builder.client(client.clone()).build()?;
    // The web UI at /ui. This server speaks plain HTTP, so the session cookie is `Secure` only
    // when a TLS proxy in front says `X-Forwarded-Proto: https`.
    let ui = feature_ui::Ui::builder(&server)
        .secure_cookie(false)
        .build();
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "flag server listening");
    if let Some(d) = &demo {
        d.announce(address);
    }
    axum::serve(listener, server.router().merge(ui.router()))
        .with_graceful_shutdown(shutdown())
        .await
        .context("the server failed")?;
    client.close().await;
    drop(demo);
    tracing::info!("flag server stopped");
    Ok(())
}

/// The file's name without its directories (what a 405 problem may tell a client).
fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "given".into())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
