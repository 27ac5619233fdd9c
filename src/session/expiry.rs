//! Tick-bucketed session expiry, like ZooKeeper's ExpiryQueue: a deadline
//! is rounded up to the next tick so whole buckets expire at once.
//!
//! The rule (ZooKeeper's ExpiryQueue + SessionTrackerImpl): a session heard
//! from at `h` with timeout `T` is due at the first tick boundary strictly
//! after `h + T`, and the owner checks at every tick boundary
//! (`next_tick_boundary_ms`), so it expires in `(h + T, h + T + tick]`.
//! Sans-IO: every time is a millisecond count on the caller's clock.

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

    pub fn tick_ms(&self) -> i64 {
        self.tick_ms
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

    /// A heartbeat heard at `heard_at_ms`, possibly reported late and out
    /// of order (workers batch them): moves the deadline later, never
    /// earlier, since the session may have been heard from since.
    pub fn heard_from(&mut self, session_id: i64, timeout_ms: i64, heard_at_ms: i64) {
        let bucket = self.bucket_for(heard_at_ms.saturating_add(timeout_ms));
        if self.bucket_of.get(&session_id).is_some_and(|&current| current >= bucket) {
            return;
        }
        self.touch(session_id, timeout_ms, heard_at_ms);
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

/// The first tick boundary strictly after `now_ms`: when buckets fall due,
/// hence when the owner's next expiry check must run (ZooKeeper's tracker
/// sleeps exactly until its next expiration time).
pub fn next_tick_boundary_ms(tick_ms: i64, now_ms: i64) -> i64 {
    (now_ms.div_euclid(tick_ms.max(1)) + 1).saturating_mul(tick_ms.max(1))
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

    #[test]
    fn heard_from_only_moves_a_deadline_later() {
        let mut q = ExpiryQueue::new(500);
        q.heard_from(1, 2000, 1000); // 3000 -> 3500
        assert_eq!(q.deadline_of(1), Some(3500));
        // An older heartbeat reported after a newer one changes nothing.
        q.heard_from(1, 2000, 200);
        assert_eq!(q.deadline_of(1), Some(3500));
        q.heard_from(1, 2000, 1600); // 3600 -> 4000
        assert_eq!(q.deadline_of(1), Some(4000));
        assert_eq!(q.take_expired(3999), Vec::<i64>::new());
        assert_eq!(q.take_expired(4000), vec![1]);
        // Untracked: scheduled as by touch.
        q.heard_from(2, 2000, 0);
        assert_eq!(q.deadline_of(2), Some(2500));
    }

    #[test]
    fn boundaries_are_strictly_after_now() {
        assert_eq!(next_tick_boundary_ms(500, 0), 500);
        assert_eq!(next_tick_boundary_ms(500, 499), 500);
        assert_eq!(next_tick_boundary_ms(500, 500), 1000);
        assert_eq!(next_tick_boundary_ms(500, 1234), 1500);
    }

    /// The expiry rule end to end, as the commit shard drives it: checks run
    /// at each tick boundary, and each heartbeat `(heard_at, reported_at)`
    /// reaches the queue with its own time, possibly late (workers flush
    /// every half tick) and out of order. Returns when the session expired.
    fn expiry_time(tick: i64, timeout: i64, created_at: i64, heartbeats: &[(i64, i64)]) -> i64 {
        let mut q = ExpiryQueue::new(tick);
        q.touch(9, timeout, created_at);
        let mut reports: Vec<(i64, i64)> = heartbeats.iter().map(|&(heard, reported)| (reported, heard)).collect();
        reports.sort_unstable();
        let mut reports = reports.into_iter().peekable();
        let mut check = next_tick_boundary_ms(tick, created_at);
        loop {
            while let Some(&(reported, heard)) = reports.peek() {
                if reported > check {
                    break;
                }
                q.heard_from(9, timeout, heard);
                reports.next();
            }
            if q.take_expired(check) == vec![9] {
                return check;
            }
            check = next_tick_boundary_ms(tick, check);
        }
    }

    #[test]
    fn silent_session_expires_between_timeout_and_timeout_plus_tick() {
        // Heard at 1000 (reported at 1249), timeout 2000, tick 500: due at 3500.
        assert_eq!(expiry_time(500, 2000, 0, &[(1000, 1249)]), 3500);
        // A deadline exactly on a boundary goes to the next one.
        assert_eq!(expiry_time(500, 2000, 0, &[(1500, 1500)]), 4000);
        assert_eq!(expiry_time(500, 2000, 0, &[(1499, 1500)]), 3500);
        // A stale report after a fresh one does not bring expiry forward.
        assert_eq!(expiry_time(500, 2000, 0, &[(1400, 1450), (1000, 1600)]), 3500);
        // Never heard from again: timeout after creation, rounded up.
        assert_eq!(expiry_time(500, 2000, 10, &[]), 2500);
    }

    proptest! {
        #[test]
        fn silent_session_expiry_obeys_the_bound(
            tick in 1i64..3000,
            timeout_ticks in 2i64..20,
            beats in proptest::collection::vec((0i64..1000, 0i64..50), 0..20),
            created_at in 0i64..100_000,
        ) {
            let timeout = timeout_ticks * tick;
            let mut heartbeats = Vec::new();
            let mut heard = created_at;
            for (gap, delay_percent) in beats {
                // A client pings well within its timeout; a worker reports
                // a heartbeat less than half a tick after it.
                heard += gap % (timeout / 3 + 1);
                heartbeats.push((heard, heard + tick * delay_percent / 100));
            }
            let last = heartbeats.last().map_or(created_at, |&(h, _)| h);
            let at = expiry_time(tick, timeout, created_at, &heartbeats);
            prop_assert!(at > last + timeout, "expired at {} before {} + {}", at, last, timeout);
            prop_assert!(at <= last + timeout + tick, "expired at {} after {} + {} + {}", at, last, timeout, tick);
        }

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
