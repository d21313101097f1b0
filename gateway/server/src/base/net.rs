//! Client addresses as the gateway counts them.

use std::net::IpAddr;

/// The key a client is counted under (lockouts, per-client rates): its IPv4 address (an
/// IPv4-mapped IPv6 address is the IPv4 address), or the /64 network of an IPv6 address (a single
/// host is routinely given a whole /64, so counting per address would let it escape every limit).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let net = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(net.into())
        }
        v4 => v4,
    }
}
