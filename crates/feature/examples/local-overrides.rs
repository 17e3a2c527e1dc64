//! Local overrides for development and tests: they win over every provider, at build time and
//! at runtime, and evaluations say so (reason `OVERRIDE`).
//!
//! Run: `cargo run --example local-overrides`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::{Client, Context, FileProvider};
use serde_json::json;
use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/flags/local-overrides.yaml");
    let client = Client::builder()
        .provider(FileProvider::new(path).watch(false))
        .overrides([
            ("new-feature", json!(true)),
            ("experiment-mode", json!("variant-b")),
        ])
        .build()
        .await?;
    let ctx = Context::new("dev");
    println!(
        "new-feature = {} (the file says false)",
        client.bool(&ctx, "new-feature", false)
    );
    println!(
        "experiment-mode = {}",
        client.string(&ctx, "experiment-mode", "control")
    );
    println!(
        "reason: {}",
        serde_json::to_string(&client.variation(&ctx, "new-feature").reason)?
    );

    client.remove_override("new-feature");
    println!(
        "after remove_override: new-feature = {}",
        client.bool(&ctx, "new-feature", false)
    );
    client.set_override("new-feature", true);
    println!(
        "after set_override: new-feature = {}",
        client.bool(&ctx, "new-feature", false)
    );
    client.close().await;
    Ok(())
}
