//! Flags on disk for when the store is down at start: a bootstrap file written by people, and
//! the last snapshot written by the provider itself.

use feature_core::model::FlagDocument;
use feature_core::provider::ProviderError;
use feature_core::{parse_document, Format, Snapshot};
use std::io::Write;
use std::path::Path;

/// Writes `doc` as JSON to `path`, atomically: a temporary file in the same directory is
/// written, flushed to disk and renamed over `path`, so that a crash never leaves half a file
/// for the next start to read.
pub fn save_snapshot(path: &Path, doc: &FlagDocument) -> Result<(), ProviderError> {
    let io = |source| ProviderError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let json = serde_json::to_vec_pretty(doc).map_err(|e| io(std::io::Error::other(e)))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "flags".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    let written = f.write_all(&json).and_then(|_| f.sync_all());
    drop(f);
    if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
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
    fn a_saved_snapshot_reads_back_and_evaluates_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/last.json");
        let mut doc = FlagDocument::default();
        doc.flags.insert("a".into(), Flag::boolean("a", true));
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
