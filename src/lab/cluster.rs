//! A control plane on one machine: N node namespaces, an API namespace and a client namespace on
//! one bridge, the Lease endpoint, and one real `kvip run` process per node.
//!
//! The end-to-end tests and `kvip lab` build the same world, so what the tests prove is what the
//! demo shows. Everything lives in namespaces this type creates (the bridge too, inside its own
//! "switch" namespace): nothing is added to the host's namespace, and `Drop` kills the kvip
//! processes and deletes every namespace, also when a test fails.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pnet::util::MacAddr;

use super::apiserver::{self, ApiServer, Identity, Subject};
use super::netns::{self, NetNs};

/// The kubeadm group whose grant makes admin.conf work (`kubeadm:cluster-admins`).
pub const ADMINS_GROUP: &str = "kubeadm:cluster-admins";

/// What to build.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// How many control-plane nodes (kvip processes).
    pub nodes: usize,
    /// The kvip binary to run on each node.
    pub kvip: PathBuf,
    /// The first three octets of the segment's /24, e.g. `[10, 240, 0]`: addresses exist only
    /// inside this cluster's namespaces.
    pub subnet: [u8; 3],
    /// Lease duration, renew deadline and retry period passed to every node, as on kvip's
    /// command line (`3`, `2`, `500ms`).
    pub timings: [String; 3],
    /// `vip_arpRate` in milliseconds.
    pub arp_rate_ms: u32,
    /// Grant admin.conf's group from the start (false replays the kubeadm >= 1.29 bootstrap).
    pub admin_granted: bool,
}

impl ClusterOptions {
    /// Three nodes, short timings (3 s / 2 s / 500 ms) and a 500 ms refresh: a test's world.
    pub fn new(kvip: impl Into<PathBuf>) -> Self {
        ClusterOptions {
            nodes: 3,
            kvip: kvip.into(),
            subnet: [10, 240, 0],
            timings: ["3", "2", "500ms"].map(String::from),
            arp_rate_ms: 500,
            admin_granted: true,
        }
    }
}

/// One control-plane node: a namespace with `eth0` on the bridge and, while running, a kvip.
#[derive(Debug)]
pub struct Node {
    /// The node name, also its Lease identity (`cp-1`, …).
    pub name: String,
    /// Its network namespace.
    pub ns: NetNs,
    /// The MAC of its `eth0`: the sender of its gratuitous ARP.
    pub mac: MacAddr,
    /// Its own address on the segment.
    pub addr: Ipv4Addr,
    /// Where its kvip writes its log.
    pub log: PathBuf,
    /// Its port on the bridge (in the switch namespace): unplugging it partitions the node.
    port: String,
    process: Option<Child>,
}

/// The whole world; see the module docs.
pub struct Cluster {
    /// The VIP the nodes compete for.
    pub vip: Ipv4Addr,
    /// The nodes, in order.
    pub nodes: Vec<Node>,
    /// A client host on the segment (observer, prober).
    pub client: NetNs,
    /// The client's address on the segment.
    pub client_addr: Ipv4Addr,
    /// The Lease endpoint, in its own namespace on the segment.
    pub server: ApiServer,
    options: ClusterOptions,
    dir: PathBuf,
    api_url: String,
    // Held, never read: the Lease endpoint runs on it. Declared last so the namespaces outlive
    // the processes and the server.
    _runtime: tokio::runtime::Runtime,
    _api: NetNs,
    switch: NetNs,
}

impl Cluster {
    /// Builds the topology, starts the Lease endpoint and writes each node's kubeconfigs; starts
    /// no kvip yet ([`Cluster::start_node`]).
    pub fn build(options: ClusterOptions) -> Result<Self> {
        let [a, b, c] = options.subnet;
        let host = |d: u8| Ipv4Addr::new(a, b, c, d);
        let switch = NetNs::new()?;
        let mut ports = Vec::new();
        let mut attach = |ns: &NetNs, addr: Ipv4Addr| -> Result<String> {
            let port = format!("p{}", ports.len());
            netns::veth(ns, "eth0", &switch, &port)?;
            ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
            ports.push(port.clone());
            Ok(port)
        };
        let api = NetNs::new()?;
        let api_addr = host(100);
        attach(&api, api_addr)?;
        let client = NetNs::new()?;
        let client_addr = host(200);
        attach(&client, client_addr)?;
        let dir = std::env::temp_dir().join(format!("kvip-{}", netns::unique_name("lab")));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut nodes = Vec::new();
        for i in 1..=options.nodes {
            let ns = NetNs::new()?;
            let addr = host(10 + u8::try_from(i).context("too many nodes")?);
            let port = attach(&ns, addr)?;
            let mac = ns.mac("eth0")?;
            let name = format!("cp-{i}");
            let log = dir.join(format!("{name}.log"));
            nodes.push(Node {
                name,
                ns,
                mac,
                addr,
                log,
                port,
                process: None,
            });
        }
        let members: Vec<&str> = ports.iter().map(String::as_str).collect();
        netns::bridge(&switch, "br0", &members)?;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("starting the Lease endpoint's runtime")?;
        let listener = api.run(|| std::net::TcpListener::bind((api_addr, 0)))??;
        let server = runtime.block_on(apiserver::start(apiserver::Options {
            listener: Some(listener),
            extra_ips: vec![IpAddr::V4(api_addr)],
            ..Default::default()
        }))?;
        let api_url = format!("{api_addr}:{}", server.addr().port());
        if options.admin_granted {
            server.grant(Subject::group(ADMINS_GROUP));
        }
        let vip = host(50);
        // Like kubeadm's, the kubeconfigs name the VIP as server; kvip must not depend on it.
        let vip_url = format!("https://{vip}:6443");
        for node in &nodes {
            let admin = Identity::new(node.name.clone(), &[ADMINS_GROUP]);
            server.write_kubeconfig(
                &admin,
                &vip_url,
                &dir.join(format!("{}-admin.conf", node.name)),
            )?;
        }
        Ok(Cluster {
            vip,
            nodes,
            client,
            client_addr,
            server,
            options,
            dir,
            api_url,
            _runtime: runtime,
            _api: api,
            switch,
        })
    }

    /// Writes a super-admin.conf (group `system:masters`) for node `i`, as `kubeadm init` does
    /// on the first node only.
    pub fn write_super_admin(&self, i: usize) -> Result<()> {
        let node = &self.nodes[i];
        let identity = Identity::new(format!("{}-super-admin", node.name), &["system:masters"]);
        let path = self.dir.join(format!("{}-super-admin.conf", node.name));
        Ok(self
            .server
            .write_kubeconfig(&identity, &format!("https://{}:6443", self.vip), &path)?)
    }

    /// Starts `kvip run` on node `i` (again, after it was stopped).
    pub fn start_node(&mut self, i: usize) -> Result<()> {
        let [lease, renew, retry] = &self.options.timings;
        let node = &self.nodes[i];
        let kubeconfig = |kind: &str| self.dir.join(format!("{}-{kind}.conf", node.name));
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        let mut push = |items: &[&str]| args.extend(items.iter().map(Into::into));
        push(&[
            "run",
            "--interface",
            "eth0",
            "--address",
            &self.vip.to_string(),
        ]);
        push(&["--nodeName", &node.name, "--kubernetes-addr", &self.api_url]);
        push(&["--leaseDuration", lease, "--leaseRenewDuration", renew]);
        push(&["--leaseRetry", retry]);
        push(&["--arp-rate", &self.options.arp_rate_ms.to_string()]);
        push(&["--prometheusHTTPServer", "", "--log-format", "json"]);
        args.push("--k8sConfigPath".into());
        args.push(kubeconfig("admin").into());
        args.push("--super-admin-kubeconfig".into());
        args.push(kubeconfig("super-admin").into());
        // Static pods have no ServiceAccount token; never pick up the host's (CI in a pod).
        args.push("--service-account-dir".into());
        args.push(
            self.dir
                .join(format!("{}-serviceaccount", node.name))
                .into(),
        );
        let kvip = self.options.kvip.clone();
        self.spawn_in_node(i, kvip.as_os_str(), &args)
    }

    /// Starts any program in node `i`'s namespace as that node's process (kvip, or a peer such as
    /// keepalived), logging to the node's log file. The process leads its own process group (so
    /// [`Cluster::kill_group`] reaches its children too) and gets SIGKILL if the thread that
    /// started it dies, so a killed lab leaves no daemon behind.
    pub fn spawn_in_node(
        &mut self,
        i: usize,
        program: &std::ffi::OsStr,
        args: &[std::ffi::OsString],
    ) -> Result<()> {
        use std::os::unix::process::CommandExt;
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .with_context(|| format!("opening {}", node.log.display()))?;
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", node.ns.name()])
            .arg(program)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches only the child's own state.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", program.to_string_lossy()))?;
        node.process = Some(child);
        Ok(())
    }

    /// Starts every node.
    pub fn start_all(&mut self) -> Result<()> {
        (0..self.nodes.len()).try_for_each(|i| self.start_node(i))
    }

    /// The Lease's current holder, if any.
    pub fn holder(&self) -> Option<String> {
        let lease = self.server.lease("kube-system", "plndr-cp-lock")?;
        lease.spec?.holder_identity.filter(|h| !h.is_empty())
    }

    /// Waits until the Lease names a holder other than `not`; returns the node index.
    pub fn wait_for_holder(&self, not: Option<&str>, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(holder) = self.holder().filter(|h| Some(h.as_str()) != not)
                && let Some(i) = self.nodes.iter().position(|n| n.name == holder)
            {
                return Ok(i);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "no new Lease holder within {timeout:?}; logs in {}",
            self.dir.display()
        )
    }

    /// Whether node `i` has the VIP on its `eth0` right now.
    pub fn has_vip(&self, i: usize) -> Result<bool> {
        let out = self.nodes[i]
            .ns
            .ip(&["-4", "-o", "addr", "show", "dev", "eth0"])?;
        Ok(out.contains(&format!("inet {}/", self.vip)))
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to node `i`'s kvip.
    pub fn signal(&self, i: usize, signal: i32) -> Result<()> {
        let child = self.nodes[i]
            .process
            .as_ref()
            .context("node is not running")?;
        // `ip netns exec` execs kvip, so the child's pid is kvip's.
        let pid = i32::try_from(child.id()).context("pid out of range")?;
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(std::io::Error::last_os_error()).context("kill");
        }
        Ok(())
    }

    /// Sends `signal` to node `i`'s whole process group: a crash of a daemon that forks (like
    /// keepalived's VRRP child) must take every process down at once.
    pub fn kill_group(&self, i: usize, signal: i32) -> Result<()> {
        let child = self.nodes[i]
            .process
            .as_ref()
            .context("node is not running")?;
        let pid = i32::try_from(child.id()).context("pid out of range")?;
        // SAFETY: killpg(2) on the process group our own child leads.
        if unsafe { libc::killpg(pid, signal) } != 0 {
            return Err(std::io::Error::last_os_error()).context("killpg");
        }
        Ok(())
    }

    /// Unplugs (`cut`) or re-plugs node `i`'s port on the bridge. The node's own link stays up
    /// with carrier, as when a switch or a cable further away fails: the node can no longer
    /// reach the API, its peers or the client, and nothing tells it so.
    pub fn partition(&self, i: usize, cut: bool) -> Result<()> {
        let port = &self.nodes[i].port;
        if cut {
            self.switch.ip(&["link", "set", port, "nomaster"])?;
        } else {
            self.switch.ip(&["link", "set", port, "master", "br0"])?;
            self.switch.ip(&["link", "set", port, "up"])?;
        }
        Ok(())
    }

    /// Whether node `i` has a process that has not been reaped yet.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].process.is_some()
    }

    /// The options the cluster was built with.
    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    /// Waits for node `i`'s kvip to exit.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.nodes[i]
            .process
            .as_mut()
            .context("node is not running")?;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                self.nodes[i].process = None;
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!("{} did not exit within {timeout:?}", self.nodes[i].name)
    }

    /// The last `lines` lines of every node's log: what explains a failure, printed before the
    /// directory is deleted with the cluster.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let log = std::fs::read_to_string(&node.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(lines).collect();
            out.push_str(&format!("--- {} ({}):\n", node.name, node.log.display()));
            tail.iter()
                .rev()
                .for_each(|line| out.push_str(&format!("{line}\n")));
        }
        out
    }

    /// The directory with logs and kubeconfigs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.process.take() {
                // The whole group: a peer daemon's children must not outlive the namespace.
                if let Ok(pid) = i32::try_from(child.id()) {
                    // SAFETY: killpg(2) on the process group our own child leads.
                    unsafe { libc::killpg(pid, libc::SIGKILL) };
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.server.shutdown();
        if std::thread::panicking() {
            // A failing test is explained by what the nodes logged.
            eprint!("{}", self.log_tails(40));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
