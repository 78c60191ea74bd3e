//! Watch streams: events, resumption, 410 Expired, timeouts, bookmarks.

use super::*;

#[tokio::test]
async fn watch_sees_another_clients_update() {
    let world = World::start().await;
    let writer = world.super_admin().await;
    world.server.grant(Subject::user("node-b"));
    let watcher = world.leases_for(&Identity::new("node-b", &[])).await;

    let created = writer
        .create(&PostParams::default(), &lease(LOCK, "node-a"))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    let params = WatchParams::default().fields(&format!("metadata.name={LOCK}"));
    let mut events = watcher.watch(&params, &rv).await.unwrap().boxed();

    let mut changed = created.clone();
    changed.spec.as_mut().unwrap().holder_identity = Some("node-c".to_string());
    let updated = writer
        .replace(LOCK, &PostParams::default(), &changed)
        .await
        .unwrap();

    let event = tokio::time::timeout(GUARD, events.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match event {
        WatchEvent::Modified(seen) => assert_eq!(seen, updated),
        other => panic!("expected MODIFIED, got {other:?}"),
    }
}

/// Creates the lock and moves it through `holders`, returning the resourceVersion of each write.
async fn write_history(leases: &Api<Lease>, holders: &[&str]) -> Vec<String> {
    let mut current = leases
        .create(&PostParams::default(), &lease(LOCK, "node-a"))
        .await
        .unwrap();
    let mut versions = vec![current.metadata.resource_version.clone().unwrap()];
    for next in holders {
        current.spec.as_mut().unwrap().holder_identity = Some((*next).to_string());
        current = leases
            .replace(LOCK, &PostParams::default(), &current)
            .await
            .unwrap();
        versions.push(current.metadata.resource_version.clone().unwrap());
    }
    versions
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version_and_replays_what_followed() {
    let world = World::start().await;
    let leases = world.super_admin().await;
    let versions = write_history(&leases, &["node-b", "node-c"]).await;

    let events: Vec<_> = leases
        .watch(&WatchParams::default().timeout(1), &versions[0])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let seen: Vec<_> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Modified(l) => holder(l).map(str::to_string),
            other => panic!("expected only MODIFIED, got {other:?}"),
        })
        .collect();
    assert_eq!(seen, [Some("node-b".into()), Some("node-c".into())]);
}

#[tokio::test]
async fn watch_from_compacted_history_gets_410_expired() {
    let world = World::start().await;
    let leases = world.super_admin().await;
    let versions = write_history(&leases, &["node-b", "node-c"]).await;
    world.server.compact();

    let mut events = leases
        .watch(&WatchParams::default(), &versions[0])
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(GUARD, events.try_next())
        .await
        .unwrap();
    match first.unwrap() {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(status.message.starts_with("too old resource version"));
        }
        other => panic!("expected an ERROR event with 410, got {other:?}"),
    }
    assert!(events.try_next().await.unwrap().is_none(), "stream ends");

    // From the current version the watch is fine again.
    let latest = versions.last().unwrap();
    let mut events = leases
        .watch(&WatchParams::default().timeout(1), latest)
        .await
        .unwrap()
        .boxed();
    assert!(events.try_next().await.unwrap().is_none());
}

#[tokio::test]
async fn watch_ends_at_the_server_cap_and_a_resumed_watch_misses_nothing() {
    let world = World::with(Options {
        watch_timeout_cap: Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    world.server.grant(Subject::user("follower"));
    let writer = world.super_admin().await;
    let follower = world.leases_for(&Identity::new("follower", &[])).await;
    let created = writer
        .create(&PostParams::default(), &lease(LOCK, "node-a"))
        .await
        .unwrap();

    // A follower loop in kube_runtime's style: watch from the last version seen, and when the
    // stream ends, watch again from there.
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut last = created.metadata.resource_version.clone().unwrap();
    let follow = tokio::spawn(async move {
        // kube asks for 290 s; the server's cap (1 s) must win.
        let params = WatchParams::default().fields(&format!("metadata.name={LOCK}"));
        loop {
            let mut events = follower.watch(&params, &last).await.unwrap().boxed();
            while let Some(event) = events.try_next().await.unwrap() {
                if let WatchEvent::Modified(lease) = event {
                    last = lease.metadata.resource_version.clone().unwrap();
                    let _ = seen_tx.send(holder(&lease).map(str::to_string));
                }
            }
        }
    });

    let mut current = created;
    let mut received = Vec::new();
    for next in ["node-b", "node-c"] {
        // Each write waits until the follower has re-established its watch at least once more,
        // so the second write lands while no stream is open or on a fresh one.
        let watches_before = world.server.requests("follower");
        wait_until(|| world.server.requests("follower") > watches_before).await;
        current.spec.as_mut().unwrap().holder_identity = Some(next.to_string());
        current = writer
            .replace(LOCK, &PostParams::default(), &current)
            .await
            .unwrap();
        let got = tokio::time::timeout(GUARD, seen_rx.recv()).await.unwrap();
        received.push(got.unwrap());
    }
    follow.abort();
    assert_eq!(received, [Some("node-b".into()), Some("node-c".into())]);
}

/// Polls `condition` until it holds; a give-up guard, not a timing assertion.
async fn wait_until(condition: impl Fn() -> bool) {
    tokio::time::timeout(GUARD, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("condition never became true");
}

#[tokio::test]
async fn watch_with_bookmarks_reports_the_current_resource_version() {
    let world = World::with(Options {
        bookmark_interval: Duration::from_millis(50),
        ..Options::default()
    })
    .await;
    let leases = world.super_admin().await;
    let versions = write_history(&leases, &[]).await;
    // kube's WatchParams ask for bookmarks by default (allowWatchBookmarks=true).
    let mut events = leases
        .watch(&WatchParams::default(), &versions[0])
        .await
        .unwrap()
        .boxed();
    let event = tokio::time::timeout(GUARD, events.try_next())
        .await
        .unwrap();
    match event.unwrap() {
        Some(WatchEvent::Bookmark(bookmark)) => {
            assert_eq!(bookmark.metadata.resource_version, versions[0]);
            assert_eq!(bookmark.types.kind, "Lease");
        }
        other => panic!("expected a BOOKMARK, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_streams_end_on_shutdown() {
    let world = World::start().await;
    let leases = world.super_admin().await;
    let versions = write_history(&leases, &[]).await;
    let mut events = leases
        .watch(&WatchParams::default(), &versions[0])
        .await
        .unwrap()
        .boxed();
    world.server.shutdown();
    let end = tokio::time::timeout(GUARD, events.try_next())
        .await
        .unwrap();
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
}
