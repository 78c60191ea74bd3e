//! The VIP on a real interface: idempotent add/remove, the lifetime fence, the watch that lets
//! the daemon repair a deleted VIP, and the errors an operator sees.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use caps::{CapSet, Capability};
use common::{HOLDER_IF, Lab, PATIENCE, addresses};
use kvip::address::{AddressError, AddressOptions, Addresses, InterfaceEvent, Vip};
use kvip::lab::netns::NetNs;

fn vip4() -> Vip {
    Vip::host("192.0.2.100".parse().unwrap())
}

async fn open(interface: &str) -> Addresses {
    Addresses::open(Some(interface), false, AddressOptions::default())
        .await
        .unwrap()
}

/// Waits for the event that says `vip` left the interface, skipping unrelated ones.
async fn removed(events: &mut tokio::sync::mpsc::Receiver<InterfaceEvent>, vip: Vip) {
    let wanted = InterfaceEvent::AddressRemoved {
        addr: vip.addr,
        prefix_len: vip.prefix_len,
    };
    tokio::time::timeout(PATIENCE, async {
        while let Some(event) = events.recv().await {
            if event == wanted {
                return;
            }
        }
        panic!("event stream ended");
    })
    .await
    .expect("the VIP's removal was reported");
}

#[test]
fn adding_and_removing_the_vip_is_idempotent() {
    let lab = Lab::new();
    lab.holder
        .block_on(|| async {
            let addresses = open(HOLDER_IF).await;
            addresses
                .add(vip4(), Duration::from_secs(30))
                .await
                .unwrap();
            addresses
                .add(vip4(), Duration::from_secs(30))
                .await
                .unwrap();
            assert!(addresses.is_present(vip4()).await.unwrap());
        })
        .unwrap();

    let on_interface: Vec<_> = addresses(&lab.holder, HOLDER_IF)
        .into_iter()
        .filter(|a| a.local == "192.0.2.100")
        .collect();
    assert_eq!(
        on_interface.len(),
        1,
        "added once, however often it was asked"
    );
    let vip = &on_interface[0];
    assert_eq!(vip.prefixlen, 32);
    assert_eq!(
        vip.label.as_deref(),
        Some("kv0:kvip"),
        "ip addr shows who owns it"
    );
    assert!(
        vip.deprecated,
        "preferred lifetime 0: never a source address"
    );
    assert_eq!(vip.preferred_life_time, 0);
    assert!(
        vip.valid_life_time <= 30,
        "finite valid lifetime: {}",
        vip.valid_life_time
    );

    lab.holder
        .block_on(|| async {
            let addresses = open(HOLDER_IF).await;
            addresses.remove(vip4()).await.unwrap();
            addresses.remove(vip4()).await.unwrap();
            assert!(!addresses.is_present(vip4()).await.unwrap());
        })
        .unwrap();
    assert!(
        addresses(&lab.holder, HOLDER_IF)
            .iter()
            .all(|a| a.local != "192.0.2.100")
    );
}

#[test]
fn refresh_extends_the_valid_lifetime() {
    let lab = Lab::new();
    lab.holder
        .block_on(|| async {
            let addresses = open(HOLDER_IF).await;
            addresses
                .add(vip4(), Duration::from_secs(10))
                .await
                .unwrap();
            let first = addresses.lifetime(vip4()).await.unwrap().unwrap();
            assert!(first.valid_secs <= 10, "{first:?}");
            assert_eq!(first.preferred_secs, 0);

            addresses
                .refresh_lifetime(vip4(), Duration::from_secs(100))
                .await
                .unwrap();
            let refreshed = addresses.lifetime(vip4()).await.unwrap().unwrap();
            assert!(
                refreshed.valid_secs > 10 && refreshed.valid_secs <= 100,
                "{refreshed:?}"
            );
            assert_eq!(refreshed.preferred_secs, 0, "still never a source address");
        })
        .unwrap();
}

#[test]
fn ipv6_vip_is_added_without_dad_when_asked() {
    let lab = Lab::new();
    let vip = Vip::host("2001:db8::100".parse().unwrap());
    lab.holder
        .block_on(|| async {
            let options = AddressOptions { skip_dad: true };
            let addresses = Addresses::open(Some(HOLDER_IF), false, options)
                .await
                .unwrap();
            addresses.add(vip, Duration::from_secs(30)).await.unwrap();
            assert!(addresses.is_present(vip).await.unwrap());
        })
        .unwrap();
    let info = addresses(&lab.holder, HOLDER_IF);
    let added = info
        .iter()
        .find(|a| a.local == "2001:db8::100")
        .expect("IPv6 VIP present");
    assert_eq!(added.prefixlen, 128);
    assert!(added.nodad && added.deprecated, "{added:?}");
}

#[test]
fn kernel_removes_the_vip_when_the_holder_stops_refreshing() {
    let lab = Lab::new();
    lab.holder
        .block_on(|| async {
            let addresses = open(HOLDER_IF).await;
            let mut events = addresses.watch().await.unwrap();
            addresses.add(vip4(), Duration::from_secs(1)).await.unwrap();
            // Nobody refreshes: the kernel itself must take the VIP away (the fence).
            removed(&mut events, vip4()).await;
            assert!(!addresses.is_present(vip4()).await.unwrap());
        })
        .unwrap();
}

#[test]
fn vip_comes_back_after_an_external_delete_while_leading() {
    let lab = Lab::new();
    lab.holder
        .block_on(|| async {
            let addresses = open(HOLDER_IF).await;
            let mut events = addresses.watch().await.unwrap();
            addresses
                .add(vip4(), Duration::from_secs(30))
                .await
                .unwrap();

            // An operator (or NetworkManager) deletes it behind kvip's back.
            lab.holder
                .ip(&["addr", "del", "192.0.2.100/32", "dev", HOLDER_IF])
                .unwrap();

            // The daemon's loop: the event arrives, the leader puts the VIP back.
            removed(&mut events, vip4()).await;
            addresses
                .add(vip4(), Duration::from_secs(30))
                .await
                .unwrap();
            assert!(addresses.is_present(vip4()).await.unwrap());
        })
        .unwrap();
    assert!(
        addresses(&lab.holder, HOLDER_IF)
            .iter()
            .any(|a| a.local == "192.0.2.100")
    );
}

/// The next up/down change, skipping address events (IPv6 addresses go with the link).
async fn next_link_change(events: &mut tokio::sync::mpsc::Receiver<InterfaceEvent>) -> bool {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match events.recv().await {
                Some(InterfaceEvent::LinkChanged { up }) => return up,
                Some(_) => {}
                None => panic!("event stream ended"),
            }
        }
    })
    .await
    .expect("a link change was reported")
}

#[test]
fn link_flaps_are_reported() {
    let lab = Lab::new();
    lab.holder
        .block_on(|| async {
            let addresses = open(HOLDER_IF).await;
            let mut events = addresses.watch().await.unwrap();
            lab.holder.ip(&["link", "set", HOLDER_IF, "down"]).unwrap();
            assert!(!next_link_change(&mut events).await, "down first");
            lab.holder.ip(&["link", "set", HOLDER_IF, "up"]).unwrap();
            assert!(next_link_change(&mut events).await, "then up again");
        })
        .unwrap();
}

#[test]
fn unknown_interface_is_named_with_the_ones_that_exist() {
    let lab = Lab::new();
    let err = lab
        .holder
        .block_on(|| async {
            Addresses::open(Some("nope0"), false, AddressOptions::default())
                .await
                .err()
        })
        .unwrap()
        .expect("opening a missing interface fails");
    assert!(matches!(err, AddressError::NoSuchInterface { .. }));
    let message = err.to_string();
    assert!(message.contains("`nope0` does not exist"), "{message}");
    assert!(
        message.contains("kv0") && message.contains("lo"),
        "lists what exists: {message}"
    );
}

#[test]
fn down_interface_is_refused_unless_allowed() {
    let lab = Lab::new();
    lab.holder.ip(&["link", "set", HOLDER_IF, "down"]).unwrap();
    lab.holder
        .block_on(|| async {
            let err = Addresses::open(Some(HOLDER_IF), false, AddressOptions::default())
                .await
                .err()
                .unwrap();
            assert!(matches!(err, AddressError::InterfaceDown { .. }), "{err}");
            assert!(
                err.to_string().contains("vip_allow_interface_not_up"),
                "{err}"
            );

            let allowed = Addresses::open(Some(HOLDER_IF), true, AddressOptions::default())
                .await
                .unwrap();
            assert!(!allowed.interface().up);
        })
        .unwrap();
}

#[test]
fn default_route_interface_is_used_when_none_is_configured() {
    let lab = Lab::new();
    lab.holder
        .block_on(|| async {
            let err = Addresses::open(None, false, AddressOptions::default())
                .await
                .err()
                .unwrap();
            assert!(matches!(err, AddressError::NoDefaultRoute), "{err}");
        })
        .unwrap();
    lab.holder
        .ip(&[
            "route",
            "add",
            "default",
            "via",
            "192.0.2.2",
            "dev",
            HOLDER_IF,
        ])
        .unwrap();
    let resolved = lab
        .holder
        .block_on(|| async { open_default().await.interface().clone() })
        .unwrap();
    assert_eq!(resolved.name, HOLDER_IF);
    assert_eq!(resolved.mac, Some(lab.holder_mac()));
}

async fn open_default() -> Addresses {
    Addresses::open(None, false, AddressOptions::default())
        .await
        .unwrap()
}

#[test]
fn adding_without_cap_net_admin_names_the_capability() {
    let ns = NetNs::new().unwrap();
    let err = ns
        .block_on(|| async {
            // Capabilities are per thread: only this namespace thread loses them.
            caps::drop(None, CapSet::Effective, Capability::CAP_NET_ADMIN).unwrap();
            let addresses = open("lo").await;
            addresses
                .add(
                    Vip::host(IpAddr::from([127, 0, 0, 100])),
                    Duration::from_secs(5),
                )
                .await
                .err()
        })
        .unwrap()
        .expect("adding without CAP_NET_ADMIN fails");
    assert_eq!(err.errno(), Some(libc::EPERM));
    let message = err.to_string();
    assert!(
        message.contains("add 127.0.0.100/32 on interface `lo`"),
        "{message}"
    );
    assert!(message.contains("CAP_NET_ADMIN"), "{message}");
}
