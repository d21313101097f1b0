//! The relay: from an app's OpenAI-shaped request to the provider and back. It resolves
//! `provider/model` to a provider instance, asks that provider's plugin to accept and map the
//! request, checks the upstream URL against the hosts the plugin declared and the owner approved,
//! injects the credential (which the plugin never sees), sends it, and maps the answer or stream
//! back through the plugin.

pub use pairgate_plugin_host::framing;
pub mod errors;
pub mod exchange;
pub mod native;
pub mod native_stream;
pub mod pipeline;
pub mod plugin;
pub mod probe;
pub mod resource;
pub mod stream;
pub mod upstream;
