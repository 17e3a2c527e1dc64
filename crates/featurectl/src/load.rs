//! Reading a flag file: parse, compile, lint, and print problems in one stable format.
//!
//! Every problem is one line:
//!
//! - `file:line:column: flag: message` for an error in a flag (`segment KEY` for a segment);
//! - `file:line:column: flag: warning: message` for a warning;
//! - `file:line:column: message` when the whole file cannot be parsed.
//!
//! Parts that are unknown are left out (`file: flag: message` when no line is known). The
//! format is built here rather than taken from `Diagnostic`'s `Display`, so that scripts can
//! rely on it whatever the library adds for humans.

use crate::lint;
use anyhow::Context as _;
use feature_core::{parse_document, Diagnostic, Format, ParseError, Severity, Snapshot};
use std::path::Path;

/// A flag file read and compiled.
#[derive(Debug)]
pub struct Loaded {
    /// The compiled flags.
    pub snapshot: Snapshot,
    /// The compiler's diagnostics and the lints of [`crate::lint`], located, in text order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// Number of error diagnostics.
    pub fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// Number of warning diagnostics.
    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }
}

/// Reads a file as text; `-` reads stdin.
pub fn read_text(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("cannot read stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Parses, compiles and lints a flag document; `name` is the file named in diagnostics.
pub fn load_text(text: &str, format: Format, name: &str) -> Result<Loaded, ParseError> {
    load(text, format, name, None)
}

/// [`load_text`] for the text of the flag file `path` (`-`: stdin): its format follows the
/// extension, and its segments' key files are read relative to its directory (the current
/// directory for stdin).
pub fn load_file_text(text: &str, path: &Path, name: &str) -> Result<Loaded, ParseError> {
    load(text, Format::from_path(path), name, Some(path))
}

fn load(text: &str, format: Format, name: &str, path: Option<&Path>) -> Result<Loaded, ParseError> {
    let mut parsed = parse_document(text, format).map_err(|e| e.in_file(name))?;
    if let Some(path) = path {
        feature::providers::key_files::read_key_files(&mut parsed, path);
    }
    let locator = parsed.locator.clone();
    let snapshot = parsed.compile(Some(name));
    let mut diagnostics = snapshot.diagnostics().to_vec();
    diagnostics.extend(lint::check(&snapshot, &locator, Some(name)));
    // Stable: diagnostics at the same place keep the library's order; unlocated ones go last.
    diagnostics.sort_by_key(|d| (d.line.unwrap_or(usize::MAX), d.column.unwrap_or(usize::MAX)));
    Ok(Loaded {
        snapshot,
        diagnostics,
    })
}

/// One diagnostic as a line: `file:line:column: flag: [warning: ]message`, with
/// ` (at flags.key.rules[0])` appended when `with_path` is set.
pub fn format_diagnostic(d: &Diagnostic, with_path: bool) -> String {
    let path = if with_path {
        d.path_string()
    } else {
        String::new()
    };
    format_problem(&Problem {
        file: d.file.as_deref(),
        line: d.line,
        column: d.column,
        flag: &d.flag,
        warning: d.severity == Severity::Warning,
        message: &d.message,
        path: &path,
    })
}

/// The parts of one problem line, wherever the problem was found (here, or by a flag server).
#[derive(Debug, Clone, Copy)]
pub struct Problem<'a> {
    /// The file, when known.
    pub file: Option<&'a str>,
    /// Line, from 1.
    pub line: Option<usize>,
    /// Column, from 1.
    pub column: Option<usize>,
    /// The flag (or `segment KEY`); empty for the whole document.
    pub flag: &'a str,
    /// A warning rather than an error.
    pub warning: bool,
    /// What is wrong.
    pub message: &'a str,
    /// The document path to append as ` (at PATH)`; empty: none.
    pub path: &'a str,
}

/// A problem as a line, in the format of [`format_diagnostic`].
pub fn format_problem(p: &Problem<'_>) -> String {
    let mut s = String::new();
    if let Some(file) = p.file {
        s.push_str(file);
        s.push(':');
    }
    if let (Some(line), Some(column)) = (p.line, p.column) {
        s.push_str(&format!("{line}:{column}:"));
    }
    if !s.is_empty() {
        s.push(' ');
    }
    if !p.flag.is_empty() {
        s.push_str(p.flag);
        s.push_str(": ");
    }
    if p.warning {
        s.push_str("warning: ");
    }
    s.push_str(p.message);
    if !p.path.is_empty() {
        s.push_str(&format!(" (at {})", p.path));
    }
    s
}

/// A parse error of a whole file as a line: `file:line:column: message`.
pub fn format_parse_error(e: &ParseError) -> String {
    match &e.file {
        Some(f) => format!("{f}:{}:{}: {}", e.line, e.column, e.message),
        None => format!("{}:{}: {}", e.line, e.column, e.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_errors_and_warnings() {
        let text = "flags:\n  a:\n    rules:\n      - clauses:\n          - {attribute: x, operator: bogus, values: [1]}\n        variation: 1\n";
        let loaded = load_text(text, Format::Yaml, "f.yaml").unwrap();
        let lines: Vec<String> = loaded
            .diagnostics
            .iter()
            .map(|d| format_diagnostic(d, false))
            .collect();
        assert_eq!(loaded.warnings(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("f.yaml:5:")
                && lines[0].contains(": a: warning: unknown operator"),
            "{lines:?}"
        );
    }

    #[test]
    fn formats_parse_errors() {
        let e = load_text("flags:\n  a: b: c\n", Format::Yaml, "bad.yaml").unwrap_err();
        assert!(format_parse_error(&e).starts_with("bad.yaml:2:7: "), "{e}");
    }
}
