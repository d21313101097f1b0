//! A loopback signing proxy: for OpenAI clients that take only a base URL and an HTTP client they
//! build themselves (e.g. `async-openai`), point the client at `http://127.0.0.1:PORT/v1`; every
//! request is signed with the paired key and forwarded to the gateway, answers (streams included)
//! come back chunk by chunk. It listens on loopback only; any local process can use it, so it
//! suits a single-user machine (the localhost-broker pattern). The grant's limits still apply.

use std::net::SocketAddr;

use crate::{Client, SdkError};

/// A running proxy.
#[derive(Debug)]
pub struct LocalProxy {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl LocalProxy {
    /// The base URL to give an OpenAI client.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Stops the proxy.
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for LocalProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Client {
    /// Starts a signing proxy on `127.0.0.1:port` (0 picks a free port).
    pub async fn serve_local_proxy(&self, port: u16) -> Result<LocalProxy, SdkError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| SdkError::Session(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| SdkError::Session(e.to_string()))?;
        let client = self.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let client = client.clone();
            async move { forward(&client, req).await }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(LocalProxy { addr, task })
    }
}

async fn forward(client: &Client, req: axum::extract::Request) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return (
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        )
            .into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut builder = client.http().request(
        parts.method.clone(),
        format!("{}{path}", client.gateway_url()),
    );
    for (name, value) in &parts.headers {
        // The proxy authenticates; whatever the local client sent as a key is dropped.
        if !matches!(
            name.as_str(),
            "host" | "authorization" | "dpop" | "content-length" | "connection"
        ) {
            builder = builder.header(name, value);
        }
    }
    let Ok(request) = builder.body(body).build() else {
        return (http::StatusCode::BAD_REQUEST, "malformed request").into_response();
    };
    match client.send(request).await {
        Ok(res) => {
            let mut out = axum::response::Response::builder().status(res.status());
            for (name, value) in res.headers() {
                if !matches!(
                    name.as_str(),
                    "content-length" | "transfer-encoding" | "connection"
                ) {
                    out = out.header(name, value);
                }
            }
            out.body(axum::body::Body::from_stream(res.bytes_stream()))
                .unwrap_or_else(|_| (http::StatusCode::BAD_GATEWAY, "bad answer").into_response())
        }
        Err(e) => (http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
