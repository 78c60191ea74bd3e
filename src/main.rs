//! The `kvip` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use anyhow::Context;
use kvip::cli::{Command, ManifestCommand};
use kvip::config::Config;
use kvip::manifest::{self, Kind};

fn main() -> ExitCode {
    // SAFETY: nothing else runs yet; no thread can read the environment concurrently.
    unsafe { kvip::cli::ignore_empty_environment() };
    let cli = match kvip::cli::try_parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let result = match cli.command {
        Command::Version => {
            println!("kvip {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Manifest(command) => print_manifest(&command),
        Command::Run(args) => {
            let env: Vec<(String, String)> = std::env::vars().collect();
            let env = env.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            match Config::from_args(&args.vip, &args.observe, env) {
                Err(err) => Err(err.into()),
                Ok(config) if args.dry_run => serde_json::to_string_pretty(&config)
                    .map(|json| println!("{json}"))
                    .map_err(Into::into),
                Ok(config) => kvip::daemon::main(config),
            }
        }
        Command::Lab(args) => kvip::lab::command::run(&args),
        Command::Announce(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the tokio runtime")
            .and_then(|runtime| runtime.block_on(kvip::announce::run_cli(&args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kvip: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_manifest(command: &ManifestCommand) -> anyhow::Result<()> {
    let (yaml, warnings) = match command {
        ManifestCommand::Pod(args) => manifest::render(Kind::StaticPod, args)?,
        ManifestCommand::Daemonset(args) => manifest::render(Kind::DaemonSet, args)?,
        ManifestCommand::Rbac(args) => (manifest::render_rbac(args)?, Vec::new()),
    };
    for warning in warnings {
        eprintln!("kvip: warning: {warning}");
    }
    print!("{yaml}");
    Ok(())
}
