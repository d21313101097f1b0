//! Stream framing, the host's job: turns upstream bytes into events for the plugin's stream
//! translator. Server-Sent Events (`event:`/`data:` lines, blank-line separated, multi-line data
//! joined with `\n`, comments ignored) and NDJSON (one JSON document per line). Bytes may arrive
//! split anywhere, even inside a UTF-8 character; lines are bounded so a hostile upstream cannot
//! grow memory without limit (nor time: a line trickling in byte by byte is scanned once).
//!
//! It lives beside the plugin host, whose [`StreamEvent`]s it makes, and depends on nothing else:
//! the `framer` fuzz target (`tests/fuzz`) compiles this very file on its own.

use crate::StreamEvent;

/// Longest line accepted (an upstream sending more without a newline is broken or hostile).
pub const MAX_LINE: usize = 1 << 20;

/// Which framing the upstream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Sse,
    Ndjson,
}

/// Why framing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("an upstream stream line exceeded {MAX_LINE} bytes")]
    LineTooLong,
    #[error("the upstream stream is not valid UTF-8")]
    NotUtf8,
}

/// An incremental framer.
#[derive(Debug)]
pub struct Framer {
    framing: Framing,
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no newline.
    scanned: usize,
    event: Option<String>,
    data: Vec<String>,
}

impl Framer {
    pub fn new(framing: Framing) -> Framer {
        Framer {
            framing,
            buf: Vec::new(),
            scanned: 0,
            event: None,
            data: Vec::new(),
        }
    }

    /// Feeds bytes; returns the events completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamEvent>, FramingError> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        let mut from = self.scanned;
        while let Some(pos) = self.buf[from..].iter().position(|b| *b == b'\n') {
            let end = from + pos;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = std::str::from_utf8(line)
                .map_err(|_| FramingError::NotUtf8)?
                .to_string();
            start = end + 1;
            from = start;
            self.line(&line, &mut out);
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        if self.buf.len() > MAX_LINE {
            return Err(FramingError::LineTooLong);
        }
        Ok(out)
    }

    /// Ends the stream: a final unterminated line or event is delivered.
    pub fn finish(&mut self) -> Result<Vec<StreamEvent>, FramingError> {
        let mut out = Vec::new();
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.scanned = 0;
            let line = std::str::from_utf8(&rest)
                .map_err(|_| FramingError::NotUtf8)?
                .trim_end_matches('\r')
                .to_string();
            self.line(&line, &mut out);
        }
        if self.framing == Framing::Sse {
            self.dispatch(&mut out);
        }
        Ok(out)
    }

    fn line(&mut self, line: &str, out: &mut Vec<StreamEvent>) {
        match self.framing {
            Framing::Ndjson => {
                if !line.trim().is_empty() {
                    out.push(StreamEvent {
                        event: None,
                        data: line.to_string(),
                    });
                }
            }
            Framing::Sse => {
                if line.is_empty() {
                    self.dispatch(out);
                } else if line.starts_with(':') {
                    // comment / keep-alive
                } else {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "event" => self.event = Some(value.to_string()),
                        "data" => self.data.push(value.to_string()),
                        _ => {}
                    }
                }
            }
        }
    }

    fn dispatch(&mut self, out: &mut Vec<StreamEvent>) {
        if self.data.is_empty() {
            self.event = None;
            return;
        }
        out.push(StreamEvent {
            event: self.event.take(),
            data: std::mem::take(&mut self.data).join("\n"),
        });
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a test fails loudly on any error")]
mod tests {
    use super::*;

    fn all(framing: Framing, chunks: &[&[u8]]) -> Vec<(Option<String>, String)> {
        let mut f = Framer::new(framing);
        let mut out = Vec::new();
        for c in chunks {
            out.extend(f.push(c).unwrap());
        }
        out.extend(f.finish().unwrap());
        out.into_iter().map(|e| (e.event, e.data)).collect()
    }

    #[test]
    fn sse_events_survive_any_split_point() {
        let text = "event: message_start\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: line1\ndata: line2\r\n\r\ndata: [DONE]\n\n";
        let whole = all(Framing::Sse, &[text.as_bytes()]);
        assert_eq!(
            whole,
            vec![
                (Some("message_start".into()), "{\"a\":1}".into()),
                (None, "line1\nline2".into()),
                (None, "[DONE]".into())
            ]
        );
        for split in 0..text.len() {
            let (a, b) = text.as_bytes().split_at(split);
            assert_eq!(all(Framing::Sse, &[a, b]), whole, "split at {split}");
        }
    }

    #[test]
    fn ndjson_lines_and_a_final_unterminated_line() {
        let out = all(
            Framing::Ndjson,
            &[b"{\"x\":1}\n\n{\"x\"", b":2}\n{\"x\":3}"],
        );
        let data: Vec<&str> = out.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(data, vec!["{\"x\":1}", "{\"x\":2}", "{\"x\":3}"]);
    }

    #[test]
    fn a_multibyte_character_split_across_chunks_is_kept() {
        let text = "data: h\u{e9}llo \u{1f600}\n\n".as_bytes();
        for split in 0..text.len() {
            let (a, b) = text.split_at(split);
            assert_eq!(
                all(Framing::Sse, &[a, b]),
                vec![(None, "h\u{e9}llo \u{1f600}".to_string())]
            );
        }
    }

    #[test]
    fn endless_lines_and_invalid_utf8_are_refused() {
        let mut f = Framer::new(Framing::Sse);
        assert_eq!(
            f.push(&vec![b'x'; MAX_LINE + 1]).unwrap_err(),
            FramingError::LineTooLong
        );
        let mut f = Framer::new(Framing::Ndjson);
        assert_eq!(f.push(b"\xff\xfe\n").unwrap_err(), FramingError::NotUtf8);
    }

    #[test]
    fn a_longest_line_trickled_byte_by_byte_is_scanned_once() {
        // Rescanning the pending bytes at every push made this quadratic (about 5 * 10^11 byte
        // comparisons); scanning each byte once keeps it well under a second even unoptimised.
        let started = std::time::Instant::now();
        let mut f = Framer::new(Framing::Ndjson);
        for _ in 0..MAX_LINE {
            assert!(f.push(b"x").unwrap().is_empty());
        }
        let events = f.push(b"\n").unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data.len(), MAX_LINE);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
    }
}
