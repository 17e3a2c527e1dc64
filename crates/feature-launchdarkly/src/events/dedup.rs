//! The context keys seen recently (least recently used first out), so that a context gets
//! one `index` event per flush of this set, as in LaunchDarkly's SDKs (capacity 1000,
//! cleared every 5 minutes by default).

use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::sync::Arc;

pub(crate) struct KeySet {
    capacity: usize,
    tick: u64,
    /// Key → the tick of its last use.
    last_use: FxHashMap<Arc<str>, u64>,
    /// Every key once, in the order of insertion or of the use it had when last moved; a
    /// use only updates `last_use` (no allocation), and eviction moves a key whose tick is
    /// newer than its place to the back instead of evicting it (a second chance), so the key
    /// evicted is the least recently used.
    order: VecDeque<(Arc<str>, u64)>,
}

impl KeySet {
    pub(crate) fn new(capacity: usize) -> KeySet {
        KeySet {
            capacity: capacity.max(1),
            tick: 0,
            last_use: FxHashMap::default(),
            order: VecDeque::new(),
        }
    }

    /// Records a use of `key`; whether it was already in the set.
    pub(crate) fn put(&mut self, key: &str) -> bool {
        self.tick += 1;
        if let Some(t) = self.last_use.get_mut(key) {
            *t = self.tick;
            return true;
        }
        let k: Arc<str> = key.into();
        self.last_use.insert(k.clone(), self.tick);
        self.order.push_back((k, self.tick));
        while self.last_use.len() > self.capacity {
            let Some((k, t)) = self.order.pop_front() else {
                break;
            };
            match self.last_use.get(&k) {
                Some(&last) if last == t => {
                    self.last_use.remove(&k);
                }
                Some(&last) => self.order.push_back((k, last)),
                None => {}
            }
        }
        false
    }

    pub(crate) fn clear(&mut self) {
        self.last_use.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_key_goes_first() {
        let mut s = KeySet::new(2);
        assert!(!s.put("a"));
        assert!(!s.put("b"));
        assert!(s.put("a"));
        assert!(!s.put("c")); // evicts b, the least recently used
        assert!(s.put("a"));
        assert!(!s.put("b"));
        for _ in 0..100 {
            assert!(s.put("b"));
        }
        assert_eq!(s.order.len(), 2);
        s.clear();
        assert!(!s.put("b"));
    }
}
