//! What kvip's announcer puts on a real wire: frames captured on the far end of a veth pair, and
//! what a Linux peer does with them.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{HOLDER_IF, Lab, PATIENCE, PEER_IF, is_arp_for, is_neighbour_advert};
use kvip::address::{Vip, resolve_interface};
use kvip::announce::frames::arp_request;
use kvip::announce::{Announcer, RawLink, Schedule};
use kvip::lab::netns::{NetNs, bridge, veth};

const VIP: [u8; 4] = [192, 0, 2, 100];

fn vip4() -> Vip {
    Vip::host(std::net::Ipv4Addr::from(VIP).into())
}

/// Expected gratuitous ARP bytes, written out field by field.
fn expected_arp(mac: [u8; 6], op: u8, target_mac: [u8; 6]) -> Vec<u8> {
    let mut frame = vec![0xff; 6]; // Ethernet destination: broadcast
    frame.extend_from_slice(&mac); // Ethernet source: the holder
    frame.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, op]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&VIP);
    frame.extend_from_slice(&target_mac);
    frame.extend_from_slice(&VIP);
    frame
}

#[test]
fn takeover_sends_gratuitous_arp_request_and_reply_byte_for_byte() {
    let lab = Lab::new();
    let mac = lab.holder_mac().octets();
    let mut capture = lab.peer.capture(PEER_IF).unwrap();

    let sent = lab
        .holder
        .block_on(|| async {
            let interface = resolve_interface(Some(HOLDER_IF), false).await.unwrap();
            let announcer = Announcer::open(&interface, Schedule::default()).unwrap();
            announcer.start(&[vip4()]).unwrap().wait().await.unwrap();
            announcer.stop();
            announcer.frames_sent().load(Ordering::SeqCst)
        })
        .unwrap();

    assert!(sent >= 2, "the first round sends both forms");
    let request = capture
        .next_matching(PATIENCE, |f| is_arp_for(f, VIP))
        .unwrap();
    let reply = capture
        .next_matching(PATIENCE, |f| is_arp_for(f, VIP))
        .unwrap();
    assert_eq!(
        request,
        expected_arp(mac, 1, [0xff; 6]),
        "gratuitous ARP request"
    );
    assert_eq!(reply, expected_arp(mac, 2, mac), "gratuitous ARP reply");
}

#[test]
fn ipv6_takeover_sends_unsolicited_neighbour_advert_from_link_local() {
    let lab = Lab::new();
    let mac = lab.holder_mac().octets();
    let link_local = lab.holder_link_local();
    let vip: std::net::Ipv6Addr = "2001:db8::100".parse().unwrap();
    let mut capture = lab.peer.capture(PEER_IF).unwrap();

    lab.holder
        .block_on(|| async {
            let interface = resolve_interface(Some(HOLDER_IF), false).await.unwrap();
            assert_eq!(interface.link_local, Some(link_local));
            let announcer = Announcer::open(&interface, Schedule::default()).unwrap();
            announcer
                .start(&[Vip::host(vip.into())])
                .unwrap()
                .wait()
                .await
                .unwrap();
            announcer.stop();
        })
        .unwrap();

    let frame = capture
        .next_matching(PATIENCE, |f| {
            is_neighbour_advert(f) && f[62..78] == vip.octets()
        })
        .unwrap();
    assert_eq!(frame.len(), 86);
    assert_eq!(
        frame[0..6],
        [0x33, 0x33, 0, 0, 0, 1],
        "Ethernet destination: all nodes"
    );
    assert_eq!(frame[6..12], mac, "Ethernet source: the holder");
    assert_eq!(frame[21], 255, "hop limit");
    assert_eq!(
        frame[22..38],
        link_local.octets(),
        "IPv6 source: the holder's link-local"
    );
    assert_eq!(
        frame[38..54],
        "ff02::1".parse::<std::net::Ipv6Addr>().unwrap().octets()
    );
    assert_eq!(
        frame[58], 0b0010_0000,
        "override set, solicited and router clear"
    );
    assert_eq!(
        frame[78..80],
        [2, 1],
        "target link-layer address option, 8 bytes"
    );
    assert_eq!(frame[80..86], mac, "option carries the holder's MAC");
    let icmp = pnet::packet::icmpv6::Icmpv6Packet::new(&frame[54..]).unwrap();
    let recomputed =
        pnet::packet::icmpv6::checksum(&icmp, &link_local, &"ff02::1".parse().unwrap());
    assert_eq!(
        icmp.get_checksum(),
        recomputed,
        "checksum over the pseudo-header"
    );
}

#[test]
fn peer_neighbour_entry_moves_from_old_holder_to_new_holder() {
    let lab = Lab::new();
    let new_mac = lab.holder_mac().to_string();
    let old_mac = "02:00:00:00:00:01";
    // The peer still believes the previous leader holds the VIP. An existing entry is overridden
    // by a gratuitous ARP whatever `arp_accept` says; arp_accept=1 additionally lets the peer
    // *create* an entry from one, which peers that never talked to the VIP need. Set it as a
    // node on a kube-vip segment commonly would, so the test covers both paths.
    lab.peer
        .sysctl(&format!("net.ipv4.conf.{PEER_IF}.arp_accept"), "1")
        .unwrap();
    let vip = "192.0.2.100";
    lab.peer
        .ip(&[
            "neigh", "replace", vip, "lladdr", old_mac, "nud", "stale", "dev", PEER_IF,
        ])
        .unwrap();
    let before = lab.peer.neighbours(PEER_IF).unwrap();
    assert!(
        before
            .iter()
            .any(|n| n.dst == vip && n.lladdr.as_deref() == Some(old_mac))
    );

    lab.holder
        .block_on(|| async {
            let interface = resolve_interface(Some(HOLDER_IF), false).await.unwrap();
            let announcer = Announcer::open(&interface, Schedule::default()).unwrap();
            announcer.start(&[vip4()]).unwrap().wait().await.unwrap();
            announcer.stop();
        })
        .unwrap();

    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let entries = lab.peer.neighbours(PEER_IF).unwrap();
        let entry = entries.iter().find(|n| n.dst == vip);
        if entry.and_then(|n| n.lladdr.as_deref()) == Some(new_mac.as_str()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "peer still has {entry:?}, wanted {new_mac}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn refresh_repeats_every_arp_rate_while_leading_and_stop_silences_it() {
    let lab = Lab::new();
    let mut capture = lab.peer.capture(PEER_IF).unwrap();
    let schedule = Schedule {
        burst: vec![Duration::ZERO],
        refresh: Duration::from_millis(50),
    };

    let sent_at_stop = lab
        .holder
        .block_on(|| async {
            let interface = resolve_interface(Some(HOLDER_IF), false).await.unwrap();
            let announcer = Announcer::open(&interface, schedule).unwrap();
            let counter = announcer.frames_sent();
            announcer.start(&[vip4()]).unwrap().wait().await.unwrap();
            // Let at least three refresh rounds go out (each round is two frames).
            while counter.load(Ordering::SeqCst) < 8 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            announcer.stop();
            let at_stop = counter.load(Ordering::SeqCst);
            // Several refresh periods later, nothing more has been sent.
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(
                counter.load(Ordering::SeqCst),
                at_stop,
                "no frame after stop"
            );
            at_stop
        })
        .unwrap();

    let frames = capture
        .collect(Duration::from_millis(500), |f| is_arp_for(f, VIP))
        .unwrap();
    assert_eq!(
        frames.len() as u64,
        sent_at_stop,
        "the wire saw exactly what was counted"
    );
}

#[test]
fn stop_during_the_burst_cancels_the_remaining_rounds() {
    let lab = Lab::new();
    let mut capture = lab.peer.capture(PEER_IF).unwrap();

    lab.holder
        .block_on(|| async {
            let interface = resolve_interface(Some(HOLDER_IF), false).await.unwrap();
            let announcer = Announcer::open(&interface, Schedule::default()).unwrap();
            announcer.start(&[vip4()]).unwrap().wait().await.unwrap();
            announcer.stop();
            // Outlive the whole default burst (0, 250, 500, 1000 ms) with the task still running.
            tokio::time::sleep(Duration::from_millis(1300)).await;
            assert_eq!(
                announcer.frames_sent().load(Ordering::SeqCst),
                2,
                "only the first round"
            );
        })
        .unwrap();

    let frames = capture
        .collect(Duration::from_millis(200), |f| is_arp_for(f, VIP))
        .unwrap();
    assert_eq!(
        frames.len(),
        2,
        "one request and one reply reached the peer"
    );
}

#[test]
fn ipv6_vip_on_interface_without_link_local_is_refused_before_sending() {
    let lab = Lab::new();
    lab.holder
        .sysctl(&format!("net.ipv6.conf.{HOLDER_IF}.disable_ipv6"), "1")
        .unwrap();

    let message = lab
        .holder
        .block_on(|| async {
            let interface = resolve_interface(Some(HOLDER_IF), false).await.unwrap();
            let announcer = Announcer::open(&interface, Schedule::default()).unwrap();
            let err = announcer
                .start(&[Vip::host("2001:db8::100".parse().unwrap())])
                .err()
                .unwrap();
            assert_eq!(announcer.frames_sent().load(Ordering::SeqCst), 0);
            err.to_string()
        })
        .unwrap();
    assert!(
        message.contains("`kv0` has no IPv6 link-local address"),
        "{message}"
    );
}

#[test]
fn long_lived_socket_is_not_promiscuous_and_queues_nothing() {
    let lab = Lab::new();
    let (flags, packet_sockets) = lab
        .holder
        .block_on(|| async {
            let interface = resolve_interface(Some(HOLDER_IF), false).await.unwrap();
            let _link = RawLink::open(&interface).unwrap();
            // The peer floods the holder's interface while kvip's socket is open.
            lab.peer
                .block_on(|| async {
                    let peer = resolve_interface(Some(PEER_IF), false).await.unwrap();
                    let mut link = RawLink::open(&peer).unwrap();
                    let frame = arp_request(peer.mac.unwrap(), [192, 0, 2, 2].into());
                    for _ in 0..100 {
                        link.send(&frame).unwrap();
                    }
                })
                .unwrap();
            let flags = lab
                .holder
                .ip(&["-j", "link", "show", "dev", HOLDER_IF])
                .unwrap();
            // Per-thread view of this namespace's packet sockets (/proc/net is the process's).
            let sockets = std::fs::read_to_string("/proc/thread-self/net/packet").unwrap();
            (flags, sockets)
        })
        .unwrap();

    assert!(!flags.contains("PROMISC"), "interface flags: {flags}");
    // Columns: sk RefCnt Type Proto Iface R Rmem User Inode. kvip's socket is the only one here.
    let rows: Vec<Vec<&str>> = packet_sockets
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 1, "{packet_sockets}");
    assert_eq!(
        rows[0][6], "0",
        "nothing queued for a socket nobody reads: {packet_sockets}"
    );
}

#[test]
fn garp_reaches_every_node_behind_a_bridge() {
    // holder ─ s1 ┐
    // peer A ─ s2 ├ br0 (in its own "switch" namespace)
    // peer B ─ s3 ┘
    let switch = NetNs::new().unwrap();
    let holder = NetNs::new().unwrap();
    let peers = [NetNs::new().unwrap(), NetNs::new().unwrap()];
    veth(&holder, HOLDER_IF, &switch, "s1").unwrap();
    veth(&peers[0], PEER_IF, &switch, "s2").unwrap();
    veth(&peers[1], PEER_IF, &switch, "s3").unwrap();
    bridge(&switch, "br0", &["s1", "s2", "s3"]).unwrap();
    let mut captures: Vec<_> = peers.iter().map(|p| p.capture(PEER_IF).unwrap()).collect();

    holder
        .block_on(|| async {
            let interface = resolve_interface(Some(HOLDER_IF), false).await.unwrap();
            let announcer = Announcer::open(&interface, Schedule::default()).unwrap();
            announcer.start(&[vip4()]).unwrap().wait().await.unwrap();
            announcer.stop();
        })
        .unwrap();

    let holder_mac = holder.mac(HOLDER_IF).unwrap().octets();
    for capture in &mut captures {
        let frame = capture
            .next_matching(PATIENCE, |f| is_arp_for(f, VIP))
            .unwrap();
        assert_eq!(frame, expected_arp(holder_mac, 1, [0xff; 6]));
    }
}
