//! The `zoocore` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "zoocore", version, about = "A ZooKeeper-compatible coordination service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server. Without --config: standalone on 127.0.0.1:2181,
    /// data under ./zoocore-data, tickTime 2000.
    Server {
        /// A zoo.cfg file (the same file that starts Apache ZooKeeper).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// Start even if the transaction log is corrupt in the middle: cut it
        /// at the first bad batch (the transactions after it are lost).
        #[arg(long)]
        repair: bool,
    },
    /// Validate a zoo.cfg without starting: every line, the myid of an
    /// ensemble member, the TLS key and trust stores. Exit 1 naming the
    /// first problem; warnings (ignored keys, values replaced) are printed.
    CheckConfig {
        /// The zoo.cfg file.
        file: PathBuf,
    },
    /// Print the transactions of a log file (verifying every checksum).
    LogDump {
        /// A `log.<zxid>` file from <dataLogDir>/zoocore.
        file: PathBuf,
    },
    /// Print a snapshot's sessions and nodes (verifying its seal).
    SnapshotDump {
        /// A `snapshot.<zxid>` file from <dataDir>/zoocore.
        file: PathBuf,
        /// Also print each node's data.
        #[arg(long)]
        data: bool,
    },
    /// Measure fdatasync vs O_DSYNC for log writes on a directory.
    SyncBench {
        /// Directory on the device to measure (e.g. your dataLogDir).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        #[arg(long, default_value_t = 4096)]
        block: usize,
        #[arg(long, default_value_t = 2000)]
        iterations: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Delete old snapshots and the logs only they needed, keeping the
    /// newest N snapshots (at least 3), as ZooKeeper's PurgeTxnLog.
    Purge {
        /// The zoo.cfg naming dataDir and dataLogDir (default: the embedded default).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// Snapshots to keep.
        #[arg(long, short = 'n', default_value_t = 3)]
        count: usize,
    },
    /// Import an Apache ZooKeeper data directory (newest valid snapshot +
    /// the txn logs after it, every checksum verified) into a new zoocore
    /// data directory.
    Import {
        /// Apache's dataDir (holding version-2/).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// Apache's dataLogDir, if it differs from dataDir.
        #[arg(long, value_name = "DIR")]
        from_log: Option<PathBuf>,
        /// The zoocore dataDir to create (must be missing or empty).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// Export a zoocore data directory as an Apache ZooKeeper one
    /// (version-2/snapshot.<zxid>, epoch files, myid), to roll a migration back.
    Export {
        /// zoocore's dataDir.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// zoocore's dataLogDir, if it differs from dataDir.
        #[arg(long, value_name = "DIR")]
        from_log: Option<PathBuf>,
        /// The Apache dataDir to create (must be missing or empty).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
}

fn load_config(path: Option<PathBuf>) -> Result<zoocore::config::Config, String> {
    match path {
        None => Ok(zoocore::config::Config::embedded_default()),
        Some(path) => zoocore::config::Config::load(&path)
            .map(|(config, warnings)| {
                for w in warnings {
                    tracing::warn!("{w}");
                }
                config
            })
            .map_err(|e| e.to_string()),
    }
}

fn print_or_fail(result: Result<(), String>, out: String) -> ExitCode {
    print!("{out}");
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zoocore: {e}");
            ExitCode::from(1)
        }
    }
}

/// Prints an import/export summary, or the error (exit 1).
fn migrate_result<S: std::fmt::Display>(result: Result<S, zoocore::migrate::MigrateError>) -> ExitCode {
    match result {
        Ok(summary) => {
            print!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zoocore: {e}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ZOOCORE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::LogDump { file } => {
            let mut out = String::new();
            let r = zoocore::tools::log_dump(&file, &mut out);
            print_or_fail(r, out)
        }
        Command::SnapshotDump { file, data } => {
            let mut out = String::new();
            let r = zoocore::tools::snapshot_dump(&file, &mut out, data);
            print_or_fail(r, out)
        }
        Command::SyncBench { dir, block, iterations, rounds } => {
            match zoocore::server::sync_bench::run(&dir, block, iterations, rounds) {
                Ok(results) => {
                    println!(
                        "{:<28} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8}",
                        "mode", "bytes", "iters", "p50_us", "p90_us", "p99_us", "max_us"
                    );
                    for r in results {
                        println!(
                            "{:<28} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8}",
                            r.mode, r.block_bytes, r.iterations, r.p50_us, r.p90_us, r.p99_us, r.max_us
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("zoocore: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Purge { config, count } => match load_config(config) {
            Ok(config) => {
                let removed =
                    zoocore::server::snapshots::purge_old_files(&config.data_dir, &config.data_log_dir, count);
                println!("removed {} files", removed.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("zoocore: {e}");
                ExitCode::from(2)
            }
        },
        Command::Import { from, from_log, to } => {
            let r = zoocore::migrate::import(&from, from_log.as_deref(), &to, &mut |line| eprintln!("import: {line}"));
            migrate_result(r)
        }
        Command::Export { from, from_log, to } => {
            let r = zoocore::migrate::export(&from, from_log.as_deref(), &to, &mut |line| eprintln!("export: {line}"));
            migrate_result(r)
        }
        Command::CheckConfig { file } => {
            let (config, warnings) = match zoocore::config::Config::load(&file) {
                Ok(loaded) => loaded,
                Err(e) => {
                    eprintln!("zoocore: {e}");
                    return ExitCode::from(1);
                }
            };
            for w in &warnings {
                println!("warning: {w}");
            }
            if let Err(e) = zoocore::server::tls::ClientTls::load(&config.client_tls) {
                eprintln!("zoocore: {e}");
                return ExitCode::from(1);
            }
            if config.quorum.is_some() {
                if let Err(e) = zoocore::server::quorum_tls::QuorumTransport::load(&config.quorum_tls) {
                    eprintln!("zoocore: {e}");
                    return ExitCode::from(1);
                }
            }
            let mut config = config;
            if let Err(e) = zoocore::server::load_sasl_credentials(&mut config) {
                eprintln!("zoocore: {e}");
                return ExitCode::from(1);
            }
            if config.quorum.is_some() {
                let jaas = config.sasl.jaas_path.as_deref();
                if let Err(e) = zoocore::server::quorum_sasl::QuorumSasl::load(&config.quorum_sasl, jaas) {
                    eprintln!("zoocore: {e}");
                    return ExitCode::from(1);
                }
            }
            let role = match &config.quorum {
                Some(q) => format!("ensemble member server.{} of {} servers", q.my_id, q.servers.len()),
                None => format!("standalone on {}:{}", config.client_port_address, config.client_port),
            };
            println!("{}: valid ({role}; {} warning(s))", file.display(), warnings.len());
            ExitCode::SUCCESS
        }
        Command::Server { config, repair } => {
            let config = match load_config(config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("zoocore: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = zoocore::server::install_signal_handlers() {
                eprintln!("zoocore: cannot install signal handlers: {e}");
                return ExitCode::from(2);
            }
            match zoocore::server::run(config, repair) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("zoocore: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
