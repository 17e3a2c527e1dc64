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
    match value {
        Value::String(s) => bucket_str(prefix, s.as_bytes()),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INT => {
                let mut buf = itoa_buf(f as i64);
                bucket_str(prefix, buf.as_bytes_mut())
            }
            _ => 0.0,
        },
        _ => 0.0,
    }
}

/// The bucket of a string id under a hash prefix.
#[inline]
pub fn bucket_str(prefix: &[u8], id: &[u8]) -> f32 {
    let n = first_60_bits(prefix, id);
    // Below 2^60: converted as a signed integer (one instruction instead of the unsigned
    // conversion's branches), to the same `f32`.
    n as i64 as f32 / 0x0FFF_FFFF_FFFF_FFFFu64 as f32
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
        let mut block = [0u8; 64];
        block[..prefix.len()].copy_from_slice(prefix);
        block[prefix.len()..len].copy_from_slice(id);
        block[len] = 0x80;
        block[56..].copy_from_slice(&(len as u64 * 8).to_be_bytes());
        let mut state = SHA1_INIT;
        sha1::compress(&mut state, &[block.into()]);
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
}
