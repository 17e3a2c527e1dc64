//! Flags on disk for when the store is down at start: a bootstrap file written by people, and
//! the last snapshot written by the provider itself.

use feature_core::model::FlagDocument;
use feature_core::provider::ProviderError;
use feature_core::{parse_document, Format, Snapshot};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Writes `doc` as JSON to `path` with [`write_atomically`].
pub fn save_snapshot(path: &Path, doc: &FlagDocument) -> Result<(), ProviderError> {
    let io = |source| ProviderError::Io {
        path: path.display().to_string(),
        source,
    };
    let json = serde_json::to_vec_pretty(doc).map_err(|e| io(std::io::Error::other(e)))?;
    write_atomically(path, &json).map_err(io)
}

/// Writes `bytes` to `path` so that a reader (or the next start, after a crash) sees either
/// the old file or the new one, never part of either: a temporary file of its own (unique
/// within the machine) in the same directory is written and flushed to disk, renamed over
/// `path`, and the directory flushed. Saves within the process are serialised, and a save that
/// was asked for before the one already written is skipped: the latest wins.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    static WRITTEN: Mutex<BTreeMap<PathBuf, u64>> = Mutex::new(BTreeMap::new());
    let ticket = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "flags".into());
    let tmp = dir.join(format!(".{name}.{}.{ticket}.tmp", std::process::id()));
    let mut written = WRITTEN.lock().unwrap_or_else(PoisonError::into_inner);
    if written.get(path).is_some_and(|&latest| latest > ticket) {
        return Ok(());
    }
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename itself reaches the disk with the directory.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else {
        written.insert(path.to_path_buf(), ticket);
    }
    result
}

/// Reads a flag file (YAML, or JSON for `.json`; snapshots are JSON) and compiles it.
/// Flags with errors evaluate to `MALFORMED_FLAG`; a file that cannot be read or parsed is an
/// error.
pub fn load_file(path: &Path) -> Result<Snapshot, ProviderError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ProviderError::Io {
        path: file.clone(),
        source,
    })?;
    let parsed = parse_document(&text, Format::from_path(path)).map_err(|e| e.in_file(&file))?;
    Ok(parsed.compile(Some(&file)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use feature_core::{Context, Flag};

    #[test]
    fn overlapping_saves_leave_a_whole_file_and_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.json");
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let mut doc = FlagDocument::default();
                        for f in 0..(1 + (t * 50 + i) % 40) {
                            let key = format!("f{f}");
                            doc.flags
                                .insert(key.clone(), Flag::boolean(key, true).into());
                        }
                        save_snapshot(&path, &doc).unwrap();
                        // Every read in between sees a whole document.
                        load_file(&path).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        load_file(&path).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "last.json")
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn the_latest_save_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.json");
        for n in 1..=20 {
            let mut doc = FlagDocument::default();
            for f in 0..n {
                let key = format!("f{f}");
                doc.flags
                    .insert(key.clone(), Flag::boolean(key, true).into());
            }
            save_snapshot(&path, &doc).unwrap();
        }
        assert_eq!(load_file(&path).unwrap().len(), 20);
    }

    #[test]
    fn a_saved_snapshot_reads_back_and_evaluates_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/last.json");
        let mut doc = FlagDocument::default();
        doc.flags
            .insert("a".into(), Flag::boolean("a", true).into());
        save_snapshot(&path, &doc).unwrap();
        let snap = load_file(&path).unwrap();
        assert_eq!(snap.document().flags, doc.flags);
        let v = snap.evaluate("a", &Context::new("u")).value().cloned();
        assert_eq!(v, Some(serde_json::Value::Bool(true)));
        // Overwriting leaves no temporary file behind.
        save_snapshot(&path, &FlagDocument::default()).unwrap();
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert!(load_file(&path).unwrap().is_empty());
    }

    #[test]
    fn a_missing_or_broken_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_file(&dir.path().join("nope.yaml")).unwrap_err();
        assert!(e.to_string().contains("nope.yaml"), "{e}");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{not json").unwrap();
        let e = load_file(&bad).unwrap_err();
        assert!(e.to_string().contains("bad.json"), "{e}");
    }
}
