//! The `kvip` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use kvip::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Version => {
            println!("kvip {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Manifest(_) | Command::Run(_) | Command::Announce(_) => {
            Err(anyhow::anyhow!("not implemented yet"))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kvip: {err:#}");
            ExitCode::FAILURE
        }
    }
}
