//! `featurectl push` and `featurectl history`: a flag file into a store, and a flag's audit log.
//! The work is done by the store crates; this module parses, connects and prints.

use crate::cli::{HistoryArgs, PushArgs};
use anyhow::{bail, Context as _};
use feature_core::{parse_document, Format};
use feature_store::{push, ChangeOp, FlagStore, ItemKind, PushOptions};
use std::io::Write;

/// Opens the store a `postgres://` or `redis://` URL names.
fn open(url: &str, table: &str, prefix: &str) -> anyhow::Result<Box<dyn FlagStore>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(feature_postgres::PostgresStore::lazy(url, table)?))
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        Ok(Box::new(feature_redis::RedisStore::new(url, prefix)?))
    } else {
        bail!("unsupported store URL {url:?}: expected postgres://... or redis://...")
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Runs `featurectl push`: prints one line per change (`+`, `~`, `-`); exit 0.
pub fn run_push(a: &PushArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let doc = parse_document(&text, Format::from_path(&a.file))
        .map_err(|e| e.in_file(a.file.display().to_string()))?
        .document;
    let rt = runtime()?;
    let _in_runtime = rt.enter();
    let store = open(&a.to, &a.table, &a.prefix)?;
    let options = PushOptions {
        dry_run: a.dry_run,
        delete: !a.no_delete,
    };
    let changes = rt.block_on(push(store.as_ref(), &doc, &a.actor, options))?;
    for c in &changes {
        writeln!(out, "{c}")?;
    }
    let count = |op| changes.iter().filter(|c| c.op == op).count();
    writeln!(
        out,
        "{}{} created, {} updated, {} deleted",
        if a.dry_run {
            "dry run: would have "
        } else {
            ""
        },
        count(ChangeOp::Create),
        count(ChangeOp::Update),
        count(ChangeOp::Delete)
    )?;
    Ok(0)
}

/// Runs `featurectl history`: newest first, one line per change, or JSON lines.
pub fn run_history(a: &HistoryArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    let rt = runtime()?;
    let _in_runtime = rt.enter();
    let store = open(&a.from, &a.table, &a.prefix)?;
    let kind = if a.segment {
        ItemKind::Segment
    } else {
        ItemKind::Flag
    };
    let entries = rt.block_on(store.history(kind, &a.key, a.limit))?;
    for e in &entries {
        if a.json {
            writeln!(out, "{}", serde_json::to_string(e)?)?;
        } else {
            writeln!(
                out,
                "{}  v{:<4} {:<8} {}",
                e.at, e.version, e.action, e.actor
            )?;
        }
    }
    if entries.is_empty() {
        eprintln!("no history for {kind} {:?}", a.key);
    }
    Ok(0)
}
