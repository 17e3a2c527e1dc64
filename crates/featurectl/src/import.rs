//! `featurectl import`: flags from another system into this project's YAML.
//!
//! The YAML is written by `serde_yaml_ng` from the imported [`FlagDocument`], which keeps
//! every value's type: `1` and `1.0` stay an integer and a float (they compare differently),
//! and strings that look like other scalars (`"true"`, `"1"`, `"null"`, `"~"`) are quoted. The
//! `key` inside each flag and segment is left out: the map key is the key. After writing, the
//! text is parsed again and must give back the very same document, otherwise the import fails.

use crate::cli::{ImportArgs, Source};
use crate::load::{self, format_diagnostic, format_parse_error};
use anyhow::{anyhow, bail, Context as _};
use feature_core::model::FlagDocument;
use feature_core::{launchdarkly, parse_document, Format};
use serde_json::Value;
use std::io::Write;

/// Imports a LaunchDarkly payload (`{"flags": {..}, "segments": {..}}`, or a single flag).
pub fn from_launchdarkly(payload: &Value) -> anyhow::Result<FlagDocument> {
    launchdarkly::import(payload).map_err(|e| anyhow!("cannot import LaunchDarkly data: {e}"))
}

/// The YAML text `featurectl import` writes for a document.
pub fn to_yaml(doc: &FlagDocument) -> anyhow::Result<String> {
    let mut doc = doc.clone();
    for f in doc.flags.values_mut() {
        std::sync::Arc::make_mut(f).key.clear();
    }
    for s in doc.segments.values_mut() {
        std::sync::Arc::make_mut(s).key.clear();
    }
    serde_yaml_ng::to_string(&doc).context("cannot write the flags as YAML")
}

/// Reads `yaml` back and checks that it is `doc` again.
pub fn check_round_trip(doc: &FlagDocument, yaml: &str) -> anyhow::Result<()> {
    let parsed = parse_document(yaml, Format::Yaml)
        .map_err(|e| anyhow!("the YAML written cannot be read back: {e}"))?;
    if parsed.document != *doc {
        let differing: Vec<&str> = doc
            .flags
            .iter()
            .filter(|(k, f)| parsed.document.flags.get(*k) != Some(*f))
            .map(|(k, _)| k.as_str())
            .collect();
        bail!(
            "the YAML written does not read back as the imported flags (differing flags: {})",
            differing.join(", ")
        );
    }
    Ok(())
}

/// Runs `featurectl import`; returns the exit status.
///
/// Diagnostics of the written flags (e.g. flags that were malformed in the source) are printed
/// on stderr and do not change the exit status: the import reproduces what the source says.
pub fn run(args: &ImportArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let text = load::read_text(&args.file)?;
    let name = args.file.display().to_string();
    let doc = match args.from {
        Source::LaunchDarkly => {
            let payload: Value = serde_json::from_str(&text)
                .map_err(|e| anyhow!("{name}:{}:{}: invalid JSON: {e}", e.line(), e.column()))?;
            from_launchdarkly(&payload).with_context(|| name.clone())?
        }
    };
    let yaml = to_yaml(&doc)?;
    let written = match &args.output {
        Some(path) => path.display().to_string(),
        None => "<stdout>".to_owned(),
    };
    // Read back before anything is written: a file that would not load as the imported flags
    // is never written.
    let loaded = load::load_text(&yaml, Format::Yaml, &written).map_err(|e| {
        anyhow!(
            "the YAML written cannot be read back: {}",
            format_parse_error(&e)
        )
    })?;
    check_round_trip(&doc, &yaml)?;
    match &args.output {
        Some(path) => feature_store::disk::write_atomically(path, yaml.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            out.write_all(yaml.as_bytes())?;
            out.flush()?;
        }
    }
    for d in &loaded.diagnostics {
        eprintln!("{}", format_diagnostic(d, false));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_keep_their_type() {
        let ld = json!({"flags": {"f": {"on": true, "salt": "true",
            "variations": ["true", "1", "null", "~", "", 1, 1.0, -0.5, true, null, {"1": [1.0, "2"]}],
            "fallthrough": {"variation": 0}, "offVariation": 6}}});
        let doc = from_launchdarkly(&ld).unwrap();
        let yaml = to_yaml(&doc).unwrap();
        check_round_trip(&doc, &yaml).unwrap();
        assert!(!yaml.contains("key:"), "{yaml}");
    }
}
