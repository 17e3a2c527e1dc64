//! Bounding what one evaluation can cost.
//!
//! Evaluation does not remember segment memberships or prerequisite outcomes: every reference is
//! evaluated again. Cycle detection and the depth cap bound how long a chain of references can
//! be, not how often the same segment (or prerequisite) is reached, so a segment listed four
//! times by a segment listed four times by ... twelve deep costs `4^12` evaluations. Instead of
//! paying for memoization on every evaluation, the compiler works out, once, the worst case of
//! every flag: its own clauses, targets, rules and references plus the whole cost of everything
//! it references, counted again at every reference. A flag whose worst case exceeds the
//! document's budget (linear in the document's size, see [`budget`]) is malformed, with a
//! diagnostic at its most expensive reference that says why. Evaluation itself is unchanged.
//!
//! The worst case is computed over the graph of references (flag → prerequisite flag, flag or
//! segment → segment) in linear time: its strongly connected components are found (Tarjan's
//! algorithm, without recursion), and each component is costed after everything it reaches.
//! A component without a cycle costs its own part plus what it references. In a
//! cycle, evaluation follows only chains without repeats and at most [`MAX_DEPTH`] long (a
//! repeat or a deeper chain is `MALFORMED_FLAG` at once, which ends the evaluation), so the
//! cost of a member is bounded by unrolling the cycle `min(size, MAX_DEPTH)` times, a
//! reference back into the cycle costing one step at the last level.
//!
//! An incremental compile keeps the worst cases ([`Kept`]) and works them out again only for
//! the items a change reaches, over that part of the graph ([`Graph::part`]).

use crate::diagnostic::{Diagnostic, PathSeg, Severity};
use crate::evaluate::MAX_DEPTH;
use crate::program::{Clause, CompiledFlag, Flags, Op, Segment, Serve};
use std::sync::Arc;

/// The budget of every document: a flag may always cost this many steps.
pub(crate) const MIN_BUDGET: u64 = 100_000;

/// Steps a flag may cost per node of the document, for documents large enough that this is
/// more than [`MIN_BUDGET`].
pub(crate) const STEPS_PER_NODE: u64 = 16;

/// The most steps one evaluation of a flag of a document of `size` nodes may take.
pub(crate) fn budget(size: u64) -> u64 {
    MIN_BUDGET.max(size.saturating_mul(STEPS_PER_NODE))
}

/// The graph of references: flag `i` is node `i`, segment `j` node `flags + j`. Edges are kept
/// with their repeats (a segment listed twice is evaluated twice).
#[derive(Debug)]
pub(crate) struct Graph {
    /// What evaluating the node costs besides what it references.
    own: Vec<u64>,
    /// Edges of node `v` are `targets[starts[v]..starts[v + 1]]`.
    starts: Vec<usize>,
    targets: Vec<u32>,
    /// Nodes of the document, evaluable or not: the measure of its size.
    size: u64,
}

/// The nodes of clauses: each clause and each of its values (a value may be compared at every
/// evaluation: prefixes, patterns, numbers, versions, segments).
fn clause_nodes<'c>(clauses: impl Iterator<Item = &'c Clause>) -> u64 {
    clauses
        .map(|c| 1 + operands(&c.op) as u64)
        .fold(0, u64::saturating_add)
}

/// How many values an operation holds.
fn operands(op: &Op) -> usize {
    match op {
        Op::In(set) => set.len(),
        Op::StartsWith(v) | Op::EndsWith(v) | Op::Contains(v) => v.len(),
        Op::Matches(v) => v.len(),
        Op::Number(_, v) | Op::Date(_, v) => v.len(),
        Op::Version(_, v) => v.len(),
        Op::VersionRule(v) => v.len(),
        Op::Segment(v) => v.len(),
        Op::Never => 0,
    }
}

/// The segments a clause list refers to, with repeats.
fn segment_refs<'c>(
    clauses: impl Iterator<Item = &'c Clause> + 'c,
) -> impl Iterator<Item = u32> + 'c {
    clauses
        .flat_map(|c| match &c.op {
            Op::Segment(segs) => segs.as_slice(),
            _ => &[],
        })
        .filter_map(|s| *s)
}

/// Nodes of flag `f` (whether or not it is evaluable), the variations of its rollouts included.
fn flag_nodes(f: &CompiledFlag) -> u64 {
    let parts =
        1 + f.prerequisites().len() as u64 + f.targets().len() as u64 + f.rules.len() as u64;
    let rollouts = (f.rules.iter().map(|r| &r.serve))
        .chain([&f.fallthrough, &f.off])
        .map(|s| match s {
            Serve::Rollout(r) => r.variations.len() as u64,
            _ => 0,
        })
        .fold(0, u64::saturating_add);
    parts
        .saturating_add(rollouts)
        .saturating_add(clause_nodes(f.rules.iter().flat_map(|r| &r.clauses)))
}

/// Nodes of segment `s`.
fn segment_nodes(s: &Segment) -> u64 {
    let parts = 1
        + s.included_contexts.len() as u64
        + s.excluded_contexts.len() as u64
        + s.rules.len() as u64;
    parts.saturating_add(clause_nodes(s.rules.iter().flat_map(|r| &r.clauses)))
}

/// Whether evaluating `f` goes beyond its own first decision: a broken flag, an off flag and a
/// flag with a ready outcome reference nothing.
fn evaluates_references(f: &CompiledFlag) -> bool {
    !f.broken && f.enabled && f.constant.is_none()
}

/// Of one flag: its nodes (the document's size counts them), what evaluating it costs besides
/// what it references, and the nodes it references (appended to `targets`; segment `s` is node
/// `base + s`).
fn flag_node(f: &CompiledFlag, base: u32, targets: &mut Vec<u32>) -> (u64, u64) {
    let nodes = flag_nodes(f);
    if evaluates_references(f) {
        targets.extend(f.prerequisites().iter().filter_map(|p| p.flag));
        targets.extend(segment_refs(f.rules.iter().flat_map(|r| &r.clauses)).map(|s| base + s));
        (nodes, nodes)
    } else {
        (nodes, 1)
    }
}

/// Of one segment, as [`flag_node`].
fn segment_node(s: &Segment, base: u32, targets: &mut Vec<u32>) -> (u64, u64) {
    let nodes = segment_nodes(s);
    targets.extend(segment_refs(s.rules.iter().flat_map(|r| &r.clauses)).map(|s| base + s));
    (nodes, nodes)
}

/// Nodes of a compiled flag: what it adds to the document's size.
pub(crate) fn flag_size(f: &CompiledFlag) -> u64 {
    flag_nodes(f)
}

/// Nodes of a compiled segment: what it adds to the document's size.
pub(crate) fn segment_size(s: &Segment) -> u64 {
    segment_nodes(s)
}

impl Graph {
    /// The reference graph of compiled `flags` and `segments`.
    pub(crate) fn new(flags: &Flags, segments: &[Arc<Segment>]) -> Graph {
        let n = flags.len() + segments.len();
        let base = flags.len() as u32;
        let mut own = Vec::with_capacity(n);
        let mut starts = Vec::with_capacity(n + 1);
        let mut targets = Vec::new();
        let mut size = 0u64;
        for f in flags.iter() {
            starts.push(targets.len());
            let (nodes, o) = flag_node(f, base, &mut targets);
            size = size.saturating_add(nodes);
            own.push(o);
        }
        for s in segments {
            starts.push(targets.len());
            let (nodes, o) = segment_node(s, base, &mut targets);
            size = size.saturating_add(nodes);
            own.push(o);
        }
        starts.push(targets.len());
        Graph {
            own,
            starts,
            targets,
            size,
        }
    }

    /// The part of the reference graph that `nodes` (sorted, without repeats) make, each node
    /// referenced from them but not among them standing for its known cost (`known`, a leaf).
    /// [`Graph::costs`] of it gives the cost of each of `nodes`, in their order, first.
    pub(crate) fn part(items: &Items<'_>, nodes: &[usize], known: impl Fn(usize) -> u64) -> Graph {
        let local = |v: usize| nodes.binary_search(&v).ok();
        let mut own = Vec::with_capacity(nodes.len());
        let mut starts = Vec::with_capacity(nodes.len() + 1);
        let mut targets = Vec::new();
        let mut leaves: Vec<u64> = Vec::new();
        let mut leaf_of: std::collections::HashMap<usize, u32> = std::collections::HashMap::new();
        let mut refs = Vec::new();
        for &v in nodes {
            starts.push(targets.len());
            refs.clear();
            own.push(items.node(v, &mut refs).1);
            for &w in &refs {
                let w = w as usize;
                let t = match local(w) {
                    Some(i) => i as u32,
                    None => *leaf_of.entry(w).or_insert_with(|| {
                        leaves.push(known(w));
                        (nodes.len() + leaves.len() - 1) as u32
                    }),
                };
                targets.push(t);
            }
        }
        for c in leaves {
            starts.push(targets.len());
            own.push(c);
        }
        starts.push(targets.len());
        Graph {
            own,
            starts,
            targets,
            size: 0,
        }
    }

    fn edges(&self, v: usize) -> &[u32] {
        &self.targets[self.starts[v]..self.starts[v + 1]]
    }

    /// The size of the document in nodes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The strongly connected components, each one after every component it reaches, as the
    /// nodes in that order and the end of each component in it.
    fn components(&self) -> (Vec<u32>, Vec<usize>) {
        const UNSEEN: u32 = u32::MAX;
        let n = self.own.len();
        let mut index = vec![UNSEEN; n];
        let mut low = vec![0u32; n];
        let mut on_stack = vec![false; n];
        let mut stack: Vec<u32> = Vec::new();
        let mut call: Vec<(u32, usize)> = Vec::new();
        let mut order = Vec::with_capacity(n);
        let mut ends = Vec::new();
        let mut next = 0u32;
        for root in 0..n {
            if index[root] != UNSEEN {
                continue;
            }
            index[root] = next;
            low[root] = next;
            next += 1;
            stack.push(root as u32);
            on_stack[root] = true;
            call.push((root as u32, self.starts[root]));
            while let Some((v, e)) = call.last_mut() {
                let v = *v as usize;
                if *e < self.starts[v + 1] {
                    let w = self.targets[*e] as usize;
                    *e += 1;
                    if index[w] == UNSEEN {
                        index[w] = next;
                        low[w] = next;
                        next += 1;
                        stack.push(w as u32);
                        on_stack[w] = true;
                        call.push((w as u32, self.starts[w]));
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                    continue;
                }
                call.pop();
                if let Some((u, _)) = call.last() {
                    let u = *u as usize;
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == index[v] {
                    while let Some(w) = stack.pop() {
                        on_stack[w as usize] = false;
                        order.push(w);
                        if w as usize == v {
                            break;
                        }
                    }
                    ends.push(order.len());
                }
            }
        }
        (order, ends)
    }

    /// The most steps evaluating each node can take, counting every reference in full
    /// (saturating).
    pub(crate) fn costs(&self) -> Vec<u64> {
        let n = self.own.len();
        let (order, ends) = self.components();
        let mut cost = vec![0u64; n];
        // The component of each node, and its position inside it, while it is costed.
        let mut component = vec![usize::MAX; n];
        let mut position = vec![0usize; n];
        let mut start = 0;
        for (ci, &end) in ends.iter().enumerate() {
            let members = &order[start..end];
            start = end;
            // Most components are one node outside any cycle: what it references is costed.
            if let [v] = members {
                let v = *v as usize;
                let edges = self.edges(v);
                if !edges.contains(&(v as u32)) {
                    cost[v] = (edges.iter())
                        .fold(self.own[v], |acc, &w| acc.saturating_add(cost[w as usize]));
                    continue;
                }
            }
            for (i, &v) in members.iter().enumerate() {
                component[v as usize] = ci;
                position[v as usize] = i;
            }
            // A cycle. Own part plus everything referenced outside it (costed already).
            let outside: Vec<u64> = members
                .iter()
                .map(|&v| {
                    let v = v as usize;
                    self.edges(v)
                        .iter()
                        .filter(|&&w| component[w as usize] != ci)
                        .fold(self.own[v], |acc, &w| acc.saturating_add(cost[w as usize]))
                })
                .collect();
            // Unrolled: level 0 is a reference refused at once (one step), level `l` a node
            // entered with `l - 1` more levels of the cycle possible below it.
            let mut level = vec![1u64; members.len()];
            for _ in 0..members.len().min(MAX_DEPTH) {
                let next: Vec<u64> = members
                    .iter()
                    .zip(&outside)
                    .map(|(&v, &base)| {
                        self.edges(v as usize)
                            .iter()
                            .filter(|&&w| component[w as usize] == ci)
                            .fold(base, |acc, &w| {
                                acc.saturating_add(level[position[w as usize]])
                            })
                    })
                    .collect();
                level = next;
            }
            for (&v, c) in members.iter().zip(level) {
                cost[v as usize] = c;
            }
        }
        cost
    }
}

/// Compiled items with the cost of each (flag `i` is node `i`, segment `j` node
/// `flags.len() + j`): what the diagnostics of refused flags are worked out from.
pub(crate) struct Items<'a> {
    /// Flags by position, as compiled before the cost bound.
    pub(crate) flags: &'a Flags,
    /// Segments by position.
    pub(crate) segments: &'a [Arc<Segment>],
    /// Segment keys by position.
    pub(crate) segment_keys: &'a [&'a str],
    /// The worst case of each flag.
    pub(crate) flag_costs: &'a [u64],
    /// The worst case of each segment.
    pub(crate) segment_costs: &'a [u64],
}

impl Items<'_> {
    /// Of node `v`: its nodes and own cost, its references appended to `targets`.
    fn node(&self, v: usize, targets: &mut Vec<u32>) -> (u64, u64) {
        let base = self.flags.len() as u32;
        match self.flags.get(v) {
            Some(f) => flag_node(f, base, targets),
            None => segment_node(&self.segments[v - self.flags.len()], base, targets),
        }
    }

    fn cost(&self, v: usize) -> u64 {
        match self.flag_costs.get(v) {
            Some(c) => *c,
            None => self.segment_costs[v - self.flags.len()],
        }
    }

    fn name(&self, v: usize) -> String {
        match self.flags.get(v) {
            Some(f) => format!("flag `{}`", f.key),
            None => format!(
                "segment `{}`",
                (self.segment_keys.get(v - self.flags.len()).copied()).unwrap_or("?")
            ),
        }
    }
}

/// What the cost bound keeps for the next incremental compile: the worst case of every item,
/// the document's size, and the flags a change of the budget alone could refuse.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Kept {
    /// The worst case of each flag, by position.
    pub(crate) flag_costs: Arc<Vec<u64>>,
    /// The worst case of each segment, by position.
    pub(crate) segment_costs: Arc<Vec<u64>>,
    /// The document's size in nodes ([`budget`]).
    pub(crate) size: u64,
    /// Keys of the flags whose worst case is over [`MIN_BUDGET`]: no other flag is ever over
    /// the budget.
    pub(crate) heavy: Arc<std::collections::BTreeSet<Box<str>>>,
}

impl Kept {
    /// The budget of the document.
    pub(crate) fn limit(&self) -> u64 {
        budget(self.size)
    }
}

/// The cost bound of compiled `flags` and `segments`, worked out whole: what it keeps, and the
/// flags over budget (they are to be malformed), each with its diagnostic.
pub(super) fn refuse_costly(
    flags: &Flags,
    segments: &[Arc<Segment>],
    segment_keys: &[&str],
) -> (Kept, Vec<(usize, Diagnostic)>) {
    let graph = Graph::new(flags, segments);
    let limit = budget(graph.size());
    let mut cost = graph.costs();
    let segment_costs = Arc::new(cost.split_off(flags.len()));
    let flag_costs = Arc::new(cost);
    let heavy = (flags.iter().zip(&*flag_costs))
        .filter(|(_, &c)| c > MIN_BUDGET)
        .map(|(f, _)| f.key.clone())
        .collect();
    let kept = Kept {
        flag_costs,
        segment_costs,
        size: graph.size(),
        heavy: Arc::new(heavy),
    };
    let items = Items {
        flags,
        segments,
        segment_keys,
        flag_costs: kept.flag_costs.as_slice(),
        segment_costs: kept.segment_costs.as_slice(),
    };
    let over: Vec<usize> = (0..flags.len())
        .filter(|&fi| kept.flag_costs[fi] > limit)
        .collect();
    let refused = refusals(&items, limit, over);
    (kept, refused)
}

/// The diagnostics of flags `over` (positions), refused for costing more than `limit`.
pub(crate) fn refusals(
    items: &Items<'_>,
    limit: u64,
    over: impl IntoIterator<Item = usize>,
) -> Vec<(usize, Diagnostic)> {
    let base = items.flags.len() as u32;
    let mut fanout = Fanout::new(items);
    let mut out = Vec::new();
    for fi in over {
        let f = &items.flags[fi];
        let own = items.cost(fi);
        // The most expensive reference of the flag, and where it is written.
        let mut worst: Option<(u64, u32, Vec<PathSeg>)> = None;
        let mut consider = |w: u32, path: &dyn Fn() -> Vec<PathSeg>| {
            let c = items.cost(w as usize);
            if worst.as_ref().is_none_or(|(best, _, _)| c > *best) {
                worst = Some((c, w, path()));
            }
        };
        for (pi, p) in f.prerequisites().iter().enumerate() {
            if let Some(pf) = p.flag {
                consider(pf, &|| {
                    vec![PathSeg::key("prerequisites"), PathSeg::Index(pi)]
                });
            }
        }
        for (ri, r) in f.rules.iter().enumerate() {
            for (ci, c) in r.clauses.iter().enumerate() {
                let Op::Segment(segs) = &c.op else { continue };
                for (vi, s) in segs.iter().enumerate() {
                    if let Some(s) = s {
                        consider(base + s, &|| {
                            vec![
                                PathSeg::key("rules"),
                                PathSeg::Index(ri),
                                PathSeg::key("clauses"),
                                PathSeg::Index(ci),
                                PathSeg::key("values"),
                                PathSeg::Index(vi),
                            ]
                        });
                    }
                }
            }
        }
        let (at, message) = match worst {
            Some((c, w, at)) => (
                at,
                format!(
                    "evaluating this flag could take {} steps, more than the {limit} this \
                         document allows: every reference to a segment or prerequisite is \
                         evaluated again, so repeated references multiply; {} here costs {}{}",
                    steps(own),
                    items.name(w as usize),
                    steps(c),
                    fanout.repeats(fi),
                ),
            ),
            None => (
                Vec::new(),
                format!(
                    "evaluating this flag could take {} steps, more than the {limit} this \
                         document allows",
                    steps(own)
                ),
            ),
        };
        let mut path = vec![PathSeg::key("flags"), PathSeg::key(&f.key)];
        path.extend(at);
        let diagnostic = Diagnostic {
            flag: f.key.to_string(),
            path,
            severity: Severity::Error,
            message,
            line: None,
            column: None,
            file: None,
        };
        out.push((fi, diagnostic));
    }
    out
}

/// A step count, `u64::MAX` (saturated) shown as more than can be counted.
fn steps(c: u64) -> String {
    if c == u64::MAX {
        "more than 18446744073709551615".to_owned()
    } else {
        c.to_string()
    }
}

/// Of one node: its most expensive target listed more than once (how often, which), and its
/// most expensive target.
type Spread = (Option<(usize, u32)>, Option<u32>);

/// What the diagnostics say about each node, worked out once per node however many flags
/// are over budget.
struct Fanout<'i> {
    items: &'i Items<'i>,
    known: std::collections::HashMap<usize, Spread>,
}

impl<'i> Fanout<'i> {
    fn new(items: &'i Items<'i>) -> Self {
        Fanout {
            items,
            known: std::collections::HashMap::new(),
        }
    }

    fn of(&mut self, v: usize) -> Spread {
        if let Some(k) = self.known.get(&v) {
            return *k;
        }
        let items = self.items;
        let mut edges = Vec::new();
        items.node(v, &mut edges);
        let mut sorted = edges.clone();
        sorted.sort_unstable();
        let mut most: Option<(usize, u32)> = None;
        for run in sorted.chunk_by(|a, b| a == b) {
            let (times, w) = (run.len(), run[0]);
            let better = most.is_none_or(|(_, m)| items.cost(w as usize) > items.cost(m as usize));
            if times > 1 && better {
                most = Some((times, w));
            }
        }
        let heaviest = edges
            .iter()
            .copied()
            .max_by_key(|&w| items.cost(w as usize));
        self.known.insert(v, (most, heaviest));
        (most, heaviest)
    }

    /// Where the fan-out of node `v` comes from: following the most expensive references
    /// from `v`, the first few nodes that list one target more than once.
    fn repeats(&mut self, mut v: usize) -> String {
        const SHOWN: usize = 3;
        let mut found = Vec::new();
        // A path without repeats is at most as long as the depth cap allows.
        for _ in 0..=MAX_DEPTH {
            let (most, heaviest) = self.of(v);
            if let Some((times, w)) = most {
                if found.len() == SHOWN {
                    found.push("...".to_owned());
                    break;
                }
                found.push(format!(
                    "{} lists {} {times} times",
                    self.items.name(v),
                    self.items.name(w as usize)
                ));
            }
            match heaviest {
                Some(w) => v = w as usize,
                None => break,
            }
        }
        if found.is_empty() {
            String::new()
        } else {
            format!(" ({})", found.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed assumption fails the run

    use super::*;
    use crate::{parse_document, Context, Format, Snapshot};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// A clause of a generated document: the context's key in a list, or segments (raw
    /// numbers, turned into references to earlier segments when the document is built).
    #[derive(Debug, Clone)]
    enum TClause {
        Key(Vec<usize>, bool),
        Segments(Vec<usize>, bool),
    }

    #[derive(Debug, Clone)]
    struct TSegment {
        included: Vec<usize>,
        excluded: Vec<usize>,
        rules: Vec<Vec<TClause>>,
    }

    #[derive(Debug, Clone)]
    struct TFlag {
        enabled: bool,
        prerequisites: Vec<(usize, i64)>,
        rules: Vec<(Vec<TClause>, i64)>,
        fallthrough: i64,
    }

    /// A generated document whose references form a DAG: segment `i` refers only to segments
    /// before it (half the time to the one just before), flag `i` requires only flags before it; flags refer to any segment, or to one
    /// that does not exist. Raw reference numbers are resolved here.
    #[derive(Debug, Clone)]
    struct TDoc {
        segments: Vec<TSegment>,
        flags: Vec<TFlag>,
    }

    const KEYS: usize = 5;

    fn clause() -> impl Strategy<Value = TClause> {
        prop_oneof![
            1 => (prop::collection::vec(0..KEYS, 0..3), any::<bool>())
                .prop_map(|(k, n)| TClause::Key(k, n)),
            3 => (prop::collection::vec(0usize..1000, 1..7), any::<bool>())
                .prop_map(|(s, n)| TClause::Segments(s, n)),
        ]
    }

    fn clauses(least: usize) -> impl Strategy<Value = Vec<TClause>> {
        prop::collection::vec(clause(), least..3)
    }

    fn document() -> impl Strategy<Value = TDoc> {
        let segment = (
            prop::collection::vec(0..KEYS, 0..2),
            prop::collection::vec(0..KEYS, 0..2),
            prop::collection::vec(clauses(1), 1..3),
        )
            .prop_map(|(included, excluded, rules)| TSegment {
                included,
                excluded,
                rules,
            });
        let flag = (
            prop::bool::weighted(0.85),
            prop::collection::vec((0usize..1000, 0i64..2), 0..4),
            prop::collection::vec((clauses(0), 0i64..2), 0..3),
            0i64..2,
        )
            .prop_map(|(enabled, prerequisites, rules, fallthrough)| TFlag {
                enabled,
                prerequisites,
                rules,
                fallthrough,
            });
        (
            prop::collection::vec(segment, 1..14),
            prop::collection::vec(flag, 1..8),
        )
            .prop_map(|(segments, flags)| resolve(TDoc { segments, flags }))
    }

    /// A reference to a segment that does not exist.
    const MISSING: usize = usize::MAX;

    /// The segments a resolved clause refers to (`None`: one that does not exist).
    fn refs(resolved: &[usize]) -> impl Iterator<Item = Option<usize>> + '_ {
        resolved.iter().map(|&r| (r != MISSING).then_some(r))
    }

    /// Turns raw reference numbers into references: segment `i` to an earlier segment (half
    /// the time the one just before: deep chains), flags to any segment or a missing one,
    /// flag `i` to earlier flags.
    fn resolve(mut doc: TDoc) -> TDoc {
        let n = doc.segments.len();
        let fix = |cs: &mut Vec<TClause>, of: Option<usize>| {
            for c in cs {
                if let TClause::Segments(raw, _) = c {
                    *raw = (raw.iter())
                        .filter_map(|&r| match of {
                            Some(0) => None,
                            Some(i) if r % 2 == 0 => Some(i - 1),
                            Some(i) => Some(r % i),
                            None => Some(Some(r % (n + 1)).filter(|&s| s < n).unwrap_or(MISSING)),
                        })
                        .collect();
                }
            }
        };
        for (i, s) in doc.segments.iter_mut().enumerate() {
            for r in &mut s.rules {
                fix(r, Some(i));
            }
        }
        for (i, f) in doc.flags.iter_mut().enumerate() {
            for (r, _) in &mut f.rules {
                fix(r, None);
            }
            if i == 0 {
                f.prerequisites.clear();
            }
            for (p, _) in &mut f.prerequisites {
                *p %= i.max(1);
            }
        }
        doc
    }

    impl TDoc {
        fn prerequisites(&self, fi: usize) -> &[(usize, i64)] {
            &self.flags[fi].prerequisites
        }

        fn clause_json(&self, c: &TClause) -> Value {
            match c {
                TClause::Key(keys, negate) => {
                    let values: Vec<String> = keys.iter().map(|k| format!("k{k}")).collect();
                    json!({"attribute": "key", "operator": "in", "values": values, "negate": negate})
                }
                TClause::Segments(raw, negate) => {
                    let values: Vec<String> = refs(raw)
                        .map(|s| s.map_or("missing".to_owned(), |s| format!("s{s}")))
                        .collect();
                    json!({"attribute": "", "operator": "segmentMatch", "values": values, "negate": negate})
                }
            }
        }

        fn text(&self) -> String {
            let keys =
                |ks: &[usize]| -> Vec<String> { ks.iter().map(|k| format!("k{k}")).collect() };
            let mut segments = serde_json::Map::new();
            for (i, s) in self.segments.iter().enumerate() {
                let rules: Vec<Value> = (s.rules.iter())
                    .map(|r| {
                        let cs: Vec<Value> = r.iter().map(|c| self.clause_json(c)).collect();
                        json!({"clauses": cs})
                    })
                    .collect();
                segments.insert(
                    format!("s{i}"),
                    json!({"included": keys(&s.included), "excluded": keys(&s.excluded), "rules": rules}),
                );
            }
            let mut flags = serde_json::Map::new();
            for (i, f) in self.flags.iter().enumerate() {
                let prerequisites: Vec<Value> = (self.prerequisites(i).iter())
                    .map(|(p, v)| json!({"key": format!("f{p}"), "variation": v}))
                    .collect();
                let rules: Vec<Value> = (f.rules.iter())
                    .map(|(r, v)| {
                        let cs: Vec<Value> = r.iter().map(|c| self.clause_json(c)).collect();
                        json!({"clauses": cs, "variation": v})
                    })
                    .collect();
                flags.insert(
                    format!("f{i}"),
                    json!({"enabled": f.enabled, "offVariation": 0, "prerequisites": prerequisites,
                           "rules": rules, "fallthrough": {"variation": f.fallthrough}}),
                );
            }
            json!({"flags": flags, "segments": segments}).to_string()
        }

        /// Nodes of a clause list, as the cost model counts them.
        fn clause_nodes(cs: &[TClause]) -> u64 {
            cs.iter()
                .map(|c| match c {
                    TClause::Key(keys, _) => 1 + keys.len() as u64,
                    TClause::Segments(raw, _) => 1 + raw.len() as u64,
                })
                .sum()
        }

        fn segment_nodes(&self, si: usize) -> u64 {
            let s = &self.segments[si];
            1 + s.rules.len() as u64 + s.rules.iter().map(|r| Self::clause_nodes(r)).sum::<u64>()
        }

        fn flag_nodes(&self, fi: usize) -> u64 {
            let f = &self.flags[fi];
            1 + self.prerequisites(fi).len() as u64
                + f.rules.len() as u64
                + f.rules
                    .iter()
                    .map(|(r, _)| Self::clause_nodes(r))
                    .sum::<u64>()
        }

        fn size(&self) -> u64 {
            (0..self.segments.len())
                .map(|s| self.segment_nodes(s))
                .sum::<u64>()
                + (0..self.flags.len())
                    .map(|f| self.flag_nodes(f))
                    .sum::<u64>()
        }

        /// Brute force: walks every reference in full, without remembering anything, and
        /// stops counting at `cap`. `cheap` flags (malformed ones) cost one step.
        fn walk_flag(&self, fi: usize, cheap: &dyn Fn(usize) -> bool, n: &mut u64, cap: u64) {
            let f = &self.flags[fi];
            let constant = self.prerequisites(fi).is_empty() && f.rules.is_empty();
            if cheap(fi) || !f.enabled || constant {
                *n += 1;
                return;
            }
            *n += self.flag_nodes(fi);
            for &(p, _) in self.prerequisites(fi) {
                if *n >= cap {
                    return;
                }
                self.walk_flag(p, cheap, n, cap);
            }
            for (r, _) in &f.rules {
                self.walk_clauses(r, n, cap);
            }
        }

        fn walk_clauses(&self, cs: &[TClause], n: &mut u64, cap: u64) {
            for c in cs {
                if let TClause::Segments(raw, _) = c {
                    for s in refs(raw).flatten() {
                        if *n >= cap {
                            return;
                        }
                        self.walk_segment(s, n, cap);
                    }
                }
            }
        }

        fn walk_segment(&self, si: usize, n: &mut u64, cap: u64) {
            *n += self.segment_nodes(si);
            for r in &self.segments[si].rules {
                self.walk_clauses(r, n, cap);
            }
        }

        /// The reference evaluator: the flag's value, `None` for `MALFORMED_FLAG`.
        fn evaluate(&self, fi: usize, key: usize, malformed: &[bool]) -> Option<bool> {
            if malformed[fi] {
                return None;
            }
            let f = &self.flags[fi];
            if !f.enabled {
                return Some(false);
            }
            for &(p, v) in self.prerequisites(fi) {
                let served = self.evaluate(p, key, malformed)?;
                if !(self.flags[p].enabled && i64::from(served) == v) {
                    return Some(false);
                }
            }
            for (r, v) in &f.rules {
                if r.iter().all(|c| self.clause(c, key)) {
                    return Some(*v == 1);
                }
            }
            Some(f.fallthrough == 1)
        }

        fn clause(&self, c: &TClause, key: usize) -> bool {
            match c {
                TClause::Key(keys, negate) => keys.contains(&key) != *negate,
                TClause::Segments(raw, negate) => {
                    let any = refs(raw).flatten().any(|s| self.in_segment(s, key));
                    any != *negate
                }
            }
        }

        fn in_segment(&self, si: usize, key: usize) -> bool {
            let s = &self.segments[si];
            if s.included.contains(&key) {
                return true;
            }
            if s.excluded.contains(&key) {
                return false;
            }
            s.rules
                .iter()
                .any(|r| r.iter().all(|c| self.clause(c, key)))
        }
    }

    fn costs(snap: &Snapshot) -> (Graph, Vec<u64>) {
        let graph = Graph::new(&snap.flags, &snap.segments);
        let cost = graph.costs();
        (graph, cost)
    }

    proptest! {
        // About one flag in six is refused.
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

        /// Over generated DAGs of segments and prerequisites: the compiled worst case is the
        /// brute-force count of every reference walked in full; a flag is malformed exactly
        /// when that count exceeds the budget; every other flag evaluates as a plain
        /// recursive evaluator says.
        #[test]
        fn the_bound_is_the_full_walk_and_accepted_flags_evaluate_as_written(doc in document()) {
            let snap = parse_document(&doc.text(), Format::Json).unwrap().compile(None);
            let (graph, cost) = costs(&snap);
            prop_assert_eq!(graph.size(), doc.size());
            let limit = budget(doc.size());
            let flag = |i: usize| snap.flag(&format!("f{i}")).unwrap();
            let position = |i: usize| snap.position(&format!("f{i}")).unwrap() as usize;
            let malformed: Vec<bool> = (0..doc.flags.len()).map(|i| flag(i).is_malformed()).collect();
            let mut worst = Vec::new();
            for fi in 0..doc.flags.len() {
                // Accepted iff the full walk (malformed prerequisites included) fits.
                let mut full = 0;
                doc.walk_flag(fi, &|_| false, &mut full, limit + 1);
                prop_assert_eq!(malformed[fi], full > limit, "f{} walked {}", fi, full);
                // The compiled cost (malformed flags now cost one step) is the walk.
                let mut walked = 0;
                if !malformed[fi] {
                    doc.walk_flag(fi, &|p| malformed[p], &mut walked, u64::MAX);
                    prop_assert_eq!(cost[position(fi)], walked, "f{}", fi);
                }
                worst.push(walked);
            }
            // Both evaluators walk every reference: the cheaper flags keep the test quick.
            for fi in (0..doc.flags.len()).filter(|&fi| worst[fi] <= 20_000) {
                for key in 0..KEYS + 1 {
                    let d = snap.evaluate(&format!("f{fi}"), &Context::new(format!("k{key}")));
                    let expected = doc.evaluate(fi, key, &malformed);
                    prop_assert_eq!(d.value().and_then(Value::as_bool), expected, "f{} k{}", fi, key);
                }
            }
        }
    }

    /// A ring of `n` segments, each listing the next `fan` times, and a flag listing the first.
    fn ring(n: usize, fan: usize) -> Snapshot {
        let mut segments = serde_json::Map::new();
        for i in 0..n {
            let refs = vec![format!("s{}", (i + 1) % n); fan];
            segments.insert(
                format!("s{i}"),
                json!({"included": ["in"], "rules": [{"clauses": [
                    {"attribute": "key", "operator": "in", "values": ["x"]},
                    {"attribute": "", "operator": "segmentMatch", "values": refs}]}]}),
            );
        }
        let flag = json!({"rules": [{"clauses": [
            {"attribute": "", "operator": "segmentMatch", "values": ["s0"]}], "variation": 1}],
            "fallthrough": {"variation": 0}});
        let text = json!({"flags": {"f": flag}, "segments": segments}).to_string();
        parse_document(&text, Format::Json).unwrap().compile(None)
    }

    #[test]
    fn cycles_are_bounded_by_the_chains_evaluation_can_follow() {
        // Every segment of a ring lists the next twice: a chain may follow the ring 32 deep
        // (when the first clause matches), 2^32 evaluations. Refused.
        let snap = ring(40, 2);
        assert!(snap.flag("f").unwrap().is_malformed());
        // Listing each other once, the worst case is one turn of the ring: accepted, and
        // evaluation stays what it was (a member is in, the cycle is malformed when reached).
        let snap = ring(3, 1);
        assert!(!snap.flag("f").unwrap().is_malformed());
        let (_, cost) = costs(&snap);
        // Flag: 1 + rule + clause + reference, then s0, s1, s2 (6 each: 1 + rule + two
        // clauses with one value each) and the refused reference back to s0 (1).
        assert_eq!(cost[0], 4 + 6 * 3 + 1);
        let d = snap.evaluate("f", &Context::new("in"));
        assert_eq!(d.variation_index(), Some(1));
        let d = snap.evaluate("f", &Context::new("x"));
        assert_eq!(d.error_kind(), Some(crate::ErrorKind::MalformedFlag));
        // A segment listing itself four times: each reference is refused at once.
        let snap = ring(1, 4);
        let (_, cost) = costs(&snap);
        assert_eq!(cost[0], 4 + (1 + 1 + 2 + (1 + 4)) + 4);
    }
}
