//! The client's address behind trusted reverse proxies: lockouts and the ledger key on it.
//!
//! Without `trusted_proxies`, the TCP peer is the client and `X-Forwarded-For` is ignored (a
//! client could otherwise pick any address and escape its lockout). With it, a request whose
//! peer is a trusted proxy is attributed to the right-most `X-Forwarded-For` hop that is not
//! itself trusted; handlers keep reading `ConnectInfo<SocketAddr>`, which this layer rewrites,
//! and extractors read the [`ClientIp`] extension it adds to every request.
//!
//! Lockouts and per-client limits count under [`crate::base::net::client_key`]: the IPv4 address, or the /64 of an
//! IPv6 one (a single host is routinely given a whole /64, so counting per address would let it
//! escape every limit).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderMap;

use crate::state::AppState;

/// The client's address (behind trusted proxies), in every request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The client address for a request that came from `peer` with these headers.
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> SocketAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer.ip()) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    // Right to left: each trusted hop vouches for the one before it. An unreadable hop ends
    // the chain (nothing to its left can be believed).
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = SocketAddr::new(ip, 0);
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// Middleware: replaces `ConnectInfo` with the client behind trusted proxies and adds
/// [`ClientIp`].
pub async fn resolve(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let client = if state.config.trusted_proxies.is_empty() {
            peer
        } else {
            client_addr(peer, req.headers(), &state.config.trusted_proxies)
        };
        req.extensions_mut().insert(ConnectInfo(client));
        req.extensions_mut().insert(ClientIp(client.ip()));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::net::client_key;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn clients_are_counted_per_ipv4_address_and_per_ipv6_64() {
        let key = |s: &str| client_key(s.parse().unwrap()).to_string();
        assert_eq!(key("198.51.100.7"), "198.51.100.7");
        assert_eq!(key("::ffff:198.51.100.7"), "198.51.100.7");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn only_a_trusted_peer_can_name_the_client() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let stranger: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        let ip = |a: SocketAddr| a.ip().to_string();
        // An untrusted peer's header is ignored.
        assert_eq!(
            ip(client_addr(stranger, &headers(&["198.51.100.1"]), &trusted)),
            "203.0.113.9"
        );
        // The right-most untrusted hop wins; hops a client prepends do not.
        let h = headers(&["1.1.1.1, 198.51.100.7", "10.9.9.9"]);
        assert_eq!(ip(client_addr(proxy, &h, &trusted)), "198.51.100.7");
        // Only trusted hops: the farthest one.
        assert_eq!(
            ip(client_addr(proxy, &headers(&["10.5.5.5"]), &trusted)),
            "10.5.5.5"
        );
        // No header, or garbage: the proxy itself.
        assert_eq!(ip(client_addr(proxy, &headers(&[]), &trusted)), "10.1.2.3");
        assert_eq!(
            ip(client_addr(proxy, &headers(&["nonsense"]), &trusted)),
            "10.1.2.3"
        );
        // Garbage in the middle: nothing left of it is believed.
        let h = headers(&["1.1.1.1, nonsense, 10.7.7.7"]);
        assert_eq!(ip(client_addr(proxy, &h, &trusted)), "10.7.7.7");
        // Nothing trusted: the peer, always.
        assert_eq!(
            ip(client_addr(proxy, &headers(&["198.51.100.7"]), &[])),
            "10.1.2.3"
        );
    }
}
