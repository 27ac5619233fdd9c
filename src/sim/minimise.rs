//! Minimising a failing seed: the smallest world (fewest workloads and
//! fault kinds, shortest run) in which the same seed still fails the same
//! checker, so its trace is short enough to read.
//!
//! Every workload and fault kind draws from its own random stream (see
//! `SimConfig`), so turning one off leaves the others' draws as they were;
//! the run still changes (fewer events interleave), which is why each
//! step is kept only if the run still fails, and the same checker fails.
//! Greedy, one feature at a time, then the run's length halved while it
//! still fails: a handful of runs, each a fraction of a second.

use super::world::{SimConfig, World};

/// A part of the world that can be left out, and the `zoocore-sim` flag
/// that leaves it out.
struct Feature {
    flag: &'static str,
    is_on: fn(&SimConfig) -> bool,
    turn_off: fn(&mut SimConfig),
}

/// In the order they are tried: the workloads first (they make the
/// longest traces), then the fault kinds.
const FEATURES: [Feature; 13] = [
    Feature { flag: "--no-registers", is_on: |c| c.registers, turn_off: |c| c.registers = false },
    Feature { flag: "--no-sessions", is_on: |c| c.sessions, turn_off: |c| c.sessions = false },
    // Parts of the session workload: only worth a flag while it runs.
    Feature { flag: "--no-moves", is_on: |c| c.moves && c.sessions, turn_off: |c| c.moves = false },
    Feature { flag: "--no-reconnects", is_on: |c| c.reconnects && c.sessions, turn_off: |c| c.reconnects = false },
    Feature { flag: "--no-watches", is_on: |c| c.watches, turn_off: |c| c.watches = false },
    Feature { flag: "--no-plain-reads", is_on: |c| c.plain_reads, turn_off: |c| c.plain_reads = false },
    Feature { flag: "--no-early-writes", is_on: |c| c.early_writes, turn_off: |c| c.early_writes = false },
    Feature { flag: "--no-sync-reads", is_on: |c| c.sync_reads, turn_off: |c| c.sync_reads = false },
    Feature { flag: "--no-snapshots", is_on: |c| c.snapshots, turn_off: |c| c.snapshots = false },
    Feature { flag: "--no-clock-jumps", is_on: |c| c.clock_jumps, turn_off: |c| c.clock_jumps = false },
    Feature { flag: "--no-disk-faults", is_on: |c| c.disk_faults, turn_off: |c| c.disk_faults = false },
    Feature {
        flag: "--no-snapshot-damage",
        is_on: |c| c.knobs.snapshot_damage && c.disk_faults,
        turn_off: |c| c.knobs.snapshot_damage = false,
    },
    Feature { flag: "--observers 0", is_on: |c| c.observers > 0, turn_off: |c| c.observers = 0 },
];

/// The shortest run length tried (the cores need a few ticks to elect).
const SHORTEST_RUN_MS: u64 = 2_000;

/// What `minimise` found.
pub struct Minimised {
    /// The smallest world that still fails.
    pub config: SimConfig,
    /// The flags that leave out what it left out (`--duration-ms N` last
    /// if the run was shortened), to append to the original replay line.
    pub flags: Vec<String>,
    pub checker: &'static str,
    /// When the smallest world fails, and how.
    pub at_ms: u64,
    pub detail: String,
    /// Runs it took.
    pub runs: u32,
}

/// Minimises `config`'s failure. Err when the run does not fail.
pub fn minimise(config: SimConfig) -> Result<Minimised, String> {
    let mut runs = 1;
    let first = World::new(config.clone()).run();
    let Some(failure) = first.failure else {
        return Err(format!("seed {} does not fail: nothing to minimise", config.seed));
    };
    let checker = failure.checker;
    let mut best =
        Minimised { config, flags: Vec::new(), checker, at_ms: failure.at_ms, detail: failure.detail, runs: 0 };
    let mut still_fails = |candidate: &SimConfig, flag: String, best: &mut Minimised| {
        runs += 1;
        let out = World::new(candidate.clone()).run();
        match out.failure {
            Some(f) if f.checker == checker => {
                best.config = candidate.clone();
                best.flags.push(flag);
                best.at_ms = f.at_ms;
                best.detail = f.detail;
                true
            }
            _ => false,
        }
    };
    for feature in &FEATURES {
        if !(feature.is_on)(&best.config) {
            continue;
        }
        let mut candidate = best.config.clone();
        (feature.turn_off)(&mut candidate);
        still_fails(&candidate, feature.flag.to_owned(), &mut best);
    }
    // Shorter runs: halve while the failure stays (faults end at a third
    // of the run, as `--duration-ms` sets it).
    let mut duration = best.config.duration_ms / 2;
    while duration >= SHORTEST_RUN_MS {
        let candidate = best.config.clone().with_duration(duration);
        if !still_fails(&candidate, format!("--duration-ms {duration}"), &mut best) {
            break;
        }
        duration /= 2;
    }
    // Only the last duration counts on the replay line.
    let last_duration = best.flags.iter().rposition(|f| f.starts_with("--duration-ms"));
    if let Some(last) = last_duration {
        let kept = best.flags.remove(last);
        best.flags.retain(|f| !f.starts_with("--duration-ms"));
        best.flags.push(kept);
    }
    best.runs = runs;
    Ok(best)
}
