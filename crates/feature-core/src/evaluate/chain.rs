//! The flags (or segments) being evaluated further up the call stack, for cycle detection and
//! the depth cap.

/// How deeply prerequisites, and segments referring to segments, may nest.
pub(crate) const MAX_DEPTH: usize = 32;

/// One level of the chain of flags (or segments) being evaluated, innermost first. Each level
/// lives in its caller's stack frame, so an evaluation without prerequisites or segments pays
/// nothing for it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Visiting<'a> {
    index: u32,
    depth: usize,
    outer: Option<&'a Visiting<'a>>,
}

impl<'a> Visiting<'a> {
    /// `index` entered inside `outer`.
    pub(super) fn enter(index: u32, outer: Option<&'a Visiting<'a>>) -> Self {
        Visiting {
            index,
            depth: depth(outer) + 1,
            outer,
        }
    }
}

/// How many levels `chain` holds.
pub(super) fn depth(chain: Option<&Visiting<'_>>) -> usize {
    chain.map_or(0, |v| v.depth)
}

/// Whether `index` is on `chain`.
pub(super) fn on_chain(mut chain: Option<&Visiting<'_>>, index: u32) -> bool {
    while let Some(v) = chain {
        if v.index == index {
            return true;
        }
        chain = v.outer;
    }
    false
}

/// Whether entering `index` inside `chain` would close a cycle or go too deep.
pub(super) fn refuses(chain: Option<&Visiting<'_>>, index: u32) -> bool {
    on_chain(chain, index) || depth(chain) == MAX_DEPTH
}
