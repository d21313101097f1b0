//! Shared application state: cheap-to-clone handles, with `FromRef` sub-states for handlers.

use std::sync::Arc;

use axum::extract::FromRef;
use pairgate_store::Store;

use crate::config::Config;
use crate::engine::attempts::Attempts;
use crate::engine::client_rate::ClientRate;
use crate::engine::console_settings::{HostApprovals, OwnerPrices};
use crate::engine::grant_cache::GrantCache;
use crate::engine::keys::GatewayKeys;
use crate::engine::ledger::Ledger;
use crate::engine::limits::Limiter;
use crate::engine::providers::ProviderRegistry;
use crate::engine::relying_party::RelyingParty;
use crate::engine::replay::ReplayCache;

/// Everything handlers share. Cloning copies one pointer (the request path clones it several
/// times per request); fields are reached through `Deref` to [`Shared`].
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] points to: handles, never data.
#[derive(Debug, Clone)]
pub struct Shared {
    pub config: Arc<Config>,
    pub store: Store,
    pub keys: Arc<GatewayKeys>,
    pub relay: Arc<ProviderRegistry>,
    /// The owner's console approvals of plugin hosts (`hosts.rs`).
    pub host_approvals: Arc<HostApprovals>,
    /// The owner's model prices set in the console (`prices.rs`).
    pub owner_prices: Arc<OwnerPrices>,
    pub limiter: Limiter,
    pub ledger: Ledger,
    /// Grants the app routes used recently, with their parsed policies.
    pub grants: Arc<GrantCache>,
    /// Replay cache of proofs that came with a credential (paired apps, pairing redemptions).
    pub replay: Arc<ReplayCache>,
    /// Replay cache of proofs without one (device authorization and its polls), bounded by
    /// `dpop.stranger_replay_capacity`.
    pub stranger_replay: Arc<ReplayCache>,
    /// Requests to the open OAuth endpoints, per client address.
    pub oauth_rate: Arc<ClientRate>,
    /// Consent requests started, per client address, within `pairing.consent_ttl`.
    pub consent_starts: Arc<Attempts>,
    /// Failed user-code lookups (consent decisions), per actor.
    pub code_attempts: Arc<Attempts>,
    /// Failed pairing redemptions, per client address (no global lock: the secret is 256 bits).
    pub pairing_attempts: Arc<Attempts>,
    /// Failed owner logins (password or passkey), per client address; never global, so
    /// strangers cannot lock the owner out.
    pub login_attempts: Arc<Attempts>,
    /// Passkey sign-ins started, per client address (each stores a challenge until it expires).
    pub passkey_starts: Arc<Attempts>,
    /// The WebAuthn relying party derived from `public_url`, or why passkeys are unavailable.
    pub passkeys: Arc<RelyingParty>,
}

impl AppState {
    pub fn new(
        config: Config,
        store: Store,
        keys: GatewayKeys,
        relay: ProviderRegistry,
        limiter: Limiter,
    ) -> AppState {
        let ledger = Ledger::start(store.clone());
        let passkeys = Arc::new(RelyingParty::from_public_url(&config.public_url));
        let stranger_replay = Arc::new(ReplayCache::new(config.stranger_replay_capacity));
        let oauth_rate = Arc::new(ClientRate::per_minute(
            config.oauth_client_requests_per_minute,
        ));
        let consent_starts = Arc::new(Attempts::new(
            crate::base::clock::millis(config.consent_ttl).max(1000),
            crate::config::CONSENT_PENDING_PER_CLIENT,
        ));
        AppState(Arc::new(Shared {
            config: Arc::new(config),
            store,
            keys: Arc::new(keys),
            relay: Arc::new(relay),
            host_approvals: Arc::new(HostApprovals::default()),
            owner_prices: Arc::default(),
            limiter,
            ledger,
            grants: Arc::default(),
            replay: Arc::new(ReplayCache::new(crate::engine::replay::DEFAULT_CAPACITY)),
            stranger_replay,
            oauth_rate,
            consent_starts,
            code_attempts: Arc::new(Attempts::new(600_000, 10)),
            pairing_attempts: Arc::new(Attempts::new(600_000, 20)),
            login_attempts: Arc::new(Attempts::new(600_000, 10)),
            passkey_starts: Arc::new(Attempts::new(600_000, 60)),
            passkeys,
        }))
    }

    /// The same state under another configuration (a command that learnt the served URL).
    pub fn with_config(&self, config: Config) -> AppState {
        let mut shared = Shared::clone(&self.0);
        shared.config = Arc::new(config);
        AppState(Arc::new(shared))
    }

    /// Flushes and closes what the state holds; called once the server has drained.
    pub async fn shutdown(&self) {
        self.ledger.close().await;
        self.store.close().await;
    }
}

impl FromRef<AppState> for Store {
    fn from_ref(state: &AppState) -> Store {
        state.store.clone()
    }
}
