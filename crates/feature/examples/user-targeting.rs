//! User targeting: individual targets, rules on attributes, a segment, a rule percentage and a
//! semver rule, with the reason for each decision.
//!
//! Run: `cargo run --example user-targeting`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

use feature::{Client, Context, FileProvider};
use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/flags/user-targeting.yaml");
    let client = Client::builder()
        .provider(FileProvider::new(path).watch(false))
        .build()
        .await?;

    let users = [
        Context::new("user-vip-1"),
        Context::new("user-7").with_email("dev@example.com"),
        Context::new("user-42"),
        Context::new("user-8").with_group("beta-testers"),
        Context::new("user-9")
            .with_attribute("plan", "pro")
            .with_country("DE"),
        Context::new("user-10").with_attribute("appVersion", "2.5.1"),
        Context::new("user-11").with_attribute("plan", "free"),
    ];
    for u in &users {
        let e = client.variation(u, "advanced-features");
        println!(
            "{:<11} advanced-features={:<5} {}",
            u.key(),
            e.value,
            serde_json::to_string(&e.reason)?
        );
    }
    client.close().await;
    Ok(())
}
