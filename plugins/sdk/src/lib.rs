//! Guest-side bindings for `pairgate:provider@0.1.0` and the helpers pairgate's plugins share.
//!
//! A plugin implements [`Plugin`] and registers it with [`plugin!`]:
//!
//! ```ignore
//! struct Example;
//! impl pairgate_plugin_sdk::Plugin for Example { /* describe, prepare, finish, translate_events */ }
//! pairgate_plugin_sdk::plugin!(Example);
//! ```

pub mod config;
pub mod content;
pub mod grant;
pub mod json;
pub mod native;
pub mod oa;
pub mod passthrough;
pub mod reply;

wit_bindgen::generate!({
    path: "../wit/provider-0.1.0",
    world: "provider",
    pub_export_macro: true,
    default_bindings_module: "pairgate_plugin_sdk",
});

pub use exports::pairgate::provider::plugin::{
    Charge, Credential, Descriptor, Event, Failure, FailureKind, Finished, Guest, Model, Period,
    PrepareRequest, Quota, Rejection, ResponseMode, Translated, UpstreamCall, UpstreamResponse,
    Usage,
};
pub use pairgate::provider::log::Level;

/// What a plugin implements; [`plugin!`] adapts it to the exported WIT interface.
pub trait Plugin {
    /// Describe the plugin for an instance configuration (`{}` when there is none).
    fn describe(config: &str) -> Result<Descriptor, Rejection>;
    /// Decide whether the request may go upstream and build the call.
    fn prepare(req: PrepareRequest) -> Result<UpstreamCall, Rejection>;
    /// Map a whole upstream response back.
    fn finish(resp: UpstreamResponse) -> Result<Finished, Failure>;
    /// Translate a batch of stream events. The default refuses: the plugin never streams.
    fn translate_events(_state: Vec<u8>, _events: Vec<Event>) -> Result<Translated, Failure> {
        Err(reply::failure(
            500,
            FailureKind::BadResponse,
            "this plugin does not stream",
        ))
    }
}

/// Sends a log line to the host (which caps count and length).
pub fn log(level: Level, message: &str) {
    pairgate::provider::log::log(level, message);
}

/// Routes panic messages to the host's log before the abort turns them into a trap.
/// Called by [`plugin!`] at the start of every export; cheap after the first call.
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            log(Level::Error, &format!("panic: {info}"));
        }));
    });
}

/// Exports a [`Plugin`] implementation as the component's `pairgate:provider/plugin` interface.
#[macro_export]
macro_rules! plugin {
    ($plugin:ty) => {
        struct PairgatePluginExport;

        impl $crate::Guest for PairgatePluginExport {
            fn describe(config: String) -> Result<$crate::Descriptor, $crate::Rejection> {
                $crate::install_panic_hook();
                <$plugin as $crate::Plugin>::describe(&config)
            }
            fn prepare(
                req: $crate::PrepareRequest,
            ) -> Result<$crate::UpstreamCall, $crate::Rejection> {
                $crate::install_panic_hook();
                <$plugin as $crate::Plugin>::prepare(req)
            }
            fn finish(resp: $crate::UpstreamResponse) -> Result<$crate::Finished, $crate::Failure> {
                $crate::install_panic_hook();
                <$plugin as $crate::Plugin>::finish(resp)
            }
            fn translate_events(
                state: Vec<u8>,
                events: Vec<$crate::Event>,
            ) -> Result<$crate::Translated, $crate::Failure> {
                $crate::install_panic_hook();
                <$plugin as $crate::Plugin>::translate_events(state, events)
            }
        }

        $crate::export!(PairgatePluginExport);
    };
}
