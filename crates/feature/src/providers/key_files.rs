//! Reading the key files a flag file's segments name (`includedFile`, `excludedFile`) from disk.
//!
//! Paths are relative to the flag file's directory. Absolute paths and `..` are refused before
//! anything is opened, and a path that leads out of the directory through a symbolic link is
//! refused too. A file larger than [`MAX_BYTES`] is refused without being read whole. The format
//! of the files and what happens on errors: [`feature_core::key_file`].

use feature_core::key_file::{KeyFileError, MAX_BYTES};
use feature_core::Parsed;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The key files a document was read with: where they are and what they held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFiles {
    /// The flag file's directory, which the files must stay inside.
    dir: PathBuf,
    /// Each file joined to `dir`, with its path as the document wrote it.
    files: Vec<(PathBuf, String)>,
    fingerprint: u64,
}

impl KeyFiles {
    /// The files named by the document, joined to the flag file's directory.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(p, _)| p.as_path())
    }

    /// Whether every file still reads as it did (same text, or the same failure), read the way
    /// the document's load read them.
    pub fn unchanged(&self) -> bool {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for (path, written) in &self.files {
            hash_read(&mut h, read_inside(&self.dir, path, written).as_deref());
        }
        h.finish() == self.fingerprint
    }
}

/// The directory flag file `flag_file`'s key files are relative to (`.` for a bare file name).
pub fn base_dir(flag_file: &Path) -> &Path {
    flag_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Reads the key files of `parsed`'s segments, relative to `flag_file`'s directory, into the
/// segments (see [`Parsed::resolve_key_files`]); returns which files were read.
pub fn read_key_files(parsed: &mut Parsed, flag_file: &Path) -> KeyFiles {
    let dir = base_dir(flag_file);
    let mut files = KeyFiles {
        dir: dir.to_owned(),
        ..KeyFiles::default()
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if parsed.has_key_files() {
        parsed.resolve_key_files(|relative, written| {
            let path = dir.join(relative);
            let read = read_inside(dir, &path, written);
            hash_read(&mut h, read.as_deref());
            files.files.push((path, written.to_owned()));
            read
        });
    }
    files.fingerprint = h.finish();
    files
}

fn hash_read<E>(h: &mut impl Hasher, read: Result<&str, E>) {
    match read {
        Ok(text) => text.hash(h),
        Err(_) => 0xdead_u32.hash(h),
    }
}

/// Reads `path` if, with symbolic links followed, it is still inside `dir`.
fn read_inside(dir: &Path, path: &Path, written: &str) -> Result<String, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: written.to_owned(),
        source,
    };
    let real_dir = dir.canonicalize().map_err(io)?;
    let real = path.canonicalize().map_err(io)?;
    if !real.starts_with(&real_dir) {
        return Err(KeyFileError::OutsideDirectory(written.to_owned()));
    }
    read_text(&real, Path::new(written))
}

/// Reads a file of at most [`MAX_BYTES`] bytes of UTF-8 text.
fn read_text(path: &Path, written: &Path) -> Result<String, KeyFileError> {
    let written = written.display().to_string();
    let io = |source| KeyFileError::Io {
        path: written.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let too_big = || KeyFileError::TooBig {
        path: written.clone(),
        max: MAX_BYTES,
    };
    let len = file.metadata().map_err(io)?.len();
    if len > MAX_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // The file may grow while it is read: never more than the limit.
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|_| KeyFileError::NotText {
        path: written.clone(),
    })
}
