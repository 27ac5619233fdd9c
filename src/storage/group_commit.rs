//! The group-commit policy, sans-IO: which logged txns go into the next
//! write + fdatasync, and what is durable.
//!
//! One write is in flight at a time (the log is one sequential file, so a
//! second write could not be made durable any sooner). Txns the owner logs
//! while a write is in flight wait here and all go into the next write,
//! started the moment the one in flight is durable: the owner never waits
//! for the disk, and the disk never idles while txns wait.
//!
//! The commit shard drives this with its log thread (`server::log_writer`),
//! the simulator with its simulated disk (`sim::peer`): the same policy.

use bytes::Bytes;

/// One write the log writer is to make durable, in zxid order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogWrite {
    /// (zxid, encoded txn) in zxid order.
    pub records: Vec<(i64, Bytes)>,
    /// Start a new log file before writing (after a snapshot).
    pub roll_first: bool,
}

impl LogWrite {
    pub fn last_zxid(&self) -> Option<i64> {
        self.records.last().map(|(z, _)| *z)
    }
}

#[derive(Debug)]
pub struct GroupCommit {
    /// The last zxid of the write in flight.
    in_flight_through: Option<i64>,
    /// Logged while a write was in flight: the next write.
    waiting: Vec<(i64, Bytes)>,
    waiting_bytes: usize,
    roll_requested: bool,
    durable_through: i64,
    /// A write became durable since the owner last asked.
    newly_durable: bool,
}

impl GroupCommit {
    /// `durable_through`: the last zxid already durable in the log.
    pub fn new(durable_through: i64) -> GroupCommit {
        GroupCommit {
            in_flight_through: None,
            waiting: Vec::new(),
            waiting_bytes: 0,
            roll_requested: false,
            durable_through,
            newly_durable: false,
        }
    }

    /// Logs txns (in zxid order, after everything logged before). Returns
    /// the write to start now when none is in flight.
    #[must_use]
    pub fn log(&mut self, records: Vec<(i64, Bytes)>) -> Option<LogWrite> {
        self.waiting_bytes += records.iter().map(|(_, b)| b.len()).sum::<usize>();
        if self.waiting.is_empty() {
            self.waiting = records;
        } else {
            self.waiting.extend(records);
        }
        self.next_write()
    }

    /// The next write starts a new file (ZooKeeper rolls the log at a snapshot).
    pub fn roll(&mut self) {
        self.roll_requested = true;
    }

    /// The write in flight is durable. Returns the next write to start.
    #[must_use]
    pub fn write_done(&mut self) -> Option<LogWrite> {
        if let Some(through) = self.in_flight_through.take() {
            self.durable_through = self.durable_through.max(through);
            self.newly_durable = true;
        }
        self.next_write()
    }

    fn next_write(&mut self) -> Option<LogWrite> {
        if self.in_flight_through.is_some() || self.waiting.is_empty() {
            return None;
        }
        let records = std::mem::take(&mut self.waiting);
        self.waiting_bytes = 0;
        self.in_flight_through = records.last().map(|(z, _)| *z);
        Some(LogWrite { records, roll_first: std::mem::take(&mut self.roll_requested) })
    }

    /// The last zxid durable in the log.
    pub fn durable_through(&self) -> i64 {
        self.durable_through
    }

    /// The durable zxid, if a write became durable since the last call.
    pub fn take_newly_durable(&mut self) -> Option<i64> {
        std::mem::take(&mut self.newly_durable).then_some(self.durable_through)
    }

    /// Nothing in flight and nothing waiting: everything logged is durable.
    pub fn is_idle(&self) -> bool {
        self.in_flight_through.is_none() && self.waiting.is_empty()
    }

    pub fn in_flight(&self) -> bool {
        self.in_flight_through.is_some()
    }

    /// Payload bytes logged but not yet handed to the writer.
    pub fn waiting_bytes(&self) -> usize {
        self.waiting_bytes
    }

    /// After the log was closed and cut (TRUNC) or replaced (SNAP): it now
    /// ends, durably, at `zxid`. Only valid when idle.
    pub fn restart_at(&mut self, zxid: i64) {
        debug_assert!(self.is_idle(), "restart_at with writes outstanding");
        *self = GroupCommit::new(zxid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(zxids: &[i64]) -> Vec<(i64, Bytes)> {
        zxids.iter().map(|z| (*z, Bytes::from(vec![0u8; 10]))).collect()
    }

    fn zxids(w: &LogWrite) -> Vec<i64> {
        w.records.iter().map(|(z, _)| *z).collect()
    }

    #[test]
    fn an_idle_log_writes_at_once_and_a_busy_one_gathers_the_next_write() {
        let mut g = GroupCommit::new(0);
        let first = g.log(recs(&[1, 2])).expect("idle: write now");
        assert_eq!(zxids(&first), vec![1, 2]);
        assert!(g.log(recs(&[3])).is_none(), "one write in flight at a time");
        assert!(g.log(recs(&[4, 5])).is_none());
        assert_eq!(g.waiting_bytes(), 30);
        assert_eq!(g.durable_through(), 0, "nothing durable before the write completes");
        let second = g.write_done().expect("the waiting txns go next, in one write");
        assert_eq!(zxids(&second), vec![3, 4, 5]);
        assert_eq!(g.durable_through(), 2);
        assert_eq!(g.take_newly_durable(), Some(2));
        assert_eq!(g.take_newly_durable(), None);
        assert!(!g.is_idle());
        assert!(g.write_done().is_none());
        assert_eq!(g.durable_through(), 5);
        assert!(g.is_idle());
    }

    #[test]
    fn a_roll_applies_to_the_next_write_only() {
        let mut g = GroupCommit::new(10);
        let _ = g.log(recs(&[11]));
        g.roll();
        let _ = g.log(recs(&[12]));
        let w = g.write_done().expect("next");
        assert!(w.roll_first);
        let _ = g.write_done();
        let w = g.log(recs(&[13])).expect("idle");
        assert!(!w.roll_first);
    }

    #[test]
    fn durable_never_goes_back_and_restart_resets_it() {
        let mut g = GroupCommit::new(100);
        assert!(g.write_done().is_none(), "a completion with nothing in flight changes nothing");
        assert_eq!(g.take_newly_durable(), None);
        let _ = g.log(recs(&[101]));
        let _ = g.write_done();
        assert_eq!(g.durable_through(), 101);
        g.restart_at(50);
        assert_eq!(g.durable_through(), 50);
        assert!(g.is_idle());
    }
}
