//! `tiercache`: the command line of the cache server.

mod audit;
mod build;
mod cli;
mod config;
mod deploy;
mod http;
mod invalidate;
mod npmrc;
mod prewarm;
mod purge;
mod scan;
mod scan_shared;
mod serve;
mod sites;
mod stats;
mod stdout;
mod template;
mod token;

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
    let success = |()| std::process::ExitCode::SUCCESS;
    let result = match cli.command {
        cli::Command::Serve(args) => serve::run(args).map(success),
        cli::Command::Stats(args) => stats::run(args).map(success),
        cli::Command::Audit(args) => audit::run(args).map(success),
        cli::Command::Npmrc(args) => npmrc::run(args).map(success),
        cli::Command::Prewarm(args) => prewarm::run(args).map(success),
        cli::Command::Hash(args) => build::hash(args),
        cli::Command::Build(args) => build::run(args),
        cli::Command::TurboConfig(args) => build::turbo::run(args).map(success),
        cli::Command::Scan(args) => scan::run(args),
        cli::Command::ScanShared(args) => scan_shared::run(args),
        cli::Command::Token(args) => token::run(args),
        cli::Command::Template(args) => template::run(args),
        cli::Command::Purge(args) => purge::run(args).map(success),
        cli::Command::Invalidate(args) => invalidate::run(args).map(success),
        cli::Command::Deploy(args) => deploy::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tiercache: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
