//! Structured logs through `tracing`: text for people, JSON lines for log pipelines.

use tracing_subscriber::EnvFilter;

use crate::config::LogSettings;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the configured level, so an
/// operator can turn on one module's debug logs without touching the manifest.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,kvip={}", settings.level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber; that is fine.
    let _ = if settings.json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
