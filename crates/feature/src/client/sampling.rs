//! Bernoulli sampling drawn as geometric gaps: deciding to skip an evaluation costs one
//! decrement of a per-thread countdown, and only a kept one draws a random number.

use std::cell::Cell;
use std::time::SystemTime;

/// How evaluation events are sampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Sampling {
    /// Every event is kept.
    All,
    /// None is (experiment exposures aside: the caller keeps those regardless).
    Never,
    /// Each is kept with probability `rate`; `ln_miss` is `ln(1 - rate)`.
    Rate { ln_miss: f64 },
}

impl Sampling {
    /// Sampling at `rate` (clamped to 0..=1; NaN keeps nothing).
    pub(crate) fn new(rate: f64) -> Sampling {
        if rate >= 1.0 {
            Sampling::All
        } else if rate > 0.0 {
            Sampling::Rate {
                ln_miss: (1.0 - rate).ln(),
            }
        } else {
            Sampling::Never
        }
    }

    /// How many events to skip before the next kept one: geometric with parameter `rate`.
    pub(crate) fn gap(self) -> u64 {
        match self {
            Sampling::All => 0,
            Sampling::Never => u64::MAX,
            Sampling::Rate { ln_miss } => {
                // U in (0, 1]; floor(ln U / ln(1 - rate)) is geometric.
                let u = ((random() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
                let g = (u.ln() / ln_miss).floor();
                if g.is_finite() && g >= 0.0 {
                    g.min((u64::MAX - 1) as f64) as u64
                } else {
                    0
                }
            }
        }
    }
}

thread_local! {
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// A fast per-thread random number (xorshift64*), for sampling.
#[inline]
pub(crate) fn random() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        if x == 0 {
            // Seed from the thread's stack address and the time: distinct per thread.
            let t = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            x = (r as *const Cell<u64> as u64) ^ t ^ 0x9E37_79B9_7F4A_7C15;
            if x == 0 {
                x = 1;
            }
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_share_matches_the_rate() {
        for rate in [0.5, 0.1, 0.01] {
            let s = Sampling::new(rate);
            let (mut kept, mut seen) = (0u64, 0u64);
            while seen < 2_000_000 {
                seen += s.gap() + 1;
                kept += 1;
            }
            let share = kept as f64 / seen as f64;
            assert!((share - rate).abs() < rate * 0.05, "rate {rate}: {share}");
        }
        assert_eq!(Sampling::new(1.0), Sampling::All);
        assert_eq!(Sampling::new(0.0), Sampling::Never);
        assert_eq!(Sampling::new(f64::NAN), Sampling::Never);
    }
}
