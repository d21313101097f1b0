//! The canary test: unique secrets planted wherever a secret enters the gateway (provider keys on
//! stdin and by reference, the master key, pairing strings, access and refresh tokens) must
//! appear nowhere an observer can look: CLI output, response bodies and headers, log lines at
//! trace level, database rows in clear, the SQLite file's bytes.
//!
//! The gateway's providers all go to a local fake provider, so the provider keys really travel:
//! each must reach the fake in its provider's credential header (checked, so the test is not
//! vacuous) and nowhere else, through success, streaming, every upstream error of the error table
//! (a rejected key the provider echoes back, a rate limit, a provider down or slow, cut answers
//! and streams, a plugin failure) and a client that hangs up mid-stream.
//!
//! To cover a new feature (the admin UI...), add a [`Path`] variant that drives it and records
//! what it shows with [`Seen::add`], [`Ctx::http`] or [`Ctx::record`]; add a new kind of secret
//! as a [`Canary`]. The sinks (logs, rows, files) are scanned once every path has run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use pairgate_protocol::keys::KeyKind;
use pairgate_protocol::pairing::PairingString;
use pairgate_sdk::{Client, MemoryStorage, PairOptions};
use pairgate_tests::app;
use pairgate_tests::fake::{Behaviour, FakeProvider, Fault, REPLY};
use pairgate_tests::providers::fake_config;
use pairgate_tests::{Backend, Gateway};
use serde_json::{Value, json};

use super::support::{cli, contains, dump, dump_rows, files, random_hex, random_master_key};

mod providers;

/// Every way through the gateway that exists today. Each step records what an observer sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Start-up, health, discovery, an unknown route.
    OpenRoutes,
    /// `credential add/list/check/rotate/remove`, including their error paths.
    CredentialCommands,
    /// Credentials by reference: environment, file, command, and a helper that fails loudly.
    CredentialReferences,
    /// Owner pairing strings redeemed by the SDK and by hand; signed requests.
    Pairing,
    /// Refresh and key rotation.
    TokenLifecycle,
    /// Requests that fail while carrying secrets: the error must not echo them.
    ProtocolErrors,
    /// The consent flow: an app asks, the owner approves from the CLI.
    Consent,
    /// `grant list/show`, `pair list`, `consent list`.
    OwnerCommands,
    /// Provider keys for every keyed provider; chat (streamed and not) through every built-in
    /// plugin, embeddings, models, the grant, an email through a resource plugin.
    ProviderCalls,
    /// Every upstream failure of the error table, and a plugin failure.
    ProviderErrors,
    /// An app that hangs up in the middle of a stream.
    ClientDisconnect,
    /// `GET /metrics` and `pairgate usage`, after provider traffic.
    MetricsAndUsage,
    /// The owner account and the admin API: create, log in, read every list, test every
    /// credential against its provider (accepted and rejected), act, log out.
    Admin,
}

const PATHS: &[Path] = &[
    Path::OpenRoutes,
    Path::CredentialCommands,
    Path::CredentialReferences,
    Path::Pairing,
    Path::TokenLifecycle,
    Path::ProtocolErrors,
    Path::Consent,
    Path::ProviderCalls,
    Path::ProviderErrors,
    Path::ClientDisconnect,
    Path::MetricsAndUsage,
    Path::OwnerCommands,
    Path::Admin,
];

/// Config of the canary gateway, beside routing every built-in provider to the fake: a short
/// upstream timeout (slow and stalled providers), and a provider whose plugin asks for a host
/// the owner did not approve (a plugin failure).
const EXTRA_CONFIG: &str = "[upstream]\ntimeout = \"1s\"\n\
    [providers.unapproved]\nplugin = \"openai\"\napproved_hosts = [\"approved.example\"]\n";

/// A chat model of each built-in chat plugin.
const CHAT_MODELS: [&str; 4] = [
    "openai/gpt-4o-mini",
    "anthropic/claude-sonnet-4-5",
    "gemini/gemini-2.5-flash",
    "ollama/llama3.2",
];

/// Which keyed provider an upstream path of the fake belongs to, the header its key goes in and
/// the prefix of that header's value; `None` for Ollama, which takes no key.
fn upstream_of(path: &str) -> Option<(&'static str, &'static str, &'static str)> {
    if path.starts_with("/v1/messages") {
        Some(("anthropic", "x-api-key", ""))
    } else if path.starts_with("/v1beta/") {
        Some(("gemini", "x-goog-api-key", ""))
    } else if path.starts_with("/emails") {
        Some(("resend", "authorization", "Bearer "))
    } else if path.starts_with("/api/") {
        None
    } else {
        Some(("openai", "authorization", "Bearer "))
    }
}

fn chat(model: &str, stream: bool) -> Value {
    json!({ "model": model, "stream": stream, "messages": [{ "role": "user", "content": "hello" }] })
}

/// A planted secret: the byte forms it could take and the only places it may appear (place
/// labels starting with one of `allowed`, e.g. the token response that hands a token out).
#[derive(Debug)]
struct Canary {
    what: String,
    forms: Vec<Vec<u8>>,
    allowed: Vec<&'static str>,
}

impl Canary {
    fn text(what: impl Into<String>, value: &str, allowed: &[&'static str]) -> Canary {
        Canary {
            what: what.into(),
            forms: vec![
                value.as_bytes().to_vec(),
                STANDARD.encode(value).into_bytes(),
            ],
            allowed: allowed.to_vec(),
        }
    }

    fn pairing(what: &str, s: &str, allowed: &[&'static str]) -> Canary {
        let parsed = PairingString::parse(s).unwrap();
        let secret = parsed.secret.as_bytes();
        let mut c = Canary::text(what, s, allowed);
        c.forms.push(URL_SAFE_NO_PAD.encode(secret).into_bytes());
        c.forms.push(STANDARD.encode(secret).into_bytes());
        c.forms.push(hex(secret).into_bytes());
        c.forms.push(secret.to_vec());
        c
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Everything an observer could see, by place.
#[derive(Debug, Default)]
struct Seen(Vec<(String, Vec<u8>)>);

impl Seen {
    fn add(&mut self, place: impl Into<String>, bytes: impl AsRef<[u8]>) {
        self.0.push((place.into(), bytes.as_ref().to_vec()));
    }
}

/// What the paths share: the gateway, what was seen, the secrets planted so far.
struct Ctx<'a> {
    gw: &'a Gateway,
    /// The fake provider every built-in provider is routed to.
    fake: &'a FakeProvider,
    /// The current (canary) key of each keyed provider.
    keys: BTreeMap<&'static str, String>,
    /// The app that calls providers (paired in [`Path::ProviderCalls`]).
    app: Option<Client>,
    seen: Seen,
    canaries: Vec<Canary>,
    /// A helper file that the failing command reference prints.
    dir: std::path::PathBuf,
}

impl Ctx<'_> {
    /// Runs a CLI command and records its output; returns (code, stdout).
    async fn cli(&mut self, args: &[&str], stdin: Option<&str>) -> (i32, String) {
        let (code, out, err) = cli(self.gw, args, stdin).await;
        let place = format!("cli: {}", args[..args.len().min(2)].join(" "));
        self.seen.add(format!("{place} stdout"), &out);
        self.seen.add(format!("{place} stderr"), &err);
        (code, out)
    }

    async fn cli_ok(&mut self, args: &[&str], stdin: Option<&str>) -> String {
        let (code, out) = self.cli(args, stdin).await;
        assert_eq!(code, 0, "{args:?}: {:?}", self.seen.0.last());
        out
    }

    /// Sends a request and records status line, headers and body; returns status and body.
    async fn http(&mut self, place: &str, req: reqwest::RequestBuilder) -> (u16, Value) {
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let mut text = format!("{status}\n");
        for (k, v) in res.headers() {
            text.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
        }
        let body = res.bytes().await.unwrap();
        text.push_str(&String::from_utf8_lossy(&body));
        self.seen.add(format!("http: {place}"), text);
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Records a response (status line, headers, the whole body: a stream to its end, bounded);
    /// returns status and body.
    async fn record(&mut self, place: &str, res: reqwest::Response) -> (u16, String) {
        let status = res.status().as_u16();
        let mut text = format!("{status}\n");
        for (k, v) in res.headers() {
            text.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
        }
        let body = tokio::time::timeout(Duration::from_secs(15), res.bytes())
            .await
            .unwrap_or_else(|_| panic!("{place}: the body never ended"))
            .unwrap();
        let body = String::from_utf8_lossy(&body).into_owned();
        text.push_str(&body);
        self.seen.add(format!("http: {place}"), text);
        (status, body)
    }

    fn plant(&mut self, c: Canary) {
        self.canaries.push(c);
    }

    fn provider_key(&mut self, what: &str) -> String {
        let v = format!("sk-canary-{}", random_hex(16));
        self.plant(Canary::text(what, &v, &[]));
        v
    }

    async fn drive(&mut self, path: Path) {
        match path {
            Path::OpenRoutes => self.open_routes().await,
            Path::CredentialCommands => self.credential_commands().await,
            Path::CredentialReferences => self.credential_references().await,
            Path::Pairing => self.pairing().await,
            Path::TokenLifecycle => self.token_lifecycle().await,
            Path::ProtocolErrors => self.protocol_errors().await,
            Path::Consent => self.consent().await,
            Path::OwnerCommands => self.owner_commands().await,
            Path::ProviderCalls => self.provider_calls().await,
            Path::ProviderErrors => self.provider_errors().await,
            Path::ClientDisconnect => self.client_disconnect().await,
            Path::MetricsAndUsage => self.metrics_and_usage().await,
            Path::Admin => self.admin().await,
        }
    }

    async fn open_routes(&mut self) {
        let h = reqwest::Client::new();
        for path in [
            "/healthz",
            "/readyz",
            "/.well-known/oauth-authorization-server",
            "/v1/no-such-route",
        ] {
            let (status, _) = self.http(path, h.get(self.gw.url(path))).await;
            assert!(
                status == 200 || path.contains("no-such"),
                "{path}: {status}"
            );
        }
    }

    async fn credential_commands(&mut self) {
        let k1 = self.provider_key("provider key (stdin)");
        let k2 = self.provider_key("provider key (rotated in)");
        let k3 = self.provider_key("provider key (removed)");
        self.cli_ok(&["credential", "add", "openai"], Some(&format!("{k1}\n")))
            .await;
        self.cli_ok(
            &["credential", "add", "openai", "--name", "temp", "--json"],
            Some(&k3),
        )
        .await;
        // Error paths with a secret on stdin.
        for args in [
            vec!["credential", "add", "openai"],
            vec!["credential", "add", "Bad_Provider"],
            vec!["credential", "rotate", "nobody"],
        ] {
            let (code, _) = self.cli(&args, Some(&k1)).await;
            assert_ne!(code, 0, "{args:?}");
        }
        self.cli_ok(&["credential", "list"], None).await;
        self.cli_ok(&["credential", "list", "--json"], None).await;
        self.cli_ok(
            &["credential", "rotate", "openai", "--grace", "1h", "--json"],
            Some(&k2),
        )
        .await;
        self.keys.insert("openai", k2.clone());
        let (code, _) = self
            .cli(&["credential", "rotate", "openai"], Some(&k2))
            .await;
        assert_eq!(code, 64, "the same value again is refused");
        let check = self.cli_ok(&["credential", "check", "openai"], None).await;
        assert!(check.contains("previous"), "{check}");
        self.cli_ok(&["credential", "check", "openai", "--json"], None)
            .await;
        self.cli_ok(&["credential", "remove", "openai", "--name", "temp"], None)
            .await;
        self.cli_ok(&["credential", "list"], None).await;
    }

    async fn credential_references(&mut self) {
        // The environment variable's value is planted by `canary_run` (it must exist at start).
        self.cli_ok(
            &[
                "credential",
                "add",
                "anthropic",
                "--from-env",
                "CANARY_PROVIDER_KEY",
            ],
            None,
        )
        .await;
        self.cli_ok(&["credential", "check", "anthropic"], None)
            .await;
        let k = self.provider_key("provider key (file reference)");
        let file = self.dir.join("mistral.key");
        std::fs::write(&file, format!("{k}\n")).unwrap();
        let path = file.display().to_string();
        self.cli_ok(
            &["credential", "add", "mistral", "--from-file", &path],
            None,
        )
        .await;
        self.cli_ok(&["credential", "check", "mistral", "--json"], None)
            .await;
        let k = self.provider_key("provider key (command reference)");
        let file = self.dir.join("groq.key");
        std::fs::write(&file, &k).unwrap();
        let path = file.display().to_string();
        self.cli_ok(
            &[
                "credential",
                "add",
                "groq",
                "--from-command",
                "cat",
                "--arg",
                &path,
            ],
            None,
        )
        .await;
        self.cli_ok(&["credential", "check", "groq"], None).await;
        // A helper that prints a secret on stdout and stderr, then fails.
        let k = self.provider_key("secret printed by a failing helper");
        let file = self.dir.join("loud.key");
        std::fs::write(&file, &k).unwrap();
        let script = format!("cat {0}; cat {0} >&2; exit 2", file.display());
        let (code, _) = self
            .cli(
                &[
                    "credential",
                    "add",
                    "cohere",
                    "--from-command",
                    "sh",
                    "--arg",
                    "-c",
                    "--arg",
                    &script,
                ],
                None,
            )
            .await;
        assert_eq!(code, 1);
        self.cli_ok(&["credential", "list", "--json"], None).await;
    }

    /// Pairs by hand, recording the token response; plants the pairing string and tokens.
    async fn raw_pair(&mut self) -> (pairgate_protocol::keys::SigningKey, String, String) {
        let s = self
            .cli_ok(&["pair", "create", "--app", "canary app"], None)
            .await;
        let s = s.trim().to_string();
        self.plant(Canary::pairing(
            "pairing string (raw)",
            &s,
            &["cli: pair create"],
        ));
        let key = app::key(KeyKind::Ed25519);
        let url = self.gw.url("/oauth/token");
        let proof = app::proof(&key, "POST", &url, None, None);
        let h = reqwest::Client::new();
        let req = h.post(&url).header("dpop", proof).form(&[
            ("grant_type", pairgate_protocol::oauth::GRANT_TYPE_PAIRING),
            ("pairing_code", s.as_str()),
        ]);
        let (status, body) = self.http("token response (pairing)", req).await;
        assert_eq!(status, 200, "{body}");
        let access = body["access_token"].as_str().unwrap().to_string();
        let refresh = body["refresh_token"].as_str().unwrap().to_string();
        self.plant(Canary::text(
            "access token",
            &access,
            &["http: token response"],
        ));
        self.plant(Canary::text(
            "refresh token",
            &refresh,
            &["http: token response"],
        ));
        // The used pairing string again: refused without echoing it.
        let proof = app::proof(&key, "POST", &url, None, None);
        let req = h.post(&url).header("dpop", proof).form(&[
            ("grant_type", pairgate_protocol::oauth::GRANT_TYPE_PAIRING),
            ("pairing_code", s.as_str()),
        ]);
        let (status, _) = self.http("pairing string reused", req).await;
        assert_eq!(status, 400);
        (key, access, refresh)
    }

    async fn signed_get(
        &mut self,
        place: &str,
        key: &pairgate_protocol::keys::SigningKey,
        access: &str,
    ) -> u16 {
        let url = self.gw.url("/v1/grant");
        let proof = app::proof(key, "GET", &url, Some(access), None);
        let req = reqwest::Client::new()
            .get(&url)
            .header("authorization", format!("DPoP {access}"))
            .header("dpop", proof);
        self.http(place, req).await.0
    }

    async fn pairing(&mut self) {
        let s = self
            .cli_ok(&["pair", "create", "--app", "sdk app", "--json"], None)
            .await;
        let v: Value = serde_json::from_str(&s).unwrap();
        let string = v["pairing_string"].as_str().unwrap().to_string();
        self.plant(Canary::pairing(
            "pairing string (SDK)",
            &string,
            &["cli: pair create"],
        ));
        let client = Client::pair(&string, PairOptions::default(), MemoryStorage::new())
            .await
            .unwrap();
        let res = client.get("/v1/grant").send().await.unwrap();
        assert_eq!(res.status(), 200);
        self.seen
            .add("http: SDK GET /v1/grant", res.text().await.unwrap());
        // A pairing string left unredeemed lives in the database only as a keyed digest.
        let pending = self.cli_ok(&["pair", "create"], None).await;
        self.plant(Canary::pairing(
            "pairing string (pending)",
            pending.trim(),
            &["cli: pair create"],
        ));
        let (key, access, _) = self.raw_pair().await;
        assert_eq!(self.signed_get("GET /v1/grant", &key, &access).await, 200);
    }

    async fn token_lifecycle(&mut self) {
        let (key, _, refresh) = self.raw_pair().await;
        let url = self.gw.url("/oauth/token");
        let h = reqwest::Client::new();
        let proof = app::proof(&key, "POST", &url, None, None);
        let req = h.post(&url).header("dpop", proof).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ]);
        let (status, body) = self.http("token response (refresh)", req).await;
        assert_eq!(status, 200, "{body}");
        let access = body["access_token"].as_str().unwrap().to_string();
        let next = body["refresh_token"].as_str().unwrap().to_string();
        self.plant(Canary::text(
            "access token (refreshed)",
            &access,
            &["http: token response"],
        ));
        self.plant(Canary::text(
            "refresh token (refreshed)",
            &next,
            &["http: token response"],
        ));
        // The spent refresh token again.
        let proof = app::proof(&key, "POST", &url, None, None);
        let req = h.post(&url).header("dpop", proof).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ]);
        let (status, _) = self.http("refresh token reused", req).await;
        assert_eq!(status, 400);
        assert_eq!(
            self.signed_get("GET /v1/grant (refreshed)", &key, &access)
                .await,
            200
        );
        // Key rotation through the SDK.
        let s = self.cli_ok(&["pair", "create"], None).await;
        self.plant(Canary::pairing(
            "pairing string (rotation)",
            s.trim(),
            &["cli: pair create"],
        ));
        let client = Client::pair(s.trim(), PairOptions::default(), MemoryStorage::new())
            .await
            .unwrap();
        client.rotate_key(KeyKind::P256).await.unwrap();
        client.refresh().await.unwrap();
        let res = client.get("/v1/grant").send().await.unwrap();
        assert_eq!(res.status(), 200);
        self.seen.add(
            "http: SDK GET /v1/grant (rotated)",
            res.text().await.unwrap(),
        );
    }

    async fn protocol_errors(&mut self) {
        let (key, access, refresh) = self.raw_pair().await;
        let url = self.gw.url("/v1/grant");
        let h = reqwest::Client::new();
        // A proof for another URL, a bearer token without proof, a truncated token, a refresh
        // token as access token, an access token on the token endpoint without a proof.
        let wrong = app::proof(&key, "GET", &self.gw.url("/elsewhere"), Some(&access), None);
        let cut = &access[..access.len() - 5];
        let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
            (
                "proof for another URL",
                h.get(&url)
                    .header("authorization", format!("DPoP {access}"))
                    .header("dpop", wrong),
            ),
            (
                "bearer",
                h.get(&url)
                    .header("authorization", format!("Bearer {access}")),
            ),
            (
                "truncated token",
                h.get(&url)
                    .header("authorization", format!("DPoP {cut}"))
                    .header("dpop", app::proof(&key, "GET", &url, Some(cut), None)),
            ),
            (
                "refresh token as access token",
                h.get(&url)
                    .header("authorization", format!("DPoP {refresh}"))
                    .header("dpop", app::proof(&key, "GET", &url, Some(&refresh), None)),
            ),
            (
                "refresh without proof",
                h.post(self.gw.url("/oauth/token")).form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                ]),
            ),
        ];
        for (place, req) in cases {
            let (status, body) = self.http(place, req).await;
            assert!((400..500).contains(&status), "{place}: {status} {body}");
        }
    }

    async fn consent(&mut self) {
        let pending = Client::request_consent(
            &self.gw.base_url,
            "consent app",
            &json!({ "providers": ["openai"] }),
            PairOptions::default(),
            MemoryStorage::new(),
        )
        .await
        .unwrap();
        let code = pending.user_code.clone();
        self.cli_ok(&["consent", "list"], None).await;
        self.cli_ok(&["consent", "list", "--json"], None).await;
        self.cli_ok(&["consent", "approve", &code], None).await;
        let client = pending.wait().await.unwrap();
        let res = client.get("/v1/grant").send().await.unwrap();
        assert_eq!(res.status(), 200);
        self.seen.add(
            "http: SDK GET /v1/grant (consent)",
            res.text().await.unwrap(),
        );
    }

    async fn owner_commands(&mut self) {
        let list = self.cli_ok(&["grant", "list", "--json"], None).await;
        let grants: Value = serde_json::from_str(&list).unwrap();
        self.cli_ok(&["grant", "list"], None).await;
        let id = grants[0]["id"].as_str().unwrap().to_string();
        self.cli_ok(&["grant", "show", &id], None).await;
        self.cli_ok(&["pair", "list"], None).await;
        self.cli_ok(&["pair", "list", "--json"], None).await;
        self.cli_ok(&["consent", "list"], None).await;
    }
}

/// Every log line at every level, except the code generator compiling plugin bytecode at start:
/// it never sees request or key data and writes millions of lines at trace.
const LOG_LEVEL: &str = "trace,cranelift_codegen=info,cranelift_frontend=info,wasmtime_internal_cranelift=info,regalloc2=info";

impl Ctx<'_> {
    async fn admin(&mut self) {
        let password = format!("canary-password-{}", random_hex(12));
        self.plant(Canary::text("owner password", &password, &[]));
        self.cli_ok(
            &["owner", "create", "owner"],
            Some(&format!("{password}\n")),
        )
        .await;
        let h = reqwest::Client::new();
        let login = |password: &str| {
            h.post(self.gw.url("/admin/api/login"))
                .json(&json!({ "username": "owner", "password": password }))
        };
        let (status, _) = self
            .http(
                "admin login (wrong password)",
                login(&format!("{password}x")),
            )
            .await;
        assert_eq!(status, 401);
        let res = login(&password).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let cookie = pairgate_tests::owner::cookie_of(res.headers()).unwrap();
        let mut text = format!("{:?}\n", res.headers());
        let body = res.text().await.unwrap();
        text.push_str(&body);
        self.seen.add("http: admin login", text);
        let csrf = serde_json::from_str::<Value>(&body).unwrap()["csrf_token"]
            .as_str()
            .unwrap()
            .to_string();
        let session = cookie.split_once('=').unwrap().1.to_string();
        let handed_out = ["http: admin login", "http: admin session"];
        self.plant(Canary::text("owner session", &session, &handed_out));
        self.plant(Canary::text("CSRF token", &csrf, &handed_out));
        for path in [
            "session", "sessions", "grants", "pairings", "consents", "audit",
        ] {
            let req = h
                .get(self.gw.url(&format!("/admin/api/{path}")))
                .header("cookie", &cookie);
            let (status, body) = self.http(&format!("admin {path}"), req).await;
            assert_eq!(status, 200, "{path}: {body}");
        }
        // "Test against provider" with every credential (each key goes out to the fake), once
        // more while the provider rejects keys quoting them: no answer names a key.
        let (_, creds) = self
            .http(
                "admin credentials",
                h.get(self.gw.url("/admin/api/credentials"))
                    .header("cookie", &cookie),
            )
            .await;
        let mut accepted = 0;
        for fault in [Fault::None, Fault::Unauthorized] {
            self.fake.fault(fault);
            for c in creds["data"].as_array().into_iter().flatten() {
                let id = c["id"].as_str().unwrap_or_default();
                let req = h
                    .post(self.gw.url(&format!("/admin/api/credentials/{id}/check")))
                    .header("cookie", &cookie)
                    .header("x-csrf-token", &csrf);
                let (_, body) = self.http(&format!("admin test credential {id}"), req).await;
                accepted += usize::from(body["provider_check"]["outcome"] == "ok");
            }
        }
        self.fake.fault(Fault::None);
        assert!(accepted > 0, "a provider accepted a key: {creds}");
        let req = h
            .post(self.gw.url("/admin/api/pairings"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&json!({ "app_name": "admin app" }));
        let (status, body) = self.http("admin create pairing", req).await;
        assert_eq!(status, 200, "{body}");
        if let Some(string) = body["pairing_string"].as_str() {
            self.plant(Canary::pairing(
                "pairing string (admin)",
                string,
                &["http: admin create pairing"],
            ));
        }
        // A state change without the CSRF token, and a forged session: refused, not echoed.
        let req = h
            .post(self.gw.url("/admin/api/pairings"))
            .header("cookie", &cookie)
            .json(&json!({}));
        let (status, _) = self.http("admin without CSRF", req).await;
        assert_eq!(status, 403);
        let forged = format!("{cookie}x");
        let req = h
            .get(self.gw.url("/admin/api/grants"))
            .header("cookie", forged);
        let (status, _) = self.http("admin forged session", req).await;
        assert_eq!(status, 401);
        let req = h
            .post(self.gw.url("/admin/api/logout"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf);
        let (status, _) = self.http("admin logout", req).await;
        assert!(status < 300, "{status}");
    }
}

/// Runs every path on a fresh gateway, then scans every sink for every canary.
async fn canary_run(backend: Backend, master_key_canary: bool) {
    let env_key = format!("sk-canary-{}", random_hex(16));
    let fake = FakeProvider::start().await;
    let mut builder = Gateway::builder(backend)
        .config(fake_config(&fake, EXTRA_CONFIG))
        .arg("--log-format")
        .arg("json")
        .env("PAIRGATE_LOG_LEVEL", LOG_LEVEL)
        .env("CANARY_PROVIDER_KEY", &env_key);
    let master = master_key_canary.then(random_master_key);
    if let Some((b64, _)) = &master {
        builder = builder
            .env("PAIRGATE_MASTER_KEY__SOURCE", "env")
            .env("PAIRGATE_MASTER_KEY", b64);
    }
    let mut gw = builder.start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = Ctx {
        gw: &gw,
        fake: &fake,
        // The anthropic key is a reference to this environment variable (CredentialReferences).
        keys: BTreeMap::from([("anthropic", env_key.clone())]),
        app: None,
        seen: Seen::default(),
        canaries: vec![Canary::text("provider key (environment)", &env_key, &[])],
        dir: dir.path().to_path_buf(),
    };
    if let Some((b64, bytes)) = &master {
        ctx.plant(Canary {
            what: "master key".into(),
            forms: vec![
                b64.clone().into_bytes(),
                URL_SAFE_NO_PAD.encode(bytes).into_bytes(),
                hex(bytes).into_bytes(),
                bytes.to_vec(),
            ],
            allowed: vec![],
        });
    }
    for &path in PATHS {
        let before = ctx.seen.0.len();
        ctx.drive(path).await;
        assert!(ctx.seen.0.len() > before, "{path:?} recorded nothing");
    }
    let Ctx {
        mut seen,
        canaries,
        keys,
        ..
    } = ctx;
    assert!(canaries.len() >= 17, "{} canaries planted", canaries.len());
    assert_eq!(
        keys.len(),
        4,
        "a canary key per keyed provider: {:?}",
        keys.keys()
    );

    // The sinks: every log line (after a clean stop), every row, every file of the data dir.
    assert_eq!(gw.stop().await, Some(0));
    let logs = gw.logs();
    assert!(
        logs.lines().count() > 20,
        "trace logs were captured: {logs}"
    );
    assert!(
        logs.lines().all(|l| l.starts_with('{')),
        "JSON logs: {logs}"
    );
    seen.add("log: gateway", logs);
    for (place, bytes) in dump(&gw).await {
        seen.add(format!("db: {place}"), bytes);
    }
    if backend == Backend::Sqlite {
        for (name, bytes) in files(&gw.data_dir()) {
            seen.add(format!("file: {name}"), bytes);
        }
    }

    let mut leaks = Vec::new();
    for (place, bytes) in &seen.0 {
        for c in &canaries {
            if c.allowed.iter().any(|a| place.starts_with(a)) {
                continue;
            }
            if c.forms.iter().any(|f| contains(bytes, f)) {
                leaks.push(format!("{} found in {place}", c.what));
            }
        }
    }
    assert!(leaks.is_empty(), "{backend:?}: {leaks:#?}");
    // The allowed places really carried their secrets (the scan is not vacuous).
    for c in canaries.iter().filter(|c| !c.allowed.is_empty()) {
        let shown = seen.0.iter().any(|(place, bytes)| {
            c.allowed.iter().any(|a| place.starts_with(a)) && contains(bytes, &c.forms[0])
        });
        assert!(shown, "{} was never seen where it is handed out", c.what);
    }
}

#[tokio::test]
async fn canary_provider_keys_pairing_strings_and_tokens_never_leak() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        canary_run(backend, false).await;
    }
}

#[tokio::test]
async fn canary_master_key_never_leaks() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        canary_run(backend, true).await;
    }
}
