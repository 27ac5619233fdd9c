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
    },
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
        Command::Server { config } => {
            let config = match config {
                None => zoocore::config::Config::embedded_default(),
                Some(path) => match zoocore::config::Config::load(&path) {
                    Ok((config, warnings)) => {
                        for w in warnings {
                            tracing::warn!("{w}");
                        }
                        config
                    }
                    Err(e) => {
                        eprintln!("zoocore: {e}");
                        return ExitCode::from(2);
                    }
                },
            };
            if let Err(e) = zoocore::server::install_signal_handlers() {
                eprintln!("zoocore: cannot install signal handlers: {e}");
                return ExitCode::from(2);
            }
            match zoocore::server::run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("zoocore: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
