//! The components built from `plugins/` by `build.rs` and embedded in the binary.

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// Ids of the built-in plugins, in load order.
pub fn builtin_ids() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(id, _)| *id)
}

/// The component of a built-in plugin.
pub fn builtin_component(id: &str) -> Option<&'static [u8]> {
    BUILTIN
        .iter()
        .find(|(b, _)| *b == id)
        .map(|(_, bytes)| *bytes)
}

/// The `example` plugin (`plugins/example`), for documentation and tests; it is not loaded by
/// [`PluginHost::load_builtin`](crate::PluginHost::load_builtin) but can be installed.
pub fn example_component() -> &'static [u8] {
    EXAMPLE
}
