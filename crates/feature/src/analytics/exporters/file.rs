//! An exporter appending JSON lines to a file, rotated by size.

use super::{json_lines, AnalyticsEvent, AnalyticsExporter, ExportError};
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// Appends events as JSON lines to a file. When a batch would make
/// the file larger than [`FileExporter::max_bytes`], the file is rotated first: `events.jsonl`
/// becomes `events.jsonl.1`, `.1` becomes `.2`, and so on up to [`FileExporter::max_files`]
/// (the oldest is deleted). A batch is never split across files.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use feature::analytics::exporters::{AnalyticsExporter, FileExporter};
/// let dir = tempfile::tempdir()?;
/// let exporter = FileExporter::new(dir.path().join("events.jsonl")).max_bytes(1 << 20).max_files(5);
/// exporter.export(&[]).await?;
/// exporter.close().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FileExporter {
    path: PathBuf,
    max_bytes: u64,
    max_files: u32,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    file: Option<tokio::fs::File>,
    size: u64,
    closed: bool,
}

impl FileExporter {
    /// Appends to `path` (created when missing), rotating at 100 MiB, keeping 5 old files.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileExporter {
            path: path.into(),
            max_bytes: 100 << 20,
            max_files: 5,
            state: Mutex::new(State::default()),
        }
    }

    /// Rotates before the file would exceed this size (0: never rotate).
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Rotated files kept (`path.1` ... `path.N`; 0: the full file is deleted instead).
    pub fn max_files(mut self, files: u32) -> Self {
        self.max_files = files;
        self
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(source: std::io::Error) -> ExportError {
        ExportError::Io {
            exporter: "file",
            source,
        }
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    async fn rotate(&self, st: &mut State) -> Result<(), ExportError> {
        if let Some(mut f) = st.file.take() {
            f.flush().await.map_err(Self::io)?;
        }
        if self.max_files == 0 {
            remove_if_exists(&self.path).await?;
        } else {
            remove_if_exists(&self.rotated(self.max_files)).await?;
            for n in (1..self.max_files).rev() {
                rename_if_exists(&self.rotated(n), &self.rotated(n + 1)).await?;
            }
            rename_if_exists(&self.path, &self.rotated(1)).await?;
        }
        st.size = 0;
        Ok(())
    }

    async fn open(&self, st: &mut State) -> Result<(), ExportError> {
        if st.file.is_none() {
            let f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .await
                .map_err(Self::io)?;
            st.size = f.metadata().await.map_err(Self::io)?.len();
            st.file = Some(f);
        }
        Ok(())
    }
}

async fn remove_if_exists(p: &Path) -> Result<(), ExportError> {
    match tokio::fs::remove_file(p).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(FileExporter::io(e)),
        _ => Ok(()),
    }
}

async fn rename_if_exists(from: &Path, to: &Path) -> Result<(), ExportError> {
    match tokio::fs::rename(from, to).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(FileExporter::io(e)),
        _ => Ok(()),
    }
}

#[async_trait]
impl AnalyticsExporter for FileExporter {
    async fn export(&self, events: &[AnalyticsEvent]) -> Result<(), ExportError> {
        if events.is_empty() {
            return Ok(());
        }
        let bytes = json_lines("file", events)?;
        let mut st = self.state.lock().await;
        if st.closed {
            return Err(ExportError::Closed("file"));
        }
        self.open(&mut st).await?;
        if self.max_bytes > 0 && st.size > 0 && st.size + bytes.len() as u64 > self.max_bytes {
            self.rotate(&mut st).await?;
            self.open(&mut st).await?;
        }
        let Some(f) = st.file.as_mut() else {
            return Err(ExportError::Closed("file"));
        };
        f.write_all(&bytes).await.map_err(Self::io)?;
        st.size += bytes.len() as u64;
        Ok(())
    }

    async fn flush(&self) -> Result<(), ExportError> {
        let mut st = self.state.lock().await;
        if let Some(f) = st.file.as_mut() {
            f.flush().await.map_err(Self::io)?;
            f.sync_data().await.map_err(Self::io)?;
        }
        Ok(())
    }

    async fn close(&self) -> Result<(), ExportError> {
        self.flush().await?;
        let mut st = self.state.lock().await;
        st.file = None;
        st.closed = true;
        Ok(())
    }
}
