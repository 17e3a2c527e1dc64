//! An exporter printing events to standard output, for debugging.

use super::{json_lines, AnalyticsEvent, AnalyticsExporter, ExportError};
use async_trait::async_trait;
use std::io::Write;

/// Writes each event as one JSON line on standard output.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdoutExporter;

impl StdoutExporter {
    /// A stdout exporter.
    pub fn new() -> Self {
        StdoutExporter
    }
}

#[async_trait]
impl AnalyticsExporter for StdoutExporter {
    async fn export(&self, events: &[AnalyticsEvent]) -> Result<(), ExportError> {
        let bytes = json_lines("stdout", events)?;
        let mut out = std::io::stdout().lock();
        out.write_all(&bytes)
            .and_then(|_| out.flush())
            .map_err(|source| ExportError::Io {
                exporter: "stdout",
                source,
            })
    }
}
