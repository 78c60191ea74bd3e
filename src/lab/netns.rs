//! Throw-away network namespaces for tests, benchmarks and `kvip lab`.
//!
//! Every test that touches real kernel networking builds its own small world here: named
//! namespaces joined by veth pairs or a bridge, so traffic never leaves them and tests can run in
//! parallel. Names include the process id and a counter, and [`NetNs`] deletes its namespace (and
//! with it every interface inside) in `Drop`, also when the test fails.
//!
//! Topology setup shells out to `ip` (iproute2): this is fixture code, where readability beats
//! speed. kvip's product code never does.
//!
//! Code runs *inside* a namespace on a dedicated thread that calls `setns(CLONE_NEWNET)`; sockets
//! created there stay in that namespace for their whole life, whichever thread uses them later.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pnet::datalink::{self, Channel, DataLinkReceiver};
use pnet::util::MacAddr;
use serde::Deserialize;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique name with a short role prefix: fits the kernel's 15-byte interface-name limit when
/// the prefix is at most 3 bytes (namespace names have no such limit).
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id() % 1_000_000)
}

/// A named network namespace (`ip netns add`), deleted with everything in it on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a namespace with loopback up.
    pub fn new() -> Result<Self> {
        let name = format!("kvip-{}", unique_name("ns"));
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, for `ip netns exec` and `ip -n`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <ns> <args>` and returns its standard output.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let output = run(Command::new("ip").arg("-n").arg(&self.name).args(args))?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs a program inside the namespace (`ip netns exec`) and returns its output, whatever its
    /// exit status (the caller asserts on it).
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .with_context(|| format!("running {program} in namespace {}", self.name))
    }

    /// Sets a sysctl inside the namespace (`net.*` sysctls are per namespace). Writes
    /// `/proc/sys/...` from a thread inside the namespace, so no `sysctl` binary is needed; keys
    /// use dots as separators, so interface names in them must not contain dots.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.run(|| std::fs::write(&path, value))?
            .with_context(|| format!("setting {key}={value} in namespace {}", self.name))
    }

    /// Runs a closure on a fresh thread that has entered this namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).with_context(|| format!("opening {path}"))?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: setns only switches this thread's network namespace; the fd is valid
                    // for the call because `file` lives until the end of the closure.
                    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                    if rc != 0 {
                        return Err(io::Error::last_os_error()).context("setns(CLONE_NEWNET)");
                    }
                    Ok(f())
                })
                .join()
                .map_err(|_| anyhow::anyhow!("thread inside namespace panicked"))?
        })
    }

    /// Runs an async function to completion on a current-thread tokio runtime inside this
    /// namespace. Tasks it spawns run on the same thread, so their sockets are in the namespace.
    pub fn block_on<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = T>,
    {
        self.run(|| -> Result<T> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("building a tokio runtime")?;
            Ok(runtime.block_on(f()))
        })?
    }

    /// The MAC address of an interface in this namespace.
    pub fn mac(&self, ifname: &str) -> Result<MacAddr> {
        #[derive(Deserialize)]
        struct Link {
            address: String,
        }
        let links: Vec<Link> =
            serde_json::from_str(&self.ip(&["-j", "link", "show", "dev", ifname])?)
                .context("parsing `ip -j link`")?;
        let link = links
            .first()
            .with_context(|| format!("no link {ifname} in {}", self.name))?;
        link.address
            .parse()
            .with_context(|| format!("MAC of {ifname}: {}", link.address))
    }

    /// The neighbour table of an interface (`ip -j neigh show dev`).
    pub fn neighbours(&self, ifname: &str) -> Result<Vec<Neighbour>> {
        let json = self.ip(&["-j", "neigh", "show", "dev", ifname])?;
        serde_json::from_str(&json).context("parsing `ip -j neigh`")
    }

    /// Opens a capture on an interface of this namespace: an AF_PACKET socket, not promiscuous
    /// (veth delivers every frame anyway), created inside the namespace. Frames that arrive after
    /// this returns are queued until read.
    pub fn capture(&self, ifname: &str) -> Result<Capture> {
        let ifname = ifname.to_string();
        self.run(move || -> Result<Capture> {
            let interface = datalink::interfaces()
                .into_iter()
                .find(|candidate| candidate.name == ifname)
                .with_context(|| format!("no interface {ifname} to capture on"))?;
            let config = datalink::Config {
                read_timeout: Some(Duration::from_millis(100)),
                promiscuous: false,
                ..Default::default()
            };
            match datalink::channel(&interface, config).context("opening the capture socket")? {
                Channel::Ethernet(_, receiver) => Ok(Capture { receiver }),
                _ => bail!("pnet returned a non-Ethernet channel"),
            }
        })?
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// One entry of `ip -j neigh`.
#[derive(Debug, Clone, Deserialize)]
pub struct Neighbour {
    /// The neighbour's IP address.
    pub dst: String,
    /// Its link-layer address, when known.
    pub lladdr: Option<String>,
    /// NUD states, e.g. `["STALE"]`.
    #[serde(default)]
    pub state: Vec<String>,
}

/// Joins two namespaces with a veth pair (`name_a` in `a`, `name_b` in `b`), both ends up.
/// Deleting either namespace deletes the pair.
pub fn veth(a: &NetNs, name_a: &str, b: &NetNs, name_b: &str) -> Result<()> {
    run(Command::new("ip").args([
        "link",
        "add",
        name_a,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        name_b,
        "netns",
        b.name(),
    ]))?;
    a.ip(&["link", "set", name_a, "up"])?;
    b.ip(&["link", "set", name_b, "up"])?;
    Ok(())
}

/// Creates a bridge in `ns` and enslaves the given interfaces of that namespace to it, all up:
/// for topologies with more than two nodes on one segment.
pub fn bridge(ns: &NetNs, name: &str, members: &[&str]) -> Result<()> {
    ns.ip(&["link", "add", name, "type", "bridge"])?;
    ns.ip(&["link", "set", name, "up"])?;
    for member in members {
        ns.ip(&["link", "set", member, "master", name])?;
        ns.ip(&["link", "set", member, "up"])?;
    }
    Ok(())
}

/// Frames captured on one interface.
pub struct Capture {
    receiver: Box<dyn DataLinkReceiver>,
}

impl Capture {
    /// The next frame for which `wanted` is true, or an error after `timeout` (a give-up guard,
    /// not a measurement).
    pub fn next_matching(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.receiver.next() {
                Ok(frame) if wanted(frame) => return Ok(frame.to_vec()),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::TimedOut => {}
                Err(err) => return Err(err).context("reading the capture socket"),
            }
        }
        bail!("no matching frame within {timeout:?}")
    }

    /// Every frame for which `wanted` is true that arrives within `window` (a collection window
    /// for counting, e.g. "nothing more was sent after stop").
    pub fn collect(
        &mut self,
        window: Duration,
        wanted: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<Vec<u8>>> {
        let deadline = Instant::now() + window;
        let mut frames = Vec::new();
        while Instant::now() < deadline {
            match self.receiver.next() {
                Ok(frame) if wanted(frame) => frames.push(frame.to_vec()),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::TimedOut => {}
                Err(err) => return Err(err).context("reading the capture socket"),
            }
        }
        Ok(frames)
    }
}

fn run(command: &mut Command) -> Result<Output> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?} (is iproute2 installed?)"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output)
}
