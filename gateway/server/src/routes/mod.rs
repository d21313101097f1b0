//! The router: which routes exist, which are open, and the middleware every request passes.
//!
//! Routes are closed by default. [`OPEN_ROUTES`] lists the only paths reachable without proof of
//! possession or an owner session; a test walks the router and fails on any other open path.

mod health;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::{HeaderName, Request};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use crate::state::AppState;

/// The request id header set on every request (or kept, if the client sent a sane one) and
/// echoed on every response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Paths reachable without authentication.
pub const OPEN_ROUTES: &[&str] = &["/healthz", "/readyz"];

/// Builds the whole application.
pub fn app(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let open = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    open.with_state(state)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
                })
                .on_response(|res: &http::Response<_>, latency: Duration, _span: &tracing::Span| {
                    tracing::info!(status = res.status().as_u16(), latency_us = latency.as_micros() as u64, "response");
                }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, NewRequestId))
}

/// Generates request ids: 128 random bits, hex. A client-sent id is kept only if it is short
/// and plain, so it cannot smuggle anything into logs.
#[derive(Debug, Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let bytes: [u8; 16] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        http::HeaderValue::from_str(&format!("req_{hex}"))
            .ok()
            .map(RequestId::new)
    }
}
