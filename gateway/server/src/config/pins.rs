//! `upstream.resolve`: provider host names pinned to addresses, read from the configuration.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// Host names pinned to addresses (`upstream.resolve`), lower-case, without a trailing dot.
pub type Pins = BTreeMap<String, Vec<IpAddr>>;

/// Parses `upstream.resolve` entries, each `NAME=IP`; a name may be listed more than once.
pub fn parse_pins(entries: &[String]) -> Result<Pins, String> {
    let mut pins = Pins::new();
    for entry in entries {
        let (name, ip) = entry
            .split_once('=')
            .ok_or_else(|| format!("`{entry}` must look like api.example.com=203.0.113.7"))?;
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !valid {
            return Err(format!("`{entry}`: `{name}` is not a host name"));
        }
        let ip: IpAddr = ip
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("`{entry}`: `{}` is not an IP address", ip.trim()))?;
        pins.entry(name).or_default().push(ip);
    }
    Ok(pins)
}
