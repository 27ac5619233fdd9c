//! The deterministic simulator (src/sim) over a fixed list of seeds: every
//! checker must hold on each; the same seed must replay the same trace;
//! and a planted bug must be caught (so a green run means something).
//! A failing seed prints its report: replay it with `zoocore-sim --seed N`.

use zoocore::sim::{run, run_seed, Plant, SimConfig};

fn assert_seeds(servers: usize, seeds: std::ops::Range<u64>) {
    let mut failures = Vec::new();
    for seed in seeds {
        let out = run_seed(seed, servers);
        if !out.passed() {
            failures.push(out.report());
        }
    }
    assert!(failures.is_empty(), "{} seed(s) failed:\n{}", failures.len(), failures.join("\n"));
}

// Widened from 0..200 / 0..80 once the ZOOKEEPER-1732 fix made 0..3000 /
// 0..1500 pass. Since disk faults, clock jumps and observers joined the
// swarm, about 20 s each on the shared 2-core box.
#[test]
fn three_servers_fixed_seeds() {
    assert_seeds(3, 0..800);
}

#[test]
fn five_servers_fixed_seeds() {
    assert_seeds(5, 0..400);
}

/// A standalone server (`--servers 1`), driven as `run_standalone`:
/// execute, group-commit log, publish once durable, recover at restart,
/// under crashes (torn unsynced bytes), failed writes and fsyncs, pauses
/// and clock jumps. About 1 s.
#[test]
fn standalone_fixed_seeds() {
    assert_seeds(1, 0..300);
}

#[test]
fn standalone_runs_crash_exit_and_recover() {
    let (mut exits, mut restarts, mut crashes, mut acked) = (0, 0, 0, 0);
    for seed in 0..20u64 {
        let mut w = zoocore::sim::World::new(SimConfig::from_seed(seed, 1));
        w.keep_full_trace();
        let out = w.run();
        assert!(out.passed(), "{}", out.report());
        exits += out.expected_exits;
        acked += out.writes_acked;
        crashes += out.full_trace.iter().filter(|l| l.contains("CRASH")).count();
        restarts += out
            .full_trace
            .iter()
            .filter(|l| l.contains("STANDALONE serving at zxid 0x") && !l.contains("zxid 0x0"))
            .count();
    }
    assert!(
        exits > 5 && crashes > 5 && restarts > 10 && acked > 5_000,
        "{exits} exits, {crashes} crashes, {restarts} restarts with data, {acked} acked"
    );
}

/// A lone server that acknowledges before fsync loses the writes a crash
/// takes with the page cache.
#[test]
fn planted_ack_before_fsync_is_caught_standalone() {
    let caught = (0..20u64).filter(|&seed| {
        let mut config = SimConfig::from_seed(seed, 1);
        config.knobs.plant = Some(Plant::AckBeforeFsync);
        run(config).failure.as_ref().is_some_and(|f| f.checker == "no-acked-write-lost")
    });
    assert!(caught.count() >= 10, "ack-before-fsync (standalone) caught on fewer than 10 of 20 seeds");
}

/// Seeds that once found a bug, kept so it stays fixed.
/// 435: a follower crashed after logging a DIFF's txns and before writing
/// currentEpoch, and could not start again (epoch_files::reconcile_epochs).
/// 274, 416, 727, 1296, 1354, 1713, 2274, 2897, 2922 (3 servers), 976 (5):
/// settled votes kept the peer epoch they were elected with (no
/// ZOOKEEPER-1732 updateElectionVote), so a follower that joined a
/// re-elected leader and that leader disagreed on the epoch, and a server
/// LOOKING after the heal never saw a quorum for the running leader.
#[test]
fn regression_seeds() {
    let convergence_3: [u64; 9] = [274, 416, 727, 1296, 1354, 1713, 2274, 2897, 2922];
    let seeds = [(3, 435), (5, 976)].into_iter().chain(convergence_3.map(|s| (3, s)));
    for (servers, seed) in seeds {
        // As found (before the sync workload, disk faults, clock jumps,
        // observers and periodic snapshots existed), with the syncs, and in
        // today's swarm.
        for (sync_reads, later_faults) in [(false, false), (true, false), (true, true)] {
            let mut config = SimConfig::from_seed(seed, servers);
            config.sync_reads = sync_reads;
            if !later_faults {
                config.disk_faults = false;
                config.clock_jumps = false;
                config.observers = 0;
                config.snapshots = false;
            }
            let out = run(config);
            assert!(out.passed(), "sync_reads {sync_reads}, later faults {later_faults}: {}", out.report());
        }
    }
}

/// Seeds 858 (5 servers) and 922 (3 servers): a register client's write
/// answered on one server raised the read-your-writes floor of its next
/// plain-read connection, on another server, because the two connections'
/// generation numbers were equal (the checker compared generations only).
/// A checker bug, not a server one; the runs now hold.
#[test]
fn seeds_858_and_922_read_your_writes_floor_is_per_connection() {
    for (servers, seed) in [(5, 858), (3, 922)] {
        let out = run_seed(seed, servers);
        assert!(out.passed(), "{}", out.report());
        assert!(out.register_plain_reads > 0, "{}", out.report());
    }
}

/// Seed 3234, 3 servers: a follower's older log file was damaged on the
/// device; recovery never reads it (a snapshot covers it), but the TRUNC
/// plan does, so each leader's TRUNC failed, the follower went back to
/// election, and the next sync TRUNCated again: no quorum established for
/// the rest of the run (liveness). The learner now stops the process when
/// a TRUNC fails, as Apache's does; the operator wipes it and it resyncs.
#[test]
fn seed_3234_a_trunc_that_cannot_read_the_log_stops_the_server() {
    let out = run_seed(3234, 3);
    assert!(out.passed(), "{}", out.report());
    assert!(out.expected_exits > 0 && out.wipes > 0, "the run no longer reaches the failed TRUNC: {}", out.report());
}

/// Seed 588, 5 servers, without the register workload: a leader that never
/// established sent its log (a txn proposed in the epoch before, never
/// acknowledged) to the observers in a DIFF; the next leader took that log
/// over in a SNAP and established. A follower's read of the txn was then
/// committed state, but `read-committed` saw only the observers' report of
/// it (not a voter's) and ignored the established snapshot. A checker bug,
/// not a server one; the run must pass.
#[test]
fn seed_588_read_inside_an_established_snapshot_reported_by_observers() {
    let mut config = SimConfig::from_seed(588, 5);
    config.registers = false;
    let out = run(config);
    assert!(out.passed(), "{}", out.report());
    assert!(out.plain_reads > 0 && out.epochs >= 3, "the run no longer reaches the read: {}", out.report());
}

/// Seeds where recovery rebuilt a wrong state: history was lost at a point
/// (an unreadable snapshot it fell back past; a damaged batch in an older
/// log file, classified Torn and cut) and the next record was counter 1 of
/// a later epoch, which `zxid_follows` accepts as a continuation. 336, 516,
/// 2074 (3 servers, snapshot damage on): caught by recovery-equals-live,
/// agreement and no-acked-write-lost (the server then served, DIFF-synced,
/// without the snapshot's writes). 1004 (5 servers, the default swarm): a
/// misdirected sector in an older log, cut as Torn, epoch 2 skipped.
/// (servers, seed, snapshot damage)
// Found as 247, 252 and 336; 247 and 252 stopped reaching the gap once the
// simulated leaders indexed their on-disk log for DIFFs as production's do
// (every run's course changed), and 374 and 516 were the other seeds of
// 0..600 that fail without the fix. 374 stopped reaching it when the
// simulator took production's order between roles (`BetweenRoles`: clients
// dropped after the log drains); 2074 is the first seed after 516 that
// fails without the fix since.
const RECOVERY_GAP_SEEDS: [(usize, u64, bool); 4] = [(3, 336, true), (3, 516, true), (3, 2074, true), (5, 1004, false)];

fn recovery_gap_run(
    servers: usize,
    seed: u64,
    snapshot_damage: bool,
    checks_digests: bool,
) -> zoocore::sim::SimOutcome {
    let mut config = SimConfig::from_seed(seed, servers);
    // As found: before the session and register workloads and periodic
    // snapshots existed (they shift the timing of the damaged reads these
    // seeds need).
    config.sessions = false;
    config.snapshots = false;
    config.registers = false;
    config.knobs.snapshot_damage = snapshot_damage;
    config.knobs.recovery_checks_digests = checks_digests;
    run(config)
}

/// The fix (recovery checks each replayed txn's carried digest, and a
/// damaged tail in a log that is not the newest is corruption, not a torn
/// write), in production's recovery and the simulator's mirror of it: the
/// seeds pass.
#[test]
fn recovery_gap_seeds_pass_with_the_recovery_fix() {
    for (servers, seed, snapshot_damage) in RECOVERY_GAP_SEEDS {
        let out = recovery_gap_run(servers, seed, snapshot_damage, true);
        assert!(out.passed(), "{}", out.report());
        assert!(out.read_faults > 0, "{}", out.report());
    }
}

/// The simulator found it: without the digest check every one of the
/// snapshot seeds fails. (Seed 1004 passes even then: recovery now calls a
/// damaged tail in an older log Corrupt and refuses to start, so the
/// operator wipes the server instead of it skipping epoch 2.)
#[test]
fn recovery_gap_bug_is_found() {
    for (servers, seed, snapshot_damage) in RECOVERY_GAP_SEEDS.into_iter().filter(|(_, seed, _)| *seed != 1004) {
        let out = recovery_gap_run(servers, seed, snapshot_damage, false);
        let checker = out.failure.as_ref().map(|f| f.checker);
        assert!(
            matches!(checker, Some("recovery-equals-live" | "agreement" | "no-acked-write-lost")),
            "seed {seed}: {}",
            out.report()
        );
    }
}

#[test]
fn disk_faults_clock_jumps_and_observers_happen_and_hold() {
    // Guard against a swarm in which the new faults never fire. (60 seeds:
    // 40 held 3 wipes, and 2 once failed snapshot writes shifted the runs.)
    let (mut exits, mut damaged, mut wipes, mut jumps, mut observer_runs) = (0, 0, 0, 0, 0);
    for seed in 0..60u64 {
        let mut w = zoocore::sim::World::new(SimConfig::from_seed(seed, 3));
        w.keep_full_trace();
        let out = w.run();
        assert!(out.passed(), "{}", out.report());
        exits += out.expected_exits;
        damaged += out.read_faults;
        wipes += out.wipes;
        jumps += out.clock_jumps;
        if out.observers > 0 {
            // An observer (sid 4 or 5 with 3 voters) served and answered syncs.
            let observer_served =
                out.full_trace.iter().any(|l| (l.contains(" s4 ") || l.contains(" s5 ")) && l.contains("SERVING"));
            assert!(observer_served, "seed {seed}: no observer served\n{}", out.report());
            observer_runs += 1;
        }
    }
    assert!(exits > 20 && damaged > 5 && wipes > 2 && jumps > 20 && observer_runs > 10, "{exits} exits, {damaged} damaged reads, {wipes} wipes, {jumps} clock jumps, {observer_runs} runs with observers");
}

/// A log that takes a failed fdatasync as done ("fsyncgate") acknowledges
/// writes that never reach the device.
#[test]
fn planted_ignore_fsync_error_is_caught() {
    let caught = (0..100u64).find(|&seed| {
        let mut config = SimConfig::from_seed(seed, 3);
        config.knobs.plant = Some(Plant::IgnoreFsyncError);
        !run(config).passed()
    });
    assert!(caught.is_some(), "ignore-fsync-error survived 100 seeds");
}

#[test]
fn same_seed_same_trace_and_outcome() {
    for seed in [3, 17, 101] {
        let (a, b) = (run_seed(seed, 3), run_seed(seed, 3));
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!(a.trace_lines, b.trace_lines, "seed {seed}");
        assert_eq!(a.trace_tail, b.trace_tail, "seed {seed}");
        assert_eq!((a.writes_acked, a.committed_zxids, a.epochs), (b.writes_acked, b.committed_zxids, b.epochs));
        assert_eq!(a.final_states, b.final_states, "seed {seed}");
    }
    assert_ne!(run_seed(3, 3).trace_hash, run_seed(4, 3).trace_hash);
}

#[test]
fn runs_exercise_faults_and_recovery() {
    // Guard against a simulator that passes because nothing happens
    // (seed 6 crashes servers, partitions, and moves leadership).
    let mut config = SimConfig::from_seed(6, 3);
    let out = {
        config.faults = true;
        let mut w = zoocore::sim::World::new(config);
        w.keep_full_trace();
        w.run()
    };
    assert!(out.passed(), "{}", out.report());
    let count = |needle: &str| out.full_trace.iter().filter(|l| l.contains(needle)).count();
    assert!(count("CRASH") > 0 && count("PARTITION") > 0, "no faults injected");
    assert!(count("ESTABLISHED") >= 2, "leadership never moved");
    // Three first starts, then restarts after crashes.
    assert!(count("restart: recovered") > 3, "no restart from disk");
    assert!(count("PAUSED") > 0 && out.syncs_answered > 50, "{}", out.report());
    assert!(out.writes_acked > 100, "{}", out.report());
}

#[test]
fn syncs_are_answered_on_leaders_and_followers() {
    let mut config = SimConfig::from_seed(3, 3);
    config.faults = false;
    let mut w = zoocore::sim::World::new(config);
    w.keep_full_trace();
    let out = w.run();
    assert!(out.passed(), "{}", out.report());
    assert!(out.syncs_answered > 50, "{}", out.report());
    // Seed 3 elects server 3; the others are its followers.
    let answered_on =
        |sid: &str| out.full_trace.iter().filter(|l| l.contains(sid) && l.contains("answered after")).count();
    assert!(answered_on(" s3 ") > 0 && answered_on(" s1 ") + answered_on(" s2 ") > 0, "{}", out.report());
}

/// A leader paused past syncLimit is replaced; as it resumes a sync reaches
/// it. Answered without a quorum round (Apache's way), the read misses
/// writes the new leader acknowledged before the sync began. The register
/// clients' sync + reads queued at the paused leader are answered from its
/// stale state too, so the `linearizable` check of the histories recorded
/// until the run stopped fails as well (seeds 28, 31, 38 of 0..40).
#[test]
fn planted_sync_without_round_is_caught() {
    let (mut caught, mut also_linearizable) = (0, 0);
    for seed in 0..40u64 {
        let mut config = SimConfig::from_seed(seed, 3);
        config.knobs.plant = Some(Plant::SyncWithoutRound);
        let out = run(config);
        if out.failure.as_ref().is_some_and(|f| f.checker == "linearizable-sync") {
            caught += 1;
            also_linearizable += usize::from(out.linearizable_violation.is_some());
        }
    }
    assert!(
        caught >= 4 && also_linearizable >= 2,
        "sync-without-round caught on {caught} of 40 seeds ({also_linearizable} also by linearizable)"
    );
}

/// The leader's glue checks a CAS's expected version against the published
/// tree, not the one with the pending batches: two CASes in flight on one
/// version both succeed (or one stale by a pending write does). Only
/// `linearizable` sees it (no other checker fails first): every one of
/// seeds 0..40 (3 servers), 0..30 standalone, 0..10 (5 servers). The same
/// seeds pass unplanted (the fixed ranges).
#[test]
fn planted_stale_cas_is_caught_by_linearizable() {
    let three = plant_catches(Plant::StaleCas, 3, 0..5, &["linearizable"]);
    let one = plant_catches(Plant::StaleCas, 1, 0..5, &["linearizable"]);
    assert!(three >= 4 && one >= 4, "stale-cas caught on {three} (3 servers) and {one} (standalone) of 5 seeds");
    let mut config = SimConfig::from_seed(0, 3);
    config.knobs.plant = Some(Plant::StaleCas);
    let out = run(config);
    let detail = out.failure.map(|f| f.detail).unwrap_or_default();
    assert!(detail.contains("seed 0: the history of /r") && detail.contains("cas(version"), "{detail}");
}

/// Guard against a register workload that never does anything: creates,
/// writes, CASes and sync + reads are answered on 1, 3 and 5 servers and
/// every key's history is decided (none inconclusive); the clients' plain
/// reads on the server they stay on are checked (monotonic-reads).
#[test]
fn register_histories_are_recorded_and_linearizable() {
    for servers in [1, 3, 5] {
        let out = run_seed(2, servers);
        assert!(out.passed(), "{}", out.report());
        assert!(
            out.register_ops > 300
                && out.register_ops_answered > 250
                && out.register_plain_reads > 150
                && out.linearizable_keys == 4
                && out.linearizable_inconclusive == 0,
            "{servers} servers: {}",
            out.report()
        );
    }
}

#[test]
fn planted_ack_before_fsync_is_caught() {
    let caught = (0..100u64).find(|&seed| {
        let mut config = SimConfig::from_seed(seed, 3);
        config.knobs.plant = Some(Plant::AckBeforeFsync);
        let out = run(config);
        out.failure.as_ref().is_some_and(|f| f.checker == "no-acked-write-lost" || f.checker == "agreement")
    });
    assert!(caught.is_some(), "ack-before-fsync survived 100 seeds");
}

/// How many of `seeds` fail with `plant` on `servers` servers, each by one
/// of `checkers` (a failure by another checker fails the test: the plant
/// must be caught for the reason it is planted).
fn plant_catches(plant: Plant, servers: usize, seeds: std::ops::Range<u64>, checkers: &[&str]) -> usize {
    plant_catches_in(plant, servers, seeds, checkers, |_| {})
}

/// `plant_catches` in a world `adjust` changes first.
fn plant_catches_in(
    plant: Plant,
    servers: usize,
    seeds: std::ops::Range<u64>,
    checkers: &[&str],
    adjust: impl Fn(&mut SimConfig),
) -> usize {
    let mut caught = 0;
    for seed in seeds {
        let mut config = SimConfig::from_seed(seed, servers);
        adjust(&mut config);
        config.knobs.plant = Some(plant);
        let out = run(config);
        if let Some(f) = &out.failure {
            assert!(checkers.contains(&f.checker), "{plant:?} seed {seed}: unexpected checker\n{}", out.report());
            caught += 1;
        }
    }
    caught
}

/// A leader that publishes once a minority (itself, of 3) holds a batch
/// acknowledges writes a new leader never had: 59 of seeds 0..100 (3
/// servers), 39 (5). The same seeds pass unplanted (the fixed ranges).
#[test]
fn planted_commit_on_minority_is_caught() {
    // `sessions` too: a SNAP labelled with the core's commit point carries
    // the early-published tree and its session table, ahead of that label.
    // (watch-order: two watches set at one version announced the
    // minority-published change and its replacement, seed 26; linearizable:
    // a register read misses an acknowledged write that was lost.)
    let checkers = [
        "no-acked-write-lost",
        "recovery-equals-live",
        "agreement",
        "sessions",
        "linearizable-sync",
        "watch-order",
        "linearizable",
    ];
    let three = plant_catches(Plant::CommitOnMinority, 3, 0..30, &checkers);
    let five = plant_catches(Plant::CommitOnMinority, 5, 0..30, &checkers);
    assert!(three >= 8 && five >= 5, "commit-on-minority caught on {three} (3 servers) and {five} (5) of 30 seeds");
}

/// A learner that ignores TRUNC keeps txns the leader's history lacks:
/// its tree digest disagrees at the next commit, or its log no longer
/// scans (zxids out of order) at the next restart, or a plain read sees a
/// txn nobody committed. 14 of seeds 0..100 (3 servers), 8 (5).
#[test]
fn planted_skip_trunc_is_caught() {
    let checkers =
        ["agreement", "server-exits", "recovery-equals-live", "no-acked-write-lost", "read-committed", "linearizable"];
    // Without the register workload, as measured when planted: its timing
    // makes TRUNC rarer (8 of seeds 0..60 caught without it, 5 of 0..100
    // with it).
    let caught = plant_catches_in(Plant::SkipTrunc, 3, 0..60, &checkers, |c| c.registers = false);
    assert!(caught >= 4, "skip-trunc caught on {caught} of seeds 0..60");
}

/// A replay that counts a record without applying it: production's digest
/// check refuses the state (server-exits), or the wrong state is served
/// (agreement, recovery-equals-live). 72 of seeds 0..100 (3 servers), 65
/// (5), 51 (standalone).
#[test]
fn planted_replay_skips_record_is_caught() {
    // (sessions: the skipped record may be a session's create or close;
    // convergence: the server whose replay was refused was still down
    // when the run ended, seed 4.)
    let checkers = [
        "server-exits",
        "agreement",
        "recovery-equals-live",
        "no-acked-write-lost",
        "sessions",
        "convergence",
        "linearizable",
    ];
    let three = plant_catches(Plant::ReplaySkipsRecord, 3, 0..30, &checkers);
    let one = plant_catches(Plant::ReplaySkipsRecord, 1, 0..30, &checkers);
    assert!(
        three >= 10 && one >= 8,
        "replay-skips-record caught on {three} (3 servers) and {one} (standalone) of 30 seeds"
    );
}

/// A follower answering plain reads from its logged state (proposals not
/// yet committed) is caught by read-committed: 49 of seeds 0..50 (3
/// servers), 50 of 50 (5). Unplanted, the reads of the fixed ranges pass.
#[test]
fn planted_read_past_commit_is_caught() {
    let three = plant_catches(Plant::ReadPastCommit, 3, 0..10, &["read-committed"]);
    let five = plant_catches(Plant::ReadPastCommit, 5, 0..5, &["read-committed"]);
    assert!(three >= 8 && five >= 4, "read-past-commit caught on {three} of 10 (3 servers), {five} of 5 (5)");
}

#[test]
fn plain_reads_happen_everywhere() {
    for servers in [1, 3, 5] {
        let out = run_seed(2, servers);
        assert!(out.passed(), "{}", out.report());
        assert!(out.plain_reads > 100, "{}", out.report());
    }
}

/// A server that fires a change's watch events only with its next change
/// lets a watching client read the new data first: caught by watch-order
/// on every one of seeds 0..30 (1, 3 and 5 servers).
#[test]
fn planted_event_after_data_is_caught() {
    for servers in [1, 3] {
        let caught = plant_catches(Plant::EventAfterData, servers, 0..5, &["watch-order"]);
        assert!(caught >= 4, "event-after-data caught on {caught} of 5 seeds ({servers} servers)");
    }
}

#[test]
fn watch_events_fire_and_keep_the_rules() {
    for servers in [1, 3, 5] {
        let mut w = zoocore::sim::World::new(SimConfig::from_seed(2, servers));
        w.keep_full_trace();
        let out = w.run();
        assert!(out.passed(), "{}", out.report());
        let events = out.full_trace.iter().filter(|l| l.contains("watch event for")).count();
        assert!(events > 30, "{servers} servers: {events} watch events\n{}", out.report());
    }
}

/// A leader (or standalone server) whose expiry deadline is a quarter of a
/// session's timeout expires clients that keep pinging every third of it:
/// caught by the sessions checker in a quiet window.
#[test]
fn planted_expire_early_is_caught() {
    let three = plant_catches(Plant::ExpireEarly, 3, 0..5, &["sessions"]);
    let one = plant_catches(Plant::ExpireEarly, 1, 0..5, &["sessions"]);
    assert!(three >= 4 && one >= 4, "expire-early caught on {three} (3 servers) and {one} (standalone) of 5 seeds");
}

/// Guard against a session workload that never does anything: sessions
/// are created (locally and forwarded by learners), expire, close, and
/// their ephemerals are checked, on 1, 3 and 5 servers.
#[test]
fn sessions_live_expire_close_and_hold_their_ephemerals() {
    for servers in [1, 3, 5] {
        let out = run_seed(2, servers);
        assert!(out.passed(), "{}", out.report());
        assert!(
            out.sessions_established > 20
                && out.sessions_expired > 5
                && out.session_closes_checked > 20
                && out.ephemerals_checked > 10,
            "{servers} servers: {}",
            out.report()
        );
    }
}

/// A SNAP that carries the leader's live session table (ahead of the
/// published tree by the batches in flight; zoocore before session 7, seed
/// 91's finding) gives a learner sessions that are not committed yet, or
/// takes away ones whose close is not: caught by `sessions` when the SNAP
/// is installed (the oracle knows which createSession / close txns
/// committed at or below the snapshot's zxid), and at the end when an
/// observer keeps a session nobody expires. The fixed ranges pass unplanted.
#[test]
fn planted_snap_live_sessions_is_caught() {
    let three = plant_catches(Plant::SnapLiveSessions, 3, 0..20, &["sessions"]);
    let five = plant_catches(Plant::SnapLiveSessions, 5, 0..20, &["sessions"]);
    assert!(three >= 3 && five >= 2, "snap-live-sessions caught on {three} (3 servers) and {five} (5) of 20 seeds");
}

/// Seed 91 (3 servers, 2 observers): with the live table an observer kept
/// a session whose createSession never committed for good; with the table
/// as of the published batch every serving server's table is judged at
/// the end, and SNAP tables are judged at install.
#[test]
fn seed_91_snap_carries_the_published_session_table() {
    let out = run_seed(91, 3);
    assert!(out.passed(), "{}", out.report());
    assert!(out.snapshot_session_tables_checked > 0, "{}", out.report());
    // As found: before the register workload and session moves (they
    // shift the timing).
    let mut planted = SimConfig::from_seed(91, 3);
    planted.registers = false;
    planted.moves = false;
    planted.knobs.plant = Some(Plant::SnapLiveSessions);
    let out = run(planted);
    assert_eq!(out.failure.as_ref().map(|f| f.checker), Some("sessions"), "{}", out.report());
}

/// Session clients that lose their connection reconnect with their session
/// (revalidation: answered by the leader or standalone server, forwarded
/// by a learner as REVALIDATE), on 1, 3 and 5 servers; some are told the
/// session expired. Guard against a reconnect path that never runs.
#[test]
fn session_clients_reconnect_and_are_revalidated() {
    for servers in [1, 3, 5] {
        let (mut valid, mut expired) = (0, 0);
        for seed in 0..10 {
            let out = run_seed(seed, servers);
            assert!(out.passed(), "{}", out.report());
            valid += out.reconnects_valid;
            expired += out.reconnects_expired;
        }
        assert!(valid >= 5, "{servers} servers: {valid} reconnects kept their session, {expired} expired");
    }
}

/// Revalidation that knows only the sessions this server allocated tells a
/// client whose session another server created that it expired, though no
/// close of it was ever executed: caught by `sessions` at the answer.
#[test]
fn planted_revalidate_own_only_is_caught() {
    let three = plant_catches(Plant::RevalidateOwnOnly, 3, 0..10, &["sessions"]);
    let five = plant_catches(Plant::RevalidateOwnOnly, 5, 0..10, &["sessions"]);
    assert!(three >= 4 && five >= 3, "revalidate-own-only caught on {three} (3 servers) and {five} (5) of 10 seeds");
}

/// A leader that executes a forwarded write the shared core refused with
/// SESSIONMOVED applies a stale request from the server a moved client
/// left: caught by `sessions` at the execution. Unplanted, the same seeds
/// refuse such writes (the fixed ranges pass).
#[test]
fn planted_ignore_session_moved_is_caught() {
    let three = plant_catches(Plant::IgnoreSessionMoved, 3, 0..20, &["sessions"]);
    let five = plant_catches(Plant::IgnoreSessionMoved, 5, 0..20, &["sessions"]);
    assert!(three >= 5 && five >= 5, "ignore-session-moved caught on {three} (3 servers) and {five} (5) of 20 seeds");
    let refused: u64 = (0..20u64).map(|seed| run_seed(seed, 3).moved_refused).sum();
    assert!(refused >= 20, "only {refused} writes refused as moved on seeds 0..20 (3 servers)");
}

/// Periodic snapshots (production's `SnapshotPolicy`, writer and reader on
/// the simulated disk) happen, are crashed mid-write, purge old logs once
/// durable, and restarts recover from them (snapshot + log tail) with
/// every checker holding.
#[test]
fn periodic_snapshots_are_taken_crashed_purged_and_recovered_from() {
    let (mut taken, mut crashes, mut purged_logs, mut recovered_from_snapshot) = (0, 0, 0, 0);
    for seed in 0..12u64 {
        let mut w = zoocore::sim::World::new(SimConfig::from_seed(seed, 3));
        w.keep_full_trace();
        let out = w.run();
        assert!(out.passed(), "{}", out.report());
        taken += out.snapshots_taken;
        crashes += out.snapshot_crashes;
        purged_logs += out
            .full_trace
            .iter()
            .filter(|l| l.contains("durable; autopurge removed") && !l.ends_with(" 0 logs"))
            .count();
        recovered_from_snapshot +=
            out.full_trace.iter().filter(|l| l.contains("restart: recovered") && !l.contains("(snapshot 0x0)")).count();
    }
    assert!(
        taken > 100 && crashes >= 3 && purged_logs > 10 && recovered_from_snapshot > 5,
        "{taken} snapshots, {crashes} crashes mid-snapshot, {purged_logs} purges of logs, {recovered_from_snapshot} restarts from a snapshot"
    );
}

/// Failed snapshot writes (EIO / ENOSPC on the temp file's write, its
/// fsync, or the directory's fsync after the rename): production gives the
/// snapshot up and goes on (no purge), so crashes and restarts after them
/// lose nothing and recover the live state. Every kind happens, and a
/// crash loses a rename whose directory fsync had failed.
#[test]
fn failed_snapshot_writes_happen_and_lose_nothing() {
    let mut kinds = std::collections::BTreeMap::new();
    let mut lost_renames = 0;
    for servers in [1, 3] {
        for seed in 0..40u64 {
            let mut w = zoocore::sim::World::new(SimConfig::from_seed(seed, servers));
            w.keep_full_trace();
            let out = w.run();
            assert!(out.passed(), "{}", out.report());
            for line in &out.full_trace {
                for kind in [" writing snapshot", " on the fsync of snapshot", " on the directory's fsync"] {
                    if line.contains("failed: ") && line.contains(kind) {
                        *kinds.entry(kind).or_insert(0) += 1;
                    }
                }
                lost_renames += line.contains("(its directory fsync had failed) was lost") as u32;
            }
        }
    }
    assert!(
        kinds.len() == 3 && kinds.values().all(|&n| n >= 2) && lost_renames >= 1,
        "{kinds:?}, {lost_renames} lost renames"
    );
}

/// A snapshot made visible, and the logs before it purged, before its
/// bytes are fsynced: a crash mid-snapshot leaves a torn newest snapshot,
/// the older one lacks the purged logs, and start-up refuses (or serves
/// less). The same seeds pass unplanted. `convergence`: a server that
/// cannot start again stays out of the ensemble (seed 16, 3 servers, since
/// session moves shifted the timing: its older snapshot was damaged too).
#[test]
fn planted_snapshot_before_durable_is_caught() {
    let checkers = ["server-exits", "no-acked-write-lost", "recovery-equals-live", "agreement", "convergence"];
    let three = plant_catches(Plant::SnapshotBeforeDurable, 3, 0..40, &checkers);
    let one = plant_catches(Plant::SnapshotBeforeDurable, 1, 0..40, &checkers);
    assert!(
        three >= 3 && one >= 2,
        "snapshot-before-durable caught on {three} (3 servers) and {one} (standalone) of 40 seeds"
    );
    for servers in [1, 3] {
        for seed in 0..40 {
            let out = run_seed(seed, servers);
            assert!(out.passed(), "unplanted: {}", out.report());
        }
    }
}

/// Leaders index their log files as production's do (`DiskLogIndex::
/// from_log_files`, kept current by the shared `LeaderTerm`), so a learner
/// behind the in-memory window is DIFF-synced from the log files, not sent
/// a SNAP: guard that those syncs happen, and hold, across the seeds.
#[test]
fn diffs_from_the_leaders_log_files_happen_and_hold() {
    let (mut diffs, mut runs_with_diffs) = (0, 0);
    for seed in 0..40u64 {
        for servers in [3, 5] {
            let out = run_seed(seed, servers);
            assert!(out.passed(), "{}", out.report());
            diffs += out.diffs_from_disk;
            runs_with_diffs += u64::from(out.diffs_from_disk > 0);
        }
    }
    // 96 DIFFs from disk in 28 of the 80 runs when written.
    assert!(runs_with_diffs >= 10 && diffs >= 30, "{diffs} DIFFs from disk in {runs_with_diffs} runs");
}

/// Found once simulated leaders DIFF from their log files, with frequent
/// snapshots (`--snap-count 20 --snap-crash-percent 50`); both production
/// bugs in the leader's DIFF-from-disk path, both fixed:
/// * 317, 525 (5 servers), 687, 691 (3 servers): a leader that recovered
///   from a snapshot with no txn after it leads with an empty window; the
///   plan (as Apache's) takes that window as holding only its last zxid and
///   chose a DIFF from the log, but `LeaderCore::queue_history` queued the
///   window part only, so the DIFF carried nothing and the follower served
///   without the txns (`agreement`: digest mismatch at the next txn).
/// * 754, 957 (5 servers): a learner that installed a SNAP keeps its older
///   log files; as leader, its DIFF-from-disk index took the jump from its
///   old epoch-3 txns to counter 1 of epoch 5 as a continuation, so a DIFF
///   from disk skipped epoch 4, which only the snapshot held. A snapshot
///   the log does not hold now starts the index afresh.
#[test]
fn diff_from_disk_seeds_with_frequent_snapshots_hold() {
    // (servers, seed, whether the fixed run still DIFFs from disk: after
    // the second fix 754 and 957 send that learner a SNAP instead)
    let seeds = [(5, 317, true), (5, 525, true), (3, 687, true), (3, 691, true), (5, 754, false), (5, 957, false)];
    for (servers, seed, diffs) in seeds {
        let mut config = SimConfig::from_seed(seed, servers);
        config.knobs.snap_count = 20;
        config.knobs.snap_crash_percent = 50;
        let out = run(config);
        assert!(out.passed(), "{}", out.report());
        assert!(!diffs || out.diffs_from_disk > 0, "the run no longer DIFFs from disk: {}", out.report());
    }
}

/// `zoocore-sim --seed N --minimise`: the smallest world in which a failing
/// seed still fails the same checker, and the world it reports replays
/// that failure.
#[test]
fn a_failing_seed_minimises_to_a_smaller_world_that_still_fails() {
    let mut config = SimConfig::from_seed(3, 3);
    config.knobs.plant = Some(zoocore::sim::Plant::StaleCas);
    let full = run(config.clone());
    let checker = full.failure.as_ref().map(|f| f.checker).expect("the planted bug fails seed 3");
    let m = zoocore::sim::minimise(config).expect("a failing seed minimises");
    assert_eq!(m.checker, checker);
    assert!(m.flags.len() >= 5, "most of the world is left out: {:?}", m.flags);
    assert!(m.config.duration_ms < full.simulated_ms, "the run is shortened: {:?}", m.flags);
    let replayed = run(m.config);
    assert_eq!(replayed.failure.map(|f| (f.checker, f.at_ms)), Some((checker, m.at_ms)), "{:?}", m.flags);
    assert!(zoocore::sim::minimise(SimConfig::from_seed(3, 3)).is_err(), "a passing seed has nothing to minimise");
}

/// PRODUCTION, found while sharing the leader's turn order: the leader
/// took client requests once `LeaderCore::is_established` flipped, which
/// happens while the quorum's NEWLEADER ACK is read in the middle of a
/// turn's events, before the `Established` action raised `last_zxid` to
/// the new epoch. A write right behind that ACK got the old epoch's next
/// zxid, was acknowledged, and was lost (the new epoch's history never had
/// it). Planted as the old rule, with clients writing to leaders still
/// establishing: caught in 19 of seeds 0..20 (3 servers) and 13 (5), always
/// by `no-acked-write-lost`. Unplanted the seeds pass, early writes in each.
#[test]
fn planted_requests_before_established_is_caught() {
    let three = plant_catches(Plant::RequestsBeforeEstablished, 3, 0..10, &["no-acked-write-lost"]);
    let five = plant_catches(Plant::RequestsBeforeEstablished, 5, 0..10, &["no-acked-write-lost"]);
    assert!(three >= 7 && five >= 4, "caught on {three} (3 servers) and {five} (5 servers) of 10 seeds");
    for seed in 0..10 {
        let out = run(SimConfig::from_seed(seed, 3));
        assert!(out.passed(), "{}", out.report());
        assert!(out.early_writes > 0, "no write reached a leader still establishing: {}", out.report());
    }
}
