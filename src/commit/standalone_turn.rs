//! The order of one standalone turn, sans-IO (no election, no quorum: a
//! batch is visible once the log says it is durable).
//!
//! Production's `CommitShard::run_standalone` and the simulator's
//! `sim::peer::Standalone` both drive a `StandaloneTurn` after feeding the
//! turn's writes and syncs, in arrival order, into one batch: sessions due
//! expire into it, the batch goes to the log (which does not wait for the
//! disk) and into the pending queue, and then every pending batch the log
//! reports durable is published, so nothing of a batch reaches a client
//! before its fsync.

use crate::commit::TurnBatch;

/// What the driver does next.
#[derive(Debug, PartialEq, Eq)]
pub enum StandaloneStep {
    /// Expire the sessions due into the batch (after the turn's requests).
    ExpireSessions,
    /// The batch has entries: hand its txns to the log, seal it into the
    /// pending queue, maybe start a snapshot.
    HandToLog,
    /// Tell `StandaloneTurn::durable` how far the log is durable.
    ReportDurable,
    /// Publish every pending batch through this zxid.
    Publish(i64),
    /// The turn is over.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Idle,
    Requests,
    Expired,
    AwaitingDurable,
    Durable(i64),
}

/// A standalone server's turn order.
pub struct StandaloneTurn {
    stage: Stage,
}

impl Default for StandaloneTurn {
    fn default() -> Self {
        StandaloneTurn { stage: Stage::Idle }
    }
}

impl StandaloneTurn {
    /// The turn's requests are in the batch.
    pub fn begin(&mut self) {
        debug_assert_eq!(self.stage, Stage::Idle, "a standalone turn began inside another");
        self.stage = Stage::Requests;
    }

    /// The log's durable point after `ReportDurable`.
    pub fn durable(&mut self, durable_through: i64) {
        debug_assert_eq!(self.stage, Stage::AwaitingDurable);
        self.stage = Stage::Durable(durable_through);
    }

    pub fn next(&mut self, batch: &impl TurnBatch) -> StandaloneStep {
        match self.stage {
            Stage::Idle => StandaloneStep::Done,
            Stage::Requests => {
                self.stage = Stage::Expired;
                StandaloneStep::ExpireSessions
            }
            Stage::Expired => {
                self.stage = Stage::AwaitingDurable;
                if batch.has_entries() {
                    StandaloneStep::HandToLog
                } else {
                    StandaloneStep::ReportDurable
                }
            }
            Stage::AwaitingDurable => StandaloneStep::ReportDurable,
            Stage::Durable(through) => {
                self.stage = Stage::Idle;
                StandaloneStep::Publish(through)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    struct Batch(Vec<(i64, Bytes)>);

    impl TurnBatch for Batch {
        fn logged(&self) -> &[(i64, Bytes)] {
            &self.0
        }
        fn has_entries(&self) -> bool {
            !self.0.is_empty()
        }
    }

    fn steps(batch: &mut Batch, durable: i64) -> Vec<StandaloneStep> {
        let mut turn = StandaloneTurn::default();
        turn.begin();
        let mut steps = Vec::new();
        loop {
            let step = turn.next(batch);
            match step {
                StandaloneStep::HandToLog => batch.0.clear(),
                StandaloneStep::ReportDurable => turn.durable(durable),
                StandaloneStep::Done => return steps,
                _ => {}
            }
            steps.push(step);
        }
    }

    #[test]
    fn expiry_joins_the_batch_before_it_is_logged_and_it_is_published_only_once_durable() {
        use StandaloneStep::*;
        let mut batch = Batch(vec![(7, Bytes::from_static(b"txn"))]);
        assert_eq!(steps(&mut batch, 6), [ExpireSessions, HandToLog, ReportDurable, Publish(6)]);
        // A turn with nothing to log still publishes what became durable.
        assert_eq!(steps(&mut Batch(Vec::new()), 7), [ExpireSessions, ReportDurable, Publish(7)]);
    }
}
