//! Fuzz target: the SSE/NDJSON framer. The first byte picks the framing and a split point; the
//! events (or the error) must not depend on how the bytes were split into chunks.
//!
//! The framer's source file is compiled into this target as it is (it is pure and needs only
//! the `StreamEvent` type, defined here the same way), so this target builds without the
//! plugin host and wasmtime.
#![no_main]

#[path = "../../../gateway/plugin-host/src/framing.rs"]
mod framing;

use framing::{Framer, Framing, FramingError};
use libfuzzer_sys::fuzz_target;

/// The plugin host's `StreamEvent`, field for field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    pub event: Option<String>,
    pub data: String,
}

type Events = Result<Vec<(Option<String>, String)>, FramingError>;

fn frame(framing: Framing, chunks: &[&[u8]]) -> Events {
    let mut framer = Framer::new(framing);
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(framer.push(chunk)?);
    }
    out.extend(framer.finish()?);
    Ok(out.into_iter().map(|e| (e.event, e.data)).collect())
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let framing = if control & 1 == 0 {
        Framing::Sse
    } else {
        Framing::Ndjson
    };
    let whole = frame(framing, &[body]);
    let split = usize::from(control >> 1) % (body.len() + 1);
    let (a, b) = body.split_at(split);
    assert_eq!(frame(framing, &[a, b]), whole, "split at {split}");
    let bytewise: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(frame(framing, &bytewise), whole, "one byte at a time");
});
