//! Frame layouts checked byte for byte against the RFCs, independently of pnet's accessors.

use super::*;

const MAC: MacAddr = MacAddr(0x02, 0x00, 0x5e, 0x10, 0x20, 0x30);

fn vip4() -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 10)
}

#[rustfmt::skip]
fn expected_arp(op: u8, target_mac: [u8; 6]) -> Vec<u8> {
    let mut frame = vec![
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // Ethernet destination: broadcast
        0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, // Ethernet source: own MAC
        0x08, 0x06,                         // EtherType ARP
        0x00, 0x01,                         // hardware type Ethernet
        0x08, 0x00,                         // protocol type IPv4
        6, 4,                               // address lengths
        0x00, op,                           // operation
        0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, // sender hardware address: own MAC
        192, 0, 2, 10,                      // sender protocol address: VIP
    ];
    frame.extend_from_slice(&target_mac);   // target hardware address
    frame.extend_from_slice(&[192, 0, 2, 10]); // target protocol address: VIP
    frame
}

#[test]
fn arp_request_is_broadcast_with_vip_as_sender_and_target() {
    assert_eq!(
        arp_request(MAC, vip4()).to_vec(),
        expected_arp(1, [0xff; 6])
    );
}

#[test]
fn arp_reply_targets_own_mac() {
    assert_eq!(
        arp_reply(MAC, vip4()).to_vec(),
        expected_arp(2, MAC.octets())
    );
}

/// RFC 4443 §2.3 checksum, written out here so the test does not trust pnet's.
fn icmpv6_checksum_ok(source: Ipv6Addr, destination: Ipv6Addr, icmp: &[u8]) -> bool {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for chunk in bytes.chunks(2) {
            let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    };
    add(&source.octets());
    add(&destination.octets());
    add(&(icmp.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(icmp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

#[test]
fn neighbour_advert_has_rfc4861_layout_and_valid_checksum() {
    let source: Ipv6Addr = "fe80::5e:10ff:fe20:30".parse().unwrap();
    let vip: Ipv6Addr = "2001:db8::10".parse().unwrap();
    let frame = neighbour_advert(MAC, source, vip);

    assert_eq!(frame.len(), 86);
    assert_eq!(
        frame[0..6],
        [0x33, 0x33, 0, 0, 0, 1],
        "to the all-nodes group MAC"
    );
    assert_eq!(frame[6..12], MAC.octets(), "from own MAC");
    assert_eq!(frame[12..14], [0x86, 0xdd], "EtherType IPv6");

    let ip = &frame[14..54];
    assert_eq!(ip[0] >> 4, 6, "IP version");
    assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 32, "payload length");
    assert_eq!(ip[6], 58, "next header ICMPv6");
    assert_eq!(
        ip[7], 255,
        "hop limit 255, or receivers drop it (RFC 4861 §7.1.2)"
    );
    assert_eq!(ip[8..24], source.octets(), "source: link-local");
    assert_eq!(ip[24..40], ALL_NODES.octets(), "destination: ff02::1");

    let icmp = &frame[54..];
    assert_eq!(icmp[0], 136, "type neighbour advertisement");
    assert_eq!(icmp[1], 0, "code");
    assert_eq!(
        icmp[4], 0b0010_0000,
        "override set; solicited and router clear"
    );
    assert_eq!(icmp[5..8], [0, 0, 0], "reserved");
    assert_eq!(icmp[8..24], vip.octets(), "target: the VIP");
    assert_eq!(icmp[24], 2, "option: target link-layer address");
    assert_eq!(icmp[25], 1, "option length in units of 8 bytes");
    assert_eq!(icmp[26..32], MAC.octets(), "option: own MAC");
    assert!(
        icmpv6_checksum_ok(source, ALL_NODES, icmp),
        "checksum must verify"
    );
}

#[test]
fn ipv4_vip_gets_both_arp_forms() {
    let frames = frames_for("eth0", Some(MAC), None, IpAddr::V4(vip4())).unwrap();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0][21], 1, "request first");
    assert_eq!(frames[1][21], 2, "then reply");
}

#[test]
fn ipv6_vip_without_link_local_names_the_interface() {
    let err = frames_for("eth0", Some(MAC), None, "2001:db8::10".parse().unwrap()).unwrap_err();
    assert!(matches!(err, FrameError::NoLinkLocal { .. }));
    assert!(
        err.to_string()
            .contains("`eth0` has no IPv6 link-local address"),
        "{err}"
    );
}

#[test]
fn link_local_vip_is_refused() {
    let err = frames_for(
        "eth0",
        Some(MAC),
        Some("fe80::1".parse().unwrap()),
        "fe80::10".parse().unwrap(),
    );
    assert!(matches!(err, Err(FrameError::LinkLocalVip { .. })));
}

#[test]
fn interface_without_mac_has_nothing_to_announce() {
    let err = frames_for("tun0", None, None, IpAddr::V4(vip4())).unwrap_err();
    assert_eq!(
        err,
        FrameError::NoMac {
            interface: "tun0".into()
        }
    );
}
