//! The follower's side of the loop: keep a watch on the Lease open, and turn what it says into
//! the next attempt instant (the observed expiry, or "now" when the holder released).

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use tokio::time::Instant;

use super::Elector;
use crate::election::decide::{Action, decide, observe};
use crate::election::io::{self, WatchStep};

impl Elector {
    /// Keeps a follower's watch open; on failure, retries after a back-off and meanwhile the
    /// resync read covers.
    pub(super) async fn ensure_watch(&mut self) {
        if self.events_stream.is_some() || Instant::now() < self.watch_retry_at {
            return;
        }
        if self.credential.borrow().is_none() {
            return; // the next attempt chooses a kubeconfig (and reports why none works)
        }
        let Some(clients) = self.clients().await else {
            self.watch_retry_at = self.next_attempt.max(Instant::now());
            return;
        };
        let rv = self
            .observed
            .as_ref()
            .and_then(|o| o.lease.metadata.resource_version.clone())
            .unwrap_or_else(|| "0".to_owned());
        let api: Api<Lease> = Api::namespaced(clients.watch.clone(), &self.config.namespace);
        let opened = io::open_watch(
            &api,
            &self.config.name,
            &rv,
            self.config.watch_timeout_secs(),
            self.config.timings.request_timeout(),
        )
        .await;
        match opened {
            Ok(stream) => self.events_stream = Some(stream),
            Err(failure) => {
                tracing::debug!(%failure, "could not open the Lease watch");
                self.watch_retry_at = Instant::now() + self.config.timings.retry_period();
            }
        }
    }

    pub(super) async fn on_watch(&mut self, step: WatchStep) {
        match step {
            WatchStep::Nothing => {}
            WatchStep::Ended(why) => {
                tracing::debug!(%why, "Lease watch ended; re-reading");
                self.events_stream = None;
                self.next_attempt = Instant::now(); // re-read (also covers 410 Gone), then re-watch
            }
            WatchStep::Deleted => {
                self.observed = None;
                self.next_attempt = Instant::now();
            }
            WatchStep::Changed(lease) => {
                let now = Instant::now();
                self.observed = Some(observe(self.observed.take(), *lease, now));
                self.report_holder();
                match decide(&self.config.identity, self.observed.as_ref(), now) {
                    Action::WaitUntil(until) => {
                        let resync = now + self.config.timings.resync_period();
                        self.next_attempt = until.min(resync);
                    }
                    _ => self.next_attempt = now, // released (or ours): act at once
                }
            }
        }
    }
}
