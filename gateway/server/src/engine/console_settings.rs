//! This gateway's snapshots of what the owner sets in the console and every relayed request
//! reads: which plugin hosts are approved ([`HostApprovals`]) and the model prices
//! ([`OwnerPrices`]). Each is re-read when older than [`REFRESH`]: a change made on this gateway
//! applies from its next request (the snapshot is reloaded at once), one made on another replica
//! within [`REFRESH`]. A request that finds the snapshot past half of [`REFRESH`] starts a
//! reload in the background and goes on with it, so under steady traffic no request waits for
//! the database; one that finds it past [`REFRESH`] waits for the reload, and if the snapshot
//! cannot be re-read it is refused (503), never served on stale settings.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use pairgate_policy::Prices;
use pairgate_policy::limits::PriceEntry;
use pairgate_store::{PriceRow, Store, StoreError};

use crate::engine::providers::{ConsolePrices, Provider};

/// How old a snapshot may get before it is read again.
pub const REFRESH: Duration = Duration::from_secs(5);

/// A value read from the database, kept for [`REFRESH`]; one reload at a time.
#[derive(Debug)]
struct Snapshot<T> {
    value: RwLock<Option<(Instant, Arc<T>)>>,
    reload: tokio::sync::Mutex<()>,
    /// A background reload is under way.
    refreshing: AtomicBool,
}

impl<T> Default for Snapshot<T> {
    fn default() -> Self {
        Snapshot {
            value: RwLock::new(None),
            reload: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
        }
    }
}

impl<T: Send + Sync + 'static> Snapshot<T> {
    /// The value if younger than `within`.
    fn younger(&self, within: Duration) -> Option<Arc<T>> {
        let v = self.value.read().unwrap_or_else(|e| e.into_inner());
        v.as_ref()
            .filter(|(at, _)| at.elapsed() < within)
            .map(|(_, v)| v.clone())
    }

    fn fresh(&self) -> Option<Arc<T>> {
        self.younger(REFRESH)
    }

    fn set(&self, value: T) -> Arc<T> {
        let value = Arc::new(value);
        *self.value.write().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), value.clone()));
        value
    }

    /// The snapshot, re-read with `load` when stale (whoever waited finds the fresh one); past
    /// half its age, re-read in the background while this request goes on with it.
    async fn current<F, Fut>(self: &Arc<Self>, load: F) -> Result<Arc<T>, StoreError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send,
    {
        if let Some(v) = self.younger(REFRESH / 2) {
            return Ok(v);
        }
        if let Some(v) = self.fresh() {
            if !self.refreshing.swap(true, Ordering::AcqRel) {
                let this = Arc::clone(self);
                tokio::spawn(async move {
                    let _one = this.reload.lock().await;
                    if this.younger(REFRESH / 2).is_none() {
                        match load().await {
                            Ok(value) => {
                                this.set(value);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "re-reading a console setting failed")
                            }
                        }
                    }
                    this.refreshing.store(false, Ordering::Release);
                });
            }
            return Ok(v);
        }
        let _one = self.reload.lock().await;
        if let Some(v) = self.fresh() {
            return Ok(v);
        }
        Ok(self.set(load().await?))
    }
}

/// The console's host approvals, by provider id.
pub type ApprovedHosts = BTreeMap<String, Vec<String>>;

/// This gateway's snapshot of the owner's console approvals (see `domain::hosts` for the rule).
#[derive(Debug, Default)]
pub struct HostApprovals(Arc<Snapshot<ApprovedHosts>>);

impl HostApprovals {
    async fn read(store: &Store) -> Result<ApprovedHosts, StoreError> {
        let mut by_provider = ApprovedHosts::new();
        for r in store.host_approvals().await? {
            by_provider.entry(r.provider).or_default().push(r.host);
        }
        Ok(by_provider)
    }

    /// Re-reads the approvals now.
    pub async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        self.0.set(Self::read(store).await?);
        Ok(())
    }

    /// The hosts `provider` may reach besides being declared: the configuration's approvals
    /// plus the console's. `check_upstream` still requires each to be declared.
    pub async fn approved(
        &self,
        store: &Store,
        provider: &Provider,
    ) -> Result<Vec<String>, StoreError> {
        let store = store.clone();
        let console = self
            .0
            .current(|| async move { Self::read(&store).await })
            .await?;
        let mut hosts = provider.approved_hosts.clone();
        if let Some(extra) = console.get(&provider.id) {
            hosts.extend(extra.iter().cloned());
        }
        Ok(hosts)
    }
}

/// The console's prices, by provider id.
pub type PricesByProvider = BTreeMap<String, ConsolePrices>;

/// This gateway's snapshot of the owner's console prices (see `domain::prices`).
#[derive(Debug, Default)]
pub struct OwnerPrices(Arc<Snapshot<PricesByProvider>>);

fn entry(r: &PriceRow) -> PriceEntry {
    let micros = |v: i64| u64::try_from(v).unwrap_or(0);
    PriceEntry {
        model: r.model.clone(),
        prices: Prices {
            input_per_million_micros: micros(r.input_micros),
            output_per_million_micros: micros(r.output_micros),
            cached_input_per_million_micros: r.cached_input_micros.map(micros),
        },
        max_output_tokens: r.max_output_tokens.and_then(|n| u32::try_from(n).ok()),
    }
}

impl OwnerPrices {
    async fn read(store: &Store) -> Result<PricesByProvider, StoreError> {
        let mut by_provider = PricesByProvider::new();
        for r in store.owner_prices().await? {
            let p = by_provider.entry(r.provider.clone()).or_default();
            if r.fallback == 1 {
                p.fallback = Some(entry(&r));
            } else {
                p.list.push(entry(&r));
            }
        }
        Ok(by_provider)
    }

    /// Re-reads the console's prices now.
    pub async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        self.0.set(Self::read(store).await?);
        Ok(())
    }

    /// Every provider's console prices (re-read when the snapshot is stale).
    pub async fn current(&self, store: &Store) -> Result<Arc<PricesByProvider>, StoreError> {
        let store = store.clone();
        self.0
            .current(|| async move { Self::read(&store).await })
            .await
    }
}
