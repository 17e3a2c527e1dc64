//! `featurectl push` and `featurectl history`: a flag file into a store, and a flag's audit log;
//! `featurectl migrate` for PostgreSQL, and `featurectl audit verify` for PostgreSQL and SQLite.
//! The work is done by the store crates; this module parses, connects and prints.

use crate::cli::{AuditVerifyArgs, HistoryArgs, MigrateArgs, PushArgs};
use anyhow::{bail, Context as _};
use feature_core::{parse_document, Format};
use feature_store::{push, ChangeOp, FlagStore, ItemKind, PushOptions};
use std::io::Write;

/// Opens the store a `postgres://`, `redis://` or `sqlite://` URL names.
fn open(url: &str, table: &str, prefix: &str) -> anyhow::Result<Box<dyn FlagStore>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(feature_postgres::PostgresStore::lazy(url, table)?))
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        Ok(Box::new(feature_redis::RedisStore::new(url, prefix)?))
    } else if url.starts_with("sqlite:") {
        Ok(Box::new(feature_sqlite::SqliteStore::lazy(url)?))
    } else {
        bail!(
            "unsupported store URL {:?}: expected postgres://..., redis://... or sqlite://...",
            feature_core::provider::redact_url(url)
        )
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
    let name = a.file.display().to_string();
    let mut parsed =
        parse_document(&text, Format::from_path(&a.file)).map_err(|e| e.in_file(name.clone()))?;
    // Key files are read here: the store holds the segments' keys, not the files' names.
    feature::providers::key_files::read_key_files(&mut parsed, &a.file);
    let doc = parsed.document.clone();
    // A flag that cannot be read at all is not in `doc`: pushing without it would delete it.
    let snap = parsed.compile(Some(&name));
    let errors: Vec<_> = snap
        .diagnostics()
        .iter()
        .filter(|d| d.severity == feature_core::Severity::Error)
        .collect();
    if let Some(first) = errors.first() {
        bail!(
            "{name} has {} error(s), nothing was written; first: {}",
            errors.len(),
            crate::load::format_diagnostic(first, false)
        );
    }
    let rt = runtime()?;
    let _in_runtime = rt.enter();
    let Some(to) = a.to.as_deref() else {
        bail!("no store: set FEATURE_STORE_URL or --to");
    };
    let store = open(to, &a.table, &a.prefix)?;
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
    let Some(from) = a.from.as_deref() else {
        bail!("no store: set FEATURE_STORE_URL or --from");
    };
    let rt = runtime()?;
    let _in_runtime = rt.enter();
    if from.starts_with("sqlite:") {
        // Reading creates nothing: a mistyped path is an error, not a new empty database.
        let url = feature_sqlite::SqliteUrl::parse(from)?;
        if !url.path().exists() {
            bail!("{}: no such file", url.path().display());
        }
    }
    let store = open(from, &a.table, &a.prefix)?;
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

fn postgres_url(url: &str) -> anyhow::Result<&str> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(url)
    } else {
        bail!("this command needs a postgres://... store URL")
    }
}

/// Runs `featurectl migrate`: migrates, or prints the GRANT statements; exit 0.
pub fn run_migrate(a: &MigrateArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    let table = feature_postgres::TableName::new(&a.table)?;
    if a.print_grants {
        let g =
            feature_postgres::role_grants(&table, &a.schema, &a.reader, &a.writer, &a.migrator)?;
        writeln!(
            out,
            "-- Before `featurectl migrate`, as a superuser:\n{}\n-- After it, as {}:\n{}",
            g.before_migration, a.migrator, g.after_migration
        )?;
        return Ok(0);
    }
    let Some(url) = a.store.as_deref() else {
        bail!("no store: set FEATURE_STORE_URL or --store");
    };
    let rt = runtime()?;
    let _in_runtime = rt.enter();
    let store = feature_postgres::PostgresStore::lazy(postgres_url(url)?, table.as_str())?;
    rt.block_on(store.migrate())?;
    rt.block_on(store.close());
    writeln!(
        out,
        "{table}: schema at version {}",
        feature_postgres::SCHEMA_VERSION
    )?;
    Ok(0)
}

/// Runs `featurectl audit verify`: exit 0 when the log is intact, 1 at the first broken link.
pub fn run_audit_verify(a: &AuditVerifyArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    let rt = runtime()?;
    let _in_runtime = rt.enter();
    if a.store.starts_with("sqlite:") {
        return verify_sqlite(&rt, &a.store, out);
    }
    let verdict = rt.block_on(feature_postgres::verify_audit(
        postgres_url(&a.store)?,
        &a.table,
    ))?;
    match verdict {
        feature_postgres::AuditVerdict::Intact { rows, head } => {
            match head {
                Some((id, hash)) => writeln!(
                    out,
                    "ok: {rows} audit rows, chain intact; last row {id}, hash {hash}"
                )?,
                None => writeln!(out, "ok: the audit log is empty")?,
            }
            Ok(0)
        }
        feature_postgres::AuditVerdict::Broken(b) => {
            writeln!(out, "broken: {b}")?;
            Ok(1)
        }
        _ => bail!("unexpected verdict"),
    }
}

/// `featurectl audit verify` on an SQLite file (which must exist: it is not created).
fn verify_sqlite(
    rt: &tokio::runtime::Runtime,
    url: &str,
    out: &mut impl Write,
) -> anyhow::Result<u8> {
    let path = feature_sqlite::SqliteUrl::parse(url)?;
    if !path.path().exists() {
        bail!("{}: no such file", path.path().display());
    }
    let verdict = rt.block_on(async {
        let store = feature_sqlite::SqliteStore::open(url).await?;
        let verdict = store.verify_audit().await;
        store.close().await;
        verdict
    })?;
    match verdict {
        feature_sqlite::AuditVerdict::Intact { rows, head } => {
            match head {
                Some((id, hash)) => writeln!(
                    out,
                    "ok: {rows} audit rows, chain intact; last row {id}, hash {hash}"
                )?,
                None => writeln!(out, "ok: the audit log is empty")?,
            }
            Ok(0)
        }
        feature_sqlite::AuditVerdict::Broken(b) => {
            writeln!(out, "broken: {b}")?;
            Ok(1)
        }
        _ => bail!("unexpected verdict"),
    }
}
