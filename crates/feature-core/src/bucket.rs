//! Consistent bucketing: the same context always lands in the same place of a rollout.
//!
//! The algorithm is LaunchDarkly's, bit for bit, so that contexts keep their variation when flags
//! move between the two systems: SHA-1 of `"{flagKey}.{salt}.{value}"` (or `"{seed}.{value}"`),
//! the first 15 hex digits (60 bits) as an integer, divided by `0xFFFFFFFFFFFFFFF`, in `f32`.

use serde_json::Value;
use sha1::{Digest, Sha1};

/// The largest integer that an `f64` holds exactly; larger numbers are not bucketable.
const MAX_SAFE_INT: f64 = 9_007_199_254_740_991.0;

/// The bucket, in `[0, 1]`, of `value` under a hash `prefix` (which ends in `.`). Values that
/// cannot be bucketed (booleans, fractions, objects) land in bucket 0.
#[inline]
pub fn bucket_value(prefix: &[u8], value: &Value) -> f32 {
    bucket_of_hash(hash_value(prefix, value))
}

/// The bucket of a string id under a hash prefix.
#[inline]
pub fn bucket_str(prefix: &[u8], id: &[u8]) -> f32 {
    bucket_of_hash(first_60_bits(prefix, id))
}

/// The 60-bit hash whose bucket [`bucket_value`] gives: 0 for values that cannot be bucketed.
/// Inlined for the string ids nearly every rollout hashes; a number is formatted out of line.
#[inline]
pub(crate) fn hash_value(prefix: &[u8], value: &Value) -> u64 {
    match value {
        Value::String(s) => first_60_bits(prefix, s.as_bytes()),
        other => hash_number(prefix, other),
    }
}

/// [`hash_value`] of a value other than a string: an integer is hashed as its decimal text.
#[inline(never)]
fn hash_number(prefix: &[u8], value: &Value) -> u64 {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INT => {
                let mut buf = itoa_buf(f as i64);
                first_60_bits(prefix, buf.as_bytes_mut())
            }
            _ => 0,
        },
        _ => 0,
    }
}

/// The bucket of a 60-bit hash: the hash divided by `0xFFFFFFFFFFFFFFF`, in `f32`.
#[inline]
pub(crate) fn bucket_of_hash(n: u64) -> f32 {
    // Below 2^60: converted as a signed integer (one instruction instead of the unsigned
    // conversion's branches), to the same `f32`.
    n as i64 as f32 / 0x0FFF_FFFF_FFFF_FFFFu64 as f32
}

/// One past the largest 60-bit hash.
pub(crate) const HASH_END: u64 = 1 << 60;

/// The least 60-bit hash whose bucket is at or above `bound` ([`HASH_END`] when none is), so
/// that `bucket_of_hash(n) >= bound` is `n >= least_hash_at_or_above(bound)` for every hash
/// `n`: a rollout compares integers, and the hash's conversion and division leave the path
/// that waits for the hash.
///
/// The bucket is `n` rounded to `f32` times 2^-60 (the divisor rounds to 2^60 in `f32`, so the
/// division is exact), so the answer is the least integer that rounds to `bound · 2^60` or
/// above: just above the midpoint between that `f32` and the one below it. The candidates
/// around the midpoint are checked with the bucket itself; a binary search over every hash
/// answers if none of them is the boundary.
pub(crate) fn least_hash_at_or_above(bound: f32) -> u64 {
    if bucket_of_hash(0) >= bound {
        return 0;
    }
    if let Some(n) = near_midpoint(bound) {
        return n;
    }
    let (mut lo, mut hi) = (0, HASH_END);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if at_or_above(mid, bound) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// Whether hash `n` (or [`HASH_END`], which stands for "none") is at or above `bound`.
fn at_or_above(n: u64, bound: f32) -> bool {
    n >= HASH_END || bucket_of_hash(n) >= bound
}

/// [`least_hash_at_or_above`] for a positive `bound`, found among the integers next to the
/// midpoint between `bound · 2^60` and the `f32` below it; `None` when it is not one of them.
fn near_midpoint(bound: f32) -> Option<u64> {
    let scaled = bound * 2f32.powi(60);
    if !(scaled.is_finite() && scaled > 0.0) {
        return None;
    }
    let below = f32::from_bits(scaled.to_bits() - 1);
    let midpoint = (f64::from(scaled) + f64::from(below)) / 2.0;
    if midpoint >= HASH_END as f64 {
        return None;
    }
    let around = midpoint.floor() as u64;
    (around.saturating_sub(1)..=around.saturating_add(2))
        .find(|&n| at_or_above(n, bound) && (n == 0 || !at_or_above(n - 1, bound)))
}

/// SHA-1's initial state.
const SHA1_INIT: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

/// The first 60 bits of SHA-1(`prefix` ++ `id`). Inputs that fit one block (55 bytes or
/// fewer, nearly every flag key, salt and context key) are padded on the stack and compressed
/// once, without the streaming hasher's buffering; longer ones go through the hasher.
#[inline]
fn first_60_bits(prefix: &[u8], id: &[u8]) -> u64 {
    let len = prefix.len() + id.len();
    if len <= 55 {
        // Built in place as the block type `compress` reads (no copy of a byte array).
        let mut blocks = [sha1::digest::generic_array::GenericArray::default()];
        let block: &mut [u8] = &mut blocks[0];
        block[..prefix.len()].copy_from_slice(prefix);
        block[prefix.len()..len].copy_from_slice(id);
        block[len] = 0x80;
        block[56..].copy_from_slice(&(len as u64 * 8).to_be_bytes());
        let mut state = SHA1_INIT;
        sha1::compress(&mut state, &blocks);
        return (u64::from(state[0]) << 32 | u64::from(state[1])) >> 4;
    }
    let mut h = Sha1::new();
    h.update(prefix);
    h.update(id);
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) >> 4
}

/// A decimal integer formatted on the stack.
struct IntBuf {
    buf: [u8; 24],
    start: usize,
}

impl IntBuf {
    fn as_bytes_mut(&mut self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn itoa_buf(mut n: i64) -> IntBuf {
    let mut buf = [0u8; 24];
    let mut i = buf.len();
    let neg = n < 0;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10).unsigned_abs() as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        buf[i] = b'-';
    }
    IntBuf { buf, start: i }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-7
    }

    #[test]
    fn launchdarkly_reference_vectors() {
        let p = b"hashKey.saltyA.";
        assert!(close(bucket_value(p, &json!("userKeyA")), 0.42157587));
        assert!(close(bucket_value(p, &json!("userKeyB")), 0.6708485));
        assert!(close(bucket_value(p, &json!("userKeyC")), 0.10343106));
        let seed = b"61.";
        assert!(close(bucket_value(seed, &json!("userKeyA")), 0.09801207));
        assert!(close(bucket_value(seed, &json!("userKeyB")), 0.14483777));
        assert!(close(bucket_value(seed, &json!("userKeyC")), 0.9242641));
        assert!(close(bucket_value(b"60.", &json!("userKeyA")), 0.7008816));
        assert!(close(bucket_value(p, &json!(33333)), 0.54771423));
        assert!(close(
            bucket_value(p, &json!(33333.0)),
            bucket_value(p, &json!("33333"))
        ));
        assert_eq!(bucket_value(p, &json!(999.999)), 0.0);
        assert_eq!(bucket_value(p, &json!(true)), 0.0);
        let s = b"segkey.salty.";
        assert!(close(bucket_value(s, &json!("userKeyA")), 0.14574753));
        assert!(close(bucket_value(s, &json!("userKeyZ")), 0.45679215));
    }

    #[test]
    fn the_one_block_path_agrees_with_the_hasher_at_every_length() {
        let bytes: Vec<u8> = (0..130u8).map(|i| b'a' + i % 26).collect();
        for total in 0..bytes.len() {
            for split in [0, total / 3, total] {
                let (prefix, id) = bytes[..total].split_at(split);
                let mut h = Sha1::new();
                h.update(prefix);
                h.update(id);
                let d = h.finalize();
                let want = u64::from_be_bytes(d[..8].try_into().unwrap()) >> 4;
                assert_eq!(
                    first_60_bits(prefix, id),
                    want,
                    "length {total}, split {split}"
                );
            }
        }
    }

    #[test]
    fn formats_integers() {
        for n in [0i64, 7, -7, 1234567890123, i64::MIN + 1, i64::MAX] {
            assert_eq!(itoa_buf(n).as_bytes_mut(), n.to_string().as_bytes());
        }
    }

    /// The least hash at or above `bound` by a binary search over every 60-bit hash.
    fn searched(bound: f32) -> u64 {
        let (mut lo, mut hi) = (0, HASH_END);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if bucket_of_hash(mid) >= bound {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    /// Checks that `least_hash_at_or_above(bound)` is the boundary of the buckets at or above
    /// `bound`, and the one a search over every hash finds.
    fn is_the_boundary(bound: f32) {
        let n = least_hash_at_or_above(bound);
        assert_eq!(
            n,
            searched(bound),
            "bound {bound:e} ({:#x})",
            bound.to_bits()
        );
        assert!(
            n == HASH_END || bucket_of_hash(n) >= bound,
            "{bound:e}: {n}"
        );
        assert!(n == 0 || bucket_of_hash(n - 1) < bound, "{bound:e}: {n}");
    }

    #[test]
    fn a_hash_reaches_a_bound_exactly_from_the_least_hash_at_or_above_it() {
        // Every bound a weight out of 100 000 gives, and running sums of weights as rollouts
        // make them (1/3 steps, uneven splits, sums past 1).
        for k in (0..=100_000)
            .step_by(7)
            .chain([1, 2, 49_999, 50_000, 50_001, 99_999])
        {
            is_the_boundary(k as f32 / 100_000.0);
        }
        for weights in [
            &[33_333, 33_333, 33_334][..],
            &[1, 99_999],
            &[70_000, 70_000, -5],
        ] {
            let mut sum = 0f32;
            for w in weights {
                sum += *w as f32 / 100_000.0;
                is_the_boundary(sum);
            }
        }
        // No bucket is below 0 or above 1; none is NaN.
        assert_eq!(least_hash_at_or_above(-0.25), 0);
        assert_eq!(least_hash_at_or_above(0.0), 0);
        assert_eq!(least_hash_at_or_above(1.5), HASH_END);
        assert_eq!(least_hash_at_or_above(f32::INFINITY), HASH_END);
        assert_eq!(least_hash_at_or_above(f32::NAN), HASH_END);
        assert_eq!(least_hash_at_or_above(f32::NEG_INFINITY), 0);
        // The largest bucket is 1.0 itself (the top hashes round up to 2^60).
        assert_eq!(bucket_of_hash(HASH_END - 1), 1.0);
        is_the_boundary(1.0);
        // The smallest positive bounds, where the buckets are fractions of a hash apart.
        for bits in [1, 2, 3, 0x0080_0000, 0x2000_0000, 0x2F80_0000, 0x2F80_0001] {
            is_the_boundary(f32::from_bits(bits));
        }
        // Bounds a bucket can reach are found next to the midpoint, without the search.
        for k in (1..=100_000).step_by(7) {
            let bound = k as f32 / 100_000.0;
            assert_eq!(near_midpoint(bound), Some(searched(bound)), "{bound}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bound_has_its_boundary(bits in 0u32..0x3FC0_0000) {
            // Every positive f32 up to 1.5.
            let bound = f32::from_bits(bits);
            is_the_boundary(bound);
            // A bound a bucket can reach is found next to the midpoint, without the search.
            if bound > 0.0 && bound <= 1.0 {
                proptest::prop_assert_eq!(near_midpoint(bound), Some(searched(bound)));
            }
        }

        #[test]
        fn comparing_hashes_decides_as_comparing_buckets(n in 0u64..HASH_END, bits in 0u32..0x3FC0_0000) {
            let bound = f32::from_bits(bits);
            proptest::prop_assert_eq!(n >= least_hash_at_or_above(bound), bucket_of_hash(n) >= bound);
        }
    }
}
