//! String sets and key tables: the lookups evaluation makes (flag keys, `in` lists, targets,
//! segment members).

use crate::ops::{bytes_eq, json_eq, str_eq};
use serde_json::Value;

/// A set of strings: a short list scanned linearly; a longer one hashed, with its strings in
/// the table's slots when they are short (one cache line per lookup) or packed end to end.
#[derive(Debug, Clone)]
pub(crate) enum StrSet {
    /// One string (an `eq` clause, a one-value `in` list): no list around it.
    One(Box<str>),
    Small(Box<[Box<str>]>),
    /// Boxed, like `Large`: every `in` clause holds a set, most of them small.
    Inline(Box<InlineSet>),
    /// Boxed: a set this large is rare, and a set is part of every `in` clause.
    Large(Box<(PackedStrs, KeyTable)>),
}

impl StrSet {
    pub(crate) fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> StrSet {
        let mut v: Vec<S> = items.into_iter().collect();
        if v.len() > 8 {
            v.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
            v.dedup_by(|a, b| a.as_ref() == b.as_ref());
            if let Some(set) = InlineSet::new(&v) {
                return StrSet::Inline(Box::new(set));
            }
            if let Some(keys) = PackedStrs::new(&v) {
                let table = KeyTable::new(keys.iter());
                return StrSet::Large(Box::new((keys, table)));
            }
        }
        match &v[..] {
            [one] => StrSet::One(one.as_ref().into()),
            _ => StrSet::Small(v.iter().map(|s| s.as_ref().into()).collect()),
        }
    }

    /// How many strings the set holds.
    pub(crate) fn len(&self) -> usize {
        match self {
            StrSet::One(_) => 1,
            StrSet::Small(v) => v.len(),
            StrSet::Inline(set) => set.len as usize,
            StrSet::Large(large) => large.0.len(),
        }
    }

    #[inline(always)]
    pub(crate) fn contains(&self, s: &str) -> bool {
        match self {
            StrSet::One(x) => str_eq(x, s),
            StrSet::Small(v) => {
                // A plain loop: `Iterator::any` is left out of line, a call per lookup.
                for x in v {
                    if str_eq(x, s) {
                        return true;
                    }
                }
                false
            }
            StrSet::Inline(set) => set.contains(s.as_bytes()),
            StrSet::Large(large) => large.1.contains(s, &large.0),
        }
    }
}

/// Distinct short strings kept in the slots of a hash table of cache lines: a lookup hashes
/// the string and compares it with the slots of its home line, usually one cache line, where a
/// table of positions into packed text costs three memory reads that miss the cache in a large
/// set (the slot, the string's bounds, its text). A slot is a length byte (`0`: empty; else the
/// length plus one) followed by the string, zero-padded to [`InlineSet::width`] bytes (8, 16 or
/// 32: the longest string fits), kept as little-endian 64-bit words so that a lookup compares
/// whole words. A line's slots fill in order; a string whose home line is full goes to the next
/// line with room, and the table is at most half full, so a lookup stops at the first line
/// that is not full.
#[derive(Debug, Clone)]
pub(crate) struct InlineSet {
    lines: Box<[Line]>,
    /// Bytes per slot: 8, 16 or 32.
    width: u32,
    /// Number of strings.
    len: u32,
}

/// One cache line of slots, as eight little-endian words.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Line([u64; 8]);

impl InlineSet {
    /// Strings of at most this many bytes are kept in slots.
    const MAX_STR: usize = 31;

    /// The set of `strings` (distinct); `None` when one is longer than [`InlineSet::MAX_STR`].
    fn new<S: AsRef<str>>(strings: &[S]) -> Option<InlineSet> {
        let longest = strings.iter().map(|s| s.as_ref().len()).max()?;
        if longest > InlineSet::MAX_STR {
            return None;
        }
        let width = (longest + 1).next_power_of_two().max(8);
        let words = width / 8;
        let per_line = 64 / width;
        let count = (strings.len() * 2).div_ceil(per_line) + 1;
        let mut lines = vec![Line([0; 8]); count].into_boxed_slice();
        for s in strings {
            let s = s.as_ref().as_bytes();
            let image = slot_image::<4>(s);
            let mut l = InlineSet::home(s, count);
            'placed: loop {
                for slot in lines[l].0.chunks_exact_mut(words) {
                    if slot[0] == 0 {
                        slot.copy_from_slice(&image[..words]);
                        break 'placed;
                    }
                }
                l = if l + 1 == count { 0 } else { l + 1 };
            }
        }
        Some(InlineSet {
            lines,
            width: width as u32,
            len: u32::try_from(strings.len()).ok()?,
        })
    }

    /// The home line of `s`: its hash scaled to the number of lines (multiply and shift).
    #[inline(always)]
    fn home(s: &[u8], count: usize) -> usize {
        let mut h = rustc_hash::FxHasher::default();
        std::hash::Hasher::write(&mut h, s);
        // Mixed once more, so that the high bits the scaling reads depend on every input bit.
        let h = std::hash::Hasher::finish(&h);
        let h = (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        ((u128::from(h ^ (h >> 32)) * count as u128) >> 64) as usize
    }

    /// Whether `s` is in the set.
    #[inline(never)]
    fn contains(&self, s: &[u8]) -> bool {
        let width = self.width as usize;
        if s.len() >= width {
            return false;
        }
        match self.width {
            8 => self.find::<1>(s),
            16 => self.find::<2>(s),
            _ => self.find::<4>(s),
        }
    }

    /// [`InlineSet::contains`] for slots of `N` words: every slot of a line is compared,
    /// without a branch per slot (the number of filled slots varies from line to line, so a
    /// branch on it would be mispredicted about once a lookup); the next line is read only
    /// when this one is full (its last slot is filled), which a table at most half full makes
    /// rare.
    #[inline(always)]
    fn find<const N: usize>(&self, s: &[u8]) -> bool {
        let image = slot_image::<N>(s);
        let count = self.lines.len();
        let mut l = InlineSet::home(s, count);
        loop {
            let Some(line) = self.lines.get(l) else {
                return false;
            };
            let mut hit = false;
            for slot in line.0.chunks_exact(N) {
                let mut same = true;
                for w in 0..N {
                    same &= slot[w] == image[w];
                }
                hit |= same;
            }
            if hit {
                return true;
            }
            if line.0[8 - N] == 0 {
                return false;
            }
            l = if l + 1 == count { 0 } else { l + 1 };
        }
    }
}

/// The slot holding `s` (at most [`InlineSet::MAX_STR`] bytes), as little-endian words: the
/// length plus one in the first byte, then the string, then zeros. Built from overlapping
/// word reads of `s` rather than a copy into a buffer (a call to `memcpy` per lookup).
#[inline(always)]
fn slot_image<const N: usize>(s: &[u8]) -> [u64; N] {
    let mut image = [0; N];
    for (w, word) in image.iter_mut().enumerate() {
        *word = match w {
            0 => (s.len() as u64 + 1) | chunk(s, 0) << 8,
            w => chunk(s, 8 * w - 1),
        };
    }
    image
}

/// Bytes `from..from + 8` of `s` (fewer past its end, zero-filled) as a little-endian word.
#[inline(always)]
fn chunk(s: &[u8], from: usize) -> u64 {
    let len = s.len();
    if let Some(bytes) = s.get(from..from + 8) {
        return le_word(bytes);
    }
    if from >= len {
        return 0;
    }
    if len >= 8 {
        // The last eight bytes, shifted down so that byte `from` comes first.
        return le_word(&s[len - 8..]) >> (8 * (from + 8 - len));
    }
    let mut v = 0;
    for (i, b) in s[from..].iter().enumerate() {
        v |= u64::from(*b) << (8 * i);
    }
    v
}

/// Eight bytes as a little-endian word (0 when `bytes` is not eight long).
#[inline(always)]
fn le_word(bytes: &[u8]) -> u64 {
    bytes.try_into().map_or(0, u64::from_le_bytes)
}

/// Strings stored end to end in one allocation, with the end of each in another: a
/// million-key segment is two allocations instead of a million (14 MB of text and 4 MB of
/// ends instead of 30 MB of boxed strings).
#[derive(Debug, Clone)]
pub(crate) struct PackedStrs {
    text: Box<str>,
    /// The end of each string in `text`; string `i` starts where string `i - 1` ends.
    ends: Box<[u32]>,
}

impl PackedStrs {
    /// The strings packed; `None` when their text does not fit `u32` offsets (4 GiB).
    fn new<S: AsRef<str>>(strings: &[S]) -> Option<PackedStrs> {
        let total: usize = strings.iter().map(|s| s.as_ref().len()).sum();
        u32::try_from(total).ok()?;
        let mut text = String::with_capacity(total);
        let mut ends = Vec::with_capacity(strings.len());
        for s in strings {
            text.push_str(s.as_ref());
            ends.push(text.len() as u32);
        }
        Some(PackedStrs {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        })
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// String `i` (empty when out of range).
    #[inline]
    fn get(&self, i: usize) -> &str {
        let start = match i.checked_sub(1) {
            Some(j) => self.ends.get(j).copied().unwrap_or(0),
            None => 0,
        } as usize;
        let end = self.ends.get(i).copied().unwrap_or(0) as usize;
        self.text.get(start..end).unwrap_or_default()
    }

    /// The bytes of string `i` (empty when out of range), without the character-boundary
    /// checks of slicing a `str`: what a lookup compares.
    #[inline(always)]
    fn get_bytes(&self, i: usize) -> &[u8] {
        let start = match i.checked_sub(1) {
            Some(j) => self.ends.get(j).copied().unwrap_or(0),
            None => 0,
        } as usize;
        let end = self.ends.get(i).copied().unwrap_or(0) as usize;
        self.text.as_bytes().get(start..end).unwrap_or_default()
    }

    fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// Distinct strings by position: an open-addressing table of `(hash tag, position)` pairs,
/// probed linearly, at most half full. A lookup hashes the key once, usually reads one slot, and
/// compares the key inline ([`str_eq`]) only when the 32-bit tags agree: cheaper than a
/// general-purpose map for the lookups evaluation makes (flag keys, `in` lists, targets).
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyTable {
    /// `(tag, position + 1)`; `(_, 0)` is an empty slot.
    /// Shared: a snapshot made from another with the same keys shares its table.
    slots: std::sync::Arc<[(u32, u32)]>,
}

impl KeyTable {
    /// Indexes `keys`, which must be distinct, by position.
    pub(crate) fn new<'k>(keys: impl ExactSizeIterator<Item = &'k str>) -> KeyTable {
        let capacity = (keys.len() * 2).next_power_of_two().max(8);
        let mut slots = vec![(0u32, 0u32); capacity];
        let mask = capacity - 1;
        for (position, key) in keys.enumerate() {
            let (tag, mut i) = KeyTable::locate(key, mask);
            while slots[i].1 != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = (tag, position as u32 + 1);
        }
        KeyTable {
            slots: slots.into(),
        }
    }

    /// The tag of `key` and its home slot.
    #[inline(always)]
    fn locate(key: &str, mask: usize) -> (u32, usize) {
        let mut h = rustc_hash::FxHasher::default();
        std::hash::Hasher::write(&mut h, key.as_bytes());
        let h = std::hash::Hasher::finish(&h);
        ((h >> 32) as u32, h as usize & mask)
    }

    /// This table after keys were removed and added: `map` gives the new position of each
    /// previous one ([`u32::MAX`]: removed), `key_at` the key at a previous position, `added`
    /// the keys added with their new positions. The table [`KeyTable::new`] would build for the
    /// new keys (the same slots, up to the order within a run), in one pass over the slots
    /// without hashing the kept keys; `None` when the new keys need a table of another size.
    pub(crate) fn shifted<'k>(
        &self,
        map: &[u32],
        key_at: impl Fn(usize) -> &'k str,
        added: &[(&str, u32)],
    ) -> Option<KeyTable> {
        let kept = map.iter().filter(|&&j| j != u32::MAX).count();
        let len = kept + added.len();
        let capacity = (len * 2).next_power_of_two().max(8);
        if capacity != self.slots.len() {
            return None;
        }
        let mask = capacity - 1;
        let mut slots = self.slots.to_vec();
        // Removed keys leave their slot; the entries after it in its run move back where a
        // lookup finds them (deletion from linear probing).
        for (old, _) in map.iter().enumerate().filter(|(_, &j)| j == u32::MAX) {
            let (_, mut i) = KeyTable::locate(key_at(old), mask);
            while slots[i].1 as usize != old + 1 {
                if slots[i].1 == 0 {
                    return None;
                }
                i = (i + 1) & mask;
            }
            let mut j = i;
            loop {
                slots[i] = (0, 0);
                loop {
                    j = (j + 1) & mask;
                    let (_, p) = slots[j];
                    if p == 0 {
                        break;
                    }
                    let (_, home) = KeyTable::locate(key_at(p as usize - 1), mask);
                    // Stays when its home is cyclically within (i, j].
                    let stays = if i <= j {
                        i < home && home <= j
                    } else {
                        i < home || home <= j
                    };
                    if !stays {
                        break;
                    }
                }
                if slots[j].1 == 0 {
                    break;
                }
                slots[i] = slots[j];
                i = j;
            }
        }
        for slot in &mut slots {
            if slot.1 != 0 {
                slot.1 = map[slot.1 as usize - 1] + 1;
            }
        }
        for &(key, position) in added {
            let (tag, mut i) = KeyTable::locate(key, mask);
            while slots[i].1 != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = (tag, position + 1);
        }
        Some(KeyTable {
            slots: slots.into(),
        })
    }

    /// Whether `key` is one of `keys` (the keys the table was built from).
    #[inline(never)]
    fn contains(&self, key: &str, keys: &PackedStrs) -> bool {
        self.get(key, |i| keys.get_bytes(i)).is_some()
    }

    /// The position of `key`, where `key_at` gives the key at a position. Always inlined:
    /// a flag read is mostly this lookup, and a call would add a third to it.
    #[inline(always)]
    pub(crate) fn get<'k>(&self, key: &str, key_at: impl Fn(usize) -> &'k [u8]) -> Option<u32> {
        self.find(key, key_at, |k| k).map(|(p, _)| p)
    }

    /// The position of `key` and the item there, where `at` gives the item at a position and
    /// `key_of` its key: the item the key was compared with is returned, not looked up again.
    #[inline(always)]
    pub(crate) fn find<'k, T: ?Sized + 'k>(
        &self,
        key: &str,
        at: impl Fn(usize) -> &'k T,
        key_of: impl Fn(&'k T) -> &'k [u8],
    ) -> Option<(u32, &'k T)> {
        let mask = self.slots.len().checked_sub(1)?;
        let (tag, mut i) = KeyTable::locate(key, mask);
        loop {
            let (t, p) = self.slots[i];
            if p == 0 {
                return None;
            }
            if t == tag {
                let item = at(p as usize - 1);
                if bytes_eq(key_of(item), key.as_bytes()) {
                    return Some((p - 1, item));
                }
            }
            i = (i + 1) & mask;
        }
    }
}

/// The equality operand of `eq` / `in`, split by type: strings, which nearly every such clause
/// compares, inline; numbers, booleans and other JSON values behind a box only when there are
/// any (a clause is in every rule, so its size counts in large flag sets).
#[derive(Debug, Clone)]
pub(crate) struct EqSet {
    pub(crate) strings: StrSet,
    pub(crate) rest: Option<Box<OtherValues>>,
}

/// The operands of an [`EqSet`] that are not strings.
#[derive(Debug, Clone, Default)]
pub(crate) struct OtherValues {
    pub(crate) numbers: Box<[f64]>,
    pub(crate) bools: [bool; 2],
    pub(crate) others: Box<[Value]>,
}

impl OtherValues {
    /// How many values it holds.
    pub(crate) fn len(&self) -> usize {
        self.numbers.len() + self.bools.iter().filter(|b| **b).count() + self.others.len()
    }
}

impl EqSet {
    pub(crate) fn new(values: &[Value]) -> EqSet {
        let mut strings = Vec::new();
        let mut numbers = Vec::new();
        let mut bools = [false; 2];
        let mut others = Vec::new();
        for v in values {
            match v {
                Value::String(s) => strings.push(s.as_str()),
                Value::Number(n) => numbers.extend(n.as_f64()),
                Value::Bool(b) => bools[*b as usize] = true,
                Value::Null => {}
                other => others.push(other.clone()),
            }
        }
        let rest = OtherValues {
            numbers: numbers.into(),
            bools,
            others: others.into(),
        };
        EqSet {
            strings: StrSet::new(strings),
            rest: (rest.len() > 0).then(|| Box::new(rest)),
        }
    }

    /// How many values it holds.
    pub(crate) fn len(&self) -> usize {
        self.strings.len() + self.rest.as_ref().map_or(0, |r| r.len())
    }

    #[inline]
    pub(crate) fn contains(&self, v: &Value) -> bool {
        if let Value::String(s) = v {
            return self.strings.contains(s);
        }
        let Some(rest) = &self.rest else {
            return false;
        };
        match v {
            Value::Number(n) => n.as_f64().is_some_and(|f| rest.numbers.contains(&f)),
            Value::Bool(b) => rest.bools[*b as usize],
            Value::Null | Value::String(_) => false,
            other => rest.others.iter().any(|o| json_eq(o, other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `set` holds exactly `members` among `members` and `others`.
    fn holds_exactly(set: &StrSet, members: &[String], others: &[String]) {
        for m in members {
            assert!(set.contains(m), "{m:?} is a member");
        }
        for o in others {
            assert_eq!(set.contains(o), members.contains(o), "{o:?}");
        }
    }

    #[test]
    fn sets_of_one_and_a_few_strings_hold_exactly_their_members() {
        let others = ["", "D", "DEU", "de", "DE\0", "x"].map(String::from);
        for members in [
            vec!["DE".to_owned()],
            vec!["DE".into(), "FR".into()],
            vec![],
        ] {
            let set = StrSet::new(&members);
            assert_eq!(set.len(), members.len());
            holds_exactly(&set, &members, &others);
        }
        assert!(matches!(StrSet::new(["DE"]), StrSet::One(..)));
    }

    #[test]
    fn large_string_sets_hold_exactly_their_members() {
        let members: Vec<String> = (0..50)
            .map(|i| format!("m{i}"))
            .chain(["m1".into()])
            .collect();
        let set = StrSet::new(&members);
        assert!(matches!(set, StrSet::Inline(..)));
        let others = ["", "m", "m50", "M1", "m1 ", "m1\0"].map(String::from);
        holds_exactly(&set, &members, &others);
        assert_eq!(set.len(), 50);

        // Longer strings than a slot holds: packed, same answers.
        let long: Vec<String> = (members.iter())
            .map(|m| format!("{m}{}", "x".repeat(InlineSet::MAX_STR)))
            .collect();
        let set = StrSet::new(&long);
        assert!(matches!(set, StrSet::Large(..)));
        holds_exactly(&set, &long, &members);
        assert_eq!(set.len(), 50);
    }

    #[test]
    fn slotted_sets_answer_like_a_sorted_set_at_every_length() {
        // Strings of every length a slot holds, with shared prefixes and
        // padding-like bytes, so that a comparison that reads the padding or a length that is
        // off by one is caught; several sizes so that probes wrap around the table's end.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Every slot width (longest string 7, 15, 31 bytes).
        for (n, longest) in [9usize, 10, 31, 200, 3000]
            .into_iter()
            .flat_map(|n| [(n, 7u64), (n, 15), (n, InlineSet::MAX_STR as u64)])
        {
            let pool: Vec<String> = (0..n * 2)
                .map(|_| {
                    let len = (next() % (longest + 1)) as usize;
                    let mut s = String::new();
                    while s.len() < len {
                        let c = ['a', 'b', '\0', 'é'][(next() % 4) as usize];
                        if s.len() + c.len_utf8() > len {
                            break;
                        }
                        s.push(c);
                    }
                    s
                })
                .collect();
            let members: Vec<String> = pool.iter().step_by(2).cloned().collect();
            let set = StrSet::new(&members);
            assert!(matches!(set, StrSet::Inline(..)));
            let expected: std::collections::BTreeSet<&String> = members.iter().collect();
            for s in &pool {
                assert_eq!(
                    set.contains(s),
                    expected.contains(s),
                    "{s:?} in a set of {n}"
                );
            }
            assert_eq!(set.len(), expected.len());
            // Each member with one byte changed (at every position in turn).
            for (i, m) in members.iter().enumerate() {
                let mut b = m.clone().into_bytes();
                if let Some(x) = b.get_mut(i % m.len().max(1)) {
                    *x = if *x == b'a' { b'b' } else { b'a' };
                }
                if let Ok(other) = String::from_utf8(b) {
                    assert_eq!(set.contains(&other), expected.contains(&other), "{other:?}");
                }
            }
        }
    }

    #[test]
    fn a_slot_image_is_the_length_byte_the_string_and_zeros() {
        for len in 0..=InlineSet::MAX_STR {
            let s: Vec<u8> = (0..len as u8)
                .map(|i| i.wrapping_mul(37).wrapping_add(1))
                .collect();
            let mut bytes = [0u8; 32];
            bytes[0] = len as u8 + 1;
            bytes[1..=len].copy_from_slice(&s);
            let expected: Vec<u64> = bytes.chunks(8).map(le_word).collect();
            assert_eq!(slot_image::<4>(&s).to_vec(), expected, "length {len}");
        }
    }

    #[test]
    fn packed_strings_read_back_whole_including_empty_ones() {
        let strings = ["", "a", "", "bcd", "é", ""];
        let packed = PackedStrs::new(&strings).unwrap();
        assert_eq!(packed.iter().collect::<Vec<_>>(), strings);
        assert_eq!(packed.get(99), "");
        let set = StrSet::new(["", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "é"]);
        assert!(matches!(set, StrSet::Inline(..)));
        assert!(set.contains("") && set.contains("é") && set.contains("x8"));
        assert!(!set.contains("x9") && !set.contains("e"));
    }
}
