//! `featurectl` against a flag server (`--server URL`, the token from `FEATURE_TOKEN`): `push`,
//! `history` and `validate` as against a store, and `get`, `enable`, `disable`.
//!
//! Everything goes through the server's admin API (`/api/v1`): items are read with their
//! version as `ETag`, and every write is conditional on it (`If-Match`, or `If-None-Match: *`
//! for a create), so a change someone else made meanwhile is reported, never overwritten. The
//! API has no batch endpoint: a push applies its changes one item at a time and stops at the
//! first refusal. Errors are the server's problem documents (title and detail); a refused or
//! missing token says so.

use crate::cli::{GetArgs, HistoryArgs, PushArgs, ValidateArgs};
use crate::load::{self, format_problem};
use anyhow::{anyhow, bail, Context as _};
use feature_core::model::{Flag, FlagDocument, Segment};
use feature_core::{parse_document, Format, Severity};
use feature_store::{diff, Change, ChangeOp, HistoryEntry, ItemKind, Row};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

/// The environment variable holding the token (never an option: see the `--server` help).
const TOKEN_VAR: &str = "FEATURE_TOKEN";

/// The largest page the API serves.
const PAGE: usize = 1000;

/// A flag server and the token to show it.
struct Remote {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

/// What a precondition header says for a write.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// `If-Match: "N"`.
    Version(u64),
    /// `If-None-Match: *`.
    Absent,
}

/// A server's answer that is not a success: the status and its problem document (or whatever
/// body came instead).
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    problem: ProblemBody,
}

/// The fields of an RFC 9457 problem document that are shown to the user.
#[derive(Debug, Default, Deserialize)]
struct ProblemBody {
    #[serde(default)]
    title: String,
    #[serde(default)]
    detail: String,
    #[serde(default, rename = "readOnly")]
    read_only: Option<String>,
}

/// One answer: the `ETag` (and the version it names, for a store's item), the body.
struct Answer {
    etag: Option<HeaderValue>,
    version: Option<u64>,
    body: Value,
}

impl Remote {
    fn new(server: &str) -> anyhow::Result<Remote> {
        let mut base =
            Url::parse(server).with_context(|| format!("invalid server URL {server:?}"))?;
        if !matches!(base.scheme(), "http" | "https") {
            bail!("invalid server URL {server:?}: expected http://... or https://...");
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let token = std::env::var(TOKEN_VAR).ok().filter(|t| !t.is_empty());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Remote {
            base,
            token,
            http,
            rt,
        })
    }

    /// The URL of `api/v1/<segments...>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> anyhow::Result<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow!("the server URL {} cannot have a path", self.base))?
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(segments);
        Ok(url)
    }

    /// Sends a request; a success is an [`Answer`], anything else a [`Refusal`]. Transport
    /// failures are errors.
    fn send(
        &self,
        method: Method,
        url: Url,
        headers: &[(reqwest::header::HeaderName, HeaderValue)],
        body: Option<(Vec<u8>, &'static str)>,
    ) -> anyhow::Result<Result<Answer, Refusal>> {
        let mut req = self.http.request(method, url.clone());
        if let Some(t) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(k, v.clone());
        }
        if let Some((bytes, content_type)) = body {
            req = req.header(CONTENT_TYPE, content_type).body(bytes);
        }
        let where_ = without_query(&url);
        self.rt.block_on(async {
            let resp = req
                .send()
                .await
                .map_err(|e| anyhow!(e.without_url()))
                .with_context(|| format!("cannot reach the flag server at {where_}"))?;
            let status = resp.status();
            let etag = resp.headers().get(ETAG).cloned();
            let version = etag
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .and_then(parse_etag);
            let bytes = resp
                .bytes()
                .await
                .with_context(|| format!("cannot read the answer of {where_}"))?;
            if status.is_success() {
                let body = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes)
                        .with_context(|| format!("the answer of {where_} is not JSON"))?
                };
                Ok(Ok(Answer {
                    etag,
                    version,
                    body,
                }))
            } else {
                let problem = serde_json::from_slice(&bytes).unwrap_or_else(|_| ProblemBody {
                    title: status.canonical_reason().unwrap_or("error").to_owned(),
                    detail: String::from_utf8_lossy(&bytes).trim().to_owned(),
                    read_only: None,
                });
                Ok(Err(Refusal { status, problem }))
            }
        })
    }

    /// The message of a refusal, with what the user can do about a token problem.
    fn explain(&self, r: &Refusal) -> anyhow::Error {
        let p = &r.problem;
        let said = if p.detail.is_empty() {
            p.title.clone()
        } else {
            format!("{}: {}", p.title, p.detail)
        };
        match r.status {
            StatusCode::UNAUTHORIZED if self.token.is_none() => {
                anyhow!("no token: set {TOKEN_VAR} to a token of the server ({said})")
            }
            StatusCode::UNAUTHORIZED => {
                anyhow!("the server refused the token in {TOKEN_VAR} ({said})")
            }
            StatusCode::FORBIDDEN => {
                anyhow!("the token in {TOKEN_VAR} is too weak for this ({said})")
            }
            StatusCode::METHOD_NOT_ALLOWED => match &p.read_only {
                Some(reason) => anyhow!("the server is read-only: {reason}"),
                None => anyhow!("{said}"),
            },
            _ => anyhow!("{said}"),
        }
    }

    /// `GET` of one item: `None` when it does not exist.
    fn get(&self, kind: ItemKind, key: &str) -> anyhow::Result<Option<Answer>> {
        match self.send(Method::GET, self.url(&[section(kind), key])?, &[], None)? {
            Ok(a) => Ok(Some(a)),
            Err(r) if r.status == StatusCode::NOT_FOUND => Ok(None),
            Err(r) => Err(self.explain(&r)),
        }
    }

    /// Every item of a kind, page by page, as rows (definition, version).
    fn rows(&self, kind: ItemKind) -> anyhow::Result<Vec<Row>> {
        let mut rows = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = self.url(&[section(kind)])?;
            url.query_pairs_mut()
                .append_pair("limit", &PAGE.to_string());
            if let Some(c) = &cursor {
                url.query_pairs_mut().append_pair("cursor", c);
            }
            let page = self
                .send(Method::GET, url, &[], None)?
                .map_err(|r| self.explain(&r))?
                .body;
            let items = page
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| anyhow!("the server's list of {kind}s has no items"))?;
            for item in items {
                rows.push(row_of(kind, item)?);
            }
            match page.get("next").and_then(Value::as_str) {
                Some(next) if !items.is_empty() => cursor = Some(next.to_owned()),
                _ => return Ok(rows),
            }
        }
    }

    /// One conditional write of a push.
    fn apply(&self, change: &Change) -> anyhow::Result<Result<(), Refusal>> {
        let url = self.url(&[section(change.kind), &change.key])?;
        let expect = match change.version {
            Some(v) => Expect::Version(v),
            None => Expect::Absent,
        };
        let headers = [precondition(expect)?];
        let answer = match change.op {
            ChangeOp::Create | ChangeOp::Update => {
                let body = serde_json::to_vec(change.after.as_ref().unwrap_or(&Value::Null))?;
                self.send(Method::PUT, url, &headers, Some((body, "application/json")))?
            }
            ChangeOp::Delete => self.send(Method::DELETE, url, &headers, None)?,
        };
        Ok(answer.map(|_| ()))
    }
}

fn section(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Flag => "flags",
        ItemKind::Segment => "segments",
    }
}

/// The URL without its query, for messages.
fn without_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// The version of a strong entity tag `"3"`.
fn parse_etag(tag: &str) -> Option<u64> {
    tag.trim()
        .strip_prefix('"')?
        .strip_suffix('"')?
        .parse()
        .ok()
}

fn precondition(expect: Expect) -> anyhow::Result<(reqwest::header::HeaderName, HeaderValue)> {
    Ok(match expect {
        Expect::Version(v) => (IF_MATCH, HeaderValue::from_str(&format!("\"{v}\""))?),
        Expect::Absent => (IF_NONE_MATCH, HeaderValue::from_static("*")),
    })
}

/// An item of the API (the definition with `key`, `version`, `updatedAt`) as a stored row.
fn row_of(kind: ItemKind, item: &Value) -> anyhow::Result<Row> {
    let key = item
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("a {kind} of the server's list has no key"))?
        .to_owned();
    // Items of a store always have one; a read-only server's have none (and refuse writes,
    // with their reason, before looking at a precondition).
    let version = item.get("version").and_then(Value::as_u64).unwrap_or(0);
    let mut definition = item.clone();
    let mut updated_at = None;
    if let Value::Object(m) = &mut definition {
        for managed in ["key", "version", "createdAt"] {
            m.remove(managed);
        }
        updated_at = m
            .remove("updatedAt")
            .and_then(|v| v.as_str().map(str::to_owned));
    }
    Ok(Row {
        kind,
        key,
        definition,
        version,
        updated_at,
        updated_by: None,
    })
}

/// Runs `featurectl push FILE --server URL`: the difference between the server's items and the
/// file, applied one conditional write at a time; prints each change once made.
pub fn run_push(a: &PushArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    let server = a.server.as_deref().unwrap_or_default();
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let name = a.file.display().to_string();
    let mut parsed =
        parse_document(&text, Format::from_path(&a.file)).map_err(|e| e.in_file(name.clone()))?;
    // Key files are read here: the store holds the segments' keys, not the files' names.
    feature::providers::key_files::read_key_files(&mut parsed, &a.file);
    let doc = parsed.document.clone();
    // Flags that could not be read are errors too (they are not in `doc`).
    let snap = parsed.compile(Some(&name));
    let errors: Vec<_> = snap
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    if let Some(first) = errors.first() {
        bail!(
            "{name} has {} error(s), nothing was written; first: {}",
            errors.len(),
            load::format_diagnostic(first, false)
        );
    }
    let remote = Remote::new(server)?;
    let mut rows = remote.rows(ItemKind::Segment)?;
    rows.extend(remote.rows(ItemKind::Flag)?);
    let changes = diff(&rows, &doc, !a.no_delete);
    let count = |op| changes.iter().filter(|c: &&Change| c.op == op).count();
    let summary = format!(
        "{} created, {} updated, {} deleted",
        count(ChangeOp::Create),
        count(ChangeOp::Update),
        count(ChangeOp::Delete)
    );
    if a.dry_run {
        for c in &changes {
            writeln!(out, "{c}")?;
        }
        writeln!(out, "dry run: would have {summary}")?;
        return Ok(0);
    }
    for (done, c) in changes.iter().enumerate() {
        let answer = remote.apply(c).with_context(|| {
            format!(
                "{c}: the push stopped: {done} of {} changes made (printed above); whether this one was made is unknown",
                changes.len()
            )
        });
        if let Err(refusal) = answer? {
            out.flush()?;
            let why = remote.explain(&refusal);
            let what = if refusal.status == StatusCode::PRECONDITION_FAILED {
                "changed on the server since it was read; it was left as the other edit made it"
            } else {
                "refused"
            };
            bail!(
                "{c}: {what} ({why:#}); the push stopped: {done} of {} changes made (printed above), the rest not made",
                changes.len()
            );
        }
        writeln!(out, "{c}")?;
    }
    writeln!(out, "{summary}")?;
    Ok(0)
}

/// One entry of the server's history.
#[derive(Debug, Deserialize)]
struct HistoryItem {
    id: String,
    action: String,
    actor: String,
    at: String,
    version: u64,
    #[serde(default)]
    before: Option<Value>,
    #[serde(default)]
    after: Option<Value>,
}

/// Runs `featurectl history KEY --server URL`: pages through the flag's audit log (`before`)
/// until `--limit` entries; printed as against a store.
pub fn run_history(a: &HistoryArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    if a.segment {
        bail!("the flag server keeps the history of flags only; read a segment's history from its store (--from)");
    }
    let remote = Remote::new(a.server.as_deref().unwrap_or_default())?;
    let mut entries: Vec<HistoryEntry> = Vec::new();
    let mut before: Option<String> = None;
    while entries.len() < a.limit {
        let mut url = remote.url(&["flags", &a.key, "history"])?;
        let want = (a.limit - entries.len()).min(PAGE);
        url.query_pairs_mut()
            .append_pair("limit", &want.to_string());
        if let Some(b) = &before {
            url.query_pairs_mut().append_pair("before", b);
        }
        let page = remote
            .send(Method::GET, url, &[], None)?
            .map_err(|r| remote.explain(&r))?
            .body;
        let items: Vec<HistoryItem> = serde_json::from_value(
            page.get("items")
                .cloned()
                .unwrap_or(Value::Array(Vec::new())),
        )
        .context("the server's history is not a list of changes")?;
        let got = items.len();
        entries.extend(items.into_iter().map(|i| HistoryEntry {
            id: i.id,
            kind: ItemKind::Flag,
            key: a.key.clone(),
            action: i.action,
            actor: i.actor,
            at: i.at,
            version: i.version,
            before: i.before,
            after: i.after,
        }));
        match page.get("next").and_then(Value::as_str) {
            Some(next) if got > 0 => before = Some(next.to_owned()),
            _ => break,
        }
    }
    entries.truncate(a.limit);
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
        eprintln!("no history for flag {:?}", a.key);
    }
    Ok(0)
}

/// One diagnostic of `POST /api/v1/validate`.
#[derive(Debug, Deserialize)]
struct DiagnosticItem {
    severity: String,
    #[serde(default)]
    flag: String,
    #[serde(default)]
    path: String,
    line: Option<usize>,
    column: Option<usize>,
    message: String,
}

/// What `POST /api/v1/validate` answers.
#[derive(Debug, Deserialize)]
struct ValidateAnswer {
    errors: usize,
    warnings: usize,
    flags: usize,
    diagnostics: Vec<DiagnosticItem>,
}

/// Runs `featurectl validate FILE... --server URL`: each file checked by the server, its
/// diagnostics printed as local validation prints them; the same exit statuses.
pub fn run_validate(a: &ValidateArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let remote = Remote::new(a.server.as_deref().unwrap_or_default())?;
    let mut unreadable = false;
    let mut invalid = false;
    for path in &a.files {
        let name = path.display().to_string();
        let text = match load::read_text(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("featurectl: error: {e:#}");
                unreadable = true;
                continue;
            }
        };
        let content_type = match Format::from_path(path) {
            Format::Json => "application/json",
            Format::Yaml => "application/yaml",
        };
        let answer = remote
            .send(
                Method::POST,
                remote.url(&["validate"])?,
                &[],
                Some((text.into_bytes(), content_type)),
            )?
            .map_err(|r| remote.explain(&r))
            .with_context(|| format!("cannot validate {name}"))?;
        let v: ValidateAnswer = serde_json::from_value(answer.body)
            .with_context(|| format!("the server's validation of {name} is not understood"))?;
        for d in &v.diagnostics {
            let line = format_problem(&load::Problem {
                file: Some(&name),
                line: d.line,
                column: d.column,
                flag: &d.flag,
                warning: d.severity == "warning",
                message: &d.message,
                path: if a.verbose { &d.path } else { "" },
            });
            writeln!(out, "{line}")?;
        }
        let ok = v.errors == 0 && (a.allow_warnings || v.warnings == 0);
        if ok {
            if a.verbose {
                out.flush()?;
                eprintln!("ok: {name} ({} flags)", v.flags);
            }
        } else {
            invalid = true;
        }
    }
    Ok(if unreadable {
        2
    } else if invalid {
        1
    } else {
        0
    })
}

/// Runs `featurectl get KEY`: the item as YAML in the flag file's format (with its version),
/// or the server's JSON.
pub fn run_get(a: &GetArgs, out: &mut impl Write) -> anyhow::Result<u8> {
    let remote = Remote::new(&a.server)?;
    let kind = if a.segment {
        ItemKind::Segment
    } else {
        ItemKind::Flag
    };
    let Some(answer) = remote.get(kind, &a.key)? else {
        bail!("no {kind} {:?} on the server", a.key);
    };
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&answer.body)?)?;
        return Ok(0);
    }
    let mut body = answer.body;
    if let (Value::Object(m), Some(v)) = (&mut body, answer.version) {
        m.insert("version".into(), Value::from(v));
    }
    let yaml = match kind {
        ItemKind::Flag => {
            let flag: Flag = serde_json::from_value(body)
                .with_context(|| format!("the server's flag {:?} is not a flag", a.key))?;
            let mut doc = FlagDocument::default();
            doc.flags.insert(a.key.clone(), flag.into());
            crate::import::to_yaml(&doc)?
        }
        ItemKind::Segment => {
            // Segments have no timestamps in the flag file's format.
            if let Value::Object(m) = &mut body {
                m.remove("updatedAt");
                m.remove("createdAt");
            }
            let mut segment: Segment = serde_json::from_value(body)
                .with_context(|| format!("the server's segment {:?} is not a segment", a.key))?;
            segment.key.clear();
            // Only the segment: a flag file without flags.
            let doc = BTreeMap::from([("segments", BTreeMap::from([(a.key.as_str(), segment)]))]);
            serde_yaml_ng::to_string(&doc).context("cannot write the segment as YAML")?
        }
    };
    write!(out, "{yaml}")?;
    Ok(0)
}

/// Runs `featurectl enable KEY` / `disable KEY`: reads the flag's `ETag`, switches with
/// `If-Match`, and after a 412 reads and retries once before reporting the conflict.
pub fn run_switch(key: &str, server: &str, on: bool, out: &mut impl Write) -> anyhow::Result<u8> {
    let remote = Remote::new(server)?;
    let verb = if on { "enable" } else { "disable" };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let Some(read) = remote.get(ItemKind::Flag, key)? else {
            bail!("no flag {key:?} on the server");
        };
        // A read-only source's ETag is not a version: sent as read, the server explains.
        let Some(etag) = read.etag else {
            bail!("the server gave flag {key:?} no ETag");
        };
        let url = remote.url(&["flags", key, verb])?;
        let headers = [(IF_MATCH, etag)];
        match remote.send(Method::POST, url, &headers, None)? {
            Ok(answer) => {
                let now = answer
                    .version
                    .map(|v| format!(" (v{v})"))
                    .unwrap_or_default();
                writeln!(out, "flag {key} {verb}d{now}")?;
                return Ok(0);
            }
            Err(r) if r.status == StatusCode::PRECONDITION_FAILED && attempts < 2 => continue,
            Err(r) if r.status == StatusCode::PRECONDITION_FAILED => {
                bail!(
                    "cannot {verb} flag {key:?}: it changed on the server while being switched, twice ({:#}); nothing was overwritten",
                    remote.explain(&r)
                );
            }
            Err(r) => {
                return Err(remote
                    .explain(&r)
                    .context(format!("cannot {verb} flag {key:?}")))
            }
        }
    }
}
