//! `featurectl eval`: evaluations and the exact lines they are printed as.
//!
//! Plain output is the value as compact JSON (`true`, `"blue"`, `3`), preceded by the flag key
//! and a space when every flag is evaluated. JSON output is one object per evaluation with the
//! keys, in this order: `key`, `value`, `variationIndex`, `reason`, `ruleId`, `inExperiment`,
//! `prerequisiteFailed`, `errorKind` (and `explain` with `--explain`). The line is built by hand
//! so the order does not depend on how `serde_json` orders maps.
//!
//! Contexts: text that is not JSON, or JSON that is not an object, is bad input (exit 2). An
//! object that is not a valid context (e.g. `"name": 42`, an invalid `kind`, a multi-kind
//! context without keys) is evaluated as an SDK does it: the caller's default with
//! `ERROR`/`USER_NOT_SPECIFIED`, and a warning on stderr.

use crate::cli::EvalArgs;
use crate::load::{self, format_diagnostic, format_parse_error};
use anyhow::{bail, Context as _};
use feature_core::{Context, ContextError, Detail, ErrorKind, Explanation, Snapshot};
use serde_json::Value;
use std::io::Write;

/// One evaluation, as printed.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The flag's key.
    pub key: String,
    /// The value served, or the caller's default when nothing was served.
    pub value: Value,
    /// Index of the variation served; `None` when a default was served.
    pub variation_index: Option<usize>,
    /// `OFF`, `TARGET_MATCH`, `RULE_MATCH`, `FALLTHROUGH`, `PREREQUISITE_FAILED` or `ERROR`.
    pub reason: &'static str,
    /// Id of the rule that matched, when it has one.
    pub rule_id: Option<String>,
    /// Whether the evaluation is part of an experiment.
    pub in_experiment: bool,
    /// Key of the prerequisite that failed.
    pub prerequisite_failed: Option<String>,
    /// `FLAG_NOT_FOUND`, `MALFORMED_FLAG`, ... when the reason is `ERROR`.
    pub error_kind: Option<&'static str>,
    /// The explanation's steps, when asked for.
    pub explain: Option<Vec<String>>,
}

impl Outcome {
    /// The outcome of an evaluation `detail` of flag `key`, with `default` as the caller's
    /// default.
    pub fn from_detail(key: &str, detail: &Detail<'_>, default: &Value) -> Outcome {
        let value = detail.value();
        Outcome {
            key: key.to_owned(),
            variation_index: value.and(detail.variation_index()),
            value: value.cloned().unwrap_or_else(|| default.clone()),
            reason: detail.reason_kind().as_str(),
            rule_id: detail.rule_id().map(str::to_owned),
            in_experiment: detail.in_experiment(),
            prerequisite_failed: detail.prerequisite_key().map(str::to_owned),
            error_kind: detail.error_kind().map(ErrorKind::as_str),
            explain: None,
        }
    }

    /// The outcome of an evaluation that failed with `kind`: the caller's default.
    pub fn error(key: &str, kind: ErrorKind, default: &Value) -> Outcome {
        Outcome {
            key: key.to_owned(),
            value: default.clone(),
            variation_index: None,
            reason: "ERROR",
            rule_id: None,
            in_experiment: false,
            prerequisite_failed: None,
            error_kind: Some(kind.as_str()),
            explain: None,
        }
    }

    /// The `--json` line (without the newline).
    pub fn json_line(&self) -> String {
        fn opt_str(s: Option<&str>) -> String {
            s.map_or_else(|| "null".to_owned(), json_str)
        }
        let mut line = format!(
            "{{\"key\":{},\"value\":{},\"variationIndex\":{},\"reason\":{},\"ruleId\":{},\"inExperiment\":{},\"prerequisiteFailed\":{},\"errorKind\":{}",
            json_str(&self.key),
            compact(&self.value),
            self.variation_index
                .map_or_else(|| "null".to_owned(), |i| i.to_string()),
            json_str(self.reason),
            opt_str(self.rule_id.as_deref()),
            self.in_experiment,
            opt_str(self.prerequisite_failed.as_deref()),
            opt_str(self.error_kind),
        );
        if let Some(steps) = &self.explain {
            line.push_str(",\"explain\":[");
            for (i, s) in steps.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                line.push_str(&json_str(s));
            }
            line.push(']');
        }
        line.push('}');
        line
    }

    /// The plain lines: the value (after `KEY ` when `with_key`), then each explanation step
    /// indented by two spaces.
    pub fn plain_lines(&self, with_key: bool) -> Vec<String> {
        let mut lines = vec![if with_key {
            format!("{} {}", self.key, compact(&self.value))
        } else {
            compact(&self.value)
        }];
        for s in self.explain.iter().flatten() {
            lines.push(format!("  {s}"));
        }
        lines
    }
}

fn json_str(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn compact(v: &Value) -> String {
    v.to_string()
}

/// Evaluates flag `key` of `snapshot` for `context` (an invalid context gives
/// `ERROR`/`USER_NOT_SPECIFIED`), recording the explanation when `explain` is set.
pub fn evaluate(
    snapshot: &Snapshot,
    key: &str,
    context: &Result<Context, ContextError>,
    default: &Value,
    explain: bool,
) -> Outcome {
    let Ok(ctx) = context else {
        let mut o = Outcome::error(key, ErrorKind::UserNotSpecified, default);
        if explain {
            o.explain = Some(vec!["the context is invalid".to_owned()]);
        }
        return o;
    };
    if explain {
        let mut why = Explanation::default();
        let detail = snapshot.evaluate_traced(key, ctx, &mut why);
        let mut o = Outcome::from_detail(key, &detail, default);
        o.explain = Some(why.steps.iter().map(ToString::to_string).collect());
        o
    } else {
        Outcome::from_detail(key, &snapshot.evaluate(key, ctx), default)
    }
}

/// Reads one context: `Err` when the text is not a JSON object (bad input), `Ok(Err)` when
/// it is an object that is not a valid context.
pub fn parse_context(text: &str) -> Result<Result<Context, ContextError>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("invalid context JSON: {e}"))?;
    if !v.is_object() {
        return Err("a context must be a JSON object".to_owned());
    }
    Ok(Context::from_json(&v))
}

/// A context to evaluate and where it came from (for messages).
struct Source {
    origin: String,
    context: Result<Context, ContextError>,
}

/// Reads the contexts of `--context` or `--contexts`, checking every line before any
/// evaluation.
fn contexts(args: &EvalArgs) -> anyhow::Result<Vec<Source>> {
    if let Some(text) = &args.context {
        let context = parse_context(text).map_err(|e| anyhow::anyhow!("--context: {e}"))?;
        return Ok(vec![Source {
            origin: "--context".to_owned(),
            context,
        }]);
    }
    let Some(path) = &args.contexts else {
        bail!("give --context JSON or --contexts FILE.jsonl");
    };
    let text = load::read_text(path)?;
    let name = if path.as_os_str() == "-" {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    };
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let origin = format!("{name}:{}", i + 1);
        match parse_context(line) {
            Ok(context) => out.push(Source { origin, context }),
            Err(e) => bad.push(format!("{origin}: {e}")),
        }
    }
    if !bad.is_empty() {
        bail!(
            "{} bad context line(s), nothing evaluated:\n{}",
            bad.len(),
            bad.join("\n")
        );
    }
    Ok(out)
}

/// Runs `featurectl eval`; returns the exit status.
pub fn run(args: &EvalArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let default: Value = match &args.default {
        None => Value::Null,
        Some(text) => serde_json::from_str(text).with_context(|| {
            format!("--default must be JSON (a string needs quotes: '\"{text}\"')")
        })?,
    };
    let text = load::read_text(&args.file)?;
    let name = args.file.display().to_string();
    let loaded = match load::load_file_text(&text, &args.file, &name) {
        Ok(l) => l,
        Err(e) => bail!("{}", format_parse_error(&e)),
    };
    for d in &loaded.diagnostics {
        eprintln!("{}", format_diagnostic(d, false));
    }
    let sources = contexts(args)?;
    let snapshot = &loaded.snapshot;
    let keys: Vec<&str> = match &args.flag {
        Some(k) => vec![k.as_str()],
        None => snapshot.flags().map(|f| f.key()).collect(),
    };
    for src in &sources {
        if let Err(e) = &src.context {
            eprintln!(
                "{}: warning: invalid context ({e}): evaluated as ERROR/USER_NOT_SPECIFIED",
                src.origin
            );
        }
        for key in &keys {
            let o = evaluate(snapshot, key, &src.context, &default, args.explain);
            if args.json {
                writeln!(out, "{}", o.json_line())?;
            } else {
                for l in o.plain_lines(args.flag.is_none()) {
                    writeln!(out, "{l}")?;
                }
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_line_key_order() {
        let mut o = Outcome::error(
            "a\"b",
            ErrorKind::FlagNotFound,
            &json!({"z": 1, "a": [1.0]}),
        );
        assert_eq!(
            o.json_line(),
            r#"{"key":"a\"b","value":{"a":[1.0],"z":1},"variationIndex":null,"reason":"ERROR","ruleId":null,"inExperiment":false,"prerequisiteFailed":null,"errorKind":"FLAG_NOT_FOUND"}"#
        );
        o.explain = Some(vec!["x".into()]);
        assert!(o
            .json_line()
            .ends_with(r#""errorKind":"FLAG_NOT_FOUND","explain":["x"]}"#));
    }

    #[test]
    fn context_errors() {
        assert!(parse_context("{").is_err());
        assert!(parse_context("[1]").is_err());
        assert!(parse_context(r#"{"key":"u","name":42}"#).unwrap().is_err());
        assert!(parse_context(r#"{"key":"u"}"#).unwrap().is_ok());
    }
}
