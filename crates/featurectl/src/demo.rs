//! `featurectl serve --demo`: a SQLite store in a new temporary directory, seeded with the
//! bundled example flags, and a one-time admin token printed with the web UI's URL.

use anyhow::Context as _;
use feature_core::model::FlagDocument;
use feature_store::tokens::{create_token, Scope, TokenStore};
use feature_store::FlagStore;
use std::path::PathBuf;
use std::sync::Mutex;

/// The example flags of the `feature` crate (its `examples/flags` files).
const EXAMPLES: [&str; 3] = [
    include_str!("../../feature/examples/flags/basic.yaml"),
    include_str!("../../feature/examples/flags/ab-testing.yaml"),
    include_str!("../../feature/examples/flags/examples.yaml"),
];

/// The actor of the seeded flags and the name of the demo's admin token.
pub const DEMO_ACTOR: &str = "demo";

/// A demo store: its directory (removed when dropped), its URL and, once seeded, the token.
#[derive(Debug)]
pub struct Demo {
    dir: PathBuf,
    /// The store's `sqlite://` URL.
    pub url: String,
    token: Mutex<Option<String>>,
}

impl Demo {
    /// Makes a new temporary directory for the store.
    pub async fn create() -> anyhow::Result<Demo> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random bytes: {e}"))?;
        let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let dir = std::env::temp_dir().join(format!("featurectl-demo-{suffix}"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let url = format!("sqlite://{}", dir.join("feature.db").display());
        Ok(Demo {
            dir,
            url,
            token: Mutex::new(None),
        })
    }

    /// Writes the example flags (actor `demo`) and creates the admin token.
    pub async fn seed(&self, flags: &dyn FlagStore, tokens: &dyn TokenStore) -> anyhow::Result<()> {
        let mut all = FlagDocument::default();
        for text in EXAMPLES {
            let doc: FlagDocument =
                serde_yaml_ng::from_str(text).context("a bundled example flag file")?;
            all.flags.extend(doc.flags);
            all.segments.extend(doc.segments);
        }
        for (key, segment) in &all.segments {
            let mut s = feature_core::model::Segment::clone(segment);
            s.key = key.clone();
            flags.put_segment(&s, DEMO_ACTOR).await?;
        }
        for (key, flag) in &all.flags {
            let mut f = feature_core::Flag::clone(flag);
            f.key = key.clone();
            flags
                .create(&f, DEMO_ACTOR)
                .await
                .with_context(|| format!("cannot seed the example flag {key}"))?;
        }
        let (_, token) = create_token(tokens, "demo-admin", Scope::Admin, DEMO_ACTOR).await?;
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
        Ok(())
    }

    /// Prints the UI's URL and the admin token on stdout.
    pub fn announce(&self, address: std::net::SocketAddr) {
        let token = self
            .token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        println!("feature demo: the example flags in {}", self.url);
        println!("open http://{address}/ui/ and sign in with this admin token (shown once):");
        println!("{token}");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
