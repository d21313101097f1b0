//! Runs pairgate provider plugins (WebAssembly components).
