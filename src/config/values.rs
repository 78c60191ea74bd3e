//! Parsers for single option values. Each returns a [`ConfigError`] that names the option (flag
//! and environment variable), the value seen, what was expected and how to fix it.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::ConfigError;

/// One option as the operator knows it: its flag and its environment variable.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    /// The command-line flag, e.g. `--leaseDuration`.
    pub flag: &'static str,
    /// The environment variable, e.g. `vip_leaseduration`.
    pub env: &'static str,
}

impl Opt {
    /// An error for this option.
    pub fn invalid(self, value: &str, expected: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            option: self.to_string(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}

impl std::fmt::Display for Opt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.flag.is_empty(), self.env.is_empty()) {
            (false, false) => write!(f, "{}/{}", self.flag, self.env),
            (true, _) => f.write_str(self.env),
            (_, true) => f.write_str(self.flag),
        }
    }
}

/// A duration: whole seconds (kube-vip's unit) or a humantime value such as `1500ms`; never zero.
pub fn duration(opt: Opt, value: &str) -> Result<Duration, ConfigError> {
    let parsed = crate::cli::parse_duration(value).map_err(|e| opt.invalid(value, e))?;
    if parsed.is_zero() {
        return Err(opt.invalid(value, "a duration greater than zero"));
    }
    Ok(parsed)
}

/// A TCP port, 1-65535.
pub fn port(opt: Opt, value: &str) -> Result<u16, ConfigError> {
    match value.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(opt.invalid(value, "a port number from 1 to 65535")),
        Ok(port) => Ok(port),
    }
}

/// An interface name the kernel could accept (`dev_valid_name`): 1-15 bytes, not `.` or `..`,
/// no `/`, `:` or white space.
pub fn interface_name(opt: Opt, value: &str) -> Result<String, ConfigError> {
    let bad = value.is_empty()
        || value.len() > 15
        || value == "."
        || value == ".."
        || value
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if bad {
        return Err(opt.invalid(
            value,
            "an interface name of 1 to 15 characters without '/', ':' or spaces, as `ip link` shows it",
        ));
    }
    Ok(value.to_string())
}

/// An IP address for the VIP. A DNS name gets its own message: kube-vip accepts one, kvip does not
/// yet, and the operator should know that rather than read "not an IP".
pub fn vip_address(opt: Opt, value: &str) -> Result<IpAddr, ConfigError> {
    let text = value.trim();
    let Ok(ip) = text.parse::<IpAddr>() else {
        let looks_like_dns = !text.is_empty()
            && text.contains(|c: char| c.is_ascii_alphabetic())
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        let expected = if looks_like_dns {
            "an IP address; DNS names are not supported by kvip yet (kube-vip's dns_mode): \
             resolve the name and pass the address"
        } else {
            "an IPv4 or IPv6 address such as 192.168.0.100 or fd00::100"
        };
        return Err(opt.invalid(value, expected));
    };
    let unusable = match ip {
        IpAddr::V4(v4) => {
            v4.is_unspecified() || v4.is_loopback() || v4.is_multicast() || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unicast_link_local()
        }
    };
    if unusable {
        return Err(opt.invalid(
            value,
            "a unicast address other hosts can reach (not loopback, multicast, broadcast, \
             unspecified or IPv6 link-local)",
        ));
    }
    Ok(ip)
}

/// A listen address: empty disables (`None`), `:port` means every address (Go's convention, which
/// kube-vip's `prometheus_server` uses), otherwise `ip:port` or `localhost:port`.
pub fn listen_address(opt: Opt, value: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let text = value.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let expected = "host:port (e.g. 127.0.0.1:2113), :port for every address, or empty to disable";
    if let Some(port_text) = text.strip_prefix(':') {
        let port = port(opt, port_text).map_err(|_| opt.invalid(value, expected))?;
        return Ok(Some(SocketAddr::new(IpAddr::from([0u8; 16]), port)));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(Some(addr));
    }
    if text.starts_with("localhost:")
        && let Some(addr) = text.to_socket_addrs().ok().and_then(|mut a| a.next())
    {
        return Ok(Some(addr));
    }
    Err(opt.invalid(value, expected))
}

/// A Kubernetes object name (RFC 1123 subdomain) or namespace (RFC 1123 label, `max` = 63).
pub fn dns1123(opt: Opt, value: &str, max: usize) -> Result<String, ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (c == '.' && max > 63)
        })
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        return Err(opt.invalid(
            value,
            format!(
                "a Kubernetes name: at most {max} lower-case letters, digits{} and '-', \
                 starting and ending with a letter or digit",
                if max > 63 { ", '.'" } else { "" }
            ),
        ));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPT: Opt = Opt {
        flag: "--x",
        env: "x",
    };

    #[test]
    fn durations_accept_kube_vip_seconds_and_units() {
        assert_eq!(duration(OPT, "15").ok(), Some(Duration::from_secs(15)));
        assert_eq!(
            duration(OPT, "1500ms").ok(),
            Some(Duration::from_millis(1500))
        );
        assert!(duration(OPT, "0").is_err());
        assert!(duration(OPT, "-1").is_err());
        assert!(duration(OPT, "soon").is_err());
    }

    #[test]
    fn go_listen_address_forms() {
        let any = listen_address(OPT, ":2112").ok().flatten();
        assert_eq!(
            any.map(|a| (a.ip().is_unspecified(), a.port())),
            Some((true, 2112))
        );
        assert_eq!(
            listen_address(OPT, "127.0.0.1:2113").ok().flatten(),
            Some("127.0.0.1:2113".parse().unwrap())
        );
        assert_eq!(listen_address(OPT, "").ok(), Some(None));
        assert!(listen_address(OPT, ":99999").is_err());
        assert!(listen_address(OPT, "nowhere").is_err());
    }

    #[test]
    fn kubernetes_names() {
        assert!(dns1123(OPT, "plndr-cp-lock", 253).is_ok());
        assert!(dns1123(OPT, "a.b", 253).is_ok());
        assert!(dns1123(OPT, "a.b", 63).is_err());
        assert!(dns1123(OPT, "Kube-System", 63).is_err());
        assert!(dns1123(OPT, "-x", 63).is_err());
        assert!(dns1123(OPT, "", 63).is_err());
    }
}
