//! Log redaction, the second line of defence behind the secret types: every formatted log line
//! passes through [`scrub`] before it is written, which replaces known secret values (the
//! provider keys the relay has decrypted, the master key) and secret-shaped strings (provider
//! keys like `sk-…`, bearer credentials, pgpair1 pairing strings, pairgate tokens, JWTs, URL
//! passwords, `api_key=…`-style pairs) with [`REDACTED`].
//!
//! Secrets are kept out of logs by construction (`secrecy` types, errors that never carry a
//! value); this layer catches what slips through anyway, e.g. a key an app pasted into a URL
//! path, or a library error that quotes a URL with a key in its query.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io;
use std::sync::{LazyLock, RwLock};

use pairgate_custody::{ExposeSecret, SecretString};
use regex::{Captures, Regex};
use tracing_subscriber::fmt::MakeWriter;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Known values shorter than this are not remembered (they would redact ordinary words).
const MIN_KNOWN_LEN: usize = 8;
/// How many known values are kept; the oldest is forgotten first.
const MAX_KNOWN: usize = 1024;

/// Secret shapes, one alternation so a line is scanned once. Groups named `keep` survive (the
/// scheme or field name in front of the value).
static SHAPES: LazyLock<Regex> = LazyLock::new(|| {
    let shapes = [
        // Authorization schemes followed by a credential.
        r"(?P<keep>(?i:\b(?:bearer|dpop|basic))\s+)[A-Za-z0-9_.~+/=-]{8,}",
        // Field-style secrets: api_key=…, "x-api-key": "…", password: …, token=… . Not a
        // module path (`pairgate::master_key: …` is a log target, not a field).
        r#"(?P<keep2>(?:^|[^:\w])(?i:(?:x-goog-api-key|x-api-key|api[_-]?key|authorization|passphrase|password|secret|master[_-]?key|access[_-]?token|refresh[_-]?token|token))"?\s*[:=]\s*"?)(?i:(?:bearer|dpop|basic)\s+)?[^\s"',;&}\]]{6,}"#,
        // Passwords in URLs: scheme://user:password@host.
        r"(?P<keep3>[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@",
        // Provider keys: OpenAI/Anthropic (sk-…), Google (AIza…), Resend (re_…_…).
        r"\bsk-[A-Za-z0-9_-]{8,}",
        r"\bAIza[0-9A-Za-z_-]{30,}",
        r"\bre_[A-Za-z0-9]{6,}_[A-Za-z0-9_]{8,}",
        // pairgate: pairing strings and prefixed tokens (pgrt_, pgbk_, pgdc_, …).
        r"\bpgpair1\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)?",
        r"\bpg[a-z]{2}_[A-Za-z0-9_-]{8,}",
        // JWT-shaped: access tokens and DPoP proofs.
        r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
    ];
    Regex::new(&shapes.join("|")).unwrap_or_else(|e| unreachable!("the shapes compile: {e}"))
});

/// Secret values the process has seen, newest last.
static KNOWN: LazyLock<RwLock<VecDeque<SecretString>>> =
    LazyLock::new(|| RwLock::new(VecDeque::new()));

/// Remembers a secret value so that [`scrub`] removes it from any later log line. Cheap when
/// the value is already known (the relay calls this for every decrypted credential).
pub fn remember(secret: &str) {
    if secret.len() < MIN_KNOWN_LEN {
        return;
    }
    let known = |list: &VecDeque<SecretString>| list.iter().any(|s| s.expose_secret() == secret);
    if KNOWN.read().map(|list| known(&list)).unwrap_or(true) {
        return;
    }
    if let Ok(mut list) = KNOWN.write() {
        if known(&list) {
            return;
        }
        if list.len() >= MAX_KNOWN {
            list.pop_front();
        }
        list.push_back(SecretString::from(secret.to_owned()));
    }
}

/// `line` with every known secret value and every secret-shaped string replaced by [`REDACTED`].
/// Borrows when there was nothing to replace.
pub fn scrub(line: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(line);
    if let Ok(list) = KNOWN.read() {
        for secret in list.iter() {
            let secret = secret.expose_secret();
            if out.contains(secret) {
                out = Cow::Owned(out.replace(secret, REDACTED));
            }
        }
    }
    let replaced = match SHAPES.replace_all(&out, |c: &Captures<'_>| {
        let keep = ["keep", "keep2", "keep3"]
            .iter()
            .find_map(|name| c.name(name))
            .map_or("", |m| m.as_str());
        let tail = if c.name("keep3").is_some() { "@" } else { "" };
        format!("{keep}{REDACTED}{tail}")
    }) {
        Cow::Borrowed(_) => None,
        Cow::Owned(replaced) => Some(replaced),
    };
    match replaced {
        Some(replaced) => Cow::Owned(replaced),
        None => out,
    }
}

/// A [`MakeWriter`] whose writers scrub every line before passing it on.
#[derive(Debug, Clone)]
pub struct Redacting<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter(self.0.make_writer())
    }
}

/// Scrubs what is written through it. The fmt layer writes each event as one `write_all` of the
/// whole formatted line, so every call sees complete lines.
#[derive(Debug)]
pub struct RedactingWriter<W>(W);

impl<W: io::Write> io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.0.write_all(scrub(text).as_bytes())?,
            Err(_) => self
                .0
                .write_all(scrub(&String::from_utf8_lossy(buf)).as_bytes())?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
