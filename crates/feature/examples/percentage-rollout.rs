//! Percentage rollout: the `new-checkout` flag gives `true` to 20 % of users, and the
//! same user always gets the same answer.
//!
//! Run: `cargo run --example percentage-rollout`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::{Client, Context, FileProvider};
use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/flags/examples.yaml");
    let client = Client::builder()
        .provider(FileProvider::new(path).watch(false))
        .build()
        .await?;

    let n = 10_000;
    let on = (0..n)
        .filter(|i| client.bool(&Context::new(format!("user-{i}")), "new-checkout", false))
        .count();
    println!(
        "new-checkout is on for {on} of {n} users ({:.1} %)",
        on as f64 * 100.0 / n as f64
    );

    let user = Context::new("user-123");
    let first = client.bool(&user, "new-checkout", false);
    let again = (0..5).all(|_| client.bool(&user, "new-checkout", false) == first);
    println!("user-123 gets {first}, every time: {again}");
    client.close().await;
    Ok(())
}
