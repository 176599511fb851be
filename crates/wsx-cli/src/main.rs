//! `wsx`: a WebSocket server, client and load generator.
//!
//! `wsx serve` runs the server; see `wsx --help`.

mod serve;

use clap::{Parser, Subcommand};

/// wsx: a fast, correct WebSocket toolkit.
#[derive(Debug, Parser)]
#[command(name = "wsx", version, about, propagate_version = true)]
struct Cli {
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the WebSocket server (echo on every WebSocket path).
    Serve(serve::ServeArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let command = cli
        .command
        .unwrap_or(Command::Serve(serve::ServeArgs::default()));
    let result = match command {
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsx: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
