//! `wsx`: a WebSocket server, client and load generator.
//!
//! `wsx serve` runs the server; see `wsx --help`.

mod bench;
mod connect;
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
    /// Run the server: chat demo page at /, WebSocket echo and chat rooms, /healthz, /metrics.
    Serve(Box<serve::ServeArgs>),
    /// Connect to a WebSocket server: send stdin lines, print what comes back.
    Connect(connect::ConnectArgs),
    /// Load-test a WebSocket echo server: throughput, latency, CPU per message.
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    // Usage errors exit 1 (2 means "ended abnormally" for connect and bench); --help exits 0.
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        std::process::exit(if e.use_stderr() { 1 } else { 0 })
    });
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let command = cli
        .command
        .unwrap_or_else(|| Command::Serve(Box::default()));
    let result = match command {
        Command::Serve(args) => serve::run(*args),
        Command::Connect(args) => return connect::run(args),
        Command::Bench(args) => return bench::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsx: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
