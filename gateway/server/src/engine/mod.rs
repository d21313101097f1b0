//! Layer 2, the machinery the gateway runs on, each part with explicit inputs (nothing here takes
//! `AppState`): subkeys and the master-key files (`keys`), limits and budget reservations
//! (`limits`), the usage ledger, the proof replay cache, attempt lockouts and per-client rates,
//! the provider registry (`providers`) and the upstream resolver.

pub mod attempts;
pub mod client_rate;
pub mod console_settings;
pub mod grant_cache;
pub mod journal;
pub mod keys;
pub mod ledger;
pub mod limits;
pub mod master_key_files;
pub mod providers;
pub mod relying_party;
pub mod replay;
pub mod resolve;
