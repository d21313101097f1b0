//! Unit tests of `passkeys.rs`: the relying party derived from `public_url`, owner handles.

use super::*;
use crate::engine::relying_party::RelyingParty;
use url::Url;

fn rp(url: &str) -> RelyingParty {
    RelyingParty::from_public_url(&Url::parse(url).unwrap())
}

#[test]
fn the_relying_party_follows_public_url_and_refuses_ip_addresses() {
    for ok in [
        "http://localhost:8787/",
        "http://admin.localhost:1/",
        "https://gw.example.com/",
        "https://gw.example.com:8443/prefix/",
    ] {
        assert!(matches!(rp(ok), RelyingParty::Ready(_)), "{ok}");
    }
    for (bad, says) in [
        ("http://127.0.0.1:8787/", "IP address"),
        ("https://[::1]:8443/", "IP address"),
        ("https://10.0.0.7/", "IP address"),
        ("http://gw.example.com/", "https"),
    ] {
        match rp(bad) {
            RelyingParty::Unavailable(why) => assert!(why.contains(says), "{bad}: {why}"),
            RelyingParty::Ready(_) => panic!("{bad} accepted"),
        }
    }
    let err = rp("http://127.0.0.1:1/").get().unwrap_err();
    assert_eq!(
        crate::base::error::ApiError::from(PasskeyError::from(err)).code(),
        "passkeys_unavailable"
    );
}

#[test]
fn owner_handles_are_stable_and_distinct() {
    assert_eq!(owner_handle("ow_a"), owner_handle("ow_a"));
    assert_ne!(owner_handle("ow_a"), owner_handle("ow_b"));
}
