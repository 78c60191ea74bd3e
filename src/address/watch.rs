//! Netlink notifications about the VIP's interface, turned into events the daemon acts on.
//!
//! kube-vip notices a deleted VIP only on its next 3-second tick; subscribing to RTM_DELADDR and
//! RTM_NEWLINK lets the daemon put the VIP back within milliseconds of `ip addr del`, a
//! NetworkManager reconfiguration or an interface flap.

use std::net::IpAddr;

use futures::StreamExt;
use rtnetlink::MulticastGroup;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage, State};
use tokio::sync::mpsc;

use super::{AddressError, Interface};

/// Something happened to the VIP's interface that the daemon may have to repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceEvent {
    /// An address was removed from the interface (by anyone, or by the kernel when its valid
    /// lifetime ran out). The daemon compares it with its VIPs and, while leading, re-adds and
    /// re-announces.
    AddressRemoved {
        /// The address that went away.
        addr: IpAddr,
        /// Its prefix length.
        prefix_len: u8,
    },
    /// The interface's operational state changed between up and not up. Going down flushes
    /// nothing for IPv4 but the switch may forget the port; after coming back up the daemon
    /// re-announces (and re-adds IPv6 VIPs, which the kernel drops with the link).
    LinkChanged {
        /// Whether it is up now.
        up: bool,
    },
    /// The interface was deleted; nothing can be repaired on it.
    InterfaceRemoved,
}

/// Queue between the netlink reader and the daemon: deep enough for a flap's worth of events,
/// small enough that a stuck consumer cannot hoard memory.
const EVENT_QUEUE: usize = 64;

pub(super) fn spawn(interface: &Interface) -> Result<mpsc::Receiver<InterfaceEvent>, AddressError> {
    let groups = [
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
    ];
    let (connection, _handle, mut messages) =
        rtnetlink::new_multicast_connection(&groups).map_err(AddressError::Connect)?;
    let (events, receiver) = mpsc::channel(EVENT_QUEUE);
    let index = interface.index;
    let mut was_up = interface.up;
    tokio::spawn(async move {
        tokio::pin!(connection);
        loop {
            let message = tokio::select! {
                () = &mut connection => break,
                () = events.closed() => break,
                message = messages.next() => match message {
                    Some((message, _)) => message,
                    None => break,
                },
            };
            let event = match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(address))
                    if address.header.index == index =>
                {
                    removed_address(&address)
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link))
                    if link.header.index == index =>
                {
                    let up = is_up(&link);
                    (up != was_up).then(|| {
                        was_up = up;
                        InterfaceEvent::LinkChanged { up }
                    })
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link))
                    if link.header.index == index =>
                {
                    Some(InterfaceEvent::InterfaceRemoved)
                }
                _ => None,
            };
            if let Some(event) = event
                && events.send(event).await.is_err()
            {
                break;
            }
        }
    });
    Ok(receiver)
}

fn removed_address(message: &AddressMessage) -> Option<InterfaceEvent> {
    let addr = message.attributes.iter().find_map(|attr| match attr {
        AddressAttribute::Local(addr) => Some(*addr),
        _ => None,
    });
    let addr = addr.or_else(|| {
        message.attributes.iter().find_map(|attr| match attr {
            AddressAttribute::Address(addr) => Some(*addr),
            _ => None,
        })
    })?;
    Some(InterfaceEvent::AddressRemoved {
        addr,
        prefix_len: message.header.prefix_len,
    })
}

fn is_up(link: &LinkMessage) -> bool {
    link.attributes
        .iter()
        .any(|attr| matches!(attr, LinkAttribute::OperState(State::Up | State::Unknown)))
}
