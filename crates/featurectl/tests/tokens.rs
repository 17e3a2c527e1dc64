//! `featurectl token create | list | revoke` against a real Redis store: the printed token
//! authenticates with its scope, the listing never shows a secret, revocation takes effect.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

mod common;

use common::{featurectl, redis_url, Run};
use feature_redis::RedisStore;
use feature_store::tokens::{authenticate, Scope};

fn token(dir: &std::path::Path, url: &str, prefix: &str, args: &[&str]) -> Run {
    let mut all = vec!["token"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--store", url, "--prefix", prefix, "--actor", "ops"]);
    featurectl(dir, &all)
}

#[test]
fn a_created_token_authenticates_until_it_is_revoked() {
    let Some(url) = redis_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("test:cli-tokens:{:08x}", fastrand::u32(..));
    let created = token(
        dir.path(),
        &url,
        &prefix,
        &["create", "--name", "deploy-bot", "--scope", "write"],
    );
    assert_eq!(created.code, 0, "{}", created.stderr);
    let text = created.stdout.trim().to_owned();
    assert!(created.stderr.contains("shown once"), "{}", created.stderr);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = RedisStore::new(&url, &prefix).unwrap();
    let record = rt.block_on(authenticate(&store, &text)).unwrap().unwrap();
    assert_eq!(
        (record.name.as_str(), record.scope),
        ("deploy-bot", Scope::Write)
    );
    assert_eq!(record.created_by, "ops");

    let listed = token(dir.path(), &url, &prefix, &["list"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains(&record.id) && listed.stdout.contains("active"));
    let secret = text.rsplit('_').next().unwrap();
    assert!(
        !listed.stdout.contains(secret),
        "the listing shows no secret"
    );
    assert!(!listed.stdout.contains(&record.secret_sha256));

    let revoked = token(dir.path(), &url, &prefix, &["revoke", &record.id]);
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    assert_eq!(rt.block_on(authenticate(&store, &text)).unwrap(), None);
    let again = token(dir.path(), &url, &prefix, &["revoke", &record.id]);
    assert_eq!(
        again.code, 2,
        "revoking twice is an error: {}",
        again.stdout
    );

    let bad = token(
        dir.path(),
        &url,
        &prefix,
        &["create", "--name", "x", "--scope", "root"],
    );
    assert_eq!(bad.code, 2, "an unknown scope is a usage error");

    if let Ok(mut c) = redis::Client::open(url.as_str()).and_then(|c| c.get_connection()) {
        let _: Result<(), _> = redis::cmd("DEL")
            .arg(format!("{prefix}:tokens"))
            .arg(format!("{prefix}:tokens:seq"))
            .query(&mut c);
    }
}

#[test]
fn tokens_for_the_default_sqlite_store_and_no_password_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("feature.db").display());
    // Listing in a file that does not exist creates nothing.
    let listed = featurectl(dir.path(), &["token", "list", "--store", &url]);
    assert_eq!(listed.code, 2, "{}", listed.stdout);
    assert!(!dir.path().join("feature.db").exists());
    let created = featurectl(
        dir.path(),
        &[
            "token", "create", "--name", "ui", "--scope", "admin", "--store", &url,
        ],
    );
    assert_eq!(created.code, 0, "{}", created.stderr);
    let text = created.stdout.trim().to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt
        .block_on(feature_sqlite::SqliteStore::open(&url))
        .unwrap();
    let record = rt.block_on(authenticate(&store, &text)).unwrap().unwrap();
    assert_eq!(record.scope, Scope::Admin);
    let revoked = featurectl(
        dir.path(),
        &["token", "revoke", &record.id, "--store", &url],
    );
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    assert_eq!(rt.block_on(authenticate(&store, &text)).unwrap(), None);

    let typo = featurectl(
        dir.path(),
        &[
            "token",
            "list",
            "--store",
            "postgress://admin:s3cret@db/flags",
        ],
    );
    assert_eq!(typo.code, 2);
    assert!(!typo.stderr.contains("s3cret"), "{}", typo.stderr);
}
