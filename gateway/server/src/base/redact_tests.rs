//! Tests of the log scrubber: each secret shape, known values, what must survive, and a real
//! subscriber writing through [`Redacting`].

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use super::*;

#[test]
fn secret_shapes_are_redacted() {
    let cases = [
        (
            "calling with sk-proj-Abcdef0123456789xyz now",
            "calling with [redacted] now",
        ),
        ("key sk-ant-api03-AAAAbbbbCCCCdddd-eeee", "key [redacted]"),
        (
            "authorization: Bearer abc.DEF-123_456~789",
            "authorization: [redacted]",
        ),
        ("sent Bearer abc.DEF-123_456", "sent Bearer [redacted]"),
        ("DPoP eyJhbGciOiJFZERTQSJ9", "DPoP [redacted]"),
        (
            "url=https://generativelanguage.googleapis.com/v1?key=AIzaSyA1234567890abcdefghijklmnopqrstu",
            "url=https://generativelanguage.googleapis.com/v1?key=[redacted]",
        ),
        (
            "pairing pgpair1.AAECAwQFBgcICQoLDA0ODyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4_aHR0cHM6Ly9nYXRld2F5LmV4YW1wbGU.sOKODA done",
            "pairing [redacted] done",
        ),
        (
            "refresh pgrt_0123456789abcdefABCDEF and pgbk_zyxwvutsrqponm",
            "refresh [redacted] and [redacted]",
        ),
        (
            "token eyJ0eXAiOiJhdCtqd3QifQ.eyJzdWIiOiJnXzEyMyJ9.c2lnbmF0dXJl end",
            "token [redacted] end",
        ),
        (
            "postgres://pairgate:hunter22secret@db.internal:5432/pg",
            "postgres://pairgate:[redacted]@db.internal:5432/pg",
        ),
        (
            r#"{"x-api-key":"abcdef123456","model":"m"}"#,
            r#"{"x-api-key":"[redacted]","model":"m"}"#,
        ),
        ("api_key=abcdef123456&q=1", "api_key=[redacted]&q=1"),
        ("resend re_123abcDEF_456ghiJKL789", "resend [redacted]"),
    ];
    for (input, want) in cases {
        assert_eq!(scrub(input), want, "input: {input}");
    }
}

#[test]
fn ordinary_lines_pass_unchanged_and_borrowed() {
    for line in [
        "pairgate listening on http://127.0.0.1:8787",
        "request{request_id=5f0c2a method=POST path=/v1/chat/completions}: response status=200 latency_us=1234",
        "the access token is not valid",
        "tokens.access_ttl = 600s, max_tokens=1000",
        "model=gpt-4o-mini provider=openai grant=g_0123456789abcdef",
        "https://gateway.example:8443/v1/models",
    ] {
        assert!(
            matches!(scrub(line), Cow::Borrowed(_)),
            "changed: {line} -> {}",
            scrub(line)
        );
    }
}

#[test]
fn remembered_values_are_redacted_wherever_they_appear() {
    let secret = "Provider-Key-Without-A-Known-Shape-4711";
    assert_eq!(scrub(&format!("a {secret} b")), format!("a {secret} b"));
    remember(secret);
    remember(secret);
    assert_eq!(
        scrub(&format!("a {secret} b{secret}")),
        "a [redacted] b[redacted]"
    );
    // Short values would redact ordinary words: they are not remembered.
    remember("short");
    assert_eq!(scrub("a short line"), "a short line");
}

/// A writer collecting everything into a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_real_subscriber_writes_scrubbed_lines_in_both_formats() {
    for json in [false, true] {
        let capture = Capture::default();
        let sink = capture.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(Redacting(move || sink.clone()));
        let dispatch: tracing::Dispatch = if json {
            builder.json().finish().into()
        } else {
            builder.finish().into()
        };
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!(
                "request",
                request_id = "rid-1",
                path = "/r/openai/sk-live-0123456789abcdef"
            );
            let _entered = span.enter();
            tracing::warn!(
                header = "Bearer pgbk_0123456789abcdef",
                "upstream said {}",
                "sk-proj-ZYXWVUTSRQPONMLK"
            );
        });
        let out = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        assert!(out.contains("rid-1"), "{out}");
        assert!(out.contains(REDACTED), "{out}");
        for secret in [
            "sk-live-0123456789abcdef",
            "pgbk_0123456789abcdef",
            "sk-proj-ZYXWVUTSRQPONMLK",
        ] {
            assert!(!out.contains(secret), "json={json}: {out}");
        }
    }
}

#[test]
fn the_writer_passes_invalid_utf8_through_lossily() {
    let capture = Capture::default();
    let mut w = RedactingWriter(capture.clone());
    w.write_all(b"bad \xff byte sk-0123456789abcdef\n").unwrap();
    let out = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert_eq!(out, "bad \u{fffd} byte [redacted]\n");
}

/// Not a benchmark harness, a guard: scrubbing a typical line must stay in the microseconds.
/// The figures measured in release mode are in docs/benchmarks.md ("Log redaction").
#[test]
fn scrubbing_a_typical_line_is_cheap() {
    let line = "2026-01-01T00:00:00.000000Z  INFO request{request_id=0f1e2d3c4b5a69788796a5b4c3d2e1f0 method=POST path=/v1/chat/completions}: pairgate::routes: response status=200 latency_us=1834\n";
    let started = std::time::Instant::now();
    let n = 2_000;
    for _ in 0..n {
        assert!(matches!(scrub(line), Cow::Borrowed(_)));
    }
    let per_line = started.elapsed() / n;
    eprintln!("scrub: {per_line:?} per clean line (this build's optimisation level)");
    let secret_line = format!("{line} key=sk-proj-0123456789abcdefghij");
    let started = std::time::Instant::now();
    for _ in 0..n {
        assert!(matches!(scrub(&secret_line), Cow::Owned(_)));
    }
    eprintln!("scrub: {:?} per line with a secret", started.elapsed() / n);
    assert!(
        per_line < std::time::Duration::from_millis(1),
        "{per_line:?} per line"
    );
}

#[test]
fn a_log_target_named_like_a_field_is_not_a_secret() {
    let line = "INFO pairgate::master_key: master key reloaded old_key_id=95b1d435d2d3f97b";
    assert_eq!(crate::base::redact::scrub(line), line);
    let field = "loaded master_key=c2VjcmV0LXZhbHVl from the environment";
    assert_eq!(
        crate::base::redact::scrub(field),
        "loaded master_key=[redacted] from the environment"
    );
}
