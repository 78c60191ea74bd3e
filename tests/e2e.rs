//! End to end on a real kernel: three `kvip run` processes in three namespaces on one bridge,
//! the Lease endpoint in a fourth, and a client that records every frame claiming or answering for
//! the VIP.

use std::time::{Duration, Instant};

use kvip::lab::cluster::{Cluster, ClusterOptions};
use kvip::lab::probe::Probe;
use pnet::util::MacAddr;

const PATIENCE: Duration = Duration::from_secs(30);

/// The client's view of the VIP (`lab::probe`): every frame that claims or answers for it, with
/// its kernel receive time and sender MAC.
struct Observer(Probe);

impl Observer {
    fn start(cluster: &Cluster) -> Observer {
        Observer(
            Probe::start(&cluster.client, cluster.client_addr, cluster.vip)
                .expect("probe on the client"),
        )
    }

    fn frames(&self) -> Vec<(Instant, MacAddr)> {
        self.0
            .sightings()
            .into_iter()
            .map(|s| (s.at, s.mac))
            .collect()
    }

    /// Waits for a claim from `mac`; returns when it was seen.
    fn wait_for(&self, mac: MacAddr, after: Instant) -> Instant {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some((at, _)) = self
                .frames()
                .into_iter()
                .find(|(at, m)| *m == mac && *at >= after)
            {
                return at;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("nothing from {mac} about the VIP within {PATIENCE:?}");
    }
}

fn cluster() -> Cluster {
    let mut cluster =
        Cluster::build(ClusterOptions::new(env!("CARGO_BIN_EXE_kvip"))).expect("topology");
    cluster.start_all().expect("kvip processes start");
    cluster
}

fn only_holder_has_the_vip(cluster: &Cluster, holder: usize) {
    for i in 0..cluster.nodes.len() {
        // A follower never had it; the holder added it before announcing.
        let want = i == holder;
        let deadline = Instant::now() + PATIENCE;
        while cluster.has_vip(i).unwrap() != want {
            assert!(
                Instant::now() < deadline,
                "{} has_vip != {want}",
                cluster.nodes[i].name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn one_mac_answers_for_the_vip_and_a_sigterm_hands_it_over() {
    let mut cluster = cluster();
    let observer = Observer::start(&cluster);
    let first = cluster.wait_for_holder(None, PATIENCE).unwrap();
    only_holder_has_the_vip(&cluster, first);
    let first_mac = cluster.nodes[first].mac;
    observer.wait_for(first_mac, Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let claims = observer.frames();
    assert!(
        claims.iter().all(|(_, mac)| *mac == first_mac),
        "only the holder {first_mac} may claim the VIP: {claims:?}"
    );

    let stopped = Instant::now();
    cluster.signal(first, libc::SIGTERM).unwrap();
    let status = cluster.wait_exit(first, PATIENCE).unwrap();
    assert!(status.success(), "a SIGTERM'd kvip exits 0: {status:?}");
    assert!(
        !cluster.has_vip(first).unwrap(),
        "the VIP leaves the stopped node before it exits"
    );
    let old = cluster.nodes[first].name.clone();
    let second = cluster.wait_for_holder(Some(&old), PATIENCE).unwrap();
    let second_mac = cluster.nodes[second].mac;
    let taken = observer.wait_for(second_mac, stopped);
    only_holder_has_the_vip(&cluster, second);
    let late_old_claims: Vec<_> = observer
        .frames()
        .into_iter()
        .filter(|(at, mac)| *mac == first_mac && *at > taken)
        .collect();
    assert!(
        late_old_claims.is_empty(),
        "the old holder claimed the VIP after the new one: {late_old_claims:?}"
    );
}

#[test]
fn a_sigkilled_holder_loses_the_vip_by_the_fence_before_another_takes_over() {
    let mut cluster = cluster();
    let observer = Observer::start(&cluster);
    let first = cluster.wait_for_holder(None, PATIENCE).unwrap();
    only_holder_has_the_vip(&cluster, first);
    observer.wait_for(cluster.nodes[first].mac, Instant::now());

    let killed = Instant::now();
    cluster.signal(first, libc::SIGKILL).unwrap();
    cluster.wait_exit(first, PATIENCE).unwrap();
    // Nobody is left to remove it: only the kernel's lifetime fence can.
    let deadline = Instant::now() + PATIENCE;
    while cluster.has_vip(first).unwrap() {
        assert!(
            Instant::now() < deadline,
            "the kernel never expired the dead holder's VIP"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let fenced = Instant::now();

    let old = cluster.nodes[first].name.clone();
    let second = cluster.wait_for_holder(Some(&old), PATIENCE).unwrap();
    let taken = observer.wait_for(cluster.nodes[second].mac, killed);
    assert!(
        fenced <= taken,
        "the new holder announced before the dead holder's VIP was gone"
    );
    only_holder_has_the_vip(&cluster, second);
}

/// GET `path` from node `i`'s health address (127.0.0.1:2113 inside its namespace).
fn get(cluster: &Cluster, i: usize, path: &str) -> String {
    use std::io::{Read, Write};
    let path = path.to_string();
    cluster.nodes[i]
        .ns
        .run(move || {
            let mut stream = std::net::TcpStream::connect("127.0.0.1:2113").ok()?;
            let request = format!("GET {path} HTTP/1.1\r\nHost: kvip\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).ok()?;
            let mut response = String::new();
            stream.read_to_string(&mut response).ok()?;
            Some(response)
        })
        .unwrap()
        .unwrap_or_default()
}

/// Waits until node `i`'s `path` answers with something containing every needle.
fn wait_for_answer(cluster: &Cluster, i: usize, path: &str, needles: &[&str]) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = get(cluster, i, path);
        if needles.iter().all(|n| answer.contains(n)) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "{} {path} never showed {needles:?}; last:\n{answer}",
            cluster.nodes[i].name
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn metric_line(name: &str, node: &str, extra: &str) -> String {
    format!("{name}{{node=\"{node}\",lease=\"kube-system/plndr-cp-lock\"{extra}}}")
}

#[test]
fn the_kubeadm_bootstrap_needs_no_manifest_edit() {
    // kubeadm >= 1.29: admin.conf is forbidden until kubeadm binds its group through the VIP, and
    // only the first node has super-admin.conf. Every node runs the same command line.
    let mut options = ClusterOptions::new(env!("CARGO_BIN_EXE_kvip"));
    options.admin_granted = false;
    let mut cluster = Cluster::build(options).unwrap();
    cluster.write_super_admin(0).unwrap();
    cluster.start_all().unwrap();

    let holder = cluster.wait_for_holder(None, PATIENCE).unwrap();
    assert_eq!(
        holder, 0,
        "only the init node can take the Lease during the bootstrap"
    );
    only_holder_has_the_vip(&cluster, 0);
    let on_super_admin = format!(
        "{} 1",
        metric_line(
            "kvip_credential",
            "cp-1",
            ",kubeconfig=\"super-admin.conf\""
        )
    );
    wait_for_answer(&cluster, 0, "/metrics", &[&on_super_admin]);
    let joined = wait_for_answer(&cluster, 1, "/readyz", &["503", "super-admin.conf"]);
    assert!(
        joined.contains("admin.conf"),
        "a joined node says what is wrong with both files: {joined}"
    );

    // kubeadm reaches the VIP and creates the ClusterRoleBinding.
    cluster.server.grant(kvip::lab::apiserver::Subject::group(
        kvip::lab::cluster::ADMINS_GROUP,
    ));
    let on_admin = format!(
        "{} 1",
        metric_line("kvip_credential", "cp-1", ",kubeconfig=\"admin.conf\"")
    );
    wait_for_answer(&cluster, 0, "/metrics", &[&on_admin]);
    wait_for_answer(&cluster, 1, "/readyz", &["200 OK"]);
    assert_eq!(
        cluster.holder().as_deref(),
        Some("cp-1"),
        "moving back to admin.conf is not a failover"
    );
    assert!(cluster.has_vip(0).unwrap());
}

#[test]
fn a_restarted_holder_resumes_without_failover_and_reports_its_metrics() {
    let mut cluster = cluster();
    let holder = cluster.wait_for_holder(None, PATIENCE).unwrap();
    let name = cluster.nodes[holder].name.clone();
    let leading = format!("{} 1", metric_line("kvip_is_leader", &name, ""));
    let metrics = wait_for_answer(
        &cluster,
        holder,
        "/metrics",
        &[&leading, "kvip_takeover_seconds_count"],
    );
    assert!(
        !metrics.contains(&format!(
            "{} 0",
            metric_line("kvip_announcements_total", &name, "")
        )),
        "{metrics}"
    );
    wait_for_answer(&cluster, holder, "/readyz", &["200 OK"]);
    let follower = (holder + 1) % cluster.nodes.len();
    let follower_name = cluster.nodes[follower].name.clone();
    wait_for_answer(
        &cluster,
        follower,
        "/metrics",
        &[&format!(
            "{} 0",
            metric_line("kvip_is_leader", &follower_name, "")
        )],
    );

    // kubelet restarts the container: the new process finds the Lease still its own.
    let writes_before = cluster.server.writes().len();
    cluster.signal(holder, libc::SIGKILL).unwrap();
    cluster.wait_exit(holder, PATIENCE).unwrap();
    cluster.start_node(holder).unwrap();
    wait_for_answer(&cluster, holder, "/metrics", &[&leading]);
    only_holder_has_the_vip(&cluster, holder);
    let others: Vec<_> = cluster.server.writes()[writes_before..]
        .iter()
        .filter(|w| w.holder_identity.as_deref().is_some_and(|h| h != name))
        .cloned()
        .collect();
    assert!(
        others.is_empty(),
        "another node wrote the Lease during the restart: {others:?}"
    );
}

#[test]
fn a_vip_left_by_an_earlier_run_is_removed_once_another_node_leads() {
    let mut cluster = Cluster::build(ClusterOptions::new(env!("CARGO_BIN_EXE_kvip"))).unwrap();
    cluster.start_node(0).unwrap();
    cluster.start_node(1).unwrap();
    let holder = cluster.wait_for_holder(None, PATIENCE).unwrap();
    let vip = format!("{}/32", cluster.vip);
    cluster.nodes[2]
        .ns
        .ip(&["addr", "add", &vip, "dev", "eth0"])
        .unwrap();
    assert!(cluster.has_vip(2).unwrap());
    cluster.start_node(2).unwrap();
    only_holder_has_the_vip(&cluster, holder);
}
