//! Test helpers for acting as an app: pairing through the owner CLI and the Rust SDK, and
//! hand-crafting proofs (good and deliberately bad) with the protocol crate.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pairgate_protocol::keys::{KeyKind, SigningKey};
use pairgate_sdk::{Client, MemoryStorage, PairOptions};
use serde_json::{Value, json};

use crate::Gateway;
use crate::gateway::run_cli;

/// Creates a pairing with the owner CLI; returns the pairing string.
pub async fn pairing_string(gw: &Gateway, extra: &[&str]) -> String {
    let mut args = vec!["pair", "create", "--app", "test app"];
    args.extend_from_slice(extra);
    let (code, out, err) = run_cli(gw, &args, None).await;
    assert_eq!(code, 0, "pair create failed: {err}");
    out.trim().to_string()
}

/// Pairs a new app through the SDK.
pub async fn pair(gw: &Gateway, kind: KeyKind, extra: &[&str]) -> Client {
    let s = pairing_string(gw, extra).await;
    Client::pair(
        &s,
        PairOptions {
            key_kind: kind,
            ..Default::default()
        },
        MemoryStorage::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("pairing failed: {e}"))
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Signs an arbitrary header and claims set (for malformed proofs).
pub fn craft(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let sig = key.sign(format!("{h}.{c}").as_bytes());
    format!("{h}.{c}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// The standard header for a key.
pub fn header(key: &SigningKey) -> Value {
    json!({ "typ": "dpop+jwt", "alg": key.default_alg().as_str(), "jwk": key.public_key().to_jwk() })
}

/// Standard claims for a request.
pub fn claims(method: &str, url: &str, token: Option<&str>) -> Value {
    let mut c = json!({ "jti": crate::app::jti(), "htm": method, "htu": url, "iat": now() });
    if let Some(t) = token {
        c["ath"] = pairgate_protocol::dpop::access_token_hash(t).into();
    }
    c
}

pub fn jti() -> String {
    pairgate_protocol::dpop::new_jti(&mut rand_core::OsRng)
}

pub fn key(kind: KeyKind) -> SigningKey {
    SigningKey::generate(kind, &mut rand_core::OsRng)
}

/// A paired app done by hand (no SDK): its key and token response.
#[derive(Debug)]
pub struct RawApp {
    pub key: SigningKey,
    pub access_token: String,
    pub refresh_token: String,
    pub grant_id: String,
}

/// Posts a form to an OAuth endpoint with the given proof (or none).
pub async fn oauth_post(
    gw: &Gateway,
    path: &str,
    form: &[(&str, &str)],
    proof: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let body = serde_urlencoded_like(form);
    let mut req = reqwest::Client::new()
        .post(gw.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, res.json().await.unwrap_or(Value::Null), headers)
}

fn serde_urlencoded_like(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A valid proof for a request.
pub fn proof(
    key: &SigningKey,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> String {
    let jti = jti();
    pairgate_protocol::dpop::create_proof(
        key,
        &pairgate_protocol::dpop::ProofInput {
            htm: method,
            htu: url,
            iat: now(),
            jti: &jti,
            access_token: token,
            nonce: None,
            body,
        },
    )
}

/// Pairs by hand: creates a pairing with the CLI and redeems it with a raw token request.
pub async fn raw_pair(gw: &Gateway, kind: KeyKind, extra: &[&str]) -> RawApp {
    let code = pairing_string(gw, extra).await;
    let key = key(kind);
    let p = proof(&key, "POST", &gw.url("/oauth/token"), None, None);
    let (status, body, _) = oauth_post(
        gw,
        "/oauth/token",
        &[
            ("grant_type", pairgate_protocol::oauth::GRANT_TYPE_PAIRING),
            ("pairing_code", &code),
        ],
        Some(&p),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    RawApp {
        key,
        access_token: body["access_token"].as_str().unwrap().to_string(),
        refresh_token: body["refresh_token"].as_str().unwrap().to_string(),
        grant_id: body["grant_id"].as_str().unwrap().to_string(),
    }
}

/// Calls an app route with explicit headers; returns status, body and headers.
pub async fn call(
    gw: &Gateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = reqwest::Client::new().request(m, gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b.to_vec());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, res.json().await.unwrap_or(Value::Null), headers)
}
