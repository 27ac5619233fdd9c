//! When the commit shard's loop wakes with nothing else to do, sans-IO:
//! production's ticker task and the simulator's `Ev::Wake` both follow it.
//!
//! The loop needs a wake for session expiry (the expiry queue's buckets
//! fall due on tick boundaries), the reaper, and, in an ensemble, the ZAB
//! cores' timers (the leader pings every half tick, a learner checks its
//! leader's silence). A wake is due at the next boundary of the session
//! clock, so it lands exactly when a bucket falls due.

use crate::session::expiry::next_tick_boundary_ms;

/// The wake period: every half tick in an ensemble (the leader pings that
/// often), every tick standalone (only expiry and the reaper run).
pub fn wake_interval_ms(tick_time_ms: i64, in_ensemble: bool) -> i64 {
    if in_ensemble {
        (tick_time_ms / 2).max(1)
    } else {
        tick_time_ms.max(1)
    }
}

/// The next wake strictly after `now_ms` on the session clock.
pub fn next_wake_ms(interval_ms: i64, now_ms: i64) -> i64 {
    next_tick_boundary_ms(interval_ms, now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_land_on_the_session_clocks_boundaries() {
        assert_eq!(wake_interval_ms(2000, true), 1000);
        assert_eq!(wake_interval_ms(2000, false), 2000);
        assert_eq!(wake_interval_ms(1, true), 1, "never a zero period");
        assert_eq!(next_wake_ms(1000, 0), 1000);
        assert_eq!(next_wake_ms(1000, 999), 1000);
        assert_eq!(next_wake_ms(1000, 1000), 2000, "strictly after now");
    }
}
