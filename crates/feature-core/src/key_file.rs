//! Segment key lists kept in plain text files (`includedFile`, `excludedFile`).
//!
//! A key file holds one key per line. A trailing `\r` is removed (files written on Windows),
//! empty lines (or lines of spaces only) and lines starting with `#` are skipped; nothing else
//! is trimmed, so a key may hold spaces. Files are named relative to the directory of the flag file that references
//! them; absolute paths and paths with `..` are refused, so a flag file can only reach the
//! files beside and below it.
//!
//! This crate does no I/O: [`Parsed::resolve_key_files`](crate::Parsed::resolve_key_files)
//! asks its caller to read each file (the `feature` crate's file provider and `featurectl` read
//! them from disk), puts the keys in the segment's `included` / `excluded` lists and clears the
//! file fields, so the resolved document holds its keys like any other (stores keep them
//! inline). A file that cannot be used is an error diagnostic located on the field, and the
//! segment then matches no one.

use crate::diagnostic::{Diagnostic, PathSeg, Severity};
use crate::model::{FlagDocument, Segment};
use std::path::{Component, Path};

/// The largest key file read, in bytes (64 MiB).
pub const MAX_BYTES: u64 = 64 << 20;

/// The most keys a key file may hold (10 million).
pub const MAX_KEYS: usize = 10_000_000;

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The path is absolute, or leaves the flag file's directory (`..`).
    #[error(
        "the key file `{0}` must be a path relative to the flag file's directory, without `..`"
    )]
    OutsideDirectory(String),
    /// The file could not be read.
    #[error("cannot read the key file `{path}`: {source}")]
    Io {
        /// The path as written in the segment.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_BYTES`].
    #[error("the key file `{path}` is larger than {max} bytes")]
    TooBig {
        /// The path as written in the segment.
        path: String,
        /// The limit.
        max: u64,
    },
    /// The file holds more than [`MAX_KEYS`] keys.
    #[error("the key file `{path}` holds more than {max} keys")]
    TooManyKeys {
        /// The path as written in the segment.
        path: String,
        /// The limit.
        max: usize,
    },
    /// The file is not UTF-8 text.
    #[error("the key file `{path}` is not UTF-8 text")]
    NotText {
        /// The path as written in the segment.
        path: String,
    },
}

/// Checks that `path` stays in the flag file's directory: relative, without `..`, not empty.
pub fn check_path(path: &str) -> Result<&Path, KeyFileError> {
    let p = Path::new(path);
    let inside = !path.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if inside {
        Ok(p)
    } else {
        Err(KeyFileError::OutsideDirectory(path.to_owned()))
    }
}

/// The keys of a key file's text: one a line, without a trailing `\r`, skipping empty lines
/// and lines starting with `#`. `path` names the file in errors.
pub fn parse_keys(path: &str, text: &str) -> Result<Vec<String>, KeyFileError> {
    let lines = || {
        text.split('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
    };
    // Counted first: a file over the limit allocates nothing, and the list is exactly sized.
    let count = lines().count();
    if count > MAX_KEYS {
        return Err(KeyFileError::TooManyKeys {
            path: path.to_owned(),
            max: MAX_KEYS,
        });
    }
    let mut keys = Vec::with_capacity(count);
    keys.extend(lines().map(str::to_owned));
    Ok(keys)
}

/// Reads the key files of `doc`'s segments with `read` (given the checked relative path and
/// the path as written), moving their keys into the segments. Returns one error diagnostic per
/// file that could not be used; such a segment matches no one.
pub(crate) fn resolve(
    doc: &mut FlagDocument,
    read: &mut dyn FnMut(&Path, &str) -> Result<String, KeyFileError>,
) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    for (key, segment) in doc.segments.iter_mut() {
        if segment.included_file.is_none() && segment.excluded_file.is_none() {
            continue;
        }
        let segment = std::sync::Arc::make_mut(segment);
        let mut failed = false;
        for field in [Field::Included, Field::Excluded] {
            let Some(path) = field.file(segment).take() else {
                continue;
            };
            let keys = check_path(&path)
                .and_then(|p| read(p, &path))
                .and_then(|text| parse_keys(&path, &text));
            match keys {
                Ok(keys) => {
                    let list = field.list(segment);
                    if list.is_empty() {
                        *list = keys;
                    } else {
                        list.extend(keys);
                    }
                }
                Err(e) => {
                    failed = true;
                    diags.push(Diagnostic {
                        file: None,
                        line: None,
                        column: None,
                        flag: format!("segment {key}"),
                        path: vec![
                            PathSeg::key("segments"),
                            PathSeg::key(key),
                            PathSeg::key(field.name()),
                        ],
                        severity: Severity::Error,
                        message: format!("{e}; the segment matches no one"),
                    });
                }
            }
        }
        if failed {
            match_no_one(segment);
        }
    }
    diags
}

/// Empties what puts contexts in a segment: it then matches no one.
fn match_no_one(segment: &mut Segment) {
    segment.included = Vec::new();
    segment.included_contexts = Vec::new();
    segment.rules = Vec::new();
}

/// The first key file field of `segment` still set (not read): its name and path.
pub(crate) fn unread(segment: &Segment) -> Option<(&'static str, &str)> {
    let named = |field: Field| field.get(segment).map(|f| (field.name(), f));
    named(Field::Included).or_else(|| named(Field::Excluded))
}

/// A copy of `segment` that matches no one, without key file fields.
pub(crate) fn matching_no_one(segment: &Segment) -> Segment {
    let mut s = Segment {
        key: segment.key.clone(),
        salt: segment.salt.clone(),
        ..Segment::default()
    };
    match_no_one(&mut s);
    s
}

#[derive(Clone, Copy)]
enum Field {
    Included,
    Excluded,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Included => "includedFile",
            Field::Excluded => "excludedFile",
        }
    }

    fn get(self, s: &Segment) -> Option<&str> {
        match self {
            Field::Included => s.included_file.as_deref(),
            Field::Excluded => s.excluded_file.as_deref(),
        }
    }

    fn file(self, s: &mut Segment) -> &mut Option<Box<str>> {
        match self {
            Field::Included => &mut s.included_file,
            Field::Excluded => &mut s.excluded_file,
        }
    }

    fn list(self, s: &mut Segment) -> &mut Vec<String> {
        match self {
            Field::Included => &mut s.included,
            Field::Excluded => &mut s.excluded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_keys_without_comments_blank_lines_or_carriage_returns() {
        let keys = parse_keys("k.txt", "# beta users\nu1\r\n\nu 2\n  \n#x\nu3").unwrap();
        assert_eq!(keys, ["u1", "u 2", "u3"]);
    }

    #[test]
    fn paths_leaving_the_directory_are_refused() {
        for bad in ["/etc/passwd", "../keys.txt", "keys/../../x", ""] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        for good in ["keys.txt", "keys/beta.txt", "./keys.txt"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
    }
}
