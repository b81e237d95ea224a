//! `Cidr`: an interface address with its prefix length (`10.0.10.21/24`), with network checks.

use super::{ValueError, string_value};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A host address with the prefix length of its network, e.g. `10.0.10.21/24`
/// (PVE cloud-init `ipconfig` `ip=`). The address must be a host address: for IPv4 networks
/// larger than /31 it may not be the network or broadcast address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

fn mask_v4(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

fn mask_v6(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

impl Cidr {
    /// The host address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in this address's network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let m = mask_v4(self.prefix);
                u32::from(a) & m == u32::from(b) & m
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let m = mask_v6(self.prefix);
                u128::from(a) & m == u128::from(b) & m
            }
            _ => false,
        }
    }

    /// The network in CIDR notation, e.g. `10.0.10.0/24`.
    pub fn network(&self) -> String {
        match self.addr {
            IpAddr::V4(a) => format!(
                "{}/{}",
                std::net::Ipv4Addr::from(u32::from(a) & mask_v4(self.prefix)),
                self.prefix
            ),
            IpAddr::V6(a) => format!(
                "{}/{}",
                std::net::Ipv6Addr::from(u128::from(a) & mask_v6(self.prefix)),
                self.prefix
            ),
        }
    }
}

impl FromStr for Cidr {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ValueError::new("address", s, reason);
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| err("missing prefix length, as in `10.0.10.21/24`"))?;
        let addr: IpAddr = addr.parse().map_err(|_| err("not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max && !prefix.starts_with('+'))
            .ok_or_else(|| err(&format!("prefix length must be 0..={max}")))?;
        if let IpAddr::V4(a) = addr
            && prefix < 31
        {
            let host_bits = u32::from(a) & !mask_v4(prefix);
            if host_bits == 0 {
                return Err(err("this is the network address, not a host address"));
            }
            if host_bits == !mask_v4(prefix) {
                return Err(err("this is the broadcast address, not a host address"));
            }
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl crate::decode::ScalarValue for Cidr {
    const EXPECTED: &'static str = "a host address with prefix length such as `10.0.10.21/24`";
}

string_value!(Cidr, "Cidr", {
    "type": "string",
    "description": "A host address with its network's prefix length: `10.0.10.21/24`, `fd00::21/64`.",
    "pattern": "^[0-9a-fA-F:.]+/[0-9]{1,3}$"
});

impl crate::decode::ScalarValue for IpAddr {
    const EXPECTED: &'static str = "an IP address such as `10.0.10.1`";
}
crate::decode::decode_scalar!(IpAddr);

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("valid ip")
    }

    #[test]
    fn gateway_inside_the_network_is_contained() {
        let c: Cidr = "10.0.10.21/24".parse().expect("valid");
        assert!(c.contains(ip("10.0.10.1")));
        assert!(!c.contains(ip("10.0.11.1")));
        assert!(!c.contains(ip("fd00::1")));
        assert_eq!(c.network(), "10.0.10.0/24");
    }

    #[test]
    fn ipv6_networks_are_checked() {
        let c: Cidr = "fd00::21/64".parse().expect("valid");
        assert!(c.contains(ip("fd00::1")));
        assert!(!c.contains(ip("fd01::1")));
    }

    #[test]
    fn network_broadcast_and_malformed_addresses_are_rejected() {
        for bad in [
            "10.0.10.0/24",
            "10.0.10.255/24",
            "10.0.10.21",
            "10.0.10.21/33",
            "host/24",
            "10.0.10.21/+8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert!("10.0.10.1/32".parse::<Cidr>().is_ok());
    }
}
