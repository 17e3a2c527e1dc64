//! A sorted map whose copies share their entries: the maps of a [`crate::model::FlagDocument`].
//!
//! Entries are kept in key order in chunks of at most [`CHUNK`] entries, each chunk shared
//! behind an `Arc`, and the list of chunks shared behind one too. Cloning the map is one
//! reference count; changing one entry of a clone copies the list of chunk pointers (one
//! pointer per [`CHUNK`] entries) and the one chunk the entry is in, and shares every other
//! chunk. A document changed by a few items is made from the previous one in time that hardly
//! grows with the document.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Index;
use std::sync::Arc;

/// Most entries one chunk holds; a chunk that grows beyond is split in two.
const CHUNK: usize = 64;

type Chunk<K, V> = Arc<Vec<(K, V)>>;

/// A map sorted by key, like [`std::collections::BTreeMap`], whose clones share their entries.
///
/// Entries are kept in key order in chunks of at most 64, each shared behind an `Arc`, and the
/// list of chunks shared behind one too: cloning the map is one reference count, and changing
/// one entry of a clone copies one pointer per chunk and the one chunk the entry is in.
pub struct SortedMap<K, V> {
    chunks: Arc<Vec<Chunk<K, V>>>,
    len: usize,
}

impl<K, V> Clone for SortedMap<K, V> {
    fn clone(&self) -> Self {
        SortedMap {
            chunks: self.chunks.clone(),
            len: self.len,
        }
    }
}

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        SortedMap {
            chunks: Arc::default(),
            len: 0,
        }
    }
}

impl<K, V> SortedMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map has no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries in key order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter {
            chunks: self.chunks.iter(),
            front: [].iter(),
            back: [].iter(),
            left: self.len,
        }
    }

    /// The keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator {
        self.iter().map(|(k, _)| k)
    }

    /// The values in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.iter().map(|(_, v)| v)
    }

    /// The chunk that holds `key` if the map has it (the first chunk whose last key is not
    /// below it; the number of chunks when every key is below it).
    fn chunk_of<Q>(&self, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.chunks.partition_point(|c| match c.last() {
            Some((k, _)) => k.borrow() < key,
            None => true,
        })
    }

    /// The chunk and position within it of `key`.
    fn find<Q>(&self, key: &Q) -> Option<(usize, usize)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let c = self.chunk_of(key);
        let chunk = self.chunks.get(c)?;
        let i = chunk.binary_search_by(|(k, _)| k.borrow().cmp(key)).ok()?;
        Some((c, i))
    }

    /// The value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get_key_value(key).map(|(_, v)| v)
    }

    /// The entry of `key`.
    pub fn get_key_value<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (c, i) = self.find(key)?;
        let (k, v) = &self.chunks[c][i];
        Some((k, v))
    }

    /// Whether the map has `key`.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).is_some()
    }

    /// The entries from `key` on (`key` included), in key order.
    pub fn range_from<Q>(&self, key: &Q) -> impl Iterator<Item = (&K, &V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let c = self.chunk_of(key);
        let start =
            (self.chunks.get(c)).map_or(0, |ch| ch.partition_point(|(k, _)| k.borrow() < key));
        let rest = self.chunks.get(c..).unwrap_or_default();
        rest.iter().enumerate().flat_map(move |(n, ch)| {
            let from = if n == 0 { start } else { 0 };
            ch[from..].iter().map(|(k, v)| (k, v))
        })
    }

    /// The first entry.
    pub fn first_key_value(&self) -> Option<(&K, &V)> {
        self.iter().next()
    }

    /// The last entry.
    pub fn last_key_value(&self) -> Option<(&K, &V)> {
        self.iter().next_back()
    }
}

impl<K: Clone + Ord, V: Clone> SortedMap<K, V> {
    /// Sets `key` to `value`, returning the value it had.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let c = self.chunk_of(&key);
        let chunks = Arc::make_mut(&mut self.chunks);
        let c = if c == chunks.len() {
            // Beyond every key: at the end of the last chunk.
            match chunks.len().checked_sub(1) {
                Some(last) => last,
                None => {
                    chunks.push(Arc::new(vec![(key, value)]));
                    self.len += 1;
                    return None;
                }
            }
        } else {
            c
        };
        let chunk = Arc::make_mut(&mut chunks[c]);
        match chunk.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => Some(std::mem::replace(&mut chunk[i].1, value)),
            Err(i) => {
                chunk.insert(i, (key, value));
                if chunk.len() > CHUNK {
                    let upper = chunk.split_off(chunk.len() / 2);
                    // The lower half keeps the whole chunk's room otherwise: a map filled in
                    // order would hold about twice the entries it has.
                    chunk.shrink_to_fit();
                    chunks.insert(c + 1, Arc::new(upper));
                }
                self.len += 1;
                None
            }
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.remove_entry(key).map(|(_, v)| v)
    }

    /// Removes `key`, returning its entry.
    pub fn remove_entry<Q>(&mut self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (c, i) = self.find(key)?;
        let chunks = Arc::make_mut(&mut self.chunks);
        let chunk = Arc::make_mut(&mut chunks[c]);
        let entry = chunk.remove(i);
        if chunk.is_empty() {
            chunks.remove(c);
        }
        self.len -= 1;
        Some(entry)
    }

    /// The entries in key order, values changeable (entries shared with another map are
    /// copied first).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        Arc::make_mut(&mut self.chunks)
            .iter_mut()
            .flat_map(|c| Arc::make_mut(c).iter_mut().map(|(k, v)| (&*k, v)))
    }

    /// The values in key order, changeable (entries shared with another map are copied
    /// first).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.iter_mut().map(|(_, v)| v)
    }

    /// The value of `key`, changeable (its chunk is copied first if it is shared).
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (c, i) = self.find(key)?;
        let chunks = Arc::make_mut(&mut self.chunks);
        Some(&mut Arc::make_mut(&mut chunks[c])[i].1)
    }

    /// Keeps only the entries `f` accepts.
    pub fn retain(&mut self, mut f: impl FnMut(&K, &mut V) -> bool) {
        let entries: Vec<(K, V)> = std::mem::take(self)
            .into_iter()
            .filter_map(|(k, mut v)| f(&k, &mut v).then_some((k, v)))
            .collect();
        *self = Self::from_sorted(entries);
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// A map of entries sorted by key, without repeats.
    fn from_sorted(entries: Vec<(K, V)>) -> Self {
        let len = entries.len();
        // Chunks three quarters full: room to grow before a split.
        let per = CHUNK * 3 / 4;
        let mut chunks = Vec::with_capacity(len.div_ceil(per));
        let mut rest = entries.into_iter();
        loop {
            let chunk: Vec<(K, V)> = rest.by_ref().take(per).collect();
            if chunk.is_empty() {
                break;
            }
            chunks.push(Arc::new(chunk));
        }
        SortedMap {
            chunks: Arc::new(chunks),
            len,
        }
    }
}

/// The entries of a [`SortedMap`] in key order.
#[derive(Debug)]
pub struct Iter<'a, K, V> {
    chunks: std::slice::Iter<'a, Chunk<K, V>>,
    front: std::slice::Iter<'a, (K, V)>,
    back: std::slice::Iter<'a, (K, V)>,
    left: usize,
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((k, v)) = self.front.next() {
                self.left -= 1;
                return Some((k, v));
            }
            match self.chunks.next() {
                Some(c) => self.front = c.iter(),
                None => {
                    let (k, v) = self.back.next()?;
                    self.left -= 1;
                    return Some((k, v));
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<K, V> DoubleEndedIterator for Iter<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((k, v)) = self.back.next_back() {
                self.left -= 1;
                return Some((k, v));
            }
            match self.chunks.next_back() {
                Some(c) => self.back = c.iter(),
                None => {
                    let (k, v) = self.front.next_back()?;
                    self.left -= 1;
                    return Some((k, v));
                }
            }
        }
    }
}

impl<K, V> ExactSizeIterator for Iter<'_, K, V> {}

impl<K, V> std::iter::FusedIterator for Iter<'_, K, V> {}

impl<'a, K, V> IntoIterator for &'a SortedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<K: Clone, V: Clone> IntoIterator for SortedMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    /// The entries in key order (those shared with another map are copied).
    fn into_iter(self) -> Self::IntoIter {
        let mut out = Vec::with_capacity(self.len);
        let chunks = Arc::try_unwrap(self.chunks).unwrap_or_else(|shared| (*shared).clone());
        for c in chunks {
            match Arc::try_unwrap(c) {
                Ok(c) => out.extend(c),
                Err(shared) => out.extend(shared.iter().cloned()),
            }
        }
        out.into_iter()
    }
}

impl<K: Clone + Ord, V: Clone> FromIterator<(K, V)> for SortedMap<K, V> {
    /// The map of the entries; of entries with the same key, the last is kept.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut entries: Vec<(K, V)> = iter.into_iter().collect();
        // Stable: entries with the same key keep their order, and the last one is kept.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept: Vec<(K, V)> = Vec::with_capacity(entries.len());
        for e in entries {
            match kept.last_mut() {
                Some(last) if last.0 == e.0 => *last = e,
                _ => kept.push(e),
            }
        }
        Self::from_sorted(kept)
    }
}

impl<K: Clone + Ord, V: Clone> Extend<(K, V)> for SortedMap<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K: Clone + Ord, V: Clone, const N: usize> From<[(K, V); N]> for SortedMap<K, V> {
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl<K: Clone + Ord, V: Clone> From<std::collections::BTreeMap<K, V>> for SortedMap<K, V> {
    fn from(map: std::collections::BTreeMap<K, V>) -> Self {
        Self::from_sorted(map.into_iter().collect())
    }
}

impl<K, V, Q> Index<&Q> for SortedMap<K, V>
where
    K: Borrow<Q>,
    Q: Ord + ?Sized,
{
    type Output = V;

    /// The value of `key`.
    ///
    /// # Panics
    ///
    /// When the map does not have `key`, as [`std::collections::BTreeMap`] does.
    fn index(&self, key: &Q) -> &V {
        #[allow(clippy::expect_used)] // the documented contract of indexing a map
        self.get(key).expect("no entry found for key")
    }
}

impl<K: PartialEq, V: PartialEq> PartialEq for SortedMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && (Arc::ptr_eq(&self.chunks, &other.chunks) || self.iter().eq(other.iter()))
    }
}

impl<K: Eq, V: Eq> Eq for SortedMap<K, V> {}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for SortedMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Serialize, V: Serialize> Serialize for SortedMap<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (k, v) in self {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, K, V> Deserialize<'de> for SortedMap<K, V>
where
    K: Deserialize<'de> + Clone + Ord,
    V: Deserialize<'de> + Clone,
{
    /// A map, as [`std::collections::BTreeMap`] reads one: of a key given twice, the last
    /// value is kept.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<K, V>(PhantomData<(K, V)>);

        impl<'de, K, V> Visitor<'de> for Entries<K, V>
        where
            K: Deserialize<'de> + Clone + Ord,
            V: Deserialize<'de> + Clone,
        {
            type Value = SortedMap<K, V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(4096));
                while let Some(entry) = access.next_entry()? {
                    entries.push(entry);
                }
                Ok(entries.into_iter().collect())
            }
        }

        deserializer.deserialize_map(Entries(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed assumption fails the run

    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// A map filled in order (as the YAML reader fills a document's maps) or in reverse keeps
    /// room for about the entries it has; one filled in any order, for at most twice as many.
    /// Its entries are most of a large document's maps.
    #[test]
    fn a_filled_map_holds_little_more_room_than_its_entries() {
        let n = 10_000u32;
        let orders: [(Vec<u32>, usize); 3] = [
            ((0..n).collect(), 5),
            ((0..n).rev().collect(), 5),
            ((0..n).map(|i| i.wrapping_mul(7919) % n).collect(), 8),
        ];
        for (keys, fourths) in orders {
            let mut m = SortedMap::new();
            for k in &keys {
                m.insert(*k, ());
            }
            assert_eq!(m.len(), n as usize);
            let room: usize = m.chunks.iter().map(|c| c.capacity()).sum();
            assert!(
                room <= n as usize * fourths / 4,
                "room for {room} entries, {n} held, first keys {:?}",
                &keys[..3]
            );
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        Insert(u16, u32),
        Remove(u16),
        Clone,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u16..400, any::<u32>()).prop_map(|(k, v)| Step::Insert(k, v)),
            2 => (0u16..400).prop_map(Step::Remove),
            1 => Just(Step::Clone),
        ]
    }

    proptest! {
        /// Every operation gives what it gives on a `BTreeMap`, and a clone taken along the
        /// way keeps the entries it had when it was taken.
        #[test]
        fn the_map_behaves_as_a_btreemap_and_clones_keep_their_entries(
            start in prop::collection::vec((0u16..400, any::<u32>()), 0..300),
            steps in prop::collection::vec(step(), 0..400),
        ) {
            let mut map: SortedMap<u16, u32> = start.iter().copied().collect();
            let mut model: BTreeMap<u16, u32> = start.iter().copied().collect();
            let mut clones = Vec::new();
            for s in steps {
                match s {
                    Step::Insert(k, v) => prop_assert_eq!(map.insert(k, v), model.insert(k, v)),
                    Step::Remove(k) => prop_assert_eq!(map.remove(&k), model.remove(&k)),
                    Step::Clone => clones.push((map.clone(), model.clone())),
                }
                prop_assert_eq!(map.len(), model.len());
            }
            clones.push((map, model));
            for (map, model) in clones {
                prop_assert!(map.iter().eq(model.iter()));
                prop_assert!(map.iter().rev().eq(model.iter().rev()));
                prop_assert_eq!(map.iter().len(), model.len());
                for k in 0..400u16 {
                    prop_assert_eq!(map.get(&k), model.get(&k));
                }
                prop_assert!(map.chunks.iter().all(|c| !c.is_empty() && c.len() <= CHUNK));
                let json = serde_json::to_string(&map).unwrap();
                prop_assert_eq!(&json, &serde_json::to_string(&model).unwrap());
                prop_assert_eq!(map.clone().into_iter().collect::<Vec<_>>(), model.into_iter().collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn a_key_given_twice_keeps_its_last_value() {
        let map: SortedMap<String, u32> =
            serde_json::from_str(r#"{"b": 1, "a": 2, "b": 3}"#).unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map["b"], 3);
        assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "b"]);
    }
}
