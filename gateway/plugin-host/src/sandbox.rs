//! Per-call sandbox state: the memory limiter, capped logging, and turning a failed call into a
//! [`PluginError`] that says what went wrong.

use crate::config::PluginLimits;
use crate::error::PluginError;
use std::sync::Arc;
use wasmtime::{ResourceLimiter, Trap};

/// Longest log line kept from a plugin; longer lines are cut.
const MAX_LOG_LINE: usize = 1024;
/// Table elements an instance may have (Rust components need a few hundred).
const MAX_TABLE_ELEMENTS: usize = 20_000;
/// Core instances, tables and memories one call may create.
const MAX_INSTANCES: usize = 32;
const MAX_TABLES: usize = 32;
const MAX_MEMORIES: usize = 4;

/// The data of a `Store`: one call's, or those of a kept instance one call after another
/// ([`HostState::begin_call`] starts each).
pub(crate) struct HostState {
    plugin: Arc<str>,
    pub(crate) limiter: Limiter,
    logs_left: u32,
    /// The last error-level line, usually a panic message; added to a trap's description.
    last_error: Option<String>,
}

impl HostState {
    pub(crate) fn new(plugin: Arc<str>, limits: &PluginLimits) -> Self {
        Self {
            plugin,
            limiter: Limiter {
                memory_limit: limits.memory_limit_bytes,
                memory_denied: false,
                memory_bytes: 0,
            },
            logs_left: limits.max_log_lines,
            last_error: None,
        }
    }

    /// Starts a call: its log allowance, and nothing remembered of an earlier call's failure.
    pub(crate) fn begin_call(&mut self, limits: &PluginLimits) {
        self.logs_left = limits.max_log_lines;
        self.last_error = None;
        self.limiter.memory_denied = false;
    }

    /// The linear memory the instance has grown to, in bytes (its largest memory).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.limiter.memory_bytes
    }

    /// Forwards a plugin's log line to `tracing`, within the call's allowance.
    pub(crate) fn record_log(&mut self, level: tracing::Level, message: &str) {
        let message = truncate(message, MAX_LOG_LINE);
        if level == tracing::Level::ERROR {
            self.last_error = Some(message.to_owned());
        }
        if self.logs_left == 0 {
            return;
        }
        self.logs_left -= 1;
        let plugin = &*self.plugin;
        match level {
            tracing::Level::ERROR => tracing::error!(plugin, "{message}"),
            tracing::Level::WARN => tracing::warn!(plugin, "{message}"),
            tracing::Level::INFO => tracing::info!(plugin, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(plugin, "{message}"),
            _ => tracing::trace!(plugin, "{message}"),
        }
        if self.logs_left == 0 {
            tracing::warn!(
                plugin,
                "plugin log allowance used up; further lines dropped"
            );
        }
    }
}

/// Caps an instance's memory and records whether it asked for more, and how large it grew.
pub(crate) struct Limiter {
    memory_limit: usize,
    memory_denied: bool,
    memory_bytes: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_denied = true;
            return Ok(false);
        }
        self.memory_bytes = self.memory_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// Says why a call failed: out of memory (the limiter refused growth), past its deadline (epoch
/// interrupt), no free instance slot, or another trap.
pub(crate) fn classify(
    error: &wasmtime::Error,
    state: &HostState,
    limits: &PluginLimits,
) -> PluginError {
    let plugin = state.plugin.to_string();
    if state.limiter.memory_denied {
        return PluginError::OutOfMemory {
            plugin,
            limit: limits.memory_limit_bytes,
        };
    }
    if error
        .chain()
        .any(|e| e.is::<wasmtime::PoolConcurrencyLimitError>())
    {
        return PluginError::Busy { plugin };
    }
    let detail = match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            return PluginError::Timeout {
                plugin,
                deadline: limits.cpu_deadline,
            };
        }
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    };
    let detail = match &state.last_error {
        Some(last) => format!("{detail} ({last})"),
        None => detail,
    };
    PluginError::Trap { plugin, detail }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
