//! The daemon: ties configuration, election, address and announce together.

use crate::config::Config;

/// Runs the daemon until SIGTERM/SIGINT.
pub fn main(config: Config) -> anyhow::Result<()> {
    anyhow::bail!(
        "the daemon is not built yet (configuration for {} is valid)",
        config.node_name
    )
}
