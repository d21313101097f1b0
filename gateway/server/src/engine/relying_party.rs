//! The WebAuthn relying party of this gateway (owner passkeys), derived once from `public_url`,
//! or the reason passkeys are unavailable.

use std::time::Duration;

use url::Url;
use webauthn_rs::prelude::{Webauthn, WebauthnBuilder};

/// What the browser is told to wait for the authenticator (a little less than the state lives).
pub const AUTHENTICATOR_TIMEOUT: Duration = Duration::from_secs(150);

/// The relying party of this gateway, or why passkeys are unavailable.
#[derive(Debug)]
pub enum RelyingParty {
    Ready(Box<Webauthn>),
    Unavailable(String),
}

impl RelyingParty {
    /// Derives the relying party from the gateway's public URL.
    pub fn from_public_url(url: &Url) -> RelyingParty {
        let domain = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(host) => {
                return RelyingParty::Unavailable(format!(
                    "passkeys need public_url to name the gateway by a domain name, and it is an IP \
                     address ({host}); WebAuthn does not accept IP addresses (set public_url, e.g. \
                     http://localhost:{}/ on this machine or your https name)",
                    url.port_or_known_default().unwrap_or(80)
                ));
            }
            None => return RelyingParty::Unavailable("public_url has no host".into()),
        };
        let local = domain == "localhost" || domain.ends_with(".localhost");
        if url.scheme() != "https" && !local {
            return RelyingParty::Unavailable(format!(
                "passkeys need https (browsers offer WebAuthn only to secure pages); public_url is \
                 {url}"
            ));
        }
        match WebauthnBuilder::new(&domain, url)
            .map(|b| b.rp_name("pairgate").timeout(AUTHENTICATOR_TIMEOUT))
            .and_then(|b| b.build())
        {
            Ok(w) => RelyingParty::Ready(Box::new(w)),
            Err(e) => RelyingParty::Unavailable(format!("public_url {url} cannot be used: {e}")),
        }
    }

    /// The relying party, or why there is none.
    pub fn get(&self) -> Result<&Webauthn, PasskeysUnavailable> {
        match self {
            RelyingParty::Ready(w) => Ok(w.as_ref()),
            RelyingParty::Unavailable(why) => Err(PasskeysUnavailable(why.clone())),
        }
    }
}

/// Passkeys cannot be used on this gateway (its `public_url` cannot be a WebAuthn origin).
#[derive(Debug, Clone, thiserror::Error)]
#[error("passkeys are unavailable on this gateway: {0}")]
pub struct PasskeysUnavailable(pub String);
