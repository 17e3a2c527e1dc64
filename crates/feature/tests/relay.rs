//! `Client::new` with the relay provider from the environment's variables (crate feature
//! `relay`): what it needs is checked before anything connects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run
#![cfg(feature = "relay")]

use feature::Client;

mod common;

#[tokio::test]
async fn a_missing_or_bad_relay_url_is_a_configuration_error() {
    for vars in [
        &[("FEATURE_PROVIDER", "relay")][..],
        &[
            ("FEATURE_PROVIDER", "relay"),
            ("FEATURE_RELAY_URL", "ftp://flags.example"),
        ][..],
    ] {
        let e = Client::new(common::config(vars).unwrap())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("FEATURE_RELAY_URL"), "{vars:?}: {e}");
    }
}

#[test]
fn the_token_is_never_shown() {
    let c = common::config(&[
        ("FEATURE_PROVIDER", "relay"),
        ("FEATURE_RELAY_URL", "http://flags.example"),
        ("FEATURE_TOKEN", "feat_secret_value"),
    ])
    .unwrap();
    assert_eq!(c.remote.relay_token.as_deref(), Some("feat_secret_value"));
    let shown = format!("{c:?}");
    assert!(!shown.contains("feat_secret_value"), "{shown}");
}
