//! pairgate-sdk: pair an app with a pairgate gateway and sign every request with a key only the
//! app holds (DPoP, RFC 9449). The app never sees a provider key and holds no bearer secret that
//! works without its private key.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pairgate_sdk::SdkError> {
//! use pairgate_sdk::{Client, FileStorage, PairOptions};
//! let storage = FileStorage::new("pairgate-session.json");
//! let client = match Client::from_storage(storage.clone(), PairOptions::default())? {
//!     Some(c) => c,
//!     None => Client::pair("pgpair1....", PairOptions::default(), storage).await?,
//! };
//! let grant = client.get("/v1/grant").send().await?.text().await?;
//! # Ok(()) }
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod client;
mod consent;
mod error;
mod middleware;
mod proxy;
mod storage;

pub use client::{Client, PairOptions, RequestBuilder};
pub use consent::PendingConsent;
pub use error::SdkError;
pub use middleware::PairgateMiddleware;
pub use pairgate_protocol::keys::KeyKind;
pub use proxy::LocalProxy;
pub use storage::{FileStorage, MemoryStorage, RefreshGuard, Storage, StoredSession};
