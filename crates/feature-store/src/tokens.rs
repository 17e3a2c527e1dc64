//! API tokens of the flag server: what a store keeps of them, and how a presented token is
//! checked.
//!
//! A token is shown once, when it is created: `feat_<id>_<secret>`, where `<id>` (16 hex
//! digits) names the stored record and `<secret>` (64 hex digits, 32 random bytes from the
//! operating system) is never stored — the store keeps its SHA-256 only. Checking a presented
//! token reads the record by id and compares the digests in constant time, so neither the
//! store's contents nor the time a comparison takes tell an attacker a token.
//!
//! A plain SHA-256 (not a password hash) is enough because the secret is 256 random bits: there
//! is no dictionary to try.
//!
//! ```
//! use feature_store::tokens::{mint, Scope};
//!
//! let (record, text) = mint("deploy-bot", Scope::Write, "alice").unwrap();
//! assert!(text.starts_with("feat_"));
//! assert_eq!(record.name, "deploy-bot");
//! assert!(record.verify(&text));
//! assert!(!record.verify("feat_0000000000000000_00"));
//! assert!(record.scope.grants(Scope::Read));
//! assert!(!record.scope.grants(Scope::Admin));
//! ```

use std::fmt;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::write::{check_name, now_rfc3339, WriteError};

/// What a token may do. Scopes are ordered: each grants everything the ones before it grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Evaluate flags (OFREP, SDK streams, `POST /api/v1/evaluate`).
    Evaluate,
    /// Read flags, segments and their history.
    Read,
    /// Change flags and segments.
    Write,
    /// Manage tokens.
    Admin,
}

impl Scope {
    /// Every scope, weakest first.
    pub const ALL: [Scope; 4] = [Scope::Evaluate, Scope::Read, Scope::Write, Scope::Admin];

    /// `evaluate`, `read`, `write` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Evaluate => "evaluate",
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// The scope named `s` (as [`Scope::as_str`] writes it).
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether a token of this scope may do what `required` allows.
    pub fn grants(self, required: Scope) -> bool {
        self >= required
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token as a store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// The public part of the token (16 hex digits): how it is found and revoked.
    pub id: String,
    /// A name for people and for the audit log (the actor of changes made with it).
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// SHA-256 of the secret part, 64 lowercase hex digits.
    pub secret_sha256: String,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

impl TokenRecord {
    /// Whether `token` (the whole text, `feat_<id>_<secret>`) is this record's token and the
    /// record is not revoked. The digests are compared in constant time.
    pub fn verify(&self, token: &str) -> bool {
        let Some((id, secret)) = parse_token(token) else {
            return false;
        };
        let digest = hex(&Sha256::digest(secret.as_bytes()));
        let same_id = id.as_bytes().ct_eq(self.id.as_bytes());
        let same_secret = digest.as_bytes().ct_eq(self.secret_sha256.as_bytes());
        bool::from(same_id & same_secret) && self.revoked_at.is_none()
    }
}

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The operating system's random source failed.
    #[error("cannot read random bytes for a token: {0}")]
    Random(String),
    /// The name or actor cannot be stored.
    #[error(transparent)]
    Name(#[from] WriteError),
}

/// Makes a new token: the record to store and the token text to show once.
pub fn mint(name: &str, scope: Scope, actor: &str) -> Result<(TokenRecord, String), TokenError> {
    check_name("name", name)?;
    check_name("actor", actor)?;
    let mut bytes = [0u8; 40];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    let id = hex(&bytes[..8]);
    let secret = hex(&bytes[8..]);
    let record = TokenRecord {
        secret_sha256: hex(&Sha256::digest(secret.as_bytes())),
        id: id.clone(),
        name: name.to_owned(),
        scope,
        created_at: now_rfc3339(),
        created_by: actor.to_owned(),
        revoked_at: None,
    };
    Ok((record, format!("feat_{id}_{secret}")))
}

/// Splits a token's text into its id and secret; `None` if it does not have the shape of one.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("feat_")?;
    let (id, secret) = rest.split_once('_')?;
    let is_hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (is_hex(id, 16) && is_hex(secret, 64)).then_some((id, secret))
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Where the flag server keeps its tokens: implemented by the stores that implement
/// [`FlagStore`](crate::FlagStore) (SQLite, PostgreSQL, Redis), next to the flags.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Stores a new token record ([`mint`] makes one).
    async fn insert_token(&self, record: &TokenRecord) -> Result<(), WriteError>;

    /// The record with this id, revoked or not.
    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, WriteError>;

    /// Every record, revoked ones included, oldest first.
    async fn tokens(&self) -> Result<Vec<TokenRecord>, WriteError>;

    /// Marks a token revoked (it stops working at once); `false` if there is no such token or
    /// it was already revoked.
    async fn revoke_token(&self, id: &str, actor: &str) -> Result<bool, WriteError>;
}

/// Checks a presented token against a store: the record if the token is valid and not revoked.
pub async fn authenticate(
    store: &dyn TokenStore,
    token: &str,
) -> Result<Option<TokenRecord>, WriteError> {
    let Some((id, _)) = parse_token(token) else {
        return Ok(None);
    };
    Ok(store.token(id).await?.filter(|r| r.verify(token)))
}

/// Makes a token and stores it: the record and the token text to show once.
pub async fn create_token(
    store: &dyn TokenStore,
    name: &str,
    scope: Scope,
    actor: &str,
) -> Result<(TokenRecord, String), CreateTokenError> {
    let (record, text) = mint(name, scope, actor)?;
    store.insert_token(&record).await?;
    Ok((record, text))
}

/// Why [`create_token`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateTokenError {
    /// The token could not be made.
    #[error(transparent)]
    Mint(#[from] TokenError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] WriteError),
}

/// The contract every [`TokenStore`] keeps, as a test: run it against a real, empty store from
/// each implementation's tests. Panics (with what broke) on a violation.
///
/// It checks that a minted token authenticates with its scope and name; a wrong secret, an
/// unknown id and text of the wrong shape do not; ids are unique; revoking stops the token at
/// once, is reported once, and keeps the record listed with its revocation time; `tokens` lists
/// oldest first.
#[allow(clippy::expect_used)] // test support: a failed expectation is the test failing
pub async fn check_token_store(store: &dyn TokenStore) {
    let (a, ta) = create_token(store, "ci-bot", Scope::Write, "alice")
        .await
        .expect("create a token");
    let (b, tb) = create_token(store, "reader", Scope::Read, "alice")
        .await
        .expect("create a second token");
    assert_ne!(a.id, b.id, "ids are unique");
    let got = authenticate(store, &ta).await.expect("authenticate");
    assert_eq!(
        got.as_ref(),
        Some(&a),
        "the stored record is the minted one"
    );
    let got = authenticate(store, &tb).await.expect("authenticate");
    assert_eq!(
        got.map(|r| (r.name, r.scope)),
        Some(("reader".into(), Scope::Read))
    );

    let (id, _) = parse_token(&ta).expect("token shape");
    let wrong = format!("feat_{id}_{}", "0".repeat(64));
    assert_eq!(
        authenticate(store, &wrong).await.expect("query"),
        None,
        "wrong secret"
    );
    let unknown = format!("feat_{}_{}", "f".repeat(16), "0".repeat(64));
    assert_eq!(
        authenticate(store, &unknown).await.expect("query"),
        None,
        "unknown id"
    );
    assert_eq!(authenticate(store, "nonsense").await.expect("query"), None);
    assert_eq!(store.token("0").await.expect("query"), None);

    assert!(store.revoke_token(&a.id, "bob").await.expect("revoke"));
    assert!(
        !store
            .revoke_token(&a.id, "bob")
            .await
            .expect("revoke again"),
        "a second revocation reports nothing done"
    );
    assert!(!store
        .revoke_token("0123456789abcdef", "bob")
        .await
        .expect("revoke unknown"));
    assert_eq!(
        authenticate(store, &ta).await.expect("query"),
        None,
        "revoked at once"
    );
    assert!(
        authenticate(store, &tb).await.expect("query").is_some(),
        "others unaffected"
    );

    let all = store.tokens().await.expect("list");
    let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, [a.id.as_str(), b.id.as_str()], "listed oldest first");
    assert!(all[0].revoked_at.is_some() && all[1].revoked_at.is_none());
    assert_eq!(all[1], b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_against_its_own_record() {
        let (a, ta) = mint("a", Scope::Read, "t").unwrap();
        let (b, tb) = mint("b", Scope::Read, "t").unwrap();
        assert!(a.verify(&ta) && b.verify(&tb));
        assert!(!a.verify(&tb) && !b.verify(&ta));
        // Same id, another secret.
        let (id, _) = parse_token(&ta).unwrap();
        let forged = format!("feat_{id}_{}", "0".repeat(64));
        assert!(!a.verify(&forged));
        let revoked = TokenRecord {
            revoked_at: Some(now_rfc3339()),
            ..a
        };
        assert!(!revoked.verify(&ta));
    }

    #[test]
    fn token_text_has_one_shape() {
        assert!(parse_token("feat_0123456789abcdef_").is_none());
        assert!(parse_token(&format!("feat_0123456789abcdeg_{}", "a".repeat(64))).is_none());
        assert!(parse_token(&format!("feat_0123456789abcdef_{}", "a".repeat(64))).is_some());
        assert!(parse_token("Bearer x").is_none());
    }

    #[test]
    fn scopes_are_ordered_and_named() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
            assert!(Scope::Admin.grants(s));
            assert!(s.grants(Scope::Evaluate));
        }
        assert!(!Scope::Read.grants(Scope::Write));
        assert_eq!(Scope::parse("root"), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(matches!(
            mint("", Scope::Read, "t"),
            Err(TokenError::Name(_))
        ));
    }
}
