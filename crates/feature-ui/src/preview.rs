//! `POST /ui/preview`: a rollout's split over a list of contexts, for a flag as edited and not
//! yet saved. The page sends the document (the store's flags and segments with the edited flag
//! in place); it is compiled here, in memory, and nothing is written.

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use feature_core::{compile, Context, FlagDocument};
use feature_server::Problem;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// At most this many contexts per preview.
pub(crate) const MAX_CONTEXTS: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewRequest {
    /// Flags and segments, in the flag file's format, with the edited flag.
    document: FlagDocument,
    /// The flag whose split is previewed.
    flag: String,
    /// Contexts as JSON objects.
    contexts: Vec<Value>,
}

/// How many contexts got one value.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Share {
    value: Value,
    variation_index: Option<usize>,
    variation_name: Option<String>,
    count: usize,
}

#[derive(Serialize)]
struct PreviewResponse {
    total: usize,
    invalid: usize,
    split: Vec<Share>,
}

/// Evaluates the edited flag for every context and counts the values served.
pub(crate) fn preview(body: &Bytes) -> Response {
    let req: PreviewRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return Problem::bad_request(format!("not a preview request: {e}")).into_response()
        }
    };
    if req.contexts.len() > MAX_CONTEXTS {
        return Problem::bad_request(format!(
            "at most {MAX_CONTEXTS} contexts per preview ({} sent)",
            req.contexts.len()
        ))
        .into_response();
    }
    let mut doc = req.document;
    for (k, f) in doc.flags.iter_mut() {
        std::sync::Arc::make_mut(f).key = k.clone();
    }
    for (k, s) in doc.segments.iter_mut() {
        std::sync::Arc::make_mut(s).key = k.clone();
    }
    if !doc.flags.contains_key(&req.flag) {
        return Problem::not_found(format!("the document has no flag {}", req.flag))
            .into_response();
    }
    let snapshot = compile(doc);
    let mut split: Vec<Share> = Vec::new();
    let mut invalid = 0;
    for c in &req.contexts {
        let Ok(ctx) = Context::from_json(c) else {
            invalid += 1;
            continue;
        };
        let d = snapshot.evaluate(&req.flag, &ctx);
        let value = d.value().cloned().unwrap_or(Value::Null);
        let index = d.value().and(d.variation_index());
        match split
            .iter_mut()
            .find(|s| s.variation_index == index && s.value == value)
        {
            Some(s) => s.count += 1,
            None => split.push(Share {
                value,
                variation_index: index,
                variation_name: d.variation_name().map(str::to_owned),
                count: 1,
            }),
        }
    }
    split.sort_by_key(|s| (s.variation_index.is_none(), s.variation_index));
    axum::Json(PreviewResponse {
        total: req.contexts.len(),
        invalid,
        split,
    })
    .into_response()
}
