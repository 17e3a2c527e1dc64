//! A provider reading a YAML or JSON flag file, reloading it when it changes.
//!
//! - The format follows the extension: `.json` is JSON, anything else YAML.
//! - The file's directory is watched, so editors that save by writing a temporary file and
//!   renaming it over the original (vim, most IDEs), and symlink swaps (Kubernetes ConfigMaps),
//!   are seen. Bursts of events are debounced (100 ms by default) and a reload whose text did not
//!   change publishes nothing. If the platform cannot watch, the file is polled every second.
//! - Segments may take their keys from plain text files (`includedFile`, `excludedFile`,
//!   relative to the flag file's directory; see [`feature_core::key_file`]). Their directories
//!   are watched too: editing a key file reloads the flags, and a key file that cannot be read
//!   is an error like a broken flag.
//! - A broken edit (unreadable text, or any flag with an error) never replaces good flags: the
//!   last good snapshot keeps serving, the provider reports itself degraded with the errors
//!   (file, line, column, flag) in its status and in the log, and the next good save recovers.
//! - At start there is nothing better to serve: a file that cannot be read or parsed fails the
//!   start, while a file with errors in some flags loads, those flags evaluating to
//!   `ERROR`/`MALFORMED_FLAG` (and the provider starts degraded).
//! - Reading, parsing and compiling run on Tokio's blocking threads, never on the async
//!   workers. If the watching task ends unexpectedly (a panic), the provider turns
//!   `Unavailable` with the reason; the flags published before keep serving. Closing the
//!   provider (or dropping the client that started it) stops the watcher.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use feature::{Client, Context, FileProvider};
//! let client = Client::builder()
//!     .provider(FileProvider::new("features.yaml"))
//!     .build()
//!     .await?;
//! let on = client.bool(&Context::new("user-1"), "new-dashboard", false);
//! # let _ = on; Ok(()) }
//! ```

use super::key_files::{read_key_files, KeyFiles};
use async_trait::async_trait;
use feature_core::provider::{Provider, ProviderError, ProviderState, ProviderStatus, Sink};
use feature_core::{parse_document, Diagnostic, Format, Severity, Snapshot};
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

struct State {
    status: ProviderStatus,
    last_text: Option<String>,
    /// Whether `last_text` compiled without errors.
    last_text_ok: bool,
    /// How many flags `last_text` holds.
    last_flags: usize,
    task: Option<AbortHandle>,
    watcher: Option<notify::RecommendedWatcher>,
    /// The key files `last_text` was read with.
    key_files: KeyFiles,
    /// The directories watched (canonical paths).
    watched: Vec<PathBuf>,
}

/// Why the file is no longer followed.
#[derive(Debug, thiserror::Error)]
#[error("the file watcher stopped ({0}); changes to the file are no longer loaded")]
struct WatcherStopped(String);

/// Flags from a YAML or JSON file (`.json` is JSON, anything else YAML), reloaded when it
/// changes. Editors' write-then-rename saves are seen (the directory is watched), bursts of
/// events are debounced, and a broken edit keeps the last good flags while the provider reports
/// itself degraded with file, line and column; the next good save recovers. At start, an
/// unreadable file fails the start; flags with errors load as malformed.
#[derive(Clone)]
pub struct FileProvider {
    path: PathBuf,
    watch: bool,
    debounce: Duration,
    poll: Duration,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FileProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileProvider")
            .field("path", &self.path)
            .field("watch", &self.watch)
            .finish()
    }
}

impl FileProvider {
    /// Reads `path`; watches it for changes.
    pub fn new(path: impl AsRef<Path>) -> Self {
        FileProvider {
            path: path.as_ref().to_path_buf(),
            watch: true,
            debounce: Duration::from_millis(100),
            poll: Duration::from_secs(1),
            state: Arc::new(Mutex::new(State {
                status: ProviderStatus::default(),
                last_text: None,
                last_text_ok: false,
                last_flags: 0,
                task: None,
                watcher: None,
                key_files: KeyFiles::default(),
                watched: Vec::new(),
            })),
        }
    }

    /// Whether to reload on change (default `true`).
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// How long to wait for a burst of file events to settle (default 100 ms).
    pub fn debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update of the state is a plain field assignment: a poisoned lock holds
        // consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fail(&self, err: ProviderError, state: ProviderState) -> Arc<ProviderError> {
        let err = Arc::new(err);
        let mut st = self.lock();
        st.status.state = state;
        st.status.last_error = Some((err.clone(), SystemTime::now()));
        err
    }

    /// Reads and compiles the file. `Ok(None)`: the text is unchanged.
    fn load(&self, initial: bool) -> Result<Option<Snapshot>, ProviderError> {
        let file = self.path.display().to_string();
        let text = std::fs::read_to_string(&self.path).map_err(|source| ProviderError::Io {
            path: file.clone(),
            source,
        })?;
        if !initial {
            let key_files = self.lock().key_files.clone();
            let same_keys = key_files.unchanged();
            let mut st = self.lock();
            if same_keys && st.last_text.as_deref() == Some(text.as_str()) {
                // Unchanged: a broken edit reverted to the flags being served. Their state
                // comes back with them.
                if st.last_text_ok && st.status.state == ProviderState::Degraded {
                    st.status.state = ProviderState::Ready;
                    st.status.last_error = None;
                    st.status.last_refresh = Some(SystemTime::now());
                    tracing::info!(target: "feature::file", path = %self.path.display(), "the file is back to the flags being served");
                }
                return Ok(None);
            }
        }
        let mut parsed =
            parse_document(&text, Format::from_path(&self.path)).map_err(|e| e.in_file(&file))?;
        let key_files = read_key_files(&mut parsed, &self.path);
        let snapshot = parsed.compile(Some(&file));
        let errors: Vec<_> = snapshot
            .diagnostics()
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .cloned()
            .collect();
        for d in snapshot.diagnostics() {
            tracing::warn!(target: "feature::file", "{d}");
        }
        if !errors.is_empty() && !initial {
            return Err(ProviderError::Invalid(errors));
        }
        if !initial && snapshot.is_empty() && self.lock().last_flags > 0 && !says_empty(&text) {
            // An empty or cut file (a save read half-way, `> file`) is valid YAML without
            // flags: taking it would switch every flag to its default.
            return Err(ProviderError::Invalid(vec![Diagnostic {
                file: Some(file),
                line: None,
                column: None,
                flag: String::new(),
                path: Vec::new(),
                severity: Severity::Error,
                message: "the file has no flags any more (empty, or read while being written?); \
                          the last good flags are kept. To remove every flag, write `flags: {}`"
                    .to_owned(),
            }]));
        }
        let mut st = self.lock();
        st.last_text = Some(text);
        st.key_files = key_files;
        st.last_text_ok = errors.is_empty();
        st.last_flags = snapshot.len();
        st.status.last_refresh = Some(SystemTime::now());
        if errors.is_empty() {
            st.status.state = ProviderState::Ready;
            st.status.last_error = None;
        } else {
            st.status.state = ProviderState::Degraded;
            st.status.last_error =
                Some((Arc::new(ProviderError::Invalid(errors)), SystemTime::now()));
        }
        Ok(Some(snapshot))
    }

    /// The watching task ended without `close`: say so, it will not reload any more.
    fn watcher_stopped(&self, why: String) {
        let mut st = self.lock();
        if st.status.state == ProviderState::Closed {
            return;
        }
        let err = WatcherStopped(why);
        tracing::error!(target: "feature::file", path = %self.path.display(), "{err}");
        st.status.state = ProviderState::Unavailable;
        st.status.connected = false;
        st.status.last_error = Some((
            Arc::new(ProviderError::Backend {
                provider: "file",
                operation: "watch",
                source: Box::new(err),
            }),
            SystemTime::now(),
        ));
    }

    /// Watches the directories of the key files not watched yet.
    fn watch_key_dirs(&self) {
        let mut st = self.lock();
        let st = &mut *st;
        let Some(watcher) = st.watcher.as_mut() else {
            return;
        };
        for path in st.key_files.paths() {
            let Some(dir) = path.parent().and_then(|d| d.canonicalize().ok()) else {
                continue;
            };
            if st.watched.contains(&dir) {
                continue;
            }
            match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => st.watched.push(dir),
                Err(e) => {
                    tracing::warn!(target: "feature::file", "cannot watch {}: {e}; changes to its key files are seen with the flag file's", dir.display())
                }
            }
        }
    }

    /// Reloads after a change; keeps the last good snapshot on failure.
    fn reload(&self, sink: &dyn Sink) {
        let started = Instant::now();
        match self.load(false) {
            Ok(Some(snapshot)) => {
                sink.metrics()
                    .record_provider_latency("file", "reload", started.elapsed());
                tracing::info!(target: "feature::file", path = %self.path.display(), flags = snapshot.len(), "flags reloaded");
                sink.publish(snapshot);
                self.watch_key_dirs();
            }
            Ok(None) => {}
            Err(e) => {
                let class = match &e {
                    ProviderError::Io { .. } => "io",
                    ProviderError::Parse(_) => "parse",
                    _ => "invalid",
                };
                sink.metrics()
                    .record_provider_error("file", "reload", class);
                tracing::error!(target: "feature::file", "keeping the last good flags: {e}");
                // A missing file mid-save is normal for rename-based editors: the next event
                // brings the new file; the state still says degraded until then.
                self.fail(e, ProviderState::Degraded);
            }
        }
    }
}

#[async_trait]
impl Provider for FileProvider {
    fn name(&self) -> &'static str {
        "file"
    }

    async fn start(&self, sink: Arc<dyn Sink>) -> Result<(), ProviderError> {
        let started = Instant::now();
        // Started again (a provider shared by two clients): the old watcher stops first, aborted
        // before its channel closes, so that its end is not reported as a failure.
        {
            let mut st = self.lock();
            if let Some(t) = st.task.take() {
                t.abort();
            }
            st.watcher = None;
        }
        // Read, parsed and compiled on a blocking thread: a large file must not hold up the
        // async workers (and whatever else they run).
        let me = self.clone();
        let loaded = match tokio::task::spawn_blocking(move || me.load(true)).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(ProviderError::Closed),
        };
        let snapshot = match loaded {
            Ok(s) => s,
            Err(e) => {
                let class = if matches!(e, ProviderError::Io { .. }) {
                    "io"
                } else {
                    "parse"
                };
                sink.metrics().record_provider_error("file", "load", class);
                self.fail(copy_error(&e), ProviderState::Unavailable);
                return Err(e);
            }
        };
        sink.metrics()
            .record_provider_latency("file", "load", started.elapsed());
        if let Some(s) = snapshot {
            sink.publish(s);
        }
        self.lock().status.connected = true;
        if !self.watch {
            return Ok(());
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let watch_dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if res.is_ok() {
                let _ = tx.send(());
            }
        })
        .and_then(|mut w| w.watch(&watch_dir, RecursiveMode::NonRecursive).map(|_| w));
        let polling = match watcher {
            Ok(w) => {
                let mut st = self.lock();
                st.watcher = Some(w);
                st.watched = watch_dir.canonicalize().into_iter().collect();
                drop(st);
                self.watch_key_dirs();
                false
            }
            Err(e) => {
                tracing::warn!(target: "feature::file", "cannot watch {}: {e}; polling instead", watch_dir.display());
                true
            }
        };
        let me = self.clone();
        let task = tokio::spawn(async move {
            loop {
                if polling {
                    tokio::time::sleep(me.poll).await;
                } else {
                    if rx.recv().await.is_none() {
                        return;
                    }
                    // Let the burst of events of one save settle: read once a whole debounce
                    // period passed without another event (a writer still writing keeps
                    // sending them), waiting at most 50 periods.
                    tokio::time::sleep(me.debounce).await;
                    for _ in 0..50 {
                        let mut more = false;
                        while rx.try_recv().is_ok() {
                            more = true;
                        }
                        if !more {
                            break;
                        }
                        tokio::time::sleep(me.debounce).await;
                    }
                }
                let (m, s) = (me.clone(), sink.clone());
                match tokio::task::spawn_blocking(move || m.reload(s.as_ref())).await {
                    Ok(()) => {}
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    // Only a runtime shutting down cancels blocking work.
                    Err(_) => return,
                }
            }
        });
        let abort = task.abort_handle();
        let me = self.clone();
        // Watches the watcher: an end that `close` did not ask for is reported in the status.
        tokio::spawn(async move {
            let why = match task.await {
                Ok(()) => "it ended".to_owned(),
                Err(e) if e.is_panic() => {
                    let payload = e.into_panic();
                    let msg = payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_else(|| "no message".to_owned());
                    format!("it panicked: {msg}")
                }
                Err(_) => return,
            };
            me.watcher_stopped(why);
        });
        self.lock().task = Some(abort);
        Ok(())
    }

    fn status(&self) -> ProviderStatus {
        self.lock().status.clone()
    }

    async fn close(&self) {
        let mut st = self.lock();
        st.watcher = None;
        if let Some(t) = st.task.take() {
            t.abort();
        }
        st.status.state = ProviderState::Closed;
    }
}

/// `ProviderError` is not `Clone` (it holds I/O errors): an equivalent copy for the status,
/// while the caller gets the original.
fn copy_error(err: &ProviderError) -> ProviderError {
    match err {
        ProviderError::Parse(p) => ProviderError::Parse(p.clone()),
        ProviderError::Invalid(d) => ProviderError::Invalid(d.clone()),
        ProviderError::Io { path, source } => ProviderError::Io {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        _ => ProviderError::Closed,
    }
}

/// Whether a flag document says it has no flags on purpose: its `flags` is an explicitly empty
/// mapping (`flags: {}`, `"flags": {}`).
fn says_empty(text: &str) -> bool {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains("flags:{}") || compact.contains("\"flags\":{}")
}
