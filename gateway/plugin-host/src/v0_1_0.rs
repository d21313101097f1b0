//! Contract `pairgate:provider@0.1.0`: generated bindings, and conversions to the host's types.
//!
//! A later contract gets a sibling module (`v0_2_0.rs`) with its own bindings and conversions;
//! the host keeps loading components built against this one.

use crate::sandbox::HostState;
use crate::types;
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../plugins/wit/provider-0.1.0",
        world: "provider",
    });
}

use bindings::exports::pairgate::provider::plugin as wit;
use bindings::pairgate::provider::log;

/// The interface name a component exports when built against this contract.
pub(crate) const EXPORT: &str = "pairgate:provider/plugin@0.1.0";
/// The only import this contract defines.
pub(crate) const LOG_IMPORT: &str = "pairgate:provider/log@0.1.0";

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => tracing::Level::TRACE,
            log::Level::Debug => tracing::Level::DEBUG,
            log::Level::Info => tracing::Level::INFO,
            log::Level::Warn => tracing::Level::WARN,
            log::Level::Error => tracing::Level::ERROR,
        };
        self.record_log(level, &message);
    }
}

/// Defines this contract's imports in `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    log::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
}

/// A component built against this contract, linked once; instantiated for a call, or kept
/// between calls (see `PluginLimits::keep_warm`).
pub(crate) struct Plugin {
    pre: bindings::ProviderPre<HostState>,
}

/// An instance of a [`Plugin`] in a store.
pub(crate) struct Instance(bindings::Provider);

impl Plugin {
    pub(crate) fn link(
        linker: &Linker<HostState>,
        component: &Component,
    ) -> wasmtime::Result<Self> {
        let pre = linker.instantiate_pre(component)?;
        Ok(Self {
            pre: bindings::ProviderPre::new(pre)?,
        })
    }

    pub(crate) fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Instance> {
        self.pre.instantiate(store).map(Instance)
    }
}

impl Instance {
    pub(crate) fn describe(
        &self,
        store: &mut Store<HostState>,
        config: &str,
    ) -> wasmtime::Result<Result<types::Descriptor, types::Rejection>> {
        let result = self
            .0
            .pairgate_provider_plugin()
            .call_describe(&mut *store, config)?;
        Ok(result.map(Into::into).map_err(Into::into))
    }

    pub(crate) fn prepare(
        &self,
        store: &mut Store<HostState>,
        req: types::PrepareRequest,
    ) -> wasmtime::Result<Result<types::UpstreamCall, types::Rejection>> {
        let result = self
            .0
            .pairgate_provider_plugin()
            .call_prepare(&mut *store, &req.into())?;
        Ok(result.map(Into::into).map_err(Into::into))
    }

    pub(crate) fn finish(
        &self,
        store: &mut Store<HostState>,
        resp: types::UpstreamResponse,
    ) -> wasmtime::Result<Result<types::Finished, types::Failure>> {
        let resp = wit::UpstreamResponse {
            status: resp.status,
            headers: resp.headers,
            body: resp.body,
            state: resp.state,
        };
        let result = self
            .0
            .pairgate_provider_plugin()
            .call_finish(&mut *store, &resp)?;
        Ok(result.map(Into::into).map_err(Into::into))
    }

    pub(crate) fn translate_events(
        &self,
        store: &mut Store<HostState>,
        state: &[u8],
        events: Vec<types::StreamEvent>,
    ) -> wasmtime::Result<Result<types::Translated, types::Failure>> {
        let events: Vec<wit::Event> = events
            .into_iter()
            .map(|e| wit::Event {
                event: e.event,
                data: e.data,
            })
            .collect();
        let result =
            self.0
                .pairgate_provider_plugin()
                .call_translate_events(&mut *store, state, &events)?;
        Ok(result.map(Into::into).map_err(Into::into))
    }
}

impl From<types::PrepareRequest> for wit::PrepareRequest {
    fn from(r: types::PrepareRequest) -> Self {
        Self {
            action: r.action,
            grant: r.grant,
            config: r.config,
            model: r.model,
            body: r.body,
            method: r.method,
            headers: r.headers,
            path: r.path,
            timestamp: r.timestamp,
        }
    }
}

impl From<wit::Descriptor> for types::Descriptor {
    fn from(d: wit::Descriptor) -> Self {
        Self {
            id: d.id,
            display_name: d.display_name,
            version: d.version,
            actions: d.actions,
            models: d
                .models
                .into_iter()
                .map(|m| types::Model {
                    id: m.id,
                    context_window: m.context_window,
                    max_output_tokens: m.max_output_tokens,
                    input_price: m.input_price,
                    output_price: m.output_price,
                })
                .collect(),
            hosts: d.hosts,
            credential: match d.credential {
                wit::Credential::Bearer => types::Credential::Bearer,
                wit::Credential::Header(name) => types::Credential::Header(name),
                wit::Credential::None => types::Credential::None,
            },
            passthrough: d.passthrough,
            quotas: d
                .quotas
                .into_iter()
                .map(|q| types::Quota {
                    name: q.name,
                    grant_field: q.grant_field,
                    period: match q.period {
                        wit::Period::Minute => types::Period::Minute,
                        wit::Period::Hour => types::Period::Hour,
                        wit::Period::Day => types::Period::Day,
                        wit::Period::Month => types::Period::Month,
                    },
                })
                .collect(),
        }
    }
}

impl From<wit::Rejection> for types::Rejection {
    fn from(r: wit::Rejection) -> Self {
        Self {
            status: r.status,
            code: r.code,
            message: r.message,
            details: r.details,
        }
    }
}

impl From<wit::UpstreamCall> for types::UpstreamCall {
    fn from(c: wit::UpstreamCall) -> Self {
        Self {
            method: c.method,
            url: c.url,
            headers: c.headers,
            body: c.body,
            response_mode: match c.response_mode {
                wit::ResponseMode::Json => types::ResponseMode::Json,
                wit::ResponseMode::Sse => types::ResponseMode::Sse,
                wit::ResponseMode::Ndjson => types::ResponseMode::Ndjson,
                wit::ResponseMode::Raw => types::ResponseMode::Raw,
            },
            state: c.state,
            charges: c
                .charges
                .into_iter()
                .map(|c| types::Charge {
                    quota: c.quota,
                    amount: c.amount,
                })
                .collect(),
        }
    }
}

fn usage(u: wit::Usage) -> types::Usage {
    types::Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cached_tokens: u.cached_tokens,
    }
}

impl From<wit::Finished> for types::Finished {
    fn from(f: wit::Finished) -> Self {
        Self {
            status: f.status,
            body: f.body,
            usage: f.usage.map(usage),
        }
    }
}

impl From<wit::Failure> for types::Failure {
    fn from(f: wit::Failure) -> Self {
        Self {
            status: f.status,
            kind: match f.kind {
                wit::FailureKind::InvalidRequest => types::FailureKind::InvalidRequest,
                wit::FailureKind::Authentication => types::FailureKind::Authentication,
                wit::FailureKind::Permission => types::FailureKind::Permission,
                wit::FailureKind::NotFound => types::FailureKind::NotFound,
                wit::FailureKind::RateLimited => types::FailureKind::RateLimited,
                wit::FailureKind::Overloaded => types::FailureKind::Overloaded,
                wit::FailureKind::Upstream => types::FailureKind::Upstream,
                wit::FailureKind::BadResponse => types::FailureKind::BadResponse,
            },
            code: f.code,
            message: f.message,
            retry_after_seconds: f.retry_after_seconds,
        }
    }
}

impl From<wit::Translated> for types::Translated {
    fn from(t: wit::Translated) -> Self {
        Self {
            state: t.state,
            chunks: t.chunks,
            usage: t.usage.map(usage),
            done: t.done,
        }
    }
}
