//! Tick-bucketed session expiry, like ZooKeeper's ExpiryQueue: a deadline
//! is rounded up to the next tick so whole buckets expire at once.

use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Clone)]
pub struct ExpiryQueue {
    tick_ms: i64,
    bucket_of: HashMap<i64, i64>,
    buckets: BTreeMap<i64, HashSet<i64>>,
}

impl ExpiryQueue {
    pub fn new(tick_ms: i64) -> Self {
        assert!(tick_ms > 0, "tick must be positive");
        ExpiryQueue { tick_ms, bucket_of: HashMap::new(), buckets: BTreeMap::new() }
    }

    /// The bucket for a deadline: the next multiple of tick strictly after
    /// it (ZooKeeper's `roundToNextInterval`).
    fn bucket_for(&self, deadline_ms: i64) -> i64 {
        (deadline_ms.div_euclid(self.tick_ms) + 1).saturating_mul(self.tick_ms)
    }

    /// (Re)schedules `session_id` to expire `timeout_ms` after `now_ms`.
    pub fn touch(&mut self, session_id: i64, timeout_ms: i64, now_ms: i64) {
        let bucket = self.bucket_for(now_ms.saturating_add(timeout_ms));
        if let Some(old) = self.bucket_of.insert(session_id, bucket) {
            if old == bucket {
                return;
            }
            self.remove_from_bucket(session_id, old);
        }
        self.buckets.entry(bucket).or_default().insert(session_id);
    }

    fn remove_from_bucket(&mut self, session_id: i64, bucket: i64) {
        if let Some(set) = self.buckets.get_mut(&bucket) {
            set.remove(&session_id);
            if set.is_empty() {
                self.buckets.remove(&bucket);
            }
        }
    }

    /// Stops tracking; true if it was tracked.
    pub fn remove(&mut self, session_id: i64) -> bool {
        match self.bucket_of.remove(&session_id) {
            Some(bucket) => {
                self.remove_from_bucket(session_id, bucket);
                true
            }
            None => false,
        }
    }

    /// When the earliest bucket expires (for the caller's timer).
    pub fn next_expiration_ms(&self) -> Option<i64> {
        self.buckets.keys().next().copied()
    }

    /// The expiry time currently scheduled for a session.
    pub fn deadline_of(&self, session_id: i64) -> Option<i64> {
        self.bucket_of.get(&session_id).copied()
    }

    /// Removes and returns every session whose bucket is at or before
    /// `now_ms`, sorted for determinism.
    pub fn take_expired(&mut self, now_ms: i64) -> Vec<i64> {
        let mut expired = Vec::new();
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() > now_ms {
                break;
            }
            let set = entry.remove();
            for id in &set {
                self.bucket_of.remove(id);
            }
            let mut ids: Vec<i64> = set.into_iter().collect();
            ids.sort_unstable();
            expired.extend(ids);
        }
        expired
    }

    pub fn len(&self) -> usize {
        self.bucket_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bucket_of.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rounds_up_to_next_tick() {
        let mut q = ExpiryQueue::new(2000);
        q.touch(1, 5000, 100); // 5100 -> 6000
        assert_eq!(q.next_expiration_ms(), Some(6000));
        q.touch(2, 4000, 0); // exactly 4000 -> 6000 (strictly after)
        assert_eq!(q.deadline_of(2), Some(6000));
        assert_eq!(q.take_expired(5999), Vec::<i64>::new());
        assert_eq!(q.take_expired(6000), vec![1, 2]);
        assert!(q.is_empty());
        assert_eq!(q.next_expiration_ms(), None);
    }

    #[test]
    fn touch_moves_and_remove_forgets() {
        let mut q = ExpiryQueue::new(1000);
        q.touch(7, 3000, 0);
        q.touch(7, 3000, 2500);
        assert_eq!(q.len(), 1);
        assert_eq!(q.take_expired(4000), Vec::<i64>::new());
        assert_eq!(q.next_expiration_ms(), Some(6000));
        assert!(q.remove(7));
        assert!(!q.remove(7));
        assert_eq!(q.next_expiration_ms(), None);
    }

    proptest! {
        #[test]
        fn expires_exactly_the_due(ops in proptest::collection::vec((0i64..8, 1i64..10_000, 0i64..20_000), 1..60), now in 0i64..40_000) {
            let mut q = ExpiryQueue::new(1000);
            let mut model: HashMap<i64, i64> = HashMap::new();
            for (id, timeout, at) in ops {
                q.touch(id, timeout, at);
                model.insert(id, ((at + timeout) / 1000 + 1) * 1000);
            }
            let mut due: Vec<i64> = model.iter().filter(|(_, &d)| d <= now).map(|(&id, _)| id).collect();
            due.sort_unstable();
            let mut got = q.take_expired(now);
            got.sort_unstable();
            prop_assert_eq!(got, due);
            prop_assert_eq!(q.len(), model.values().filter(|&&d| d > now).count());
        }
    }
}
