//! `kvip announce`, run as an operator would: the built binary inside the holder namespace,
//! frames checked on the peer.

mod common;

use std::process::Output;
use std::time::Duration;

use common::{HOLDER_IF, Lab, PATIENCE, PEER_IF, addresses, is_arp_for, is_neighbour_advert};

const KVIP: &str = env!("CARGO_BIN_EXE_kvip");

/// Runs `kvip announce <args>` inside the holder's namespace.
fn announce(lab: &Lab, args: &[&str]) -> Output {
    let argv: Vec<&str> = std::iter::once("announce")
        .chain(args.iter().copied())
        .collect();
    lab.holder.exec(KVIP, &argv).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn announce_sends_count_rounds_of_both_arp_forms_without_adding_the_address() {
    let lab = Lab::new();
    let mut capture = lab.peer.capture(PEER_IF).unwrap();

    let output = announce(
        &lab,
        &[
            "--interface",
            HOLDER_IF,
            "--address",
            "192.0.2.100",
            "--count",
            "2",
            "--interval",
            "10ms",
        ],
    );

    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("sent 4 gratuitous ARP frame(s) for 192.0.2.100 on kv0"),
        "{stdout}"
    );
    let frames = capture
        .collect(Duration::from_millis(300), |f| {
            is_arp_for(f, [192, 0, 2, 100])
        })
        .unwrap();
    let ops: Vec<u8> = frames.iter().map(|f| f[21]).collect();
    assert_eq!(ops, [1, 2, 1, 2], "two rounds of request + reply");
    assert!(
        addresses(&lab.holder, HOLDER_IF)
            .iter()
            .all(|a| a.local != "192.0.2.100"),
        "announce never touches addresses"
    );
}

#[test]
fn announce_sends_neighbour_advert_for_ipv6() {
    let lab = Lab::new();
    let mut capture = lab.peer.capture(PEER_IF).unwrap();
    let output = announce(
        &lab,
        &[
            "--interface",
            HOLDER_IF,
            "--address",
            "2001:db8::100",
            "--count",
            "1",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    capture
        .next_matching(PATIENCE, is_neighbour_advert)
        .unwrap();
}

#[test]
fn announce_rejects_an_address_that_is_not_one() {
    let lab = Lab::new();
    let output = announce(&lab, &["--interface", HOLDER_IF, "--address", "192.0.2"]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("--address / address: `192.0.2` is not an IP address"),
        "{message}"
    );
}

#[test]
fn announce_names_a_missing_interface() {
    let lab = Lab::new();
    let output = announce(&lab, &["--interface", "eth9", "--address", "192.0.2.100"]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("interface `eth9` does not exist (interfaces here: kv0, lo)"),
        "{message}"
    );
}

#[test]
fn announce_on_a_down_interface_is_refused() {
    let lab = Lab::new();
    lab.holder.ip(&["link", "set", HOLDER_IF, "down"]).unwrap();
    let output = announce(
        &lab,
        &["--interface", HOLDER_IF, "--address", "192.0.2.100"],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("interface `kv0` is not up"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn announce_without_cap_net_raw_says_which_capability_is_missing() {
    let lab = Lab::new();
    let mut capture = lab.peer.capture(PEER_IF).unwrap();
    // setpriv (util-linux) removes CAP_NET_RAW from the bounding set, so the exec'd kvip runs as
    // root without it, as in a container that does not grant NET_RAW.
    let output = lab
        .holder
        .exec(
            "setpriv",
            &[
                "--bounding-set=-net_raw",
                "--",
                KVIP,
                "announce",
                "--interface",
                HOLDER_IF,
                "--address",
                "192.0.2.100",
            ],
        )
        .unwrap();
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("cannot open a raw (AF_PACKET) socket on interface `kv0`"),
        "{message}"
    );
    assert!(message.contains("needs CAP_NET_RAW"), "{message}");
    let frames = capture
        .collect(Duration::from_millis(200), |f| {
            is_arp_for(f, [192, 0, 2, 100])
        })
        .unwrap();
    assert!(frames.is_empty(), "nothing was sent");
}
