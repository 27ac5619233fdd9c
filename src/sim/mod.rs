//! Deterministic simulation (issue #8): a standalone server or a 3- or
//! 5-server ensemble (plus 0-2 observers) in one thread, from one seed, on the production sans-IO cores
//! (`zab::election`, `zab::leader::LeaderCore`, `zab::follower::LearnerCore`,
//! `zab::sync_plan`, the election and quorum codecs, `storage::txn`,
//! `storage::log_format`, the SNAP stream, `tree::DataTree`), with a
//! simulated clock, disk and network, seeded faults (crashes, pauses,
//! partitions, broken connections, torn tails, failed log writes and
//! fsyncs, damaged reads at restart, clock jumps), clients that write,
//! sync + read, read plainly, set watches and hold sessions (with
//! ephemerals, on the production session table and `ExpiryQueue`),
//! register clients that write, compare-and-set and sync + read
//! (`registers`), and the checkers of `oracle`, `sessions`,
//! `world::Ctx::watch_fired` and `linearize` (whole register histories).
//! docs/simulation.md says what is simulated and what is not.
//!
//! ```text
//! let outcome = zoocore::sim::run_seed(42, 3);   // SimConfig::from_seed + run
//! assert!(outcome.passed(), "{}", outcome.report());
//! ```

pub mod disk;
pub mod linearize;
pub mod minimise;
pub mod net;
pub mod oracle;
pub mod peer;
pub mod registers;
pub mod rng;
pub mod sessions;
pub mod world;

pub use minimise::{minimise, Minimised};
pub use oracle::Failure;
pub use world::{Plant, SimConfig, SimOutcome, World};

/// Runs one seed with the default world for `servers` servers.
pub fn run_seed(seed: u64, servers: usize) -> SimOutcome {
    World::new(SimConfig::from_seed(seed, servers)).run()
}

/// Runs one configuration.
pub fn run(config: SimConfig) -> SimOutcome {
    World::new(config).run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_ensemble_elects_commits_and_converges() {
        let mut config = SimConfig::from_seed(1, 3);
        config.faults = false;
        let out = run(config);
        assert!(out.passed(), "{}", out.report());
        assert!(out.writes_acked > 50, "{}", out.report());
        assert_eq!(out.epochs, 1, "{}", out.report());
    }

    #[test]
    fn same_seed_same_trace() {
        let (a, b) = (run_seed(7, 3), run_seed(7, 3));
        assert_eq!(a.trace_hash, b.trace_hash);
        assert_eq!(a.trace_lines, b.trace_lines);
        assert_ne!(a.trace_hash, run_seed(8, 3).trace_hash);
    }
}
