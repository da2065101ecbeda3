//! `tiercache`: the command line of the cache server.

mod cli;
mod config;
mod http;
mod npmrc;
mod prewarm;
mod serve;
mod stats;
mod stdout;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        cli::Command::Serve(args) => serve::run(args),
        cli::Command::Stats(args) => stats::run(args),
        cli::Command::Npmrc(args) => npmrc::run(args),
        cli::Command::Prewarm(args) => prewarm::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tiercache: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
