//! `zoocore-sim`: runs the deterministic simulator (src/sim) for one seed
//! or a range, prints a report per failing seed, exits 1 if any failed.
//!
//! zoocore-sim --seed 42 [--servers 1|3|5] [--swarm] [--duration-ms N] [--trace]
//! zoocore-sim --seeds 1..200 [--servers 5] [--no-sync-reads] [--plant sync-without-round]
//! zoocore-sim --seeds 1..200 [--observers 0|1|2] [--no-disk-faults] [--no-clock-jumps]
//! zoocore-sim --seeds 1..200 [--no-snapshot-damage] [--no-recovery-digest-check] [--no-sessions]
//! zoocore-sim --seeds 1..200 [--no-registers] [--plant stale-cas]
//! zoocore-sim --seed 42 --minimise [the failing run's flags]

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use zoocore::sim::{SimConfig, World};

#[derive(Parser)]
#[command(name = "zoocore-sim", about = "Deterministic simulation of a zoocore ensemble")]
struct Args {
    /// Replay exactly this seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// A range of seeds, `A..B` (B excluded).
    #[arg(long)]
    seeds: Option<String>,
    /// Ensemble size: 1 (a standalone server), 3 or 5.
    #[arg(long, default_value_t = 3)]
    servers: usize,
    /// Swarm mode: draw the server count (1, 3 or 5) from each seed too
    /// (overrides --servers).
    #[arg(long)]
    swarm: bool,
    /// Simulated run length (ms); faults stop a third of the way in.
    #[arg(long)]
    duration_ms: Option<u64>,
    /// Print every trace line of the run (with --seed).
    #[arg(long)]
    trace: bool,
    /// No faults (a baseline run).
    #[arg(long)]
    no_faults: bool,
    /// No sync + read clients and no paused-leader fault (replays runs
    /// recorded before they existed).
    #[arg(long)]
    no_sync_reads: bool,
    /// No plain (sync-less) reads (replays runs recorded before they existed).
    #[arg(long)]
    no_plain_reads: bool,
    /// No watching clients (replays runs recorded before they existed).
    #[arg(long)]
    no_watches: bool,
    /// No session clients (replays runs recorded before they existed).
    #[arg(long)]
    no_sessions: bool,
    /// Session clients that lose their connection stop instead of
    /// reconnecting with their session (replays runs recorded before
    /// reconnects existed).
    #[arg(long)]
    no_reconnects: bool,
    /// No session clients moving to another server with a create in flight
    /// (replays runs recorded before moves existed).
    #[arg(long)]
    no_moves: bool,
    /// No client writes to a leader still establishing (replays runs
    /// recorded before they existed).
    #[arg(long)]
    no_early_writes: bool,
    /// No register / compare-and-set clients, and so no `linearizable`
    /// history (replays runs recorded before they existed).
    #[arg(long)]
    no_registers: bool,
    /// Plant a known bug in the simulator's glue: ack-before-fsync,
    /// sync-without-round, ignore-fsync-error, commit-on-minority, skip-trunc,
    /// replay-skips-record, read-past-commit, event-after-data, expire-early,
    /// snap-live-sessions, revalidate-own-only, snapshot-before-durable, stale-cas,
    /// ignore-session-moved, requests-before-established.
    #[arg(long)]
    plant: Option<String>,
    /// Observers beside the voters (default: drawn from the seed, 0-2).
    #[arg(long)]
    observers: Option<usize>,
    /// No failed log writes / fsyncs and no damaged reads.
    #[arg(long)]
    no_disk_faults: bool,
    /// No clock jumps.
    #[arg(long)]
    no_clock_jumps: bool,
    /// The world before disk faults, clock jumps and observers (replays
    /// seeds recorded before they existed): --no-disk-faults
    /// --no-clock-jumps --observers 0.
    #[arg(long)]
    classic: bool,
    /// Damaged reads never hit the snapshot.
    #[arg(long)]
    no_snapshot_damage: bool,
    /// No periodic snapshots (and so no crashes mid-snapshot): replays the
    /// runs from before they existed.
    #[arg(long)]
    no_snapshots: bool,
    /// snapCount of every server's snapshot policy (default: drawn per
    /// seed in 20..500); small values snapshot every few txns.
    #[arg(long)]
    snap_count: Option<u64>,
    /// Percent of snapshots (while faults are on) whose server is crashed
    /// mid-write (default: drawn per seed, 0, 5, 15 or 30).
    #[arg(long)]
    snap_crash_percent: Option<u64>,
    /// With --seed: find the smallest world (workloads and fault kinds left
    /// out, the run shortened) in which the seed still fails the same
    /// checker, and print its replay line.
    #[arg(long, requires = "seed")]
    minimise: bool,
    /// Recovery's mirror does not check each replayed txn's carried digest
    /// (as production did before the fix): shows the recovery-gap finding.
    #[arg(long)]
    no_recovery_digest_check: bool,
}

fn parse_range(text: &str) -> Option<(u64, u64)> {
    let (a, b) = text.split_once("..")?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// The command line's options other than the seed(s), --servers and
/// --trace, for a failing seed's replay line.
fn replay_flags() -> String {
    let mut out = String::new();
    let mut argv = std::env::args().skip(1);
    while let Some(a) = argv.next() {
        let (name, inline_value) = match a.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (a.clone(), None),
        };
        let takes_value = matches!(
            name.as_str(),
            "--seed"
                | "--seeds"
                | "--servers"
                | "--duration-ms"
                | "--plant"
                | "--observers"
                | "--snap-count"
                | "--snap-crash-percent"
        );
        let value = if takes_value && inline_value.is_none() { argv.next() } else { inline_value };
        if matches!(name.as_str(), "--seed" | "--seeds" | "--servers" | "--trace" | "--minimise") {
            continue;
        }
        out.push(' ');
        out.push_str(&name);
        if let Some(v) = value {
            out.push(' ');
            out.push_str(&v);
        }
    }
    out
}

/// `--minimise`: exit 0 with the smallest failing world's replay line, 2
/// when the seed does not fail.
fn minimise_seed(config: SimConfig, replay_flags: &str) -> ExitCode {
    let (seed, servers) = (config.seed, config.servers);
    match zoocore::sim::minimise(config) {
        Ok(m) => {
            println!(
                "seed {seed}: still fails `{}` at t={} ms after {} runs: {}\nreplay: zoocore-sim --seed {seed} --servers {servers}{replay_flags} {}",
                m.checker,
                m.at_ms,
                m.runs,
                m.detail,
                m.flags.join(" ")
            );
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("{why}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let replay_flags = replay_flags();
    if ![1, 3, 5].contains(&args.servers) {
        eprintln!("--servers must be 1, 3 or 5");
        return ExitCode::from(2);
    }
    let (from, to) = match (&args.seed, &args.seeds) {
        (Some(s), _) => (*s, s + 1),
        (None, Some(r)) => match parse_range(r) {
            Some(r) => r,
            None => {
                eprintln!("--seeds takes A..B");
                return ExitCode::from(2);
            }
        },
        (None, None) => (0, 100),
    };
    let started = Instant::now();
    let (mut failed, mut simulated_ms, mut events) = (0u64, 0u64, 0u64);
    let (mut register_keys, mut inconclusive) = (0u64, 0u64);
    for seed in from..to {
        let mut config = if args.swarm { SimConfig::swarm(seed) } else { SimConfig::from_seed(seed, args.servers) };
        if let Some(d) = args.duration_ms {
            config = config.with_duration(d);
        }
        config.faults = !args.no_faults;
        config.sync_reads = !args.no_sync_reads;
        config.plain_reads = !args.no_plain_reads && !args.classic;
        config.watches = !args.no_watches && !args.classic;
        config.sessions = !args.no_sessions && !args.classic;
        config.reconnects = !args.no_reconnects && !args.classic;
        config.moves = !args.no_moves && !args.classic;
        config.early_writes = !args.no_early_writes && !args.classic;
        config.registers = !args.no_registers && !args.classic;
        config.disk_faults = !args.no_disk_faults && !args.classic;
        config.clock_jumps = !args.no_clock_jumps && !args.classic;
        config.snapshots = !args.no_snapshots && !args.classic;
        if args.classic {
            config.observers = 0;
        }
        if let Some(n) = args.observers {
            config.observers = n;
        }
        if let Some(n) = args.snap_count {
            config.knobs.snap_count = n;
        }
        if let Some(p) = args.snap_crash_percent {
            config.knobs.snap_crash_percent = p;
        }
        if args.no_snapshot_damage {
            config.knobs.snapshot_damage = false;
        }
        if args.no_recovery_digest_check {
            config.knobs.recovery_checks_digests = false;
        }
        if let Some(name) = &args.plant {
            match zoocore::sim::Plant::parse(name) {
                Some(p) => config.knobs.plant = Some(p),
                None => {
                    eprintln!("unknown --plant {name} (known: {})", zoocore::sim::Plant::NAMES);
                    return ExitCode::from(2);
                }
            }
        }
        if args.minimise {
            return minimise_seed(config, &replay_flags);
        }
        let mut world = World::new(config);
        if args.trace {
            world.keep_full_trace();
        }
        let out = world.run();
        simulated_ms += out.simulated_ms;
        events += out.events;
        register_keys += out.linearizable_keys;
        inconclusive += out.linearizable_inconclusive;
        if args.trace {
            for line in &out.full_trace {
                println!("{line}");
            }
        }
        if !out.passed() {
            failed += 1;
            print!("{}", out.report_with_flags(&replay_flags));
        } else if args.seed.is_some() {
            print!("{}", out.report());
        }
    }
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "{} seeds, {failed} failed; {:.0} simulated s in {wall:.2} s wall ({:.0}x real time, {:.0} events/s); {register_keys} register histories judged, {inconclusive} inconclusive",
        to.saturating_sub(from),
        simulated_ms as f64 / 1000.0,
        simulated_ms as f64 / 1000.0 / wall,
        events as f64 / wall
    );
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
