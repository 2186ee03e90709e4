//! A map that forgets its oldest keys past a size: what every mesh cache
//! is made of.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A map that forgets its oldest keys past a size.
pub(super) struct Bounded<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    max: usize,
}

impl<K: Clone + Eq + Hash, V: Clone> Bounded<K, V> {
    pub(super) fn new(max: usize) -> Self {
        Bounded { map: HashMap::new(), order: VecDeque::new(), max }
    }

    pub(super) fn get(&self, k: &K) -> Option<V> {
        self.map.get(k).cloned()
    }

    pub(super) fn insert(&mut self, k: K, v: V) {
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push_back(k);
        }
        while self.order.len() > self.max {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    /// Every entry, in no order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }

    pub(super) fn remove(&mut self, k: &K) {
        if self.map.remove(k).is_some() {
            self.order.retain(|o| o != k);
        }
    }
}
