//! The `ringway` command: parse the command line, then hand over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ringway::app::{self, Overrides, RunError};
use ringway::config::Config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Default config, relative to the working directory (the repository root in development).
const DEFAULT_CONFIG: &str = "conf/ringway.ron";

/// ringway: a thread-per-core L4/L7 load-balancing proxy for Linux on io_uring.
#[derive(Parser, Debug)]
#[command(name = "ringway", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the proxy.
    Run {
        /// Config file (RON).
        #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Number of worker threads (overrides `workers` in the config).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
        workers: Option<u16>,
    },
    /// Validate a config file: print `FILE: ok` or every error with its location.
    #[command(short_flag = 't')]
    Check {
        /// Config file (RON).
        #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match Config::load(&config) {
            Ok(_) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for e in &errors {
                    eprintln!("{}: {e}", config.display());
                }
                eprintln!("{}: {} error(s)", config.display(), errors.len());
                ExitCode::FAILURE
            }
        },
        Command::Run { config, workers } => {
            let overrides = Overrides {
                workers: workers.map(usize::from),
            };
            match app::run(&config, &overrides) {
                Ok(()) => ExitCode::SUCCESS,
                Err(RunError::Config(errors)) => {
                    for e in &errors {
                        eprintln!("{}: {e}", config.display());
                    }
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("ringway: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
