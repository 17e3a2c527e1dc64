//! The request time limit: a request that outlives it is answered 503 with a problem document,
//! like every other error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use axum::http::StatusCode;
use common::call;
use feature::{Client, MemoryProvider};
use feature_redis::RedisStore;
use feature_server::Server;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_time_limit_is_a_problem_document() {
    // A "store" that accepts connections and never answers: the health probe waits on it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let store = Arc::new(RedisStore::new(&format!("redis://{addr}"), "limits").unwrap());
    let client = Client::builder()
        .provider(MemoryProvider::new())
        .build()
        .await
        .unwrap();
    let server = Server::builder()
        .store(store.clone())
        .tokens(store)
        .client(client)
        .request_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let a = call("GET", "/health").send(&server.router()).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text);
    assert_eq!(a.content_type(), "application/problem+json", "{}", a.text);
    assert_eq!(a.body["status"], 503, "{}", a.text);
    drop(silent);
}
