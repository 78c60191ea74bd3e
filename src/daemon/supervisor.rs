//! The supervisor: the one task that owns leadership state and the VIP.
//!
//! It turns election events into address and announce commands, repairs the VIP when the
//! interface loses it while leading, and orders shutdown: VIP off first, Lease released second.
//! The address and announce modules are told what to do; they never decide.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::fence;
use crate::address::{Addresses, InterfaceEvent, Vip};
use crate::announce::{Announcement, Announcer};
use crate::election::{ElectionEvent, ElectorHandle, ElectorStatus, StepDownReason};
use crate::observability::{Health, Metrics};

/// The supervisor's state; see the module docs.
pub(super) struct Supervisor {
    /// This node's identity in the Lease.
    pub node: String,
    /// The VIPs this node holds while leading.
    pub vips: Vec<Vip>,
    /// The Lease duration: bounds the fence.
    pub lease_duration: Duration,
    /// How long shutdown waits for the Lease release.
    pub release_timeout: Duration,
    /// The VIP on the interface.
    pub addresses: Addresses,
    /// Gratuitous ARP / NA.
    pub announcer: Announcer,
    /// The frames for `vips`, built once at start-up so a takeover builds nothing.
    pub announcement: Announcement,
    /// Metrics this task records.
    pub metrics: Metrics,
    /// Liveness and readiness this task records.
    pub health: Arc<Health>,
    /// Set while this node holds the Lease.
    pub leading: Option<Leadership>,
    /// Whether a VIP left on the interface by an earlier run has been dealt with.
    pub cleaned_up_earlier_run: bool,
    /// The elector's renew-failure count already added to the metric.
    pub seen_renew_failures: u64,
}

/// This node's tenure as leader.
#[derive(Debug, Clone, Copy)]
pub(super) struct Leadership {
    /// When the last successful renew (or the winning write) was sent: the fence and every
    /// re-add are computed from it.
    renew_sent: Instant,
    /// Whether the VIP is up and announced (false until adding it worked).
    vip_up: bool,
}

impl Supervisor {
    /// Runs until `shutdown` resolves (then returns `Ok` after cleaning up) or something makes
    /// continuing impossible (then cleans up and returns the error).
    pub async fn run(
        mut self,
        elector: ElectorHandle,
        mut events: mpsc::UnboundedReceiver<ElectionEvent>,
        mut interface: mpsc::Receiver<InterfaceEvent>,
        shutdown: impl Future<Output = &'static str>,
    ) -> anyhow::Result<()> {
        let mut status = elector.status();
        let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
        tokio::pin!(shutdown);
        let outcome = loop {
            tokio::select! {
                biased;
                signal = &mut shutdown => {
                    tracing::info!(signal, "shutting down: removing the VIP, then releasing the Lease");
                    break Ok(());
                }
                event = events.recv() => match event {
                    Some(event) => self.on_election(event).await,
                    None => break Err(anyhow::anyhow!("the elector stopped unexpectedly")),
                },
                event = interface.recv() => match event {
                    Some(InterfaceEvent::InterfaceRemoved) => {
                        let name = &self.addresses.interface().name;
                        break Err(anyhow::anyhow!(
                            "interface {name} was deleted; kvip exits so kubelet restarts it once the interface is back"
                        ));
                    }
                    Some(event) => self.on_interface(event).await,
                    None => break Err(anyhow::anyhow!("the interface watch stopped unexpectedly")),
                },
                changed = status.changed() => {
                    if changed.is_ok() {
                        let snapshot = status.borrow_and_update().clone();
                        self.on_status(&snapshot);
                    }
                }
                _ = heartbeat.tick() => self.health.beat(),
            }
        };
        self.shutdown(elector).await;
        outcome
    }

    async fn on_election(&mut self, event: ElectionEvent) {
        match event {
            ElectionEvent::Elected { at, resumed } => self.take_over(at, resumed).await,
            ElectionEvent::Renewed { at } => self.renewed(at).await,
            ElectionEvent::SteppedDown { reason, .. } => self.step_down(&reason).await,
            ElectionEvent::LeaderObserved { holder } => {
                tracing::info!(
                    holder = holder.as_deref().unwrap_or("<none>"),
                    "leader observed"
                );
                if !self.cleaned_up_earlier_run
                    && self.leading.is_none()
                    && holder.as_deref() != Some(&self.node)
                {
                    self.cleaned_up_earlier_run = true;
                    self.remove_earlier_runs_vip().await;
                }
            }
        }
    }

    async fn take_over(&mut self, sent: Instant, resumed: bool) {
        self.cleaned_up_earlier_run = true;
        self.leading = Some(Leadership {
            renew_sent: sent,
            vip_up: false,
        });
        self.metrics.is_leader.set(1);
        // `resumed` also covers retaking our own record after a step-down: count every Elected.
        self.metrics.transitions.inc();
        self.bring_up(resumed).await;
    }

    async fn renewed(&mut self, sent: Instant) {
        let Some(leadership) = self.leading.as_mut() else {
            return;
        };
        leadership.renew_sent = sent;
        if !leadership.vip_up {
            self.bring_up(true).await;
            return;
        }
        let Some(lifetime) = fence::lifetime(sent, self.lease_duration, Instant::now()) else {
            return;
        };
        for vip in &self.vips {
            if let Err(err) = self.addresses.refresh_lifetime(*vip, lifetime).await {
                tracing::warn!(error = %err, "cannot refresh the VIP's lifetime fence");
            }
        }
    }

    /// The failover hot path: lease acquired → VIP on the interface → first announcement.
    async fn bring_up(&mut self, resumed: bool) {
        let acquired = Instant::now();
        let Some(sent) = self.leading.map(|l| l.renew_sent) else {
            return;
        };
        let Some(lifetime) = fence::lifetime(sent, self.lease_duration, acquired) else {
            tracing::warn!(
                waited_ms = acquired.duration_since(sent).as_millis(),
                "holding the Lease, but its answer came too late to hold the VIP safely; retrying on the next renew"
            );
            return;
        };
        if !self.add_vips(lifetime).await {
            return;
        }
        let vip_up = Instant::now();
        if let Some(leadership) = self.leading.as_mut() {
            leadership.vip_up = true;
        }
        let first = self.announcer.announce(&self.announcement);
        let metrics = self.metrics.clone();
        let request_ms = acquired.duration_since(sent).as_secs_f64() * 1e3;
        // Waiting here would stall the supervisor if a send blocked; the log line can wait.
        tokio::spawn(async move {
            match first.wait().await {
                Ok(first_frame) => {
                    let acquired = acquired.into_std();
                    let took = first_frame.saturating_duration_since(acquired);
                    metrics.observe_takeover(took);
                    tracing::info!(
                        resumed,
                        lease_request_ms = request_ms,
                        lease_acquired_to_vip_up_us = vip_up
                            .into_std()
                            .saturating_duration_since(acquired)
                            .as_micros(),
                        lease_acquired_to_first_garp_us = took.as_micros(),
                        "leading: VIP up and announced"
                    );
                }
                Err(err) => tracing::warn!(error = %err, "first announcement failed"),
            }
        });
    }

    async fn step_down(&mut self, reason: &StepDownReason) {
        let was_leading = self.leading.take().is_some();
        self.announcer.stop();
        self.remove_vips().await;
        self.metrics.is_leader.set(0);
        if was_leading {
            if matches!(reason, StepDownReason::RenewDeadlinePassed) {
                self.metrics.step_downs.inc();
            }
            tracing::warn!(
                ?reason,
                "stepped down: stopped announcing and removed the VIP"
            );
        }
    }

    async fn on_interface(&mut self, event: InterfaceEvent) {
        let Some(Leadership {
            renew_sent: sent, ..
        }) = self.leading
        else {
            return;
        };
        let repair = match event {
            InterfaceEvent::AddressRemoved { addr, .. } => self.vips.iter().any(|v| v.addr == addr),
            InterfaceEvent::LinkChanged { up } => {
                tracing::info!(up, interface = %self.addresses.interface().name, "link changed while leading");
                up
            }
            InterfaceEvent::InterfaceRemoved => false,
        };
        if !repair {
            return;
        }
        // Re-add only within the fence of the last successful renew: a VIP the kernel expired
        // because renewals failed must stay gone.
        let Some(lifetime) = fence::lifetime(sent, self.lease_duration, Instant::now()) else {
            self.metrics.vip_present.set(0);
            if let Some(leadership) = self.leading.as_mut() {
                leadership.vip_up = false;
            }
            tracing::warn!(
                "the VIP left the interface after its fence ran out (no successful renew); not re-adding"
            );
            return;
        };
        if self.add_vips(lifetime).await {
            self.metrics.vip_restored.inc();
            self.announcer.announce(&self.announcement);
            tracing::info!(?event, "VIP restored on the interface and announced again");
        }
    }

    fn on_status(&mut self, status: &ElectorStatus) {
        let new_failures = status
            .renew_failures
            .saturating_sub(self.seen_renew_failures);
        self.metrics.renew_failures.inc_by(new_failures);
        self.seen_renew_failures = status.renew_failures;
        self.metrics.set_credential(status.credential);
        self.health.set_ready(if status.api_reachable {
            Ok(())
        } else {
            Err(status
                .last_error
                .clone()
                .unwrap_or_else(|| "the API server is not reachable".into()))
        });
    }

    /// Adds every VIP with `lifetime`; false (and logged) if any failed.
    async fn add_vips(&mut self, lifetime: Duration) -> bool {
        let mut all = true;
        for vip in &self.vips {
            if let Err(err) = self.addresses.add(*vip, lifetime).await {
                tracing::error!(error = %err, "cannot add the VIP; retrying on the next renew");
                all = false;
            }
        }
        self.metrics.vip_present.set(i64::from(all));
        all
    }

    async fn remove_vips(&mut self) {
        for vip in &self.vips {
            if let Err(err) = self.addresses.remove(*vip).await {
                tracing::error!(error = %err, "cannot remove the VIP");
            }
        }
        self.metrics.vip_present.set(0);
    }

    /// A VIP still on the interface from an earlier run (kubelet restarted kvip) is removed once
    /// the Lease shows another holder; if the Lease is still ours, the elector resumes instead.
    async fn remove_earlier_runs_vip(&mut self) {
        for vip in &self.vips {
            match self.addresses.is_present(*vip).await {
                Ok(true) => match self.addresses.remove(*vip).await {
                    Ok(()) => {
                        tracing::info!(%vip, "removed a VIP left on the interface by an earlier run")
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "cannot remove a VIP left by an earlier run")
                    }
                },
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "cannot check for a VIP left by an earlier run")
                }
            }
        }
    }

    /// VIP off first, Lease released second: no moment with two holders of the VIP.
    async fn shutdown(mut self, elector: ElectorHandle) {
        self.announcer.stop();
        self.leading = None;
        // Unconditional (removing an absent VIP is a no-op): also covers a VIP left by an
        // earlier run when the Lease was never read.
        self.remove_vips().await;
        self.metrics.is_leader.set(0);
        match tokio::time::timeout(self.release_timeout, elector.release_and_stop()).await {
            Ok(Ok(true)) => tracing::info!("released the Lease"),
            Ok(Ok(false)) => tracing::info!("stopped (this node did not hold the Lease)"),
            Ok(Err(err)) => tracing::warn!(error = %err, "stopped without releasing the Lease"),
            Err(_) => tracing::warn!(
                "stopped: releasing the Lease timed out (others take over after its duration)"
            ),
        }
    }
}
