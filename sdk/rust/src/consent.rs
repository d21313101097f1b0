//! The consent flow for apps without a pairing string: ask the owner, show the user code and the
//! key fingerprint, poll until the owner decides.

use std::time::Duration;

use pairgate_protocol::keys::SigningKey;
use pairgate_protocol::oauth::{GRANT_TYPE_DEVICE_CODE, TokenResponse};

use crate::client::{oauth_post, session_from};
use crate::{Client, PairOptions, SdkError, Storage};

/// A consent request waiting for the owner.
pub struct PendingConsent {
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    /// The fingerprint of this app's key, as the owner sees it: show it to your user.
    pub key_fingerprint: String,
    pub expires_in: u64,
    pub interval: u64,
    device_code: String,
    gateway_url: String,
    key: SigningKey,
    http: reqwest::Client,
    storage: Box<dyn Storage>,
    nonce: Option<String>,
}

impl std::fmt::Debug for PendingConsent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingConsent")
            .field("user_code", &self.user_code)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Asks the owner of the gateway at `gateway_url` for a grant with `policy`.
    pub async fn request_consent(
        gateway_url: &str,
        app_name: &str,
        policy: &serde_json::Value,
        opts: PairOptions,
        storage: impl Storage,
    ) -> Result<PendingConsent, SdkError> {
        let http = opts.http.clone().unwrap_or_default();
        let key = SigningKey::generate(opts.key_kind, &mut rand_core::OsRng);
        let url = format!(
            "{}/oauth/device_authorization",
            gateway_url.trim_end_matches('/')
        );
        let mut nonce = None;
        let policy_text = policy.to_string();
        let v = oauth_post(
            &http,
            &url,
            &key,
            &[("client_name", app_name), ("policy", &policy_text)],
            &mut nonce,
        )
        .await?;
        let s = |k: &str| {
            v[k].as_str()
                .map(str::to_string)
                .ok_or_else(|| SdkError::Session(format!("missing {k}")))
        };
        Ok(PendingConsent {
            user_code: s("user_code")?,
            verification_uri: s("verification_uri")?,
            verification_uri_complete: s("verification_uri_complete")?,
            key_fingerprint: key.public_key().fingerprint(),
            expires_in: v["expires_in"].as_u64().unwrap_or(0),
            interval: v["interval"].as_u64().unwrap_or(5).max(1),
            device_code: s("device_code")?,
            gateway_url: gateway_url.trim_end_matches('/').to_string(),
            key,
            http,
            storage: Box::new(storage),
            nonce,
        })
    }
}

impl PendingConsent {
    /// Polls once: `Ok(None)` while the owner has not decided.
    pub async fn poll_once(&mut self) -> Result<Option<Client>, SdkError> {
        let url = format!("{}/oauth/token", self.gateway_url);
        let form = [
            ("grant_type", GRANT_TYPE_DEVICE_CODE),
            ("device_code", self.device_code.as_str()),
        ];
        match oauth_post(&self.http, &url, &self.key, &form, &mut self.nonce).await {
            Ok(v) => {
                let t: TokenResponse =
                    serde_json::from_value(v).map_err(|e| SdkError::Session(e.to_string()))?;
                let session = session_from(&self.gateway_url, &self.key, t, self.nonce.clone());
                self.storage.save(&session)?;
                let storage =
                    std::mem::replace(&mut self.storage, Box::new(crate::MemoryStorage::new()));
                Ok(Some(Client::new(
                    self.http.clone(),
                    storage,
                    self.key.clone(),
                    session,
                )))
            }
            Err(e) => match e.code() {
                Some("authorization_pending") => Ok(None),
                Some("slow_down") => {
                    self.interval += 5;
                    Ok(None)
                }
                Some("access_denied") => Err(SdkError::Denied),
                Some("expired_token") => Err(SdkError::Expired),
                _ => Err(e),
            },
        }
    }

    /// Polls at the gateway's interval until the owner approves (or denies, or it expires).
    pub async fn wait(mut self) -> Result<Client, SdkError> {
        loop {
            if let Some(client) = self.poll_once().await? {
                return Ok(client);
            }
            tokio::time::sleep(Duration::from_secs(self.interval)).await;
        }
    }
}
