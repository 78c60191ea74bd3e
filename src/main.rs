//! The `kvip` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use kvip::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Version => {
            println!("kvip {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Announce(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the tokio runtime")
            .and_then(|runtime| runtime.block_on(kvip::announce::run_cli(&args))),
        Command::Manifest(_) | Command::Run(_) => Err(anyhow::anyhow!("not implemented yet")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kvip: {err:#}");
            ExitCode::FAILURE
        }
    }
}
