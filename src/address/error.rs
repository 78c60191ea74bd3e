//! The address module's errors: each names the operation, the address, the interface, the errno
//! and, when known, the fix.

use std::fmt;
use std::time::Duration;

use super::Vip;

/// Everything that can go wrong between kvip and the kernel's address table.
///
/// Each message names what was being done, on which interface, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// The NETLINK_ROUTE socket could not be opened (out of file descriptors, seccomp, …).
    #[error("cannot open a NETLINK_ROUTE socket: {0}")]
    Connect(std::io::Error),
    /// The configured interface does not exist in this network namespace.
    #[error(
        "interface `{name}` does not exist (interfaces here: {available}); set --interface / vip_interface to one of them"
    )]
    NoSuchInterface {
        /// The name that was asked for.
        name: String,
        /// The names that do exist, comma separated.
        available: String,
    },
    /// The interface exists but is not up, and the operator did not allow that.
    #[error(
        "interface `{name}` is not up (operational state {state}); bring it up, or set vip_allow_interface_not_up=true / --allowInterfaceNotUp to start anyway"
    )]
    InterfaceDown {
        /// The interface name.
        name: String,
        /// The kernel's operational state, e.g. `DOWN` or `LOWERLAYERDOWN`.
        state: String,
    },
    /// No interface was configured and there is no default route to take one from.
    #[error(
        "no interface configured and no IPv4 or IPv6 default route to take it from; set --interface / vip_interface"
    )]
    NoDefaultRoute,
    /// A valid lifetime the kernel cannot express.
    #[error(
        "valid lifetime {lifetime:?} for {vip}: the kernel counts whole seconds, so it must be at least 1 s"
    )]
    InvalidLifetime {
        /// The VIP it was meant for.
        vip: Vip,
        /// The lifetime asked for.
        lifetime: Duration,
    },
    /// The kernel refused a request; `errno` is the kernel's answer.
    #[error("{op} {target} on interface `{interface}`: {reason} (errno {errno}){hint}")]
    Kernel {
        /// What was being done: "add", "remove", "list addresses of", …
        op: &'static str,
        /// The address (or object) it was done to.
        target: String,
        /// The interface name.
        interface: String,
        /// The positive errno the kernel returned.
        errno: i32,
        /// The errno's text.
        reason: String,
        /// What to do about it, when known (starts with "; ").
        hint: &'static str,
    },
    /// The netlink exchange itself failed (connection task gone, undecodable answer).
    #[error("{op} {target} on interface `{interface}`: netlink request failed: {detail}")]
    Netlink {
        /// What was being done.
        op: &'static str,
        /// The address (or object) it was done to.
        target: String,
        /// The interface name.
        interface: String,
        /// rtnetlink's description.
        detail: String,
    },
}

impl AddressError {
    /// The kernel's errno, when the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// Turns an rtnetlink error into one that names the operation, target and interface.
    pub(crate) fn from_rtnetlink(
        op: &'static str,
        target: impl fmt::Display,
        interface: &str,
        err: rtnetlink::Error,
    ) -> Self {
        match errno_of(&err) {
            Some(errno) => Self::Kernel {
                op,
                target: target.to_string(),
                interface: interface.to_string(),
                errno,
                reason: std::io::Error::from_raw_os_error(errno).to_string(),
                hint: hint_for(errno),
            },
            None => Self::Netlink {
                op,
                target: target.to_string(),
                interface: interface.to_string(),
                detail: err.to_string(),
            },
        }
    }
}

/// The positive errno inside an rtnetlink error, if the kernel sent one.
pub(crate) fn errno_of(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|code| code.get().abs()),
        _ => None,
    }
}

fn hint_for(errno: i32) -> &'static str {
    match errno {
        libc::EPERM | libc::EACCES => {
            "; changing addresses needs CAP_NET_ADMIN: run kvip as root or add NET_ADMIN to the container's securityContext.capabilities"
        }
        libc::ENODEV => "; the interface disappeared: check --interface / vip_interface",
        _ => "",
    }
}
