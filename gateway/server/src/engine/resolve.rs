//! Name resolution for provider calls, and the two upstream clients built on it.
//!
//! `check_upstream` (plugin host) checks a URL's text; it cannot tell that an approved name (an
//! `openai-compatible` `base_url`, a third-party plugin's host) resolves to 169.254.169.254, 10/8
//! or 127/8. [`Resolver`] is the upstream client's DNS resolver: it looks the name up once (or
//! takes the owner's pinned addresses, `upstream.resolve`), keeps only the addresses
//! [`is_private`] accepts, and hands exactly those to the connector, so the address checked is
//! the address connected to (no second lookup a DNS answer could change in between). When none
//! is left the call fails with [`AddressRefused`] before a byte (or the credential) is sent.
//!
//! Providers that may reach private addresses (`allow_private`, or an `origin_override`, which
//! names the owner's own origin) use a second client whose resolver keeps every address.
//! Environment proxy variables (`HTTPS_PROXY`) are ignored by the checked client: a proxy would
//! resolve the name itself, out of the check's sight (an egress proxy is an `origin_override`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use pairgate_plugin_host::is_private;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::config::Config;
use crate::config::pins::Pins;

/// A provider host whose every address is private or special-purpose, refused for a provider
/// that does not allow private addresses.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "provider host {host} resolves only to private or special-purpose addresses ({}), which this provider may not reach",
    addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
)]
pub struct AddressRefused {
    pub host: String,
    pub addresses: Vec<IpAddr>,
}

/// The upstream clients' DNS resolver (see the module documentation).
#[derive(Debug, Clone)]
pub struct Resolver {
    allow_private: bool,
    pins: Arc<Pins>,
}

impl Resolver {
    pub fn new(allow_private: bool, pins: Arc<Pins>) -> Resolver {
        Resolver {
            allow_private,
            pins,
        }
    }

    /// The addresses to connect to for `host`: pinned or looked up, then checked.
    pub async fn addresses(
        &self,
        host: &str,
    ) -> Result<Vec<IpAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let found: Vec<IpAddr> = match self.pins.get(&host) {
            Some(pinned) => pinned.clone(),
            None => tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect(),
        };
        if self.allow_private {
            return Ok(found);
        }
        let (public, refused): (Vec<IpAddr>, Vec<IpAddr>) =
            found.into_iter().partition(|ip| !is_private(*ip));
        if public.is_empty() && !refused.is_empty() {
            let refused = AddressRefused {
                host,
                addresses: refused,
            };
            tracing::warn!(error = %refused, "refused to connect to a provider (set the provider's allow_private if it is meant to be local)");
            return Err(Box::new(refused));
        }
        Ok(public)
    }
}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        Box::pin(async move {
            let addrs = this.addresses(name.as_str()).await?;
            // Port 0: the connector puts the URL's port in.
            let addrs: Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The refusal behind a failed upstream call, if that is why it failed.
pub fn refusal(e: &(dyn std::error::Error + 'static)) -> Option<AddressRefused> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<AddressRefused>() {
            return Some(r.clone());
        }
        next = e.source();
    }
    None
}

/// The two upstream clients: address-checked, and for providers allowed private addresses. Each
/// connection thread (`http::spread`) has its own pair, so the upstream connections a thread's
/// requests use are driven by that thread (a pooled connection opened by another thread would
/// wake it for every call); every other thread shares the first pair.
#[derive(Debug, Clone)]
pub struct Clients {
    pairs: Arc<[ClientPair]>,
}

#[derive(Debug)]
struct ClientPair {
    checked: reqwest::Client,
    private: reqwest::Client,
}

thread_local! {
    /// This thread's pair of [`Clients`]: 0 unless [`set_thread_clients`] said otherwise.
    static THREAD_CLIENTS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Makes the calling thread use its own pair of upstream clients: the connection thread `i`
/// (of [`Clients::threads`]) uses pair `i + 1`.
pub fn set_thread_clients(i: usize) {
    THREAD_CLIENTS.with(|c| c.set(i + 1));
}

/// Whether the calling thread is a connection thread (`http::spread`), which keeps its own
/// connections to providers and to Redis.
pub fn on_connection_thread() -> bool {
    THREAD_CLIENTS.with(|c| c.get()) > 0
}

impl Clients {
    /// Upstream clients for the shared runtime and each of `threads` connection threads.
    pub fn new(config: &Config, threads: usize) -> Result<Clients, reqwest::Error> {
        let pins = Arc::new(config.upstream_resolve.clone());
        let pairs = (0..=threads)
            .map(|_| {
                let checked = builder(config)
                    .dns_resolver(Arc::new(Resolver::new(false, pins.clone())))
                    .no_proxy()
                    .build()?;
                let private = builder(config)
                    .dns_resolver(Arc::new(Resolver::new(true, pins.clone())))
                    .build()?;
                Ok(ClientPair { checked, private })
            })
            .collect::<Result<Vec<_>, reqwest::Error>>()?;
        Ok(Clients {
            pairs: pairs.into(),
        })
    }

    /// How many connection threads have their own pair.
    pub fn threads(&self) -> usize {
        self.pairs.len() - 1
    }

    /// The client for a provider, on the calling thread: unchecked only when its instance
    /// allows private addresses or sends to the owner's `origin_override`.
    pub fn for_provider(&self, provider: &crate::engine::providers::Provider) -> &reqwest::Client {
        let i = THREAD_CLIENTS.with(|c| c.get());
        let pair = &self.pairs[if i < self.pairs.len() { i } else { 0 }];
        if provider.allow_private || provider.origin_override.is_some() {
            &pair.private
        } else {
            &pair.checked
        }
    }
}

/// Pooled, HTTP/2 where offered, bounded timeouts, no redirects.
fn builder(config: &Config) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(config.upstream_connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("pairgate/", env!("CARGO_PKG_VERSION")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::config::pins::parse_pins;

    use super::*;

    fn pins(entries: &[&str]) -> Arc<Pins> {
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        Arc::new(parse_pins(&entries).unwrap())
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_unless_private_is_allowed() {
        // A real lookup: `localhost` resolves to loopback everywhere (/etc/hosts).
        let checked = Resolver::new(false, Arc::new(Pins::new()));
        let err = checked.addresses("localhost").await.unwrap_err();
        let refused = refusal(err.as_ref()).expect("an AddressRefused");
        assert_eq!(refused.host, "localhost");
        assert!(
            refused.addresses.iter().all(|ip| ip.is_loopback()),
            "{refused:?}"
        );
        assert!(
            err.to_string()
                .contains("provider host localhost resolves only to private")
        );
        let open = Resolver::new(true, Arc::new(Pins::new()));
        assert!(!open.addresses("localhost").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn pinned_addresses_are_checked_like_resolved_ones() {
        let p = pins(&[
            "Metadata.Example.=169.254.169.254",
            "mapped.example=[::ffff:10.0.0.1]",
            "nat64.example=64:ff9b::a9fe:a9fe",
            "mixed.example=10.0.0.1",
            "mixed.example=8.8.8.8",
            "public.example=2606:4700:4700::1111",
        ]);
        let checked = Resolver::new(false, p.clone());
        for host in [
            "metadata.example",
            "METADATA.example.",
            "mapped.example",
            "nat64.example",
        ] {
            let err = checked.addresses(host).await.unwrap_err();
            assert!(refusal(err.as_ref()).is_some(), "{host}: {err}");
        }
        // Only the public address of a mixed answer is connected to.
        let ip: IpAddr = "8.8.8.8".parse().unwrap();
        assert_eq!(checked.addresses("mixed.example").await.unwrap(), vec![ip]);
        assert_eq!(checked.addresses("public.example").await.unwrap().len(), 1);
        let open = Resolver::new(true, p);
        assert_eq!(open.addresses("mixed.example").await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_refused_name_fails_the_call_before_connecting_and_is_recognised() {
        // A listener on the pinned address would see a connection if the check were skipped.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = pins(&["llm.internal.test=127.0.0.1"]);
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(Resolver::new(false, p)))
            .no_proxy()
            .build()
            .unwrap();
        let err = client
            .get(format!("http://llm.internal.test:{port}/v1/models"))
            .send()
            .await
            .unwrap_err();
        let refused = refusal(&err).expect("the refusal is found in the error chain");
        assert_eq!(refused.host, "llm.internal.test");
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(
            accepted.is_err(),
            "nothing connected to the refused address"
        );
    }

    #[test]
    fn pins_must_be_name_equals_address() {
        for bad in [
            "no-equals",
            "=1.2.3.4",
            "bad name=1.2.3.4",
            "x.example=not-an-ip",
        ] {
            assert!(parse_pins(&[bad.to_string()]).is_err(), "{bad}");
        }
        let p = parse_pins(&["A.example=1.2.3.4".into(), "a.example.=::1".into()]).unwrap();
        assert_eq!(p["a.example"].len(), 2);
    }
}
