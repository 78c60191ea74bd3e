//! What the elector tells the daemon, and the handle the daemon holds.
//!
//! The daemon's supervisor owns the VIP; the elector only reports. Contract:
//!
//! - [`ElectionEvent::Elected`] → add the VIP and start announcing.
//! - [`ElectionEvent::Renewed`] → refresh the address lifetime fence (sent after *every*
//!   successful renew; cheap). No other node can hold the Lease before `at + lease duration`.
//! - [`ElectionEvent::SteppedDown`] → stop announcing and remove the VIP. The elector keeps
//!   competing and may send `Elected` again later.
//! - Shutdown: remove the VIP *first*, then `handle.release_and_stop().await`, then exit. Dropping
//!   the handle (or the task being cancelled) never releases the Lease: a crashed holder must be
//!   waited out by the others, exactly like a killed process.

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::credentials::Credential;

/// A change of this node's role or of the observed leader, in the order they happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectionEvent {
    /// This node now holds the Lease. `at` is when the winning request was sent: the Lease is
    /// ours until at least `at + renew deadline`. `resumed` is true when the Lease already named
    /// this node (a restart, or a comeback after a step-down before anyone else took over).
    Elected {
        /// When the winning write was sent.
        at: Instant,
        /// True when no transition happened: the record already named us.
        resumed: bool,
    },
    /// The holder renewed; `at` is when the successful request was sent.
    Renewed {
        /// When the successful renew was sent.
        at: Instant,
    },
    /// This node stopped leading; the daemon removes the VIP.
    SteppedDown {
        /// When the elector decided to step down.
        at: Instant,
        /// Why, for the log line.
        reason: StepDownReason,
    },
    /// The holder named by the Lease changed (`None`: nobody holds it). Sent for every node,
    /// including this one, for logs and the "current leader" view.
    LeaderObserved {
        /// The new holder, if any.
        holder: Option<String>,
    },
}

/// Why the holder stepped down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepDownReason {
    /// No successful renew for a whole renew deadline (API unreachable, slow, or forbidden).
    RenewDeadlinePassed,
    /// A re-read showed another holder (someone took over; should only happen with a
    /// misconfigured peer or a very slow clock).
    LostTo(String),
    /// The daemon asked to release the Lease.
    Released,
}

/// A snapshot of the elector for metrics and `/readyz`; updated on every change. Counting
/// elections is the consumer's business: it sees every [`ElectionEvent`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElectorStatus {
    /// Whether this node currently leads.
    pub leading: bool,
    /// The holder last observed in the Lease (`None`: nobody, or not read yet).
    pub holder: Option<String>,
    /// Renew attempts that failed while leading (a metric counter).
    pub renew_failures: u64,
    /// The credential in use (the ladder's rung), `None` before one could be loaded.
    pub credential: Option<Credential>,
    /// Whether the last request reached the API server and was authorized (for `/readyz`).
    pub api_reachable: bool,
    /// The last error, in words an operator can act on (cleared on success).
    pub last_error: Option<String>,
}

/// Orders sent to the elector task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Release the Lease if held, reply with whether it was released, then stop.
    ReleaseAndStop(oneshot::Sender<Result<bool, String>>),
}

/// Why a release did not happen cleanly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// The update clearing the holder failed; others take over after the lease duration.
    #[error("could not release the Lease (others take over after its duration instead): {0}")]
    Failed(String),
    /// The elector task had already ended.
    #[error("the elector task had already stopped")]
    Stopped,
}

/// The daemon's grip on a running elector. Dropping it stops the task *without* releasing.
#[derive(Debug)]
pub struct ElectorHandle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) status: watch::Receiver<ElectorStatus>,
    pub(crate) task: JoinHandle<()>,
}

impl ElectorHandle {
    /// A receiver of status snapshots, for metrics and `/readyz`.
    pub fn status(&self) -> watch::Receiver<ElectorStatus> {
        self.status.clone()
    }

    /// Releases the Lease if this node holds it (conditioned on the last read
    /// `resourceVersion`, like client-go: never clears someone else's record), then stops the
    /// task. Returns whether a release was written. Call it *after* removing the VIP.
    pub async fn release_and_stop(mut self) -> Result<bool, ReleaseError> {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::ReleaseAndStop(tx))
            .await
            .is_err()
        {
            return Err(ReleaseError::Stopped);
        }
        let reply = rx.await.map_err(|_| ReleaseError::Stopped)?;
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        // The task ends right after replying; a join error here only means it panicked later.
        let _ = task.await;
        reply.map_err(ReleaseError::Failed)
    }

    /// Stops the task without releasing, as a crash would: others wait for the expiry.
    pub fn abort(self) {
        self.task.abort();
    }
}

impl Drop for ElectorHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
