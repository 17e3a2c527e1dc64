//! Located problems in flag documents: what is wrong, where, and how badly.

use std::fmt;

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSeg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

impl PathSeg {
    /// A key step.
    pub fn key(k: &str) -> PathSeg {
        PathSeg::Key(k.to_owned())
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The flag, or the part of it that is reached, evaluates to `MALFORMED_FLAG`.
    Error,
    /// The flag works, but probably not as meant (e.g. an unknown operator never matches).
    Warning,
}

/// A problem in a flag document, located when the document's text is known.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// The file, when the document came from one.
    pub file: Option<String>,
    /// Line, from 1.
    pub line: Option<usize>,
    /// Column, from 1.
    pub column: Option<usize>,
    /// The flag (or `segment KEY`) concerned.
    pub flag: String,
    /// Where in the document.
    pub path: Vec<PathSeg>,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    /// The path as text: `flags.my-flag.rules[0].clauses[1]`.
    pub fn path_string(&self) -> String {
        let mut s = String::new();
        for p in &self.path {
            match p {
                PathSeg::Key(k) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                PathSeg::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    }
}

impl fmt::Display for Diagnostic {
    /// `file:line:column: flag: message` (parts that are unknown are left out).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
        }
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, "{l}:{c}:")?;
        }
        if self.file.is_some() || self.line.is_some() {
            f.write_str(" ")?;
        }
        if !self.flag.is_empty() {
            write!(f, "{}: ", self.flag)?;
        }
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        write!(f, "{} (at {})", self.message, self.path_string())
    }
}
