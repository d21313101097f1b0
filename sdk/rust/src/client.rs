//! The signing client: pairs once, then signs every request with the app's own key, refreshing
//! tokens before they expire and retrying once when the gateway asks for a fresh nonce.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use pairgate_protocol::dpop::{ProofInput, create_proof, new_jti};
use pairgate_protocol::error::codes;
use pairgate_protocol::keys::{KeyKind, SigningKey};
use pairgate_protocol::oauth::{GRANT_TYPE_PAIRING, GRANT_TYPE_REFRESH, TokenResponse};
use pairgate_protocol::pairing::PairingString;
use reqwest::{Method, StatusCode};

use crate::{SdkError, Storage, StoredSession};

/// Refresh the access token when it has less than this many seconds left.
const REFRESH_MARGIN_SECS: i64 = 30;

/// How to pair.
#[derive(Debug, Clone)]
pub struct PairOptions {
    /// The key type to generate (Ed25519 unless the platform needs P-256).
    pub key_kind: KeyKind,
    /// The name the owner sees for this app.
    pub app_name: Option<String>,
    /// A preconfigured HTTP client (timeouts, proxies); a default one otherwise.
    pub http: Option<reqwest::Client>,
    /// Use this gateway URL instead of the one in the pairing string.
    pub gateway_url: Option<String>,
}

impl Default for PairOptions {
    fn default() -> Self {
        PairOptions {
            key_kind: KeyKind::Ed25519,
            app_name: None,
            http: None,
            gateway_url: None,
        }
    }
}

struct State {
    key: SigningKey,
    session: StoredSession,
}

struct Inner {
    http: reqwest::Client,
    storage: Box<dyn Storage>,
    state: Mutex<State>,
    refresh_lock: tokio::sync::Mutex<()>,
}

/// A paired app's client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("grant_id", &self.grant_id())
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn join(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

/// Signs a proof for one request.
pub(crate) fn sign(
    key: &SigningKey,
    method: &str,
    url: &str,
    token: Option<&str>,
    nonce: Option<&str>,
    body: &[u8],
) -> String {
    let jti = new_jti(&mut rand_core::OsRng);
    create_proof(
        key,
        &ProofInput {
            htm: method,
            htu: url,
            iat: now_secs(),
            jti: &jti,
            access_token: token,
            nonce,
            body: Some(body),
        },
    )
}

/// A POST to an OAuth endpoint, with a proof by `key`, retried once with a server nonce.
pub(crate) async fn oauth_post(
    http: &reqwest::Client,
    url: &str,
    key: &SigningKey,
    form: &[(&str, &str)],
    nonce: &mut Option<String>,
) -> Result<serde_json::Value, SdkError> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    for attempt in 0..2 {
        let proof = sign(key, "POST", url, None, nonce.as_deref(), body.as_bytes());
        let res = http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("dpop", proof)
            .body(body.clone())
            .send()
            .await?;
        if let Some(n) = res
            .headers()
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
        {
            *nonce = Some(n.to_string());
        }
        let status = res.status();
        let bytes = res.bytes().await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| SdkError::Session(format!("unexpected answer: {e}")));
        }
        let err = SdkError::from_body(status.as_u16(), &bytes);
        if attempt == 0 && err.code() == Some(codes::USE_DPOP_NONCE) && nonce.is_some() {
            continue;
        }
        return Err(err);
    }
    Err(SdkError::Session(
        "the gateway kept asking for a new nonce".into(),
    ))
}

pub(crate) fn session_from(
    gateway_url: &str,
    key: &SigningKey,
    t: TokenResponse,
    nonce: Option<String>,
) -> StoredSession {
    StoredSession {
        gateway_url: gateway_url.trim_end_matches('/').to_string(),
        private_jwk: key.to_private_jwk(),
        access_token: t.access_token,
        refresh_token: t.refresh_token,
        expires_at: now_secs() + t.expires_in as i64,
        grant_id: t.grant_id,
        nonce,
    }
}

fn token_response(v: serde_json::Value) -> Result<TokenResponse, SdkError> {
    serde_json::from_value(v)
        .map_err(|e| SdkError::Session(format!("unexpected token response: {e}")))
}

impl Client {
    /// Redeems a pairing string: generates a key pair here, binds it to a new grant.
    pub async fn pair(
        pairing_string: &str,
        opts: PairOptions,
        storage: impl Storage,
    ) -> Result<Client, SdkError> {
        let parsed =
            PairingString::parse(pairing_string).map_err(|e| SdkError::Pairing(e.to_string()))?;
        let gateway = opts
            .gateway_url
            .clone()
            .unwrap_or(parsed.gateway_url.clone());
        let http = opts.http.clone().unwrap_or_default();
        let key = SigningKey::generate(opts.key_kind, &mut rand_core::OsRng);
        let mut nonce = None;
        let mut form = vec![
            ("grant_type", GRANT_TYPE_PAIRING),
            ("pairing_code", pairing_string.trim()),
        ];
        if let Some(name) = &opts.app_name {
            form.push(("client_name", name));
        }
        let t = token_response(
            oauth_post(
                &http,
                &join(&gateway, "/oauth/token"),
                &key,
                &form,
                &mut nonce,
            )
            .await?,
        )?;
        let session = session_from(&gateway, &key, t, nonce);
        storage.save(&session)?;
        Ok(Client::new(http, Box::new(storage), key, session))
    }

    /// Resumes a session saved by an earlier run, if there is one.
    pub fn from_storage(
        storage: impl Storage,
        opts: PairOptions,
    ) -> Result<Option<Client>, SdkError> {
        let Some(session) = storage.load()? else {
            return Ok(None);
        };
        let key = SigningKey::from_private_jwk(&session.private_jwk)
            .map_err(|e| SdkError::Session(e.to_string()))?;
        Ok(Some(Client::new(
            opts.http.unwrap_or_default(),
            Box::new(storage),
            key,
            session,
        )))
    }

    pub(crate) fn new(
        http: reqwest::Client,
        storage: Box<dyn Storage>,
        key: SigningKey,
        session: StoredSession,
    ) -> Client {
        Client {
            inner: Arc::new(Inner {
                http,
                storage,
                state: Mutex::new(State { key, session }),
                refresh_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut s = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }

    pub fn grant_id(&self) -> String {
        self.with(|s| s.session.grant_id.clone())
    }

    pub fn gateway_url(&self) -> String {
        self.with(|s| s.session.gateway_url.clone())
    }

    /// RFC 7638 thumbprint of the app's current key.
    pub fn key_thumbprint(&self) -> String {
        self.with(|s| s.key.public_key().thumbprint())
    }

    /// The short fingerprint the owner sees for this app's key.
    pub fn key_fingerprint(&self) -> String {
        self.with(|s| s.key.public_key().fingerprint())
    }

    /// The underlying HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// Exchanges the refresh token for a new token pair now.
    pub async fn refresh(&self) -> Result<(), SdkError> {
        let _guard = self.inner.refresh_lock.lock().await;
        let shared = self.inner.storage.lock_for_refresh()?;
        if shared.is_some()
            && self.adopt_stored()?
            && self.with(|s| s.session.expires_at) - now_secs() >= REFRESH_MARGIN_SECS
        {
            return Ok(());
        }
        let (key, gateway, refresh, mut nonce) = self.with(|s| {
            (
                s.key.clone(),
                s.session.gateway_url.clone(),
                s.session.refresh_token.clone(),
                s.session.nonce.clone(),
            )
        });
        let refresh =
            refresh.ok_or_else(|| SdkError::Session("no refresh token; pair again".into()))?;
        let form = [
            ("grant_type", GRANT_TYPE_REFRESH),
            ("refresh_token", refresh.as_str()),
        ];
        let t = token_response(
            oauth_post(
                &self.inner.http,
                &join(&gateway, "/oauth/token"),
                &key,
                &form,
                &mut nonce,
            )
            .await?,
        )?;
        let session = session_from(&gateway, &key, t, nonce);
        self.inner.storage.save(&session)?;
        self.with(|s| s.session = session);
        Ok(())
    }

    /// Takes the stored session when another process sharing the storage refreshed since this
    /// one last did (same grant and key, a later expiry): its tokens are the live ones, and its
    /// refresh token the only one that still works.
    fn adopt_stored(&self) -> Result<bool, SdkError> {
        let Some(stored) = self.inner.storage.load()? else {
            return Ok(false);
        };
        Ok(self.with(|s| {
            // Refreshes take turns under the storage's lock and each saves what it got, so a
            // stored refresh token other than ours is the newer one (two refreshes within one
            // second have the same `expires_at`: comparing times alone would keep a spent token).
            let newer = stored.grant_id == s.session.grant_id
                && stored.private_jwk == s.session.private_jwk
                && (stored.refresh_token != s.session.refresh_token
                    || stored.expires_at > s.session.expires_at);
            if newer {
                s.session = stored;
            }
            newer
        }))
    }

    async fn ensure_fresh(&self) -> Result<(), SdkError> {
        let expires = self.with(|s| s.session.expires_at);
        if expires - now_secs() < REFRESH_MARGIN_SECS {
            self.refresh().await?;
        }
        Ok(())
    }

    /// Adds `Authorization: DPoP` and a fresh proof (binding method, URL, token and body).
    pub fn sign_request(&self, req: &mut reqwest::Request) {
        let body = req
            .body()
            .and_then(|b| b.as_bytes())
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let method = req.method().as_str().to_string();
        let url = req.url().as_str().to_string();
        let (token, proof) = self.with(|s| {
            let token = s.session.access_token.clone();
            let proof = sign(
                &s.key,
                &method,
                &url,
                Some(&token),
                s.session.nonce.as_deref(),
                &body,
            );
            (token, proof)
        });
        let h = req.headers_mut();
        if let Ok(v) = http::HeaderValue::from_str(&format!("DPoP {token}")) {
            h.insert(http::header::AUTHORIZATION, v);
        }
        if let Ok(v) = http::HeaderValue::from_str(&proof) {
            h.insert("dpop", v);
        }
    }

    /// Records a nonce the gateway sent; true if the response asks to retry with it.
    pub(crate) fn observe(&self, res: &reqwest::Response) -> Retry {
        if let Some(n) = res
            .headers()
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
        {
            let n = n.to_string();
            self.with(|s| s.session.nonce = Some(n));
        }
        let challenge = res
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if res.status() == StatusCode::UNAUTHORIZED && challenge.contains("use_dpop_nonce") {
            Retry::Nonce
        } else if res.status() == StatusCode::UNAUTHORIZED
            && challenge.contains("invalid_token")
            && challenge.contains("expired")
        {
            Retry::Refresh
        } else {
            Retry::No
        }
    }

    /// Signs and sends a request; refreshes first when the token is about to expire, and retries
    /// once on a nonce challenge or an expired token. Returns the gateway's response as is.
    pub async fn send(&self, req: reqwest::Request) -> Result<reqwest::Response, SdkError> {
        self.ensure_fresh().await?;
        let mut req = req;
        for attempt in 0..2 {
            let retry_copy = req.try_clone();
            self.sign_request(&mut req);
            let res = self.inner.http.execute(req).await?;
            let retry = self.observe(&res);
            match (retry, retry_copy, attempt) {
                (Retry::Nonce, Some(copy), 0) => req = copy,
                (Retry::Refresh, Some(copy), 0) => {
                    self.refresh().await?;
                    req = copy;
                }
                _ => return Ok(res),
            }
        }
        Err(SdkError::Session("retry budget exhausted".into()))
    }

    /// Starts a request to a gateway path, e.g. `/v1/chat/completions`.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            inner: self
                .inner
                .http
                .request(method, join(&self.gateway_url(), path)),
        }
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    /// Moves the grant to a freshly generated key, proving possession of both keys.
    pub async fn rotate_key(&self, kind: KeyKind) -> Result<(), SdkError> {
        self.ensure_fresh().await?;
        let new_key = SigningKey::generate(kind, &mut rand_core::OsRng);
        let url = join(&self.gateway_url(), "/v1/grant/rotate-key");
        let (old_key, token, mut nonce) = self.with(|s| {
            (
                s.key.clone(),
                s.session.access_token.clone(),
                s.session.nonce.clone(),
            )
        });
        for attempt in 0..2 {
            let old = sign(&old_key, "POST", &url, Some(&token), nonce.as_deref(), b"");
            let new = sign(&new_key, "POST", &url, Some(&token), nonce.as_deref(), b"");
            let res = self
                .inner
                .http
                .post(&url)
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", old)
                .header("new-dpop", new)
                .send()
                .await?;
            if let Some(n) = res
                .headers()
                .get("dpop-nonce")
                .and_then(|v| v.to_str().ok())
            {
                nonce = Some(n.to_string());
            }
            let status = res.status();
            let bytes = res.bytes().await?;
            if status.is_success() {
                let t = token_response(
                    serde_json::from_slice(&bytes).map_err(|e| SdkError::Session(e.to_string()))?,
                )?;
                let session = session_from(&self.gateway_url(), &new_key, t, nonce);
                self.inner.storage.save(&session)?;
                self.with(|s| {
                    s.key = new_key;
                    s.session = session;
                });
                return Ok(());
            }
            let err = SdkError::from_body(status.as_u16(), &bytes);
            if !(attempt == 0 && err.code() == Some(codes::USE_DPOP_NONCE)) {
                return Err(err);
            }
        }
        Err(SdkError::Session(
            "the gateway kept asking for a new nonce".into(),
        ))
    }
}

/// What to do after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    No,
    Nonce,
    Refresh,
}

/// A request being built; `send` signs it.
#[derive(Debug)]
pub struct RequestBuilder {
    client: Client,
    inner: reqwest::RequestBuilder,
}

impl RequestBuilder {
    pub fn json<T: serde::Serialize + ?Sized>(mut self, body: &T) -> RequestBuilder {
        self.inner = self.inner.json(body);
        self
    }

    pub fn body(mut self, body: impl Into<reqwest::Body>) -> RequestBuilder {
        self.inner = self.inner.body(body);
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> RequestBuilder {
        self.inner = self.inner.header(name, value);
        self
    }

    pub async fn send(self) -> Result<reqwest::Response, SdkError> {
        let req = self.inner.build()?;
        self.client.send(req).await
    }
}
