//! The provider registry: every configured provider instance (built-in plugins unless disabled,
//! plus `[providers.<id>]`), its plugin's descriptor, prices and quotas, the plugin host that runs
//! them, and the upstream clients; `resolve_model` turns `provider/model` into an instance.

use std::collections::BTreeMap;
use std::sync::Arc;

use pairgate_plugin_host::{Descriptor, HostConfig, PluginHost};
use pairgate_policy::limits::{CatalogueEntry, ModelPrice, PriceEntry, resolve_price};
use pairgate_policy::{Prices, Window};

use crate::engine::limits::QuotaKind;

use crate::base::error::ApiError;
use crate::config::Config;
use crate::config::providers::ProviderConfig;

/// Why the providers could not be loaded (a plugin, an instance's configuration, the upstream
/// clients); one line for the owner.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProvidersError(pub String);

/// One provider's prices set in the owner's console, ready for `resolve_price`.
#[derive(Debug, Clone, Default)]
pub struct ConsolePrices {
    pub list: Vec<PriceEntry>,
    pub fallback: Option<PriceEntry>,
}

/// Built-in plugins that are providers without any configuration.
const DEFAULT_PROVIDERS: &[&str] = &["openai", "anthropic", "gemini", "ollama", "resend"];

/// The provider ids this configuration has: the built-in providers (unless disabled) and every
/// enabled `[providers.<id>]`. Read without loading plugins, for commands that store credentials.
pub fn configured_provider_ids(config: &Config) -> Vec<String> {
    let mut ids: Vec<String> = DEFAULT_PROVIDERS
        .iter()
        .map(|id| id.to_string())
        .filter(|id| config.providers.get(id).is_none_or(|p| p.enabled))
        .collect();
    for (id, p) in &config.providers {
        if p.enabled && !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    ids.sort();
    ids
}

/// One usable provider instance.
#[derive(Debug, Clone)]
pub struct Provider {
    pub id: String,
    pub plugin: String,
    pub credential: String,
    /// Instance config JSON handed to the plugin.
    pub config_json: String,
    pub descriptor: Descriptor,
    /// Hosts the configuration approves (see `hosts.rs` for the console's approvals).
    pub approved_hosts: Vec<String>,
    pub allow_private: bool,
    pub origin_override: Option<url::Url>,
    /// The plugin is one of ours (built in), not installed by the owner: its calls on small
    /// input may run on the async workers (`pipeline::plugin_call`).
    pub builtin_plugin: bool,
    /// The owner's prices for this provider, before the catalogue (`providers.<id>.prices`).
    pub prices: Vec<PriceEntry>,
    /// The owner's price for models nobody else prices (`providers.<id>.fallback_price`).
    pub fallback_price: Option<PriceEntry>,
    /// The quotas the plugin declares, with their counter names and windows.
    pub quotas: Vec<(QuotaKind, Window)>,
}

impl Provider {
    /// The price `model` (as the provider knows it) is charged at, given the owner's console
    /// prices for this provider; `None`: unpriced.
    pub fn price(&self, model: &str, console: Option<&ConsolePrices>) -> Option<ModelPrice> {
        let catalogue = |id: &str| {
            self.descriptor
                .models
                .iter()
                .find(|m| m.id == id)
                .map(|m| CatalogueEntry {
                    prices: Prices {
                        input_per_million_micros: m.input_price,
                        output_per_million_micros: m.output_price,
                        cached_input_per_million_micros: None,
                    },
                    max_output_tokens: m.max_output_tokens,
                })
        };
        let console_list = console.map_or(&[][..], |c| c.list.as_slice());
        let fallback = console
            .and_then(|c| c.fallback.as_ref())
            .or(self.fallback_price.as_ref());
        resolve_price(model, &[console_list, &self.prices], catalogue, fallback)
    }
}

/// A counter name that lives as long as the process: quota kinds come from the loaded
/// plugins' descriptors, a set fixed at start, so each distinct name is leaked once.
pub(crate) fn interned(name: String) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(n) = names.get(name.as_str()) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.insert(leaked);
    leaked
}

/// The quota kinds of a plugin's descriptor.
fn quota_kinds(plugin: &str, d: &Descriptor) -> Vec<(QuotaKind, Window)> {
    d.quotas
        .iter()
        .map(|q| {
            let window = match q.period {
                pairgate_plugin_host::Period::Minute => Window::Minute,
                pairgate_plugin_host::Period::Hour => Window::Hour,
                pairgate_plugin_host::Period::Day => Window::Day,
                pairgate_plugin_host::Period::Month => Window::Month,
            };
            let kind = QuotaKind {
                counter: interned(format!("quota:{plugin}/{}", q.name)),
                name: interned(q.name.clone()),
                field: interned(q.grant_field.clone()),
            };
            (kind, window)
        })
        .collect()
}

/// Plugins, providers and the upstream HTTP clients.
#[derive(Debug)]
pub struct ProviderRegistry {
    pub host: Arc<PluginHost>,
    /// The upstream clients: address-checked, and for providers allowed private addresses.
    pub http: crate::engine::resolve::Clients,
    /// Shared: a request holds its provider for its whole life without copying it.
    providers: BTreeMap<String, Arc<Provider>>,
}

impl ProviderRegistry {
    /// Starts the plugin host, loads the built-in plugins (compiled once, cached on disk) and
    /// checks every configured provider instance with its plugin.
    pub fn start(config: &Config) -> Result<ProviderRegistry, ProvidersError> {
        ProviderRegistry::build(config, true)
    }

    /// A relay with no plugins loaded, for CLI commands that never call a provider.
    pub fn without_plugins(config: &Config) -> Result<ProviderRegistry, ProvidersError> {
        ProviderRegistry::build(config, false)
    }

    fn build(config: &Config, load: bool) -> Result<ProviderRegistry, ProvidersError> {
        let fail = ProvidersError;
        let cache_dir = config
            .plugin_cache_dir
            .clone()
            .unwrap_or_else(|| config.data_dir.join("plugin-cache"));
        std::fs::create_dir_all(&cache_dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", cache_dir.display())))?;
        let host = PluginHost::new(HostConfig {
            cache_dir: Some(cache_dir),
            ..HostConfig::default()
        })
        .map_err(|e| fail(e.to_string()))?;
        if !load {
            let http = crate::engine::resolve::Clients::new(config, config.connection_threads)
                .map_err(|e| fail(format!("HTTP client: {e}")))?;
            return Ok(ProviderRegistry {
                host: Arc::new(host),
                http,
                providers: BTreeMap::new(),
            });
        }
        let loaded = host.load_builtin().map_err(|e| fail(e.to_string()))?;
        let mut loaded: Vec<String> = loaded.iter().map(|id| id.as_str().to_string()).collect();
        let mut third_party = Vec::new();
        for (path, sha256) in &config.plugin_install {
            let bytes = std::fs::read(path)
                .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
            let id = host
                .install(&bytes, sha256)
                .map_err(|e| fail(format!("{}: {e}", path.display())))?;
            third_party.push(id.as_str().to_string());
            loaded.push(id.as_str().to_string());
        }
        let mut wanted: BTreeMap<String, ProviderConfig> = DEFAULT_PROVIDERS
            .iter()
            .filter(|id| loaded.iter().any(|l| l == *id))
            .map(|id| (id.to_string(), ProviderConfig::new(id)))
            .collect();
        for (id, p) in &config.providers {
            wanted.insert(id.clone(), p.clone());
        }
        let mut providers = BTreeMap::new();
        let mut problems = Vec::new();
        for (id, p) in wanted.into_iter().filter(|(_, p)| p.enabled) {
            if !loaded.contains(&p.plugin) {
                problems.push(format!("provider {id}: no plugin named {}", p.plugin));
                continue;
            }
            let config_json = p.config.to_string();
            let descriptor = match host.describe_instance(&p.plugin, &config_json) {
                Ok(d) => d,
                Err(e) => {
                    problems.push(format!("provider {id}: {e}"));
                    continue;
                }
            };
            // A third-party plugin's hosts are used only once the owner approves them, here or
            // in the console (`hosts.rs`); a built-in's declared hosts are approved by default.
            let approved_hosts = match &p.approved_hosts {
                Some(hosts) => hosts.clone(),
                None if third_party.contains(&p.plugin) => {
                    tracing::warn!(
                        provider = %id,
                        plugin = %p.plugin,
                        hosts = ?descriptor.hosts,
                        "the provider's calls are refused until the owner approves the hosts its plugin declares (Plugins page, or providers.{id}.approved_hosts)"
                    );
                    Vec::new()
                }
                None => descriptor.hosts.clone(),
            };
            let prices: Result<Vec<PriceEntry>, String> =
                p.prices.iter().map(|e| e.entry()).collect();
            let fallback_price = p.fallback_price.as_ref().map(|e| e.entry()).transpose();
            let (prices, fallback_price) = match (prices, fallback_price) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) => {
                    problems.push(format!("provider {id}: prices: {e}"));
                    continue;
                }
                (_, Err(e)) => {
                    problems.push(format!("provider {id}: fallback_price {e}"));
                    continue;
                }
            };
            let quotas = quota_kinds(&p.plugin, &descriptor);
            providers.insert(
                id.clone(),
                Arc::new(Provider {
                    id,
                    plugin: p.plugin.clone(),
                    credential: p.credential.clone(),
                    config_json,
                    descriptor,
                    approved_hosts,
                    allow_private: p.allow_private,
                    origin_override: p.origin_override.clone(),
                    builtin_plugin: !third_party.contains(&p.plugin),
                    prices,
                    fallback_price,
                    quotas,
                }),
            );
        }
        if !problems.is_empty() {
            return Err(fail(problems.join("; ")));
        }
        let http = crate::engine::resolve::Clients::new(config, config.connection_threads)
            .map_err(|e| fail(format!("HTTP client: {e}")))?;
        Ok(ProviderRegistry {
            host: Arc::new(host),
            http,
            providers,
        })
    }

    /// The plugin quotas a grant's policy sets (each counter once), for showing what remains.
    pub fn quota_limits(
        &self,
        policy: &serde_json::Value,
    ) -> Vec<crate::engine::limits::QuotaCharge> {
        let mut out: Vec<crate::engine::limits::QuotaCharge> = Vec::new();
        for p in self.providers.values() {
            for (kind, window) in &p.quotas {
                if out.iter().any(|q| q.kind.counter == kind.counter) {
                    continue;
                }
                if let Some(limit) = policy.pointer(kind.field) {
                    out.push(crate::engine::limits::QuotaCharge {
                        kind: *kind,
                        window: *window,
                        limit: limit.as_u64().unwrap_or(0),
                        amount: 0,
                    });
                }
            }
        }
        out
    }

    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.providers.get(id).map(|p| &**p)
    }

    /// [`ProviderRegistry::provider`], shared: what a request holds for its whole life.
    pub fn shared(&self, id: &str) -> Option<Arc<Provider>> {
        self.providers.get(id).cloned()
    }

    pub fn providers(&self) -> impl Iterator<Item = &Provider> {
        self.providers.values().map(|p| &**p)
    }

    /// Splits `provider/model` (or a bare model without `/`, for the default provider) into the
    /// provider and the model id the provider knows. A prefix that names no configured provider
    /// is refused rather than sent to the default provider (`nosuch/model` is a typo, not a
    /// model of the default provider); a default-provider model whose id contains `/` is
    /// written with its provider (`groq/meta-llama/llama-4`).
    pub fn resolve_model<'a>(
        &'a self,
        model: &str,
        default_provider: &str,
    ) -> Result<(&'a Arc<Provider>, String), ApiError> {
        let (provider, bare) = match model.split_once('/') {
            Some((p, m)) if self.providers.contains_key(p) => (p, m),
            Some((p, _)) => {
                let known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
                return Err(ApiError::bad_request(
                    "model_not_found",
                    format!(
                        "no provider `{}` is configured on this gateway; models are provider/model \
                         with a provider among: {}",
                        p.chars().take(40).collect::<String>(),
                        known.join(", ")
                    ),
                ));
            }
            None => (default_provider, model),
        };
        let p = self
            .providers
            .get(provider)
            .ok_or_else(|| ApiError::Forbidden {
                code: "model_not_found",
                message: format!("no provider `{provider}` is configured on this gateway"),
            })?;
        if bare.is_empty() {
            return Err(ApiError::bad_request(
                "model_not_found",
                "the model name is empty",
            ));
        }
        Ok((p, bare.to_string()))
    }
}
