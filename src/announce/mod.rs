//! Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6) for the VIP.
//!
//! The [`Announcer`] is a task that owns one raw socket on the VIP's interface (see [`socket`])
//! and does what the daemon's supervisor tells it: [`Announcer::start`] on takeover,
//! [`Announcer::stop`] the instant leadership ends. It never decides on its own.
//!
//! # Schedule
//!
//! On takeover it sends a burst at once and repeats it over the first second
//! ([`DEFAULT_BURST`]: 0, 250, 500 and 1000 ms), then refreshes every `vip_arpRate` (3000 ms by
//! default) for as long as it leads. Every round sends every frame form for every VIP
//! ([`frames`]). Why those offsets:
//!
//! - **0 ms**: the segment must learn the new MAC now; kube-vip waits for its next tick (0–3 s).
//! - **250 / 500 ms**: switches that drop the first frame after a port change (port security,
//!   MAC learning races, STP on a port that just came up) get two more chances within half a
//!   second.
//! - **1000 ms**: re-asserts the mapping after any late answer from the previous holder. Its
//!   ordinary ARP replies, sent while it was stepping down, can reach peers after our first
//!   round; a Linux peer ignores such (non-gratuitous) replies only within `locktime` (1 s by
//!   default) of our update, so the 1 s round is the one that sticks.
//!
//! [`Announcer::stop`] takes effect before it returns: the task checks a shared epoch before every
//! frame, so at most a frame already inside `sendto` can follow it.

pub mod frames;
pub mod socket;

mod cli;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::address::{Interface, Vip};

pub use cli::run_cli;
pub use frames::FrameError;
pub use socket::RawLink;

/// Offsets of the takeover rounds from the moment leadership was won (see the module docs).
pub const DEFAULT_BURST: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_millis(1000),
];

/// kube-vip's default `vip_arpRate`: the refresh period while leading.
pub const DEFAULT_ARP_RATE: Duration = Duration::from_millis(3000);

/// When the announcer sends: the takeover burst, then a steady refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Offsets of the takeover rounds from `start`; the first should be zero.
    pub burst: Vec<Duration>,
    /// Period of the refresh rounds after the burst (`vip_arpRate`).
    pub refresh: Duration,
}

impl Schedule {
    /// The default burst with the given refresh period.
    pub fn with_arp_rate(refresh: Duration) -> Self {
        Self {
            burst: DEFAULT_BURST.to_vec(),
            refresh,
        }
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Self::with_arp_rate(DEFAULT_ARP_RATE)
    }
}

/// Why an announcement could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// The raw socket could not be opened (usually a missing CAP_NET_RAW).
    #[error("cannot open a raw (AF_PACKET) socket on interface `{interface}`: {error}{hint}")]
    Open {
        /// The interface name.
        interface: String,
        /// The system's error (in the message, not chained, so it is printed once).
        error: std::io::Error,
        /// What to do about it, when known (starts with "; ").
        hint: &'static str,
    },
    /// The frames for a VIP cannot be built on this interface.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The kernel refused a frame (interface down, queue full past the write timeout, …).
    #[error("sending on interface `{interface}`: {error}")]
    Send {
        /// The interface name.
        interface: String,
        /// The system's error (in the message, not chained, so it is printed once).
        error: std::io::Error,
    },
    /// The takeover was superseded by `stop` or another `start` before its first frame left, or
    /// the announcer task is gone.
    #[error("the announcement on interface `{interface}` was stopped before its first frame left")]
    Stopped {
        /// The interface name.
        interface: String,
    },
}

/// The frames for a set of VIPs on one interface, built by [`Announcer::prepare`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct Announcement(Arc<[Vec<u8>]>);

enum Command {
    Start {
        epoch: u64,
        frames: Announcement,
        first_frame: oneshot::Sender<Result<Instant, AnnounceError>>,
    },
    Stop,
}

/// Resolves to the moment the first frame of a takeover was handed to the kernel, for the
/// daemon's "lease acquired → first GARP" log line and histogram.
pub struct FirstFrame {
    receiver: oneshot::Receiver<Result<Instant, AnnounceError>>,
    interface: String,
}

impl FirstFrame {
    /// Waits for the first frame of this takeover to leave.
    pub async fn wait(self) -> Result<Instant, AnnounceError> {
        match self.receiver.await {
            Ok(result) => result,
            Err(_) => Err(AnnounceError::Stopped {
                interface: self.interface,
            }),
        }
    }
}

/// The announcement task for one interface; see the module docs.
///
/// Must be created inside a tokio runtime. Dropping it ends the task and closes the socket.
pub struct Announcer {
    interface: Interface,
    commands: mpsc::UnboundedSender<Command>,
    /// Bumped by every `start` and `stop`; the task sends only while it matches the round's.
    epoch: Arc<AtomicU64>,
    frames_sent: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Announcer {
    /// Opens the interface's raw socket (once, for the daemon's life) and starts the idle task.
    pub fn open(interface: &Interface, schedule: Schedule) -> Result<Self, AnnounceError> {
        let link = RawLink::open(interface)?;
        let (commands, receiver) = mpsc::unbounded_channel();
        let epoch = Arc::new(AtomicU64::new(0));
        let frames_sent = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(
            Worker {
                link,
                schedule,
                epoch: epoch.clone(),
                frames_sent: frames_sent.clone(),
                interface: interface.name.clone(),
            }
            .run(receiver),
        );
        Ok(Self {
            interface: interface.clone(),
            commands,
            epoch,
            frames_sent,
            task,
        })
    }

    /// Builds every frame that announces `vips` on this interface, once. The daemon prepares
    /// its VIPs at start-up (a VIP that cannot be announced here is a start-up error) and hands
    /// the result to [`Announcer::announce`] on every takeover, so the hot path builds nothing.
    pub fn prepare(&self, vips: &[Vip]) -> Result<Announcement, AnnounceError> {
        let mut frames = Vec::new();
        for vip in vips {
            frames.extend(frames::frames_for(
                &self.interface.name,
                self.interface.mac,
                self.interface.link_local,
                vip.addr,
            )?);
        }
        Ok(Announcement(frames.into()))
    }

    /// Starts announcing `vips` from now on: [`Announcer::prepare`] then [`Announcer::announce`].
    /// Fails at once, before anything is sent, if a VIP cannot be announced here.
    pub fn start(&self, vips: &[Vip]) -> Result<FirstFrame, AnnounceError> {
        Ok(self.announce(&self.prepare(vips)?))
    }

    /// Starts sending `announcement` from now on: the takeover burst, then the refresh. Calling
    /// it again (after re-adding a VIP that vanished, or when the link came back up) restarts the
    /// burst.
    pub fn announce(&self, announcement: &Announcement) -> FirstFrame {
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        let (first_frame, receiver) = oneshot::channel();
        // If the task is gone the sender is dropped and `wait` reports `Stopped`.
        let _ = self.commands.send(Command::Start {
            epoch,
            frames: announcement.clone(),
            first_frame,
        });
        FirstFrame {
            receiver,
            interface: self.interface.name.clone(),
        }
    }

    /// Stops announcing, effective before this returns.
    pub fn stop(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let _ = self.commands.send(Command::Stop);
    }

    /// Frames handed to the kernel so far (for the `frames sent` metric).
    pub fn frames_sent(&self) -> Arc<AtomicU64> {
        self.frames_sent.clone()
    }

    /// The interface this announcer sends on.
    pub fn interface(&self) -> &Interface {
        &self.interface
    }
}

/// The task's state: owns the socket, follows the schedule of the current takeover.
struct Worker {
    link: RawLink,
    schedule: Schedule,
    epoch: Arc<AtomicU64>,
    frames_sent: Arc<AtomicU64>,
    interface: String,
}

/// The takeover being announced.
struct Active {
    epoch: u64,
    frames: Announcement,
    started: tokio::time::Instant,
    /// Index of the next round: burst rounds first, then refreshes.
    round: u32,
    next_due: tokio::time::Instant,
}

impl Worker {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut active: Option<Active> = None;
        loop {
            let due = active.as_ref().map(|state| state.next_due);
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::Stop) => active = None,
                    Some(Command::Start { epoch, frames, first_frame }) => {
                        let now = tokio::time::Instant::now();
                        let mut state = Active { epoch, frames, started: now, round: 0, next_due: now };
                        let result = self.round(&mut state);
                        let _ = first_frame.send(result);
                        active = Some(state);
                    }
                },
                () = sleep_until(due), if due.is_some() => {
                    if let Some(state) = active.as_mut()
                        && let Err(err) = self.round(state)
                    {
                        tracing::warn!(interface = %self.interface, error = %err, "announcement failed");
                    }
                }
            }
        }
    }

    /// Sends every frame once, schedules the next round, and returns when the first frame left.
    fn round(&mut self, state: &mut Active) -> Result<Instant, AnnounceError> {
        let mut first: Option<Instant> = None;
        let mut last_error = None;
        for frame in state.frames.0.iter() {
            if self.epoch.load(Ordering::SeqCst) != state.epoch {
                break;
            }
            match self.link.send(frame) {
                Ok(()) => {
                    first.get_or_insert_with(Instant::now);
                    self.frames_sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => last_error = Some(err),
            }
        }
        state.round += 1;
        let burst = &self.schedule.burst;
        state.next_due = match burst.get(state.round as usize) {
            Some(offset) => state.started + *offset,
            None => state.next_due + self.schedule.refresh,
        };
        match (first, last_error) {
            (Some(at), _) => Ok(at),
            (None, Some(err)) => Err(err),
            (None, None) => Err(AnnounceError::Stopped {
                interface: self.interface.clone(),
            }),
        }
    }
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}
