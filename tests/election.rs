//! The elector against the in-repo Lease endpoint, with kvip's real client and kubeconfig files.
//! Safety is checked on the server's write history and on the electors' events, which share this
//! process's monotonic clock; no assertion depends on how fast the machine is.

mod support;

use std::time::Duration;

use kvip::election::{ElectionEvent, StepDownReason};
use kvip::lab::apiserver::{Options, OutageMode, Subject};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_electors_elect_exactly_one_leader_and_the_others_follow() {
    let world = World::start().await;
    let nodes = world.nodes(&["cp-1", "cp-2", "cp-3"], fast());
    let leader = settled_leader(&nodes).await;

    // Let the holder renew a few times while the followers watch.
    let renewals = || {
        world
            .events()
            .iter()
            .filter(|r| matches!(r.event, ElectionEvent::Renewed { .. }))
            .count()
    };
    eventually("three renewals", || renewals() >= 3).await;

    assert_eq!(nodes.iter().filter(|n| n.leading()).count(), 1);
    let elections = world.elections();
    assert_eq!(elections.len(), 1, "exactly one election: {elections:?}");
    assert_eq!(elections[0].0, nodes[leader].name);
    let writes = world.writes();
    assert!(
        writes
            .iter()
            .all(|w| w.holder_identity.as_deref() == Some(nodes[leader].name.as_str())),
        "every write names the one leader: {writes:#?}"
    );
    let lease = world.server.lease("kube-system", "plndr-cp-lock").unwrap();
    assert_eq!(lease.spec.unwrap().lease_transitions, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_never_releases_someone_elses_lease() {
    let world = World::start().await;
    let mut nodes = world.nodes(&["cp-1", "cp-2"], fast());
    let leader = settled_leader(&nodes).await;
    let follower = 1 - leader;
    assert!(!nodes[follower].release().await, "nothing to release");
    assert!(
        world
            .writes()
            .iter()
            .all(|w| w.holder_identity.as_deref() != Some("")),
        "no release was written"
    );
    assert!(nodes[leader].leading());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holder_is_replaced_only_after_its_observed_expiry() {
    let world = World::start().await;
    let mut nodes = world.nodes(&["cp-1", "cp-2", "cp-3"], fast());
    let old = settled_leader(&nodes).await;
    let old_name = nodes[old].name.clone();
    nodes[old].kill();

    eventually("another node leads", || {
        nodes.iter().any(|n| n.handle.is_some() && n.leading())
    })
    .await;
    let writes = world.writes();
    let takeovers = assert_no_overlapping_holders(&writes, 3);
    assert_eq!(takeovers, 1, "{writes:#?}");
    let new = settled_leader(&nodes).await;
    assert_ne!(nodes[new].name, old_name);
    let lease = world.server.lease("kube-system", "plndr-cp-lock").unwrap();
    assert_eq!(lease.spec.unwrap().lease_transitions, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lease_is_taken_over_through_the_watch_without_waiting_for_expiry() {
    let world = World::start().await;
    let mut nodes = world.nodes(&["cp-1", "cp-2", "cp-3"], long_lease());
    let old = settled_leader(&nodes).await;
    let old_name = nodes[old].name.clone();

    assert!(nodes[old].release().await, "the holder released");
    let release = world
        .writes()
        .into_iter()
        .find(|w| w.holder_identity.as_deref() == Some(""))
        .expect("a write with an empty holder (client-go's released record)");
    assert_eq!(release.user, format!("admin-{old_name}"));

    eventually("another node leads", || {
        nodes.iter().any(|n| n.handle.is_some() && n.leading())
    })
    .await;
    let writes = world.writes();
    let last_renew = writes
        .iter()
        .rfind(|w| w.holder_identity.as_deref() == Some(old_name.as_str()))
        .unwrap()
        .at;
    let takeover = writes
        .iter()
        .find(|w| {
            w.at > last_renew
                && w.holder_identity
                    .as_deref()
                    .is_some_and(|h| !h.is_empty() && h != old_name)
        })
        .unwrap();
    assert!(
        takeover.at < last_renew + long_lease().lease_duration(),
        "{:?} took over only when the old lease expired: the release was not seen",
        takeover.holder_identity
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_storm_never_produces_two_leaders() {
    let world = World::start().await;
    let names: Vec<String> = (1..=8).map(|i| format!("cp-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut nodes = world.nodes(&names, fast());
    let first = settled_leader(&nodes).await;
    assert_eq!(
        world.elections().len(),
        1,
        "one winner of the start-up storm"
    );

    // Seven followers now race for the same expiry instant.
    nodes[first].kill();
    let second = settled_leader(&nodes).await;
    assert_ne!(first, second);
    let elections = world.elections();
    assert_eq!(elections.len(), 2, "one winner per storm: {elections:?}");
    assert_eq!(assert_no_overlapping_holders(&world.writes(), 3), 1);
}

/// Shared by the two outage tests: the holder loses the API and must announce `SteppedDown`
/// before any other node is elected.
async fn holder_steps_down_before_another_leads(mode: OutageMode) {
    let world = World::start().await;
    let nodes = world.nodes(&["cp-1", "cp-2", "cp-3"], fast());
    let old = settled_leader(&nodes).await;
    let old_name = nodes[old].name.clone();
    world
        .server
        .set_outage_mode(Subject::user(format!("admin-{old_name}")), Some(mode));

    eventually("another node leads", || {
        nodes
            .iter()
            .enumerate()
            .any(|(i, n)| i != old && n.leading())
    })
    .await;
    let events = world.events();
    let stepped_down = events
        .iter()
        .find_map(|r| match &r.event {
            ElectionEvent::SteppedDown { at, reason } if r.node == old_name => {
                Some((*at, reason.clone()))
            }
            _ => None,
        })
        .expect("the cut-off holder stepped down");
    assert_eq!(stepped_down.1, StepDownReason::RenewDeadlinePassed);
    let (new_name, elected_at, _) = world
        .elections()
        .into_iter()
        .find(|(n, _, _)| *n != old_name)
        .unwrap();
    assert!(
        stepped_down.0 < elected_at,
        "{old_name} stepped down at {:?}, after {new_name} was elected at {elected_at:?}",
        stepped_down.0
    );
    assert!(!nodes[old].leading());
    assert_no_overlapping_holders(&world.writes(), 3);

    // The cut-off node keeps running and follows once the API is back.
    world
        .server
        .set_outage_mode(Subject::user(format!("admin-{old_name}")), None);
    eventually("the old holder observes the new one", || {
        nodes[old].status.borrow().holder.as_deref() == Some(new_name.as_str())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_cut_off_by_dropped_connections_steps_down_before_another_leads() {
    holder_steps_down_before_another_leads(OutageMode::Drop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_whose_requests_hang_steps_down_before_another_leads() {
    holder_steps_down_before_another_leads(OutageMode::Hang).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_holder_resumes_at_once_without_a_transition() {
    let world = World::start().await;
    let mut nodes = world.nodes(&["cp-1", "cp-2", "cp-3"], long_lease());
    let old = settled_leader(&nodes).await;
    let name = nodes[old].name.clone();
    nodes[old].kill();

    // Same identity, same kubeconfig: like kubelet restarting the container.
    nodes[old] = world.elector(&name, long_lease());
    eventually("the restarted node leads", || nodes[old].leading()).await;
    let elections = world.elections();
    assert_eq!(elections.len(), 2, "{elections:?}");
    assert_eq!(elections[1].0, name);
    assert!(elections[1].2, "the second election is a resumption");
    let writes = world.writes();
    assert!(
        writes
            .iter()
            .all(|w| w.holder_identity.as_deref() == Some(name.as_str())),
        "nobody else held the Lease in between: {writes:#?}"
    );
    let lease = world.server.lease("kube-system", "plndr-cp-lock").unwrap();
    assert_eq!(lease.spec.unwrap().lease_transitions, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_rewatch_when_the_server_ends_their_watches() {
    // Every watch ends after 1 s, as kube-apiserver's do after their timeout.
    let world = World::start_with(Options {
        watch_timeout_cap: Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    world.server.grant(Subject::group(CLUSTER_ADMINS));
    let mut nodes = world.nodes(&["cp-1", "cp-2"], long_lease());
    let old = settled_leader(&nodes).await;
    let follower = format!("admin-{}", nodes[1 - old].name);
    let before = world.server.requests(&follower);
    eventually("the follower re-established its watch a few times", || {
        world.server.requests(&follower) >= before + 6
    })
    .await;
    world.server.compact();

    assert!(nodes[old].release().await);
    within("the follower takes over", async {
        while !nodes[1 - old].leading() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let writes = world.writes();
    let last_renew = writes.iter().rfind(|w| w.user != follower).unwrap().at;
    let takeover = writes.iter().find(|w| w.user == follower).unwrap().at;
    assert!(
        takeover < last_renew + long_lease().lease_duration(),
        "the release was seen through a re-established watch, before expiry"
    );
}
