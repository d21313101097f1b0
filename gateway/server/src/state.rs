//! Shared application state: cheap-to-clone handles, with `FromRef` sub-states for handlers.

use std::sync::Arc;

use axum::extract::FromRef;
use pairgate_store::Store;

use crate::config::Config;

/// Everything handlers share. Cloning copies handles, never data.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
}

impl AppState {
    pub fn new(config: Config, store: Store) -> AppState {
        AppState {
            config: Arc::new(config),
            store,
        }
    }

    /// Flushes and closes what the state holds; called once the server has drained.
    pub async fn shutdown(&self) {
        self.store.close().await;
    }
}

impl FromRef<AppState> for Store {
    fn from_ref(state: &AppState) -> Store {
        state.store.clone()
    }
}

impl FromRef<AppState> for Arc<Config> {
    fn from_ref(state: &AppState) -> Arc<Config> {
        state.config.clone()
    }
}
