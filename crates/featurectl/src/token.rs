//! `featurectl token create | list | revoke`: the flag server's API tokens, kept in the store
//! the server uses. A token's text is printed once, at creation; the store keeps its SHA-256.

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use feature_store::tokens::{create_token, Scope, TokenStore};
use std::io::Write;

/// `featurectl token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (once: the store keeps only its hash).
    ///
    /// Scopes are ordered, each granting the ones before it: evaluate (OFREP, SDK streams,
    /// evaluation), read (flags, segments, history), write (changes), admin (tokens).
    Create(TokenCreateArgs),
    /// List the tokens: id, scope, name, creation, revocation. Never the secrets.
    List(TokenStoreArgs),
    /// Revoke a token by id: it stops working at once.
    Revoke(TokenRevokeArgs),
}

/// A token's scope on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// OFREP, SDK streams and evaluation.
    Evaluate,
    /// Read flags, segments and history (and evaluate).
    Read,
    /// Change flags and segments (and read).
    Write,
    /// Manage tokens (and everything else).
    Admin,
}

impl From<ScopeArg> for Scope {
    fn from(s: ScopeArg) -> Scope {
        match s {
            ScopeArg::Evaluate => Scope::Evaluate,
            ScopeArg::Read => Scope::Read,
            ScopeArg::Write => Scope::Write,
            ScopeArg::Admin => Scope::Admin,
        }
    }
}

/// Where the tokens are: the flag server's store.
#[derive(Debug, Args)]
pub struct TokenStoreArgs {
    /// The server's store: postgres://USER:PASS@HOST/DB, redis://HOST:PORT or sqlite://PATH.
    #[arg(
        long,
        value_name = "URL",
        env = "FEATURE_SERVER_STORE",
        hide_env_values = true
    )]
    pub store: String,
    /// PostgreSQL table (the tokens are in `{table}_tokens`).
    #[arg(long, value_name = "NAME", default_value = "feature_flags")]
    pub table: String,
    /// Redis key prefix (the tokens are in `{prefix}:tokens`).
    #[arg(long, value_name = "PREFIX", default_value = "feature")]
    pub prefix: String,
    /// Who is doing this (recorded with the token).
    #[arg(
        long,
        value_name = "NAME",
        env = "FEATURE_ACTOR",
        default_value = "featurectl"
    )]
    pub actor: String,
}

/// Options of `featurectl token create`.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// A name for people and the audit log: the actor of the changes made with the token.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// What the token may do.
    #[arg(long, value_enum)]
    pub scope: ScopeArg,
    /// The store.
    #[command(flatten)]
    pub store: TokenStoreArgs,
}

/// Options of `featurectl token revoke`.
#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's id (the 16 hex digits after `feat_`, as `token list` shows).
    #[arg(value_name = "ID")]
    pub id: String,
    /// The store.
    #[command(flatten)]
    pub store: TokenStoreArgs,
}

/// Opens the token store a URL names.
fn open(a: &TokenStoreArgs) -> anyhow::Result<Box<dyn TokenStore>> {
    let url = a.store.as_str();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(feature_postgres::PostgresStore::lazy(
            url, &a.table,
        )?))
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        Ok(Box::new(feature_redis::RedisStore::new(url, &a.prefix)?))
    } else if url.starts_with("sqlite:") {
        Ok(Box::new(feature_sqlite::SqliteStore::lazy(url)?))
    } else {
        bail!("unsupported store URL {url:?}: expected postgres://..., redis://... or sqlite://...")
    }
}

/// Runs a `featurectl token` subcommand.
pub fn run(command: &TokenCommand, out: &mut impl Write) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _in_runtime = rt.enter();
    match command {
        TokenCommand::Create(a) => {
            let store = open(&a.store)?;
            let (record, text) = rt
                .block_on(create_token(
                    store.as_ref(),
                    &a.name,
                    a.scope.into(),
                    &a.store.actor,
                ))
                .context("cannot create the token")?;
            writeln!(out, "{text}")?;
            eprintln!(
                "created token {} ({}, scope {}): shown once, store it now",
                record.id, record.name, record.scope
            );
        }
        TokenCommand::List(a) => {
            let store = open(a)?;
            for t in rt.block_on(store.tokens())? {
                let state = match &t.revoked_at {
                    Some(at) => format!("revoked {at}"),
                    None => "active".to_owned(),
                };
                writeln!(
                    out,
                    "{}  {:<8}  {}  created {} by {}  {state}",
                    t.id, t.scope, t.name, t.created_at, t.created_by
                )?;
            }
        }
        TokenCommand::Revoke(a) => {
            let store = open(&a.store)?;
            if !rt.block_on(store.revoke_token(&a.id, &a.store.actor))? {
                bail!("no active token with id {:?}", a.id);
            }
            writeln!(out, "revoked {}", a.id)?;
        }
    }
    Ok(0)
}
