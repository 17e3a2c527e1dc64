//! The basic example: a client on the file provider with a bundled flag file, evaluating a
//! boolean, a string and a number for two users, then watching the file for edits.
//!
//! Run: `cargo run --example basic` (add `-- --watch` to keep running and edit the file).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::{Client, Context, FileProvider};
use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var_os("FEATURE_FILE_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/flags/basic.yaml")
        });
    let client = Client::builder()
        .provider(FileProvider::new(&path))
        .build()
        .await?;
    println!(
        "loaded {} flags from {}",
        client.snapshot().len(),
        path.display()
    );

    let alice = Context::new("alice").with_attribute("plan", "pro");
    let bob = Context::new("bob")
        .with_attribute("plan", "enterprise")
        .with_country("DE");
    for user in [&alice, &bob] {
        println!(
            "{:>5}: new-dashboard={} theme={} max-upload-mb={}",
            user.key(),
            client.bool(user, "new-dashboard", false),
            client.string(user, "theme", "light"),
            client.int(user, "max-upload-mb", 5),
        );
        let why = client.variation(user, "theme");
        println!(
            "       theme because {}",
            serde_json::to_string(&why.reason)?
        );
    }

    if std::env::args().any(|a| a == "--watch") {
        println!("watching {} for edits; Ctrl-C to stop", path.display());
        let mut changes = client.subscribe();
        loop {
            tokio::select! {
                change = changes.recv() => {
                    let Ok(change) = change else { break };
                    println!("changed: {:?}; theme for alice is now {}", change.keys, client.string(&alice, "theme", "light"));
                }
                _ = tokio::signal::ctrl_c() => break,
            }
        }
    }
    client.close().await;
    Ok(())
}
