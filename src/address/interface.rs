//! Which interface carries the VIP: by name, else the interface of the default route.
//!
//! Resolved once at start over netlink (never by running `ip`), into an [`Interface`] that both
//! the address handle and the announcer use, so the two always agree on index and MAC.

use std::net::{IpAddr, Ipv6Addr};

use futures::TryStreamExt;
use pnet::util::MacAddr;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags};
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage, State};
use rtnetlink::packet_route::route::{RouteAttribute, RouteHeader, RouteMessage, RouteType};

use super::{AddressError, connect, errno_of};

/// The interface that carries the VIP, as the kernel describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Its name, e.g. `eth0`.
    pub name: String,
    /// Its kernel index: what netlink and AF_PACKET sockets address it by.
    pub index: u32,
    /// Its link-layer address: the source of every gratuitous ARP / NA (`None` on links without
    /// one, such as tunnels, where there is nothing to announce).
    pub mac: Option<MacAddr>,
    /// Its IPv6 link-local address: the source address an unsolicited NA must carry (RFC 4861
    /// §7.2.4). `None` if IPv6 is disabled on it or the link has not come up yet.
    pub link_local: Option<Ipv6Addr>,
    /// Whether the kernel says it is up (operational state UP, or UNKNOWN as on loopback and many
    /// virtual links: kube-vip accepts both).
    pub up: bool,
}

/// Resolves the interface over a short-lived netlink connection (for `kvip announce` and other
/// one-shot callers; the daemon uses [`super::Addresses::open`], which keeps its connection).
pub async fn resolve_interface(
    name: Option<&str>,
    allow_not_up: bool,
) -> Result<Interface, AddressError> {
    let (handle, connection) = connect()?;
    let result = resolve_with(&handle, name, allow_not_up).await;
    connection.abort();
    result
}

pub(crate) async fn resolve_with(
    handle: &rtnetlink::Handle,
    name: Option<&str>,
    allow_not_up: bool,
) -> Result<Interface, AddressError> {
    let link = match name {
        Some(name) => link_by_name(handle, name).await?,
        None => {
            let index = default_route_interface(handle).await?;
            link_by_index(handle, index).await?
        }
    };
    let mut interface = describe(&link);
    interface.link_local = link_local(handle, &interface).await?;
    if !interface.up && !allow_not_up {
        return Err(AddressError::InterfaceDown {
            name: interface.name,
            state: oper_state(&link),
        });
    }
    Ok(interface)
}

fn describe(link: &LinkMessage) -> Interface {
    let mut interface = Interface {
        name: String::new(),
        index: link.header.index,
        mac: None,
        link_local: None,
        up: false,
    };
    for attr in &link.attributes {
        match attr {
            LinkAttribute::IfName(name) => interface.name = name.clone(),
            LinkAttribute::Address(bytes) if bytes.len() == 6 => {
                interface.mac = Some(MacAddr::new(
                    bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5],
                ));
            }
            LinkAttribute::OperState(state) => {
                interface.up = matches!(state, State::Up | State::Unknown)
            }
            _ => {}
        }
    }
    interface
}

fn oper_state(link: &LinkMessage) -> String {
    link.attributes
        .iter()
        .find_map(|attr| match attr {
            LinkAttribute::OperState(state) => Some(state.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "unknown".to_string())
}

async fn link_by_name(handle: &rtnetlink::Handle, name: &str) -> Result<LinkMessage, AddressError> {
    let mut links = Box::pin(handle.link().get().match_name(name.to_string()).execute());
    match links.try_next().await {
        Ok(Some(link)) => Ok(link),
        Ok(None) => Err(no_such_interface(handle, name).await),
        Err(err) if errno_of(&err) == Some(libc::ENODEV) => {
            Err(no_such_interface(handle, name).await)
        }
        Err(err) => Err(AddressError::from_rtnetlink(
            "look up", "the link", name, err,
        )),
    }
}

async fn link_by_index(
    handle: &rtnetlink::Handle,
    index: u32,
) -> Result<LinkMessage, AddressError> {
    let mut links = Box::pin(handle.link().get().match_index(index).execute());
    let label = format!("#{index}");
    match links.try_next().await {
        Ok(Some(link)) => Ok(link),
        Ok(None) => Err(AddressError::NoSuchInterface {
            name: label,
            available: String::new(),
        }),
        Err(err) => Err(AddressError::from_rtnetlink(
            "look up", "the link", &label, err,
        )),
    }
}

async fn no_such_interface(handle: &rtnetlink::Handle, name: &str) -> AddressError {
    let mut names: Vec<String> = handle
        .link()
        .get()
        .execute()
        .map_ok(|link| describe(&link).name)
        .try_collect()
        .await
        .unwrap_or_default();
    names.sort();
    AddressError::NoSuchInterface {
        name: name.to_string(),
        available: names.join(", "),
    }
}

/// The output interface of the main table's default route: IPv4 first, then IPv6 (kube-vip's
/// order).
async fn default_route_interface(handle: &rtnetlink::Handle) -> Result<u32, AddressError> {
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut query = RouteMessage::default();
        query.header.address_family = family;
        let routes: Vec<RouteMessage> = handle
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(|err| {
                AddressError::from_rtnetlink("list routes for", "the default route", "-", err)
            })?;
        let found = routes
            .iter()
            .filter(|route| route.header.destination_prefix_length == 0)
            .filter(|route| route_table(route) == u32::from(RouteHeader::RT_TABLE_MAIN))
            .filter(|route| route.header.kind == RouteType::Unicast)
            .find_map(output_interface);
        if let Some(index) = found {
            return Ok(index);
        }
    }
    Err(AddressError::NoDefaultRoute)
}

fn route_table(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|attr| match attr {
            RouteAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}

fn output_interface(route: &RouteMessage) -> Option<u32> {
    route.attributes.iter().find_map(|attr| match attr {
        RouteAttribute::Oif(index) => Some(*index),
        RouteAttribute::MultiPath(hops) => hops.first().map(|hop| hop.interface_index),
        _ => None,
    })
}

/// The interface's IPv6 link-local address, preferring one that has finished DAD.
async fn link_local(
    handle: &rtnetlink::Handle,
    interface: &Interface,
) -> Result<Option<Ipv6Addr>, AddressError> {
    let mut request = handle
        .address()
        .get()
        .set_link_index_filter(interface.index);
    request.message_mut().header.family = AddressFamily::Inet6;
    let messages: Vec<_> = request.execute().try_collect().await.map_err(|err| {
        AddressError::from_rtnetlink("list addresses of", "the link", &interface.name, err)
    })?;
    let mut tentative = None;
    for message in &messages {
        let addr = message.attributes.iter().find_map(|attr| match attr {
            AddressAttribute::Address(IpAddr::V6(addr)) if is_link_local(addr) => Some(*addr),
            _ => None,
        });
        if let Some(addr) = addr {
            if message.header.flags.contains(AddressHeaderFlags::Tentative) {
                tentative.get_or_insert(addr);
            } else {
                return Ok(Some(addr));
            }
        }
    }
    Ok(tentative)
}

fn is_link_local(addr: &Ipv6Addr) -> bool {
    addr.segments()[0] & 0xffc0 == 0xfe80
}
