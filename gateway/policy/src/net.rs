//! CIDR blocks for `source_ips`: parsing, membership and containment, IPv4 and IPv6.
//!
//! An entry is either `address/prefix` (host bits must be zero) or a single address
//! (a /32 or /128). IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are treated as the IPv4
//! address, both in entries (when the prefix is at least 96) and in checked addresses, so
//! a dual-stack listener does not bypass an IPv4 rule.

use std::net::IpAddr;
use std::str::FromStr;

/// A parsed CIDR block in canonical form (network address, prefix length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why an entry is not a CIDR block or address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// The address part does not parse.
    #[error("not an IPv4 or IPv6 address")]
    Address,
    /// The prefix is not a decimal number in range for the address family.
    #[error("prefix length out of range")]
    Prefix,
    /// Bits after the prefix are set (`10.0.0.1/8`); write the network address.
    #[error("host bits set after the prefix")]
    HostBits,
}

fn mask4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl IpNet {
    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// `true` when `ip` (canonicalized) lies in this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let m = mask4(self.prefix);
                u32::from(ip) & m == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let m = mask6(self.prefix);
                u128::from(ip) & m == u128::from(net)
            }
            _ => false,
        }
    }

    /// `true` when every address of `other` lies in this block.
    pub fn contains_net(&self, other: &IpNet) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }
}

impl FromStr for IpNet {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = IpAddr::from_str(addr).map_err(|_| CidrError::Address)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| CidrError::Prefix)?
            }
            Some(_) => return Err(CidrError::Prefix),
        };
        if prefix > max {
            return Err(CidrError::Prefix);
        }
        let net = match addr {
            IpAddr::V4(a) => {
                if u32::from(a) & !mask4(prefix) != 0 {
                    return Err(CidrError::HostBits);
                }
                IpNet { addr, prefix }
            }
            IpAddr::V6(a) => {
                if u128::from(a) & !mask6(prefix) != 0 {
                    return Err(CidrError::HostBits);
                }
                match a.to_ipv4_mapped() {
                    Some(v4) if prefix >= 96 => IpNet {
                        addr: IpAddr::V4(v4),
                        prefix: prefix - 96,
                    },
                    _ => IpNet { addr, prefix },
                }
            }
        };
        Ok(net)
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `true` when `ip` is in any parseable entry of `entries` (unparseable entries match nothing).
pub fn any_contains(entries: &[String], ip: IpAddr) -> bool {
    entries
        .iter()
        .filter_map(|e| e.parse::<IpNet>().ok())
        .any(|n| n.contains(ip))
}

/// `true` when the block written `inner` is inside the block written `outer`; entries that
/// do not parse are only within an identical string.
pub fn entry_within(inner: &str, outer: &str) -> bool {
    match (inner.parse::<IpNet>(), outer.parse::<IpNet>()) {
        (Ok(i), Ok(o)) => o.contains_net(&i),
        _ => inner == outer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_table() {
        let cases: &[(&str, Result<&str, CidrError>)] = &[
            ("10.0.0.0/8", Ok("10.0.0.0/8")),
            ("10.1.2.3", Ok("10.1.2.3/32")),
            ("0.0.0.0/0", Ok("0.0.0.0/0")),
            ("2001:db8::/32", Ok("2001:db8::/32")),
            ("2001:db8::1", Ok("2001:db8::1/128")),
            ("::/0", Ok("::/0")),
            ("::ffff:10.0.0.0/104", Ok("10.0.0.0/8")),
            ("::ffff:10.0.0.1", Ok("10.0.0.1/32")),
            ("10.0.0.1/8", Err(CidrError::HostBits)),
            ("2001:db8::1/32", Err(CidrError::HostBits)),
            ("10.0.0.0/33", Err(CidrError::Prefix)),
            ("::/129", Err(CidrError::Prefix)),
            ("10.0.0.0/", Err(CidrError::Prefix)),
            ("10.0.0.0/+8", Err(CidrError::Prefix)),
            ("10.0.0.0/0008", Err(CidrError::Prefix)),
            ("10.0.0/8", Err(CidrError::Address)),
            ("example.com", Err(CidrError::Address)),
            ("fe80::1%eth0", Err(CidrError::Address)),
            ("", Err(CidrError::Address)),
        ];
        for (s, want) in cases {
            let got = s.parse::<IpNet>().map(|n| n.to_string());
            assert_eq!(got, want.map(str::to_owned), "{s:?}");
        }
    }

    #[test]
    fn contains_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.1.2.3", "10.1.2.3", true),
            ("10.1.2.3", "10.1.2.4", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("::/0", "2001:db8::1", true),
            ("10.0.0.0/8", "::ffff:10.9.9.9", true),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
        ];
        for &(net, addr, want) in cases {
            let n: IpNet = net.parse().unwrap();
            assert_eq!(n.contains(ip(addr)), want, "{addr} in {net}");
        }
    }

    #[test]
    fn containment_of_blocks() {
        assert!(entry_within("10.1.0.0/16", "10.0.0.0/8"));
        assert!(entry_within("10.1.2.3", "10.1.0.0/16"));
        assert!(!entry_within("10.0.0.0/8", "10.1.0.0/16"));
        assert!(!entry_within("10.0.0.0/8", "10.0.0.0/16"));
        assert!(entry_within("10.0.0.0/16", "10.0.0.0/8"));
        assert!(!entry_within("10.0.0.0/8", "::/0"));
        assert!(entry_within("garbage", "garbage"));
        assert!(!entry_within("garbage", "0.0.0.0/0"));
        let entries = vec!["nonsense".to_owned(), "192.168.0.0/16".to_owned()];
        assert!(any_contains(&entries, ip("192.168.4.4")));
        assert!(!any_contains(&entries, ip("0.0.0.0")));
    }
}
