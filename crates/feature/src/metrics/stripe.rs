//! Per-thread counters: each counting thread owns a cache-line-aligned copy of the counters
//! (allocated on its first count) and adds to it without a locked instruction; readers sum
//! the copies. Two threads evaluating at once never write the same line, so counting scales
//! with cores and costs about a nanosecond.
//!
//! The first [`EXCLUSIVE`] threads alive at once each own a copy (a thread's copy passes to a
//! later thread when it exits, counts included); further threads share one copy with atomic
//! adds.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Threads that get a copy of their own.
pub(crate) const EXCLUSIVE: usize = 64;
/// Copies per counter set: the exclusive ones and the shared one.
const SLOTS: usize = EXCLUSIVE + 1;

/// Which exclusive slots are taken (bit i: slot i).
static TAKEN: AtomicU64 = AtomicU64::new(0);

/// Releases the thread's slot when the thread exits.
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        // Count through the shared slot from now on (other destructors may still count).
        let s = SLOT.try_with(|c| c.replace(EXCLUSIVE)).unwrap_or(EXCLUSIVE);
        release(s);
    }
}

fn release(s: usize) {
    if s < EXCLUSIVE {
        // Release: the next owner sees every count this thread stored.
        TAKEN.fetch_and(!(1u64 << s), Ordering::Release);
    }
}

fn claim() -> usize {
    let mut taken = TAKEN.load(Ordering::Acquire);
    loop {
        let free = (!taken).trailing_zeros() as usize;
        if free >= EXCLUSIVE {
            return EXCLUSIVE; // the shared slot
        }
        match TAKEN.compare_exchange_weak(
            taken,
            taken | (1u64 << free),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => return free,
            Err(now) => taken = now,
        }
    }
}

thread_local! {
    /// This thread's slot (`usize::MAX`: not yet claimed). A plain cell: reading it costs
    /// nothing; [`Guard`] hands the slot back at thread exit.
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
    static GUARD: Guard = const { Guard };
}

/// This thread's slot: `< EXCLUSIVE` when it owns it, `EXCLUSIVE` when shared.
#[inline]
fn slot() -> usize {
    SLOT.with(|c| {
        let s = c.get();
        if s != usize::MAX {
            return s;
        }
        let mut s = claim();
        // Arm the guard; if the thread is already exiting, give the slot back at once.
        if GUARD.try_with(|_| ()).is_err() {
            release(s);
            s = EXCLUSIVE;
        }
        c.set(s);
        s
    })
}

#[repr(align(128))]
struct Line<const N: usize>([AtomicU64; N]);

impl<const N: usize> Line<N> {
    fn new() -> Box<Self> {
        Box::new(Line(std::array::from_fn(|_| AtomicU64::new(0))))
    }
}

/// `N` counters with one copy per counting thread.
pub(crate) struct Striped<const N: usize> {
    lines: Box<[OnceLock<Box<Line<N>>>; SLOTS]>,
}

impl<const N: usize> Default for Striped<N> {
    fn default() -> Self {
        Striped {
            lines: Box::new(std::array::from_fn(|_| OnceLock::new())),
        }
    }
}

impl<const N: usize> std::fmt::Debug for Striped<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Striped").field("counters", &N).finish()
    }
}

/// This thread's copy of a [`Striped`] set, for several operations after one lookup.
#[derive(Clone, Copy)]
pub(crate) struct LineRef<'a, const N: usize> {
    line: &'a Line<N>,
    exclusive: bool,
}

impl<const N: usize> LineRef<'_, N> {
    /// Adds `n` to counter `i` (ignored when out of range).
    #[inline(always)]
    pub(crate) fn add(self, i: usize, n: u64) {
        let Some(c) = self.line.0.get(i) else {
            return;
        };
        if self.exclusive {
            // Only this thread writes this copy: no locked instruction needed.
            c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        } else {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts down counter `i` (a per-thread countdown, not a count to be summed): `true`,
    /// and restarts it at `restart()`, when it was at zero. On the shared copy, threads
    /// racing may lose a step, which only nudges a sampling interval.
    #[inline(always)]
    pub(crate) fn countdown(self, i: usize, restart: impl FnOnce() -> u64) -> bool {
        let Some(c) = self.line.0.get(i) else {
            return false;
        };
        let left = c.load(Ordering::Relaxed);
        if left > 0 {
            c.store(left - 1, Ordering::Relaxed);
            return false;
        }
        c.store(restart(), Ordering::Relaxed);
        true
    }

    /// Bernoulli sampling on counter `i` (a per-thread countdown): `gap()` gives how many
    /// calls to skip before the next kept one. The counter holds the skips left plus one; 0
    /// means none drawn yet, so a thread's first call draws a gap rather than keeping.
    #[inline(always)]
    pub(crate) fn sample(self, i: usize, gap: impl FnOnce() -> u64) -> bool {
        let Some(c) = self.line.0.get(i) else {
            return false;
        };
        let mut left = c.load(Ordering::Relaxed);
        if left == 0 {
            left = gap().saturating_add(1);
        }
        if left == 1 {
            c.store(0, Ordering::Relaxed);
            return true;
        }
        c.store(left - 1, Ordering::Relaxed);
        false
    }
}

impl<const N: usize> Striped<N> {
    /// This thread's copy.
    #[inline(always)]
    pub(crate) fn line(&self) -> LineRef<'_, N> {
        // `slot()` is at most EXCLUSIVE, the last index: `min` only spares a bounds check.
        let s = slot().min(EXCLUSIVE);
        LineRef {
            line: self.lines[s].get_or_init(Line::new),
            exclusive: s < EXCLUSIVE,
        }
    }

    /// Adds `n` to counter `i` (ignored when out of range).
    #[inline]
    pub(crate) fn add(&self, i: usize, n: u64) {
        self.line().add(i, n);
    }

    /// The sum of counter `i` over every copy.
    pub(crate) fn get(&self, i: usize) -> u64 {
        self.lines
            .iter()
            .filter_map(|l| l.get().and_then(|l| l.0.get(i)))
            .map(|c| c.load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }

    /// Every counter, summed over the copies.
    pub(crate) fn totals(&self) -> [u64; N] {
        let mut out = [0u64; N];
        for l in self.lines.iter().filter_map(OnceLock::get) {
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
    fn sums_across_threads_including_more_threads_than_slots() {
        let s = std::sync::Arc::new(Striped::<3>::default());
        // More threads than exclusive slots, all alive at once: some share the atomic slot.
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(EXCLUSIVE + 8));
        let handles: Vec<_> = (0..EXCLUSIVE + 8)
            .map(|_| {
                let (s, b) = (s.clone(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    for _ in 0..1000 {
                        s.add(1, 2);
                    }
                    b.wait();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(s.get(1), 2000 * (EXCLUSIVE as u64 + 8));
        // Slots of exited threads are reused and their counts kept.
        let s2 = s.clone();
        std::thread::spawn(move || s2.add(1, 5)).join().unwrap();
        assert_eq!(s.totals(), [0, 2000 * (EXCLUSIVE as u64 + 8) + 5, 0]);
        s.add(7, 1); // out of range: ignored
    }
}
