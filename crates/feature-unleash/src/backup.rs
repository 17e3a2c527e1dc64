//! The backup file of the last good toggles, and bootstrap toggles: what the provider serves
//! when the server cannot be reached at start, as Unleash's SDKs do.

use crate::UnleashError;
use std::path::{Path, PathBuf};

/// Toggles to start from when neither the server nor a backup file has any.
#[derive(Debug, Clone)]
pub(crate) enum Bootstrap {
    /// A client API response, as text.
    Json(String),
    /// A file holding a client API response.
    File(PathBuf),
}

impl Bootstrap {
    /// The toggles, as a client API response body.
    pub(crate) async fn read(&self) -> Result<Vec<u8>, UnleashError> {
        match self {
            Bootstrap::Json(text) => Ok(text.as_bytes().to_vec()),
            Bootstrap::File(path) => read(path).await,
        }
    }
}

/// Reads a file of toggles.
pub(crate) async fn read(path: &Path) -> Result<Vec<u8>, UnleashError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| UnleashError::File {
            path: path.to_owned(),
            source,
        })
}

/// Replaces the backup file with `body`: written to a temporary file beside it, then renamed
/// over it, so that a crash never leaves half a backup.
pub(crate) async fn write(path: &Path, body: Vec<u8>) -> Result<(), UnleashError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let err = |source| UnleashError::File {
        path: path.to_owned(),
        source,
    };
    tokio::fs::write(&tmp, body).await.map_err(err)?;
    if let Err(e) = tokio::fs::rename(&tmp, path).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(err(e));
    }
    Ok(())
}
