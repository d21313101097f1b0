//! The SDK's error type. Messages never contain tokens, proofs or key material.

/// What went wrong talking to the gateway.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("HTTP error: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the gateway refused the request ({status}): {code}: {message}")]
    Gateway {
        status: u16,
        code: String,
        message: String,
    },
    #[error("not a valid pairing string: {0}")]
    Pairing(String),
    #[error("session storage failed: {0}")]
    Storage(String),
    #[error("the stored session is unusable: {0}")]
    Session(String),
    #[error("the consent request was denied by the owner")]
    Denied,
    #[error("the consent request expired before the owner decided")]
    Expired,
}

impl SdkError {
    /// The gateway's error code, if the gateway answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            SdkError::Gateway { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Builds the error from a gateway response body of either shape (OAuth or OpenAI).
    pub(crate) fn from_body(status: u16, body: &[u8]) -> SdkError {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let (code, message) = match &v["error"] {
            serde_json::Value::String(code) => (
                code.clone(),
                v["error_description"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
            obj @ serde_json::Value::Object(_) => (
                obj["code"].as_str().unwrap_or("error").to_string(),
                obj["message"].as_str().unwrap_or_default().to_string(),
            ),
            _ => (
                "error".to_string(),
                String::from_utf8_lossy(body).chars().take(200).collect(),
            ),
        };
        SdkError::Gateway {
            status,
            code,
            message,
        }
    }
}
