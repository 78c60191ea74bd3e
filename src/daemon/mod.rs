//! The daemon (`kvip run`): configuration → elector → supervisor → address / announce.
//!
//! Start-up does everything that can fail on bad input before it changes anything on the host:
//! it resolves the interface, opens the raw socket, checks that every VIP can be announced there,
//! validates the election timings and binds the HTTP listeners. Only then does the elector start,
//! and the [`supervisor`] — one task, the only owner of leadership state and of the VIP — turns
//! its events into address and announce commands.

mod fence;
mod supervisor;

use std::sync::Arc;

use anyhow::Context;

use crate::address::{AddressOptions, Addresses, Vip};
use crate::announce::{Announcer, Schedule};
use crate::config::Config;
use crate::credentials::{ApiEndpoint, KubeconfigPaths, Ladder};
use crate::election::{self, ElectorConfig, Timings};
use crate::observability::{self, Health, Metrics};

/// Runs the daemon until SIGTERM or SIGINT, then removes the VIP, releases the Lease and returns.
pub fn main(config: Config) -> anyhow::Result<()> {
    observability::init_logging(&config.log);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kvip")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(config, shutdown_signal()))
}

/// The daemon on the current tokio runtime; returns after `shutdown` resolves and the VIP is
/// removed and the Lease released (tests and `kvip lab` drive it with their own future).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = &'static str>,
) -> anyhow::Result<()> {
    let timings = Timings::new(
        config.lease.duration,
        config.lease.renew_deadline,
        config.lease.retry_period,
    )?;
    let vips: Vec<Vip> = config.vips.clone();
    let options = AddressOptions {
        skip_dad: config.skip_dad,
    };
    let addresses = Addresses::open(
        config.interface.as_deref(),
        config.allow_interface_not_up,
        options,
    )
    .await
    .context("cannot use the VIP's interface")?;
    let interface = addresses.interface().clone();
    let announcer = Announcer::open(&interface, Schedule::with_arp_rate(config.arp_rate))
        .context("cannot open the raw socket for gratuitous ARP / NA")?;
    let announcement = announcer
        .prepare(&vips)
        .with_context(|| format!("cannot announce the VIP on {}", interface.name))?;
    let interface_events = addresses
        .watch()
        .await
        .context("cannot watch the interface")?;

    let metrics = Metrics::new(
        &config.node_name,
        &config.lease.namespace,
        &config.lease.name,
    );
    metrics.count_announcements(announcer.frames_sent());
    let health = Arc::new(Health::default());
    let (bound, http) =
        observability::serve(&config.http_listeners, health.clone(), metrics.clone()).await?;
    tokio::spawn(http);

    let mut elector_config = ElectorConfig::new(&config.node_name, timings)?;
    elector_config.namespace = config.lease.namespace.clone();
    elector_config.name = config.lease.name.clone();
    elector_config.annotations = config.lease.annotations.clone();
    let ladder = Ladder::new(
        KubeconfigPaths {
            admin: config.kubeconfig.clone(),
            super_admin: config.super_admin_kubeconfig.clone(),
            service_account: config.service_account_dir.clone(),
        },
        ApiEndpoint::from_options(config.api_server.as_deref(), config.port),
        elector_config.client_timeouts(),
        elector_config.lease_location(),
    );
    tracing::info!(
        node = %config.node_name,
        interface = %interface.name,
        vips = %vips.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        lease = %format!("{}/{}", config.lease.namespace, config.lease.name),
        http = ?bound,
        "kvip started"
    );
    let request_timeout = timings.request_timeout();
    let (elector, events) = election::spawn(elector_config, ladder);
    let supervisor = supervisor::Supervisor {
        node: config.node_name.clone(),
        vips,
        lease_duration: config.lease.duration,
        release_timeout: request_timeout * 2,
        addresses,
        announcer,
        announcement,
        metrics,
        health,
        leading: None,
        cleaned_up_earlier_run: false,
        seen_renew_failures: 0,
    };
    supervisor
        .run(elector, events, interface_events, shutdown)
        .await
}

/// Resolves on SIGTERM (kubelet stopping the pod) or SIGINT (Ctrl-C).
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        },
        Err(err) => {
            tracing::warn!(%err, "cannot listen for SIGTERM; only SIGINT stops kvip cleanly");
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
