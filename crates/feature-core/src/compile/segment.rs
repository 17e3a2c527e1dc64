//! Compiling segments: key lists as sets, rules with their bucketing.

use super::{kind_of, Compiler, Seg};
use crate::model;
use crate::program::{Segment, SegmentRule, StrSet};

impl Compiler<'_> {
    pub(super) fn segment(&mut self, key: &str, s: &model::Segment) -> Segment {
        self.start("segments", key, |label| {
            label.push_str("segment ");
            label.push_str(key);
        });
        if let Some((field, file)) = crate::key_file::unread(s) {
            // Compiled without its flag file's directory: no keys rather than some.
            let message = format!("the key file `{file}` was not read (key files are read by the file provider and featurectl); the segment matches no one");
            self.push(
                crate::diagnostic::Severity::Error,
                &[Seg::key(field)],
                message,
            );
            return self.segment(key, &crate::key_file::matching_no_one(s));
        }
        let rules = (s.rules.iter().enumerate())
            .map(|(i, r)| {
                self.at(&[Seg::key("rules"), Seg::Index(i)], |c| SegmentRule {
                    clauses: c.clauses(&r.clauses),
                    weight: r.weight,
                    bucket_by: c.bucket_by(r.bucket_by.as_deref()),
                    kind: kind_of(&r.rollout_context_kind),
                })
            })
            .collect();
        let targets = |list: &[model::SegmentTarget]| {
            list.iter()
                .map(|t| (t.context_kind.as_str().into(), StrSet::new(&t.values)))
                .collect()
        };
        let salt = s.salt.as_deref().unwrap_or("");
        Segment {
            included: StrSet::new(&s.included),
            excluded: StrSet::new(&s.excluded),
            included_contexts: targets(&s.included_contexts),
            excluded_contexts: targets(&s.excluded_contexts),
            rules,
            prefix: format!("{key}.{salt}.").into_bytes().into(),
        }
    }
}
