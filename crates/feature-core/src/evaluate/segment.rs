//! Segment membership: included and excluded keys, then the segment's rules.

use super::chain::Visiting;
use super::rollout::hash_of;
use super::MalformedPart;
use crate::bucket::bucket_of_hash;
use crate::context::{Context, USER_KIND};
use crate::program::{Snapshot, StrSet};

impl Snapshot {
    pub(super) fn in_segment(
        &self,
        si: u32,
        ctx: &Context,
        outer: Option<&Visiting<'_>>,
    ) -> Result<bool, MalformedPart> {
        if super::chain::refuses(outer, si) {
            return Err(MalformedPart);
        }
        let s = &self.segments[si as usize];
        // Plain loops and emptiness checks first: a segment is most often one key list, and
        // its membership test should be the set lookup and little else.
        let user = ctx.part(USER_KIND);
        if !s.included_contexts.is_empty() && keyed(&s.included_contexts, ctx) {
            return Ok(true);
        }
        if let Some(p) = user {
            if s.included.contains(p.key_str()) {
                return Ok(true);
            }
        }
        if !s.excluded_contexts.is_empty() && keyed(&s.excluded_contexts, ctx) {
            return Ok(false);
        }
        if let Some(p) = user {
            if s.excluded.len() != 0 && s.excluded.contains(p.key_str()) {
                return Ok(false);
            }
        }
        if s.rules.is_empty() {
            return Ok(false);
        }
        let chain = Visiting::enter(si, outer);
        for r in &s.rules {
            let mut all = true;
            for c in &r.clauses {
                if !self.match_clause(c, ctx, Some(&chain))? {
                    all = false;
                    break;
                }
            }
            if !all {
                continue;
            }
            if let Some(w) = r.weight.filter(|w| *w >= 0) {
                let by = r.bucket_by.as_ref().ok_or(MalformedPart)?;
                let b = bucket_of_hash(hash_of(ctx.part_of(&r.kind), by, &s.prefix));
                if b >= w as f32 / 100_000.0 {
                    continue;
                }
            }
            return Ok(true);
        }
        Ok(false)
    }
}

/// Whether `ctx` has a part of one of the kinds listed whose key is in that kind's set.
#[inline]
fn keyed(list: &[(Box<str>, StrSet)], ctx: &Context) -> bool {
    for (kind, keys) in list {
        if let Some(p) = ctx.part(kind) {
            if keys.contains(p.key_str()) {
                return true;
            }
        }
    }
    false
}
