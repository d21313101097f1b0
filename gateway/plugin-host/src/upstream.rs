//! Pure checks on an upstream call before the gateway sends it: the URL's scheme and host, and
//! the headers a plugin must not set.
//!
//! These checks work on the URL text only. Resolving the host name is the gateway's sender's job
//! (`relay/upstream.rs` in the server): it refuses a name that resolves only to addresses
//! [`is_private`] refuses (unless the provider allows private addresses) and connects to the
//! address it checked, so a DNS answer cannot point an approved name at an internal service.

use crate::error::UpstreamDenied;
use crate::types::Credential;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// Headers that carry credentials and that only the host may set.
pub const AUTH_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
];

/// A URL that passed [`check_upstream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUrl {
    url: Url,
    host: String,
    port: u16,
}

impl CheckedUrl {
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The host as matched against the lists (`name`, `a.b.c.d` or `[v6]`).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Checks an upstream URL: `https` (or `http` when `allow_private`, for local runtimes), no
/// credentials in it, a host both declared by the plugin and approved by the owner, and no
/// private, loopback or link-local IP literal nor `localhost` unless `allow_private`.
///
/// A list entry is `name` (default port of the scheme only) or `name:port`.
pub fn check_upstream<D: AsRef<str>, A: AsRef<str>>(
    url: &str,
    declared_hosts: &[D],
    approved_hosts: &[A],
    allow_private: bool,
) -> Result<CheckedUrl, UpstreamDenied> {
    let mut url = Url::parse(url).map_err(|_| UpstreamDenied::InvalidUrl)?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        other => return Err(UpstreamDenied::Scheme(other.to_owned())),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UpstreamDenied::Credentials);
    }
    let host = match url.host() {
        Some(Host::Domain(d)) => d.trim_end_matches('.').to_owned(),
        Some(Host::Ipv4(ip)) => {
            if !allow_private && is_private(IpAddr::V4(ip)) {
                return Err(UpstreamDenied::PrivateAddress(ip.to_string()));
            }
            ip.to_string()
        }
        Some(Host::Ipv6(ip)) => {
            if !allow_private && is_private(IpAddr::V6(ip)) {
                return Err(UpstreamDenied::PrivateAddress(format!("[{ip}]")));
            }
            format!("[{ip}]")
        }
        None => return Err(UpstreamDenied::NoHost),
    };
    if host.is_empty() {
        return Err(UpstreamDenied::NoHost);
    }
    if !allow_private && (host == "localhost" || host.ends_with(".localhost")) {
        return Err(UpstreamDenied::Localhost(host));
    }
    let port = url
        .port_or_known_default()
        .ok_or(UpstreamDenied::InvalidUrl)?;
    let default_port = if url.scheme() == "https" { 443 } else { 80 };
    let listed = |entry: &str| {
        let entry = entry.trim().to_ascii_lowercase();
        match entry.rsplit_once(':') {
            Some((name, p)) if !name.contains(':') || name.ends_with(']') => {
                name == host && p.parse::<u16>() == Ok(port)
            }
            _ => entry == host && port == default_port,
        }
    };
    if !declared_hosts.iter().any(|h| listed(h.as_ref())) {
        return Err(UpstreamDenied::NotDeclared(host));
    }
    if !approved_hosts.iter().any(|h| listed(h.as_ref())) {
        return Err(UpstreamDenied::NotApproved(host));
    }
    url.set_fragment(None);
    Ok(CheckedUrl { url, host, port })
}

/// Removes every credential-carrying header: [`AUTH_HEADERS`] and the descriptor's own
/// credential header. The host then sets the credential itself (replacing, never appending).
pub fn strip_auth_headers(
    headers: Vec<(String, String)>,
    credential: &Credential,
) -> Vec<(String, String)> {
    let own = match credential {
        Credential::Header(name) => Some(name.as_str()),
        Credential::Bearer | Credential::None => None,
    };
    headers
        .into_iter()
        .filter(|(name, _)| {
            !AUTH_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h))
                && !own.is_some_and(|o| name.eq_ignore_ascii_case(o))
        })
        .collect()
}

/// Private, loopback, link-local, unspecified, multicast, documentation, benchmarking, shared
/// (CGNAT) and other special-purpose ranges (IANA special-purpose registries), including IPv4
/// addresses carried in IPv6: IPv4-mapped and -compatible, NAT64 (`64:ff9b::/96`; the local-use
/// `64:ff9b:1::/48` is refused whole), 6to4 (`2002::/16`) and Teredo (`2001::/32`, refused whole).
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => is_private_v6(v6),
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_private_v4(v4);
    }
    let s = ip.segments();
    let o = ip.octets();
    // IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) carry an IPv4 address at the end.
    let last32 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if s[..6] == [0; 6] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return ip.is_unspecified() || ip.is_loopback() || is_private_v4(last32);
    }
    // 6to4 (2002:a.b.c.d::/48) routes to the IPv4 address in its second and third segments.
    if s[0] == 0x2002 {
        return is_private_v4(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    ip.is_multicast()
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 (64:ff9b:1::/48)
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x3fff && s[1] < 0x1000) // documentation (3fff::/20)
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF assignments: Teredo, benchmarking, ORCHID
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard
        || (s[0] == 0x5f00) // SRv6 SIDs (5f00::/16)
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
