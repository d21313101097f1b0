//! A `reqwest-middleware` layer, so any client built on `reqwest_middleware::ClientWithMiddleware`
//! (for example an OpenAI client that accepts a custom HTTP client) signs its requests.

use http::Extensions;
use reqwest_middleware::{Middleware, Next};

use crate::Client;
use crate::client::Retry;

/// Signs every request with the paired key; retries once on a nonce challenge.
#[derive(Debug, Clone)]
pub struct PairgateMiddleware {
    client: Client,
}

impl Client {
    /// The middleware for this client.
    pub fn middleware(&self) -> PairgateMiddleware {
        PairgateMiddleware {
            client: self.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Middleware for PairgateMiddleware {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let mut req = req;
        for attempt in 0..2 {
            let copy = req.try_clone();
            self.client.sign_request(&mut req);
            let res = next.clone().run(req, extensions).await?;
            match (self.client.observe(&res), copy, attempt) {
                (Retry::Nonce, Some(c), 0) => req = c,
                (Retry::Refresh, Some(c), 0) => {
                    self.client
                        .refresh()
                        .await
                        .map_err(|e| reqwest_middleware::Error::Middleware(anyhow::anyhow!(e)))?;
                    req = c;
                }
                _ => return Ok(res),
            }
        }
        Err(reqwest_middleware::Error::Middleware(anyhow::anyhow!(
            "retry budget exhausted"
        )))
    }
}
