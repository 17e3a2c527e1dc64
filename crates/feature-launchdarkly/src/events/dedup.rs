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
    /// Uses in order; entries whose tick is no longer the key's last use are stale.
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
        let tick = self.tick;
        if let Some((k, t)) = self.last_use.get_key_value(key) {
            let k = k.clone();
            let _ = t;
            self.last_use.insert(k.clone(), tick);
            self.order.push_back((k, tick));
            self.compact();
            return true;
        }
        let k: Arc<str> = key.into();
        self.last_use.insert(k.clone(), tick);
        self.order.push_back((k, tick));
        while self.last_use.len() > self.capacity {
            let Some((k, t)) = self.order.pop_front() else {
                break;
            };
            if self.last_use.get(&k) == Some(&t) {
                self.last_use.remove(&k);
            }
        }
        self.compact();
        false
    }

    /// Drops stale entries once they outnumber the live ones.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.capacity + 16 {
            let live = &self.last_use;
            self.order.retain(|(k, t)| live.get(k) == Some(t));
        }
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
        assert!(s.order.len() <= 2 * 2 + 16);
        s.clear();
        assert!(!s.put("b"));
    }
}
