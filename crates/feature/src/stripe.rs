//! Striped counters: each thread adds to its own cache line, readers sum the stripes. Two
//! threads evaluating at once never write the same line, so counting scales with cores.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// How many stripes each counter set has (threads beyond this share stripes).
pub(crate) const STRIPES: usize = 8;

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's stripe, assigned round-robin on first use.
#[inline]
pub(crate) fn stripe() -> usize {
    STRIPE.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
        s.set(v);
        v
    })
}

#[repr(align(128))]
struct Line<const N: usize>([AtomicU64; N]);

/// `N` counters, striped across [`STRIPES`] cache-line-aligned copies.
pub(crate) struct Striped<const N: usize> {
    lines: Box<[Line<N>]>,
}

impl<const N: usize> Default for Striped<N> {
    fn default() -> Self {
        Striped {
            lines: (0..STRIPES)
                .map(|_| Line(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
        }
    }
}

impl<const N: usize> std::fmt::Debug for Striped<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Striped").field("counters", &N).finish()
    }
}

impl<const N: usize> Striped<N> {
    /// Adds `n` to counter `i` (ignored when out of range).
    #[inline]
    pub(crate) fn add(&self, i: usize, n: u64) {
        if let Some(c) = self.lines.get(stripe()).and_then(|l| l.0.get(i)) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The sum of counter `i` over every stripe.
    pub(crate) fn get(&self, i: usize) -> u64 {
        self.lines
            .iter()
            .filter_map(|l| l.0.get(i))
            .map(|c| c.load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }

    /// Every counter, summed over the stripes.
    pub(crate) fn totals(&self) -> [u64; N] {
        let mut out = [0u64; N];
        for l in self.lines.iter() {
            for (o, c) in out.iter_mut().zip(l.0.iter()) {
                *o = o.wrapping_add(c.load(Ordering::Relaxed));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_across_threads() {
        let s = std::sync::Arc::new(Striped::<3>::default());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        s.add(1, 2);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(s.get(1), 8000);
        assert_eq!(s.totals(), [0, 8000, 0]);
        s.add(7, 1); // out of range: ignored
    }
}
