//! The plugin host: one engine, a registry of linked components, an instance per call (a fresh
//! one, or for a built-in plugin one kept from an earlier call).

use crate::config::{HostConfig, KEEP_CALLS, KEEP_MEMORY_BYTES, PluginLimits};
use crate::contract;
use crate::error::PluginError;
use crate::sandbox::{self, HostState};
use crate::ticker::Ticker;
use crate::types::{
    ContractVersion, Descriptor, Failure, Finished, Origin, PluginId, PrepareRequest, Rejection,
    StreamEvent, Translated, UpstreamCall, UpstreamResponse,
};
use crate::{builtin, check, v0_1_0};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

/// What is known about a loaded plugin.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    pub id: PluginId,
    pub origin: Origin,
    /// SHA-256 of the component, lower-case hex.
    pub sha256: String,
    pub contract: ContractVersion,
    /// The compiled code came from the on-disk cache (no compilation at this load).
    pub compiled_from_cache: bool,
    /// `describe("{}")`, taken at load.
    pub descriptor: Descriptor,
}

/// Bindings of a component, by the contract version it exports.
enum Bindings {
    V0_1_0(v0_1_0::Plugin),
}

impl Bindings {
    fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Instance> {
        match self {
            Bindings::V0_1_0(b) => b.instantiate(store).map(Instance::V0_1_0),
        }
    }
}

/// An instance of a component, by the contract version it exports.
enum Instance {
    V0_1_0(v0_1_0::Instance),
}

/// An instance in its store, with the calls it has served.
struct Warm {
    store: Store<HostState>,
    instance: Instance,
    calls: u32,
}

struct Loaded {
    info: PluginInfo,
    name: Arc<str>,
    limits: PluginLimits,
    bindings: Bindings,
    /// Instances kept between calls (at most `limits.keep_warm`).
    warm: Mutex<Vec<Warm>>,
}

/// Runs plugins. Cheap to share (`&self` everywhere; wrap it in an `Arc`).
pub struct PluginHost {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<wasmtime::Cache>,
    config: HostConfig,
    tick: Duration,
    plugins: RwLock<HashMap<String, Arc<Loaded>>>,
    compile_lock: Mutex<()>,
    /// Instances created so far.
    instantiations: AtomicU64,
    ticker: Ticker,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plugins = self.plugins.read().unwrap_or_else(PoisonError::into_inner);
        let mut ids: Vec<&String> = plugins.keys().collect();
        ids.sort();
        f.debug_struct("PluginHost")
            .field("plugins", &ids)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PluginHost {
    /// Creates the engine (Cranelift, epoch interruption, pooling allocator, optional disk cache)
    /// and starts the epoch ticker. Loads nothing: see [`load_builtin`](Self::load_builtin).
    pub fn new(config: HostConfig) -> Result<Self, PluginError> {
        let engine_err = |e: wasmtime::Error| PluginError::Engine(format!("{e:#}"));
        let mut wasm = Config::new();
        wasm.strategy(wasmtime::Strategy::Cranelift)
            .cranelift_opt_level(wasmtime::OptLevel::Speed)
            .epoch_interruption(true)
            .wasm_component_model(true);
        let max_memory = config
            .builtin
            .memory_limit_bytes
            .max(config.third_party.memory_limit_bytes);
        let slots = config.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(8))
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(4))
            .max_core_instances_per_component(16)
            .max_memories_per_component(2)
            .max_tables_per_component(8)
            .max_memory_size(max_memory)
            .table_keep_resident(64 << 10);
        // Resetting a slot for the next call: with PAGEMAP_SCAN (Linux 6.7+) only the pages a
        // call dirtied are restored and stay resident (per call 1.5-2x cheaper in benches/plugin.rs
        // than `madvise` and the page faults that follow); without it, `madvise` everything (a
        // large `memset` instead would cost more than it saves).
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.pagemap_scan(wasmtime::Enabled::Yes)
                .linear_memory_keep_resident(4 << 20);
        } else {
            pool.linear_memory_keep_resident(0);
        }
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let cache = match &config.cache_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    PluginError::Engine(format!("cannot create {}: {e}", dir.display()))
                })?;
                let mut cache_config = wasmtime::CacheConfig::new();
                cache_config.with_directory(dir);
                let cache = wasmtime::Cache::new(cache_config).map_err(engine_err)?;
                wasm.cache(Some(cache.clone()));
                Some(cache)
            }
            None => None,
        };
        let engine = Engine::new(&wasm).map_err(engine_err)?;
        let mut linker = Linker::new(&engine);
        v0_1_0::add_to_linker(&mut linker).map_err(engine_err)?;
        let shortest = config
            .builtin
            .cpu_deadline
            .min(config.third_party.cpu_deadline);
        let tick = (shortest / 10).clamp(Duration::from_millis(1), Duration::from_millis(20));
        let ticker = Ticker::start(engine.clone(), tick)?;
        Ok(Self {
            engine,
            linker,
            cache,
            config,
            tick,
            plugins: RwLock::new(HashMap::new()),
            compile_lock: Mutex::new(()),
            instantiations: AtomicU64::new(0),
            ticker,
        })
    }

    /// Loads (compiling, or reading from the disk cache) every built-in plugin.
    pub fn load_builtin(&self) -> Result<Vec<PluginId>, PluginError> {
        builtin::BUILTIN
            .iter()
            .map(|(id, bytes)| {
                let loaded = self.load(bytes, Origin::Builtin, id)?;
                if loaded.info.descriptor.id != *id {
                    return Err(PluginError::Invalid {
                        plugin: (*id).to_owned(),
                        reason: format!("describes itself as {:?}", loaded.info.descriptor.id),
                    });
                }
                Ok(self.register(loaded))
            })
            .collect()
    }

    /// Installs a third-party plugin after checking, before any compilation, its size, its
    /// SHA-256 (hex) against `expected_sha256`, its contract version and its imports. It runs
    /// under the third-party limits. Installing an id again replaces that plugin; a built-in
    /// id cannot be taken.
    pub fn install(&self, bytes: &[u8], expected_sha256: &str) -> Result<PluginId, PluginError> {
        let limit = self.config.third_party.max_component_bytes;
        if bytes.len() > limit {
            return Err(PluginError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        let actual = sha256_hex(bytes);
        if !actual.eq_ignore_ascii_case(expected_sha256.trim()) {
            return Err(PluginError::HashMismatch {
                expected: expected_sha256.trim().to_ascii_lowercase(),
                actual,
            });
        }
        let label = format!("upload {}", &actual[..12]);
        let loaded = self.load(bytes, Origin::Installed, &label)?;
        let id = &loaded.info.descriptor.id;
        if builtin::BUILTIN.iter().any(|(b, _)| b == id) {
            return Err(PluginError::Invalid {
                plugin: label,
                reason: format!("{id:?} is the id of a built-in plugin"),
            });
        }
        Ok(self.register(loaded))
    }

    /// Removes an installed plugin; built-ins stay. Returns whether one was removed.
    pub fn uninstall(&self, id: &str) -> bool {
        let mut plugins = self.plugins.write().unwrap_or_else(PoisonError::into_inner);
        match plugins.get(id) {
            Some(p) if p.info.origin == Origin::Installed => plugins.remove(id).is_some(),
            _ => false,
        }
    }

    /// Every loaded plugin, sorted by id.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        let plugins = self.plugins.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<PluginInfo> = plugins.values().map(|p| p.info.clone()).collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// What is known about one plugin.
    pub fn info(&self, id: &str) -> Result<PluginInfo, PluginError> {
        Ok(self.get(id)?.info.clone())
    }

    /// The plugin's descriptor without instance configuration (taken at load).
    pub fn describe(&self, id: &str) -> Result<Descriptor, PluginError> {
        Ok(self.get(id)?.info.descriptor.clone())
    }

    /// The descriptor for an instance configuration (JSON text), e.g. an openai-compatible
    /// instance's base URL host and models. A refused configuration is [`PluginError::Rejected`].
    pub fn describe_instance(&self, id: &str, config: &str) -> Result<Descriptor, PluginError> {
        let plugin = self.get(id)?;
        let result = self.call(&plugin, |store, instance| match instance {
            Instance::V0_1_0(i) => i.describe(store, config),
        })?;
        let descriptor = result.map_err(|rejection| PluginError::Rejected {
            plugin: id.to_owned(),
            rejection,
        })?;
        check::descriptor(&descriptor, id)?;
        if descriptor.id != id {
            return Err(PluginError::BadOutput {
                plugin: id.to_owned(),
                reason: format!("describes itself as {:?}", descriptor.id),
            });
        }
        Ok(descriptor)
    }

    /// Asks the plugin to accept and map a request. `Ok(Err(rejection))` is the plugin refusing
    /// it. The returned call has authorization-like headers stripped; its URL must still go
    /// through [`check_upstream`](crate::check_upstream) with the owner-approved hosts.
    pub fn prepare(
        &self,
        id: &str,
        req: PrepareRequest,
    ) -> Result<Result<UpstreamCall, Rejection>, PluginError> {
        let plugin = self.get(id)?;
        let action = req.action.clone();
        let result = self.call(&plugin, |store, instance| match instance {
            Instance::V0_1_0(i) => i.prepare(store, req),
        })?;
        match result {
            Ok(call) => check::upstream_call(call, &action, &plugin.info.descriptor, id).map(Ok),
            Err(rejection) => check::rejection(&rejection, id).map(|()| Err(rejection)),
        }
    }

    /// Maps a whole upstream response (any status) back for the app.
    pub fn finish(
        &self,
        id: &str,
        resp: UpstreamResponse,
    ) -> Result<Result<Finished, Failure>, PluginError> {
        let plugin = self.get(id)?;
        let result = self.call(&plugin, |store, instance| match instance {
            Instance::V0_1_0(i) => i.finish(store, resp),
        })?;
        match result {
            Ok(finished) => check::finished(&finished, id).map(|()| Ok(finished)),
            Err(failure) => check::failure(&failure, id).map(|()| Err(failure)),
        }
    }

    /// Translates a batch of framed stream events. `state` is the call's state on the first
    /// batch, then the previous [`Translated::state`].
    pub fn translate_events(
        &self,
        id: &str,
        state: &[u8],
        events: Vec<StreamEvent>,
    ) -> Result<Result<Translated, Failure>, PluginError> {
        let plugin = self.get(id)?;
        let result = self.call(&plugin, |store, instance| match instance {
            Instance::V0_1_0(i) => i.translate_events(store, state, events),
        })?;
        match result {
            Ok(translated) => check::translated(&translated, id).map(|()| Ok(translated)),
            Err(failure) => check::failure(&failure, id).map(|()| Err(failure)),
        }
    }

    fn get(&self, id: &str) -> Result<Arc<Loaded>, PluginError> {
        let plugins = self.plugins.read().unwrap_or_else(PoisonError::into_inner);
        plugins
            .get(id)
            .cloned()
            .ok_or_else(|| PluginError::NotFound(id.to_owned()))
    }

    fn register(&self, loaded: Loaded) -> PluginId {
        let id = loaded.info.id.clone();
        let mut plugins = self.plugins.write().unwrap_or_else(PoisonError::into_inner);
        plugins.insert(id.0.clone(), Arc::new(loaded));
        id
    }

    /// Scans, compiles (or reads the cache), links and describes a component.
    fn load(&self, bytes: &[u8], origin: Origin, label: &str) -> Result<Loaded, PluginError> {
        let limits = match origin {
            Origin::Builtin => self.config.builtin.clone(),
            Origin::Installed => self.config.third_party.clone(),
        };
        if bytes.len() > limits.max_component_bytes {
            return Err(PluginError::TooLarge {
                size: bytes.len(),
                limit: limits.max_component_bytes,
            });
        }
        let scan = contract::scan(bytes, label)?;
        let invalid = |what: &str, e: wasmtime::Error| PluginError::Invalid {
            plugin: label.to_owned(),
            reason: format!("{what}: {e:#}"),
        };
        let (component, compiled_from_cache) = self.compile(bytes, label)?;
        let mut linker = self.linker.clone();
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(|e| invalid("cannot link", e))?;
        let bindings = match scan.version {
            ContractVersion::V0_1_0 => Bindings::V0_1_0(
                v0_1_0::Plugin::link(&linker, &component).map_err(|e| invalid("cannot link", e))?,
            ),
        };
        let name: Arc<str> = Arc::from(label);
        let described = self.run(
            &name,
            &limits,
            &bindings,
            None,
            |store, instance| match instance {
                Instance::V0_1_0(i) => i.describe(store, "{}"),
            },
        )?;
        let descriptor = described.map_err(|r| PluginError::Invalid {
            plugin: label.to_owned(),
            reason: format!("describe failed: {} ({})", r.message, r.code),
        })?;
        check::descriptor(&descriptor, label)?;
        let id = PluginId(descriptor.id.clone());
        Ok(Loaded {
            name: Arc::from(id.as_str()),
            info: PluginInfo {
                id,
                origin,
                sha256: sha256_hex(bytes),
                contract: scan.version,
                compiled_from_cache,
                descriptor,
            },
            limits,
            bindings,
            warm: Mutex::new(Vec::new()),
        })
    }

    /// Compiles a component; with a cache, returns whether it was a cache hit. One compilation at
    /// a time, so the hit counter says which component it was about.
    fn compile(&self, bytes: &[u8], label: &str) -> Result<(Component, bool), PluginError> {
        let _one_at_a_time = self
            .compile_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let hits_before = self.cache.as_ref().map(wasmtime::Cache::cache_hits);
        let component = Component::new(&self.engine, bytes).map_err(|e| PluginError::Invalid {
            plugin: label.to_owned(),
            reason: format!("does not compile: {e:#}"),
        })?;
        let from_cache = match (&self.cache, hits_before) {
            (Some(cache), Some(before)) => cache.cache_hits() > before,
            _ => false,
        };
        Ok((component, from_cache))
    }

    /// Runs `f` on an instance of `plugin` (a kept one if it has one) and classifies a failure.
    fn call<R>(
        &self,
        plugin: &Loaded,
        f: impl FnOnce(&mut Store<HostState>, &Instance) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let keep = (plugin.limits.keep_warm > 0).then_some(&plugin.warm);
        self.run(&plugin.name, &plugin.limits, &plugin.bindings, keep, f)
    }

    /// Runs `f` with the plugin's limits on an instance taken from `keep`, or on a fresh one in a
    /// fresh store, and classifies a failure. Afterwards the instance goes back to `keep` if the
    /// call succeeded, it is small, has not served [`KEEP_CALLS`] calls and `keep` holds fewer
    /// than `limits.keep_warm`; otherwise it is dropped (a trap may have left it in any state).
    fn run<R>(
        &self,
        name: &Arc<str>,
        limits: &PluginLimits,
        bindings: &Bindings,
        keep: Option<&Mutex<Vec<Warm>>>,
        f: impl FnOnce(&mut Store<HostState>, &Instance) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        // The epoch must advance while the instance is created and the call runs.
        let _running = self.ticker.call();
        let kept = keep.and_then(|k| k.lock().unwrap_or_else(PoisonError::into_inner).pop());
        let mut warm = match kept {
            Some(warm) => warm,
            None => {
                let mut store = Store::new(&self.engine, HostState::new(name.clone(), limits));
                store.limiter(|state| &mut state.limiter);
                store.set_epoch_deadline(deadline_ticks(limits.cpu_deadline, self.tick));
                self.instantiations.fetch_add(1, Ordering::Relaxed);
                let instance = bindings
                    .instantiate(&mut store)
                    .map_err(|e| sandbox::classify(&e, store.data(), limits))?;
                Warm {
                    store,
                    instance,
                    calls: 0,
                }
            }
        };
        warm.store.data_mut().begin_call(limits);
        warm.store
            .set_epoch_deadline(deadline_ticks(limits.cpu_deadline, self.tick));
        let out = f(&mut warm.store, &warm.instance)
            .map_err(|e| sandbox::classify(&e, warm.store.data(), limits))?;
        warm.calls += 1;
        if let Some(keep) = keep
            && warm.calls < KEEP_CALLS
            && warm.store.data().memory_bytes() <= KEEP_MEMORY_BYTES
        {
            let mut kept = keep.lock().unwrap_or_else(PoisonError::into_inner);
            if kept.len() < limits.keep_warm {
                kept.push(warm);
            }
        }
        Ok(out)
    }

    /// Instances created so far: a kept instance serves many calls, so with built-in plugins
    /// The epoch ticker (for the sandbox tests).
    #[cfg(test)]
    pub(crate) fn ticker(&self) -> &Ticker {
        &self.ticker
    }

    /// this grows with the calls that ran at once, not with all calls.
    pub fn instantiations(&self) -> u64 {
        self.instantiations.load(Ordering::Relaxed)
    }
}

/// Epoch ticks for a deadline: rounded up, plus one for the tick already under way.
fn deadline_ticks(deadline: Duration, tick: Duration) -> u64 {
    let ticks = deadline.as_nanos().div_ceil(tick.as_nanos().max(1));
    u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
}

/// SHA-256 as lower-case hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_ticks_round_up_and_add_one() {
        let ms = Duration::from_millis;
        assert_eq!(deadline_ticks(ms(100), ms(10)), 11);
        assert_eq!(deadline_ticks(ms(101), ms(10)), 12);
        assert_eq!(deadline_ticks(ms(1), ms(10)), 2);
    }

    #[test]
    fn sha256_is_lower_case_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
