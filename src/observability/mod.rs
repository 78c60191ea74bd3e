//! Observability: logs, Prometheus metrics, and the health endpoints kubelet probes.
//!
//! The daemon's supervisor owns the state; it records what happened here (metrics, heartbeat,
//! API reachability) and the HTTP server only reads. Nothing in this module decides anything.

mod http;
mod logging;
mod metrics;

pub use http::{Health, serve};
pub use logging::init as init_logging;
pub use metrics::Metrics;
