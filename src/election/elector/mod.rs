//! The elector task: the loop that turns timers, watch events and commands into Lease requests
//! (through [`super::decide`]) and [`ElectionEvent`]s. It owns the observation, the ladder and
//! the leadership state; nothing else touches them.

mod follow;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use tokio::sync::{mpsc, watch};
use tokio::time::{Duration, Instant, sleep_until};

use super::ElectorConfig;
use super::decide::{Action, Observation, decide, observe};
use super::events::{Command, ElectionEvent, ElectorHandle, ElectorStatus, StepDownReason};
use super::io::{self, Failure, LeaseApi, LeaseEvents, WatchStep};
use super::record::{LeaderRecord, lease_with_record, now_micro};
use crate::credentials::{Clients, Ladder};

/// Starts the elector task. Events arrive on the returned receiver in order; the channel is
/// unbounded so the elector never blocks on a slow daemon (it must keep its step-down timer).
pub fn spawn(
    config: ElectorConfig,
    ladder: Ladder,
) -> (ElectorHandle, mpsc::UnboundedReceiver<ElectionEvent>) {
    let (events, events_rx) = mpsc::unbounded_channel();
    let (commands_tx, commands) = mpsc::channel(4);
    let (status, status_rx) = watch::channel(ElectorStatus::default());
    let credential = ladder.credential();
    let elector = Elector {
        config,
        ladder,
        credential,
        events,
        status,
        commands,
        observed: None,
        leading: None,
        reported_holder: None,
        events_stream: None,
        watch_retry_at: Instant::now(),
        next_attempt: Instant::now(),
        ladder_backoff: None,
    };
    let task = tokio::spawn(elector.run());
    let handle = ElectorHandle {
        commands: commands_tx,
        status: status_rx,
        task,
    };
    (handle, events_rx)
}

/// Leadership bookkeeping, present only while leading.
struct Leading {
    /// When the last successful renew (or the acquisition) was *sent*.
    last_renew: Instant,
    /// When to renew next.
    next_renew: Instant,
}

struct Elector {
    config: ElectorConfig,
    ladder: Ladder,
    credential: watch::Receiver<Option<crate::credentials::Credential>>,
    events: mpsc::UnboundedSender<ElectionEvent>,
    status: watch::Sender<ElectorStatus>,
    commands: mpsc::Receiver<Command>,
    /// The Lease as last seen; `None` before the first read or when it is absent.
    observed: Option<Observation>,
    leading: Option<Leading>,
    /// The holder last reported in a `LeaderObserved` event.
    reported_holder: Option<Option<String>>,
    /// The follower's watch, `None` while leading or until (re-)established.
    events_stream: Option<LeaseEvents>,
    watch_retry_at: Instant,
    /// When a follower next reads the Lease and acts (expiry, resync or retry).
    next_attempt: Instant,
    /// Back-off while no kubeconfig is usable (doubles up to 30 s).
    ladder_backoff: Option<Duration>,
}

/// The result of one try to take or keep the Lease.
enum Outcome {
    /// We hold the Lease; the write was sent at `at`. `resumed`: the record already named us.
    Holding { at: Instant, resumed: bool },
    /// Another node holds an unexpired Lease until this instant (as observed here).
    HeldElsewhere(Instant),
    /// The request failed; already recorded in the status.
    Failed(Failure),
    /// No kubeconfig is usable; already logged.
    NoCredentials,
}

enum Wake {
    Command(Option<Command>),
    Deadline,
    Renew,
    Attempt,
    Watch(WatchStep),
    AdminRecheck,
}

impl Elector {
    async fn run(mut self) {
        loop {
            if self.leading.is_none() {
                self.ensure_watch().await;
            }
            let recheck = self.ladder.next_admin_recheck();
            let wake = match &self.leading {
                Some(leading) => {
                    let deadline = leading.last_renew + self.config.timings.renew_deadline();
                    let next_renew = leading.next_renew;
                    tokio::select! {
                        biased;
                        cmd = self.commands.recv() => Wake::Command(cmd),
                        () = sleep_until(deadline) => Wake::Deadline,
                        () = sleep_until(next_renew) => Wake::Renew,
                        () = sleep_or_never(recheck) => Wake::AdminRecheck,
                    }
                }
                None => {
                    let next_attempt = self.next_attempt;
                    let watch_retry = (self.events_stream.is_none()).then_some(self.watch_retry_at);
                    tokio::select! {
                        biased;
                        cmd = self.commands.recv() => Wake::Command(cmd),
                        () = sleep_until(next_attempt) => Wake::Attempt,
                        step = io::next_step(&mut self.events_stream) => Wake::Watch(step),
                        () = sleep_or_never(recheck) => Wake::AdminRecheck,
                        () = sleep_or_never(watch_retry) => Wake::Watch(WatchStep::Nothing),
                    }
                }
            };
            match wake {
                Wake::Command(None) => return, // handle dropped: stop without releasing
                Wake::Command(Some(Command::ReleaseAndStop(reply))) => {
                    let result = self.release().await;
                    let _ = reply.send(result);
                    return;
                }
                Wake::Deadline => self.step_down(StepDownReason::RenewDeadlinePassed),
                Wake::Renew => self.renew().await,
                Wake::Attempt => self.follower_attempt().await,
                Wake::Watch(step) => self.on_watch(step).await,
                Wake::AdminRecheck => {
                    if self.ladder.recheck_admin().await {
                        self.events_stream = None; // re-watch with the new credential
                    }
                    self.publish_credential();
                }
            }
        }
    }

    /// The holder's renew, raced against the step-down timer so a hung request cannot keep us
    /// "leading" past the renew deadline.
    async fn renew(&mut self) {
        let Some(leading) = &self.leading else { return };
        let deadline = leading.last_renew + self.config.timings.renew_deadline();
        let outcome = tokio::select! {
            outcome = self.try_acquire_or_renew(true) => outcome,
            () = sleep_until(deadline) => {
                self.step_down(StepDownReason::RenewDeadlinePassed);
                return;
            }
        };
        let retry = self.config.timings.retry_period();
        match outcome {
            Outcome::Holding { at, .. } => {
                self.leading = Some(Leading {
                    last_renew: at,
                    next_renew: at + retry,
                });
                let _ = self.events.send(ElectionEvent::Renewed { at });
            }
            Outcome::HeldElsewhere(until) => {
                let holder = self.observed_holder().unwrap_or_default();
                self.step_down(StepDownReason::LostTo(holder));
                self.next_attempt = until;
            }
            Outcome::Failed(_) | Outcome::NoCredentials => {
                self.status.send_modify(|s| s.renew_failures += 1);
                if let Some(leading) = &mut self.leading {
                    // A switched credential gets its chance at once; otherwise keep the pace.
                    let switched = matches!(outcome, Outcome::Failed(Failure::Forbidden(_)));
                    leading.next_renew =
                        Instant::now() + if switched { Duration::ZERO } else { retry };
                }
            }
        }
    }

    /// A follower's read-decide-write round.
    async fn follower_attempt(&mut self) {
        let outcome = self.try_acquire_or_renew(false).await;
        let now = Instant::now();
        let retry = self.config.timings.retry_period();
        let resync = now + self.config.timings.resync_period();
        match outcome {
            Outcome::Holding { at, resumed } => self.become_leader(at, resumed),
            Outcome::HeldElsewhere(until) => self.next_attempt = until.min(resync),
            Outcome::Failed(Failure::Conflict) => self.next_attempt = now, // re-read at once
            // The ladder switched rungs: try the new one at once.
            Outcome::Failed(Failure::Forbidden(_)) if self.credential.borrow().is_some() => {
                self.next_attempt = now;
            }
            Outcome::Failed(Failure::Other(_)) => self.next_attempt = now + retry,
            Outcome::Failed(Failure::Forbidden(_)) | Outcome::NoCredentials => {
                let backoff = self
                    .ladder_backoff
                    .map_or(retry, |b| (b * 2).min(Duration::from_secs(30)));
                self.ladder_backoff = Some(backoff);
                self.next_attempt = now + backoff;
            }
        }
    }

    /// client-go's `tryAcquireOrRenew`: the holder first tries an optimistic update on the
    /// object it last wrote (`fast`); otherwise, or on conflict, read, decide, write.
    async fn try_acquire_or_renew(&mut self, fast: bool) -> Outcome {
        let clients = match self.clients().await {
            Some(clients) => clients,
            None => return Outcome::NoCredentials,
        };
        let api = self.lease_api(&clients);
        let identity = self.config.identity.clone();
        let secs = self.config.timings.lease_duration_seconds();
        let optimistic = self
            .observed
            .as_ref()
            .filter(|o| fast && o.record.holder == identity)
            .map(|o| {
                (
                    o.lease.clone(),
                    o.record.renewed(&identity, secs, &now_micro()),
                )
            });
        if let Some((base, record)) = optimistic {
            match self.write(&api, &clients, Some(&base), &record).await {
                Ok(at) => return Outcome::Holding { at, resumed: true },
                Err(Failure::Conflict) => {} // fall through to the slow path
                Err(failure) => return Outcome::Failed(failure),
            }
        }
        match api.get().await {
            Ok(Some(lease)) => {
                self.observed = Some(observe(self.observed.take(), lease, Instant::now()));
                self.mark_reachable();
            }
            Ok(None) => {
                self.observed = None;
                self.mark_reachable();
            }
            Err(failure) => return Outcome::Failed(self.failed(&clients, failure).await),
        }
        self.report_holder();
        let action = decide(&identity, self.observed.as_ref(), Instant::now());
        let base = self.observed.as_ref().map(|o| o.lease.clone());
        let old = self
            .observed
            .as_ref()
            .map(|o| o.record.clone())
            .unwrap_or_default();
        let now = now_micro();
        let record = match action {
            Action::WaitUntil(until) => return Outcome::HeldElsewhere(until),
            Action::Create => LeaderRecord::created(&identity, secs, &now),
            Action::Acquire => old.acquired_by(&identity, secs, &now),
            Action::Renew => old.renewed(&identity, secs, &now),
        };
        match self.write(&api, &clients, base.as_ref(), &record).await {
            Ok(at) => Outcome::Holding {
                at,
                resumed: action == Action::Renew,
            },
            Err(failure) => Outcome::Failed(failure),
        }
    }

    /// Creates (`base` is `None`) or conditionally updates the Lease; on success the written
    /// object becomes the observation and the send instant is returned.
    async fn write(
        &mut self,
        api: &LeaseApi,
        clients: &Clients,
        base: Option<&Lease>,
        record: &LeaderRecord,
    ) -> Result<Instant, Failure> {
        let c = &self.config;
        let lease = lease_with_record(base, &c.namespace, &c.name, &c.annotations, record);
        let sent = Instant::now();
        let result = match base {
            None => api.create(&lease).await,
            Some(_) => api.replace(&lease).await,
        };
        match result {
            Ok(written) => {
                self.observed = Some(observe(self.observed.take(), written, Instant::now()));
                self.mark_reachable();
                self.report_holder();
                Ok(sent)
            }
            Err(failure) => Err(self.failed(clients, failure).await),
        }
    }

    async fn release(&mut self) -> Result<bool, String> {
        let was_leading = self.leading.is_some();
        let ours = self.observed_holder().as_deref() == Some(self.config.identity.as_str());
        let result = if ours {
            match self.clients().await {
                Some(clients) => {
                    let api = self.lease_api(&clients);
                    let (base, record) = match &self.observed {
                        Some(obs) => (obs.lease.clone(), obs.record.released(&now_micro())),
                        None => return Ok(false),
                    };
                    match self.write(&api, &clients, Some(&base), &record).await {
                        Ok(_) => Ok(true),
                        Err(Failure::Conflict) => Ok(false), // no longer ours to release
                        Err(failure) => Err(failure.to_string()),
                    }
                }
                None => Err("no usable kubeconfig".to_owned()),
            }
        } else {
            Ok(false)
        };
        if was_leading {
            self.step_down(StepDownReason::Released);
        }
        tracing::info!(released = ?result, "election stopped");
        result
    }

    fn become_leader(&mut self, at: Instant, resumed: bool) {
        let retry = self.config.timings.retry_period();
        self.leading = Some(Leading {
            last_renew: at,
            next_renew: at + retry,
        });
        self.events_stream = None;
        self.ladder_backoff = None;
        tracing::info!(identity = %self.config.identity, resumed, "became leader");
        self.status.send_modify(|s| s.leading = true);
        let _ = self.events.send(ElectionEvent::Elected { at, resumed });
    }

    fn step_down(&mut self, reason: StepDownReason) {
        if self.leading.take().is_none() {
            return;
        }
        tracing::warn!(?reason, "stepped down");
        self.status.send_modify(|s| s.leading = false);
        self.next_attempt = Instant::now() + self.config.timings.retry_period();
        let at = Instant::now();
        let _ = self.events.send(ElectionEvent::SteppedDown { at, reason });
    }

    async fn clients(&mut self) -> Option<Clients> {
        let result = self.ladder.clients().await;
        self.publish_credential();
        match result {
            Ok(clients) => Some(clients),
            Err(error) => {
                tracing::error!(%error, "cannot reach the Lease");
                self.status.send_modify(|s| {
                    s.api_reachable = false;
                    s.last_error = Some(error.to_string());
                });
                None
            }
        }
    }

    /// Records a failed request; a 403 is reported to the ladder, which may switch rungs.
    async fn failed(&mut self, clients: &Clients, failure: Failure) -> Failure {
        let mut message = format!("{} via {}: {failure}", self.config.name, clients.credential);
        if let Failure::Forbidden(m) = &failure {
            if let Err(error) = self.ladder.forbidden(clients.credential, m).await {
                message = error.to_string();
                tracing::error!(%error, "cannot reach the Lease");
            }
            self.events_stream = None;
            self.publish_credential();
        } else if failure != Failure::Conflict {
            tracing::warn!(%message, "Lease request failed");
        }
        // A conflict is a healthy answer; a 403 reached the server but is not usable.
        let reachable = failure == Failure::Conflict;
        self.status.send_modify(|s| {
            s.api_reachable = reachable;
            if failure != Failure::Conflict {
                s.last_error = Some(message);
            }
        });
        failure
    }

    fn mark_reachable(&mut self) {
        self.status.send_if_modified(|s| {
            let changed = !s.api_reachable || s.last_error.is_some();
            s.api_reachable = true;
            s.last_error = None;
            changed
        });
    }

    fn publish_credential(&mut self) {
        let now = *self.credential.borrow_and_update();
        self.status.send_if_modified(|s| {
            let changed = s.credential != now;
            s.credential = now;
            changed
        });
    }

    fn observed_holder(&self) -> Option<String> {
        self.observed
            .as_ref()
            .map(|o| o.record.holder.clone())
            .filter(|h| !h.is_empty())
    }

    /// client-go's `maybeReportTransition`: one event per change of the observed holder.
    fn report_holder(&mut self) {
        let holder = self.observed_holder();
        if self.reported_holder.as_ref() == Some(&holder) {
            return;
        }
        self.reported_holder = Some(holder.clone());
        self.status.send_modify(|s| s.holder = holder.clone());
        let _ = self.events.send(ElectionEvent::LeaderObserved { holder });
    }

    fn lease_api(&self, clients: &Clients) -> LeaseApi {
        LeaseApi {
            api: Api::namespaced(clients.requests.clone(), &self.config.namespace),
            name: self.config.name.clone(),
            timeout: self.config.timings.request_timeout(),
        }
    }
}

async fn sleep_or_never(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
