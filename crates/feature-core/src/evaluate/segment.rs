//! Segment membership: included and excluded keys, then the segment's rules.

use super::chain::Visiting;
use super::rollout::bucket_of;
use super::MalformedPart;
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
        let keyed = |list: &[(Box<str>, StrSet)]| {
            list.iter()
                .any(|(kind, keys)| ctx.part(kind).is_some_and(|p| keys.contains(p.key_str())))
        };
        let user = ctx.part(USER_KIND);
        if keyed(&s.included_contexts) || user.is_some_and(|p| s.included.contains(p.key_str())) {
            return Ok(true);
        }
        if keyed(&s.excluded_contexts) || user.is_some_and(|p| s.excluded.contains(p.key_str())) {
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
                let b = bucket_of(ctx.part(&r.kind), by, &s.prefix);
                if b >= w as f32 / 100_000.0 {
                    continue;
                }
            }
            return Ok(true);
        }
        Ok(false)
    }
}
