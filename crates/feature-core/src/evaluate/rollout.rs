//! Rollouts: a context's bucket picks a weighted variation.

use super::MalformedPart;
use crate::attr::AttrPath;
use crate::bucket::bucket_value;
use crate::context::{Context, Part};
use crate::explain::{Step, Tracer};
use crate::program::Rollout;

#[inline]
pub(super) fn bucket_of(part: Option<&Part>, by: &AttrPath, prefix: &[u8]) -> f32 {
    match part.and_then(|p| by.get(p)) {
        Some(v) => bucket_value(prefix, v),
        None => 0.0,
    }
}

pub(super) fn rollout<T: Tracer>(
    r: &Rollout,
    ctx: &Context,
    tracer: &mut T,
) -> Result<(u32, bool), MalformedPart> {
    let part = ctx.part(&r.kind);
    let by = if r.experiment {
        &AttrPath::Key
    } else {
        r.bucket_by.as_ref().ok_or(MalformedPart)?
    };
    let bucket = bucket_of(part, by, &r.prefix);
    let mut sum = 0f32;
    let mut chosen = None;
    for w in &r.variations {
        sum += w.weight as f32 / 100_000.0;
        if bucket < sum {
            chosen = Some(w);
            break;
        }
    }
    let w = chosen.or(r.variations.last()).ok_or(MalformedPart)?;
    let v = w.variation.ok_or(MalformedPart)?;
    tracer.step(|| Step::Bucket {
        bucket,
        variation: v as usize,
    });
    Ok((v, r.experiment && part.is_some() && !w.untracked))
}
