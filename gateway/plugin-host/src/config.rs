//! Host configuration: the on-disk cache, per-call limits for built-in and third-party plugins.

use std::path::PathBuf;
use std::time::Duration;

/// Limits applied to every call of a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginLimits {
    /// Wall-clock budget of one call (epoch interruption); past it the call fails with `Timeout`.
    pub cpu_deadline: Duration,
    /// Largest linear memory an instance may grow to; past it the call fails with `OutOfMemory`.
    pub memory_limit_bytes: usize,
    /// Largest component accepted by `install` (built-ins are checked too).
    pub max_component_bytes: usize,
    /// Log lines a call may emit; further lines are dropped.
    pub max_log_lines: u32,
    /// Instances of one plugin kept between calls and reused (0: every call gets a fresh
    /// instance). A kept instance still gets each call's deadline and memory cap; one whose call
    /// failed, or that grew past [`KEEP_MEMORY_BYTES`], or that served [`KEEP_CALLS`] calls, is
    /// dropped. Only for plugins trusted not to carry one app's data into another's call: the
    /// built-in ones.
    pub keep_warm: usize,
}

/// Largest linear memory of an instance kept for reuse ([`PluginLimits::keep_warm`]).
pub const KEEP_MEMORY_BYTES: usize = 8 << 20;
/// Calls one kept instance serves before it is replaced by a fresh one.
pub const KEEP_CALLS: u32 = 10_000;

impl PluginLimits {
    /// Limits for the plugins shipped with pairgate.
    pub fn builtin() -> Self {
        Self {
            cpu_deadline: Duration::from_millis(500),
            memory_limit_bytes: 128 << 20,
            max_component_bytes: 16 << 20,
            max_log_lines: 64,
            // as many as threads that call at once (the async workers), at most 8
            keep_warm: std::thread::available_parallelism().map_or(2, |n| n.get().min(8)),
        }
    }

    /// Tighter limits for plugins the owner installs.
    pub fn third_party() -> Self {
        Self {
            cpu_deadline: Duration::from_millis(200),
            memory_limit_bytes: 64 << 20,
            max_component_bytes: 8 << 20,
            max_log_lines: 16,
            // a fresh instance per call: an installed plugin is not trusted to forget
            keep_warm: 0,
        }
    }
}

/// How the plugin host is set up.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where compiled components are cached between runs (wasmtime's cache, keyed by the
    /// component's hash, the wasmtime version and the engine settings). `None` compiles at every start.
    pub cache_dir: Option<PathBuf>,
    /// Limits of built-in plugins.
    pub builtin: PluginLimits,
    /// Limits of installed (third-party) plugins.
    pub third_party: PluginLimits,
    /// Instances that may exist at once across all plugins (the pooling allocator's size). A call
    /// beyond it fails with `Busy`. Each slot reserves address space (not memory) for its linear
    /// memories up front.
    pub max_instances: u32,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            builtin: PluginLimits::builtin(),
            third_party: PluginLimits::third_party(),
            max_instances: 128,
        }
    }
}
