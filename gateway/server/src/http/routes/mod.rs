//! The router: which routes exist, which are open, and the middleware every request passes.
//!
//! Routes are closed by default. [`OPEN_ROUTES`] lists the only paths reachable without proof of
//! possession or an owner session; a test walks the router and fails on any other open path.

pub mod admin;
pub mod api_types;
pub mod app;
mod body_timeout;
pub mod client_ip;
pub mod console;
pub mod health;
pub mod oauth;
pub mod passkeys;
pub mod plugins;
pub mod ui;
pub mod v1;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{MethodRouter, get, post, put};
use http::Request;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use crate::base::ids::REQUEST_ID;
use crate::state::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, discovery, and the OAuth endpoints (which check proofs themselves).
    Open,
    /// A paired app: DPoP-bound access token plus proof (the `AppRequest` extractor).
    App,
    /// The owner: a session cookie plus CSRF token on state-changing requests.
    Owner,
    /// A metrics scraper with the `metrics.token` bearer token (`/metrics`; not served on this
    /// listener when no token is configured or the metrics have their own listener).
    Metrics,
}

/// One row of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

/// Paths reachable without authentication. Anything else must be `App`, `Owner` or `Metrics`,
/// which the route-enumeration test checks by calling every route without credentials.
pub const OPEN_ROUTES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/.well-known/oauth-authorization-server",
    oauth::TOKEN_PATH,
    oauth::DEVICE_PATH,
    "/admin/api/setup",
    "/admin/api/login",
    "/admin/api/login/passkey/start",
    "/admin/api/login/passkey/finish",
    "/admin/api/login/passkey/options",
    "/admin",
    "/admin/",
    "/admin/setup",
    "/admin/consent",
    "/admin/assets/{*path}",
    "/favicon.ico",
];

/// Builds the router and the table describing it, from one list.
struct Table {
    routes: Vec<(&'static str, MethodRouter<AppState>)>,
    rows: Vec<RouteInfo>,
}

impl Table {
    /// Adds one method on one path (several methods on a path are merged).
    fn add(
        mut self,
        access: Access,
        method: &'static str,
        path: &'static str,
        handler: MethodRouter<AppState>,
    ) -> Table {
        match self.routes.iter().position(|(p, _)| *p == path) {
            Some(i) => {
                let (_, existing) = self.routes.remove(i);
                self.routes.insert(i, (path, existing.merge(handler)));
            }
            None => self.routes.push((path, handler)),
        }
        self.rows.push(RouteInfo {
            method,
            path,
            access,
        });
        self
    }

    fn router(self) -> Router<AppState> {
        self.routes
            .into_iter()
            .fold(Router::new(), |r, (path, handler)| r.route(path, handler))
    }
}

fn table() -> Table {
    use Access::*;
    Table {
        routes: Vec::new(),
        rows: Vec::new(),
    }
    .add(Open, "GET", "/healthz", get(health::healthz))
    .add(Open, "GET", "/readyz", get(health::readyz))
    .add(
        Open,
        "GET",
        "/.well-known/oauth-authorization-server",
        get(oauth::metadata),
    )
    .add(Open, "POST", oauth::TOKEN_PATH, post(oauth::token))
    .add(
        Open,
        "POST",
        oauth::DEVICE_PATH,
        post(oauth::device_authorization),
    )
    .add(App, "GET", "/v1/grant", get(app::grant))
    .add(App, "POST", app::ROTATE_PATH, post(app::rotate_key))
    .add(App, "POST", "/v1/chat/completions", post(v1::chat))
    .add(App, "POST", "/v1/embeddings", post(v1::embeddings))
    .add(
        App,
        "POST",
        "/v1/messages",
        post(v1::messages).layer(axum::middleware::from_fn(v1::anthropic_errors)),
    )
    .add(
        App,
        "POST",
        "/v1/messages/count_tokens",
        post(v1::count_tokens).layer(axum::middleware::from_fn(v1::anthropic_errors)),
    )
    .add(App, "POST", "/v1/responses", post(v1::responses))
    .add(App, "GET", "/v1/models", get(v1::models))
    .add(App, "GET", "/v1/models/{*id}", get(v1::model))
    .add(App, "POST", "/r/{resource}/{*rest}", post(v1::resource))
    .add(App, "GET", "/r/{resource}/{*rest}", get(v1::resource))
    .add(Metrics, "GET", "/metrics", get(health::metrics))
    .add(Open, "POST", "/admin/api/setup", post(admin::setup))
    .add(Open, "POST", "/admin/api/login", post(admin::login))
    .add(Owner, "GET", "/admin/api/session", get(admin::session))
    .add(Owner, "POST", "/admin/api/logout", post(admin::logout))
    .add(Owner, "GET", "/admin/api/sessions", get(admin::sessions))
    .add(
        Owner,
        "POST",
        "/admin/api/sessions/revoke-all",
        post(admin::revoke_sessions),
    )
    .add(Owner, "GET", "/admin/api/grants", get(admin::grants))
    .add(Owner, "GET", "/admin/api/grants/{id}", get(admin::grant))
    .add(
        Owner,
        "POST",
        "/admin/api/grants/{id}/{action}",
        post(admin::grant_action),
    )
    .add(
        Owner,
        "PUT",
        "/admin/api/grants/{id}/policy",
        put(admin::edit_policy),
    )
    .add(
        Owner,
        "POST",
        "/admin/api/grants/{id}/bearer",
        post(admin::issue_bearer),
    )
    .add(
        Owner,
        "POST",
        "/admin/api/grants/{id}/bearer/revoke",
        post(admin::revoke_bearer),
    )
    .add(Owner, "GET", "/admin/api/pairings", get(admin::pairings))
    .add(
        Owner,
        "POST",
        "/admin/api/pairings",
        post(admin::create_pairing),
    )
    .add(
        Owner,
        "POST",
        "/admin/api/pairings/{id}/cancel",
        post(admin::cancel_pairing),
    )
    .add(Owner, "GET", "/admin/api/consents", get(admin::consents))
    .add(
        Owner,
        "POST",
        "/admin/api/consents/{user_code}/approve",
        post(admin::approve),
    )
    .add(
        Owner,
        "POST",
        "/admin/api/consents/{user_code}/deny",
        post(admin::deny),
    )
    .add(Owner, "GET", "/admin/api/audit", get(admin::audit))
    .merge_passkeys()
    .merge_console()
}

impl Table {
    /// The owner's passkeys: the two open sign-in routes and the owner-only management routes.
    fn merge_passkeys(self) -> Table {
        use Access::*;
        self.add(
            Open,
            "GET",
            "/admin/api/login/passkey/options",
            get(passkeys::login_options),
        )
        .add(
            Open,
            "POST",
            "/admin/api/login/passkey/start",
            post(passkeys::login_start),
        )
        .add(
            Open,
            "POST",
            "/admin/api/login/passkey/finish",
            post(passkeys::login_finish),
        )
        .add(Owner, "GET", "/admin/api/passkeys", get(passkeys::list))
        .add(
            Owner,
            "POST",
            "/admin/api/passkeys/register/start",
            post(passkeys::register_start),
        )
        .add(
            Owner,
            "POST",
            "/admin/api/passkeys/register/finish",
            post(passkeys::register_finish),
        )
        .add(
            Owner,
            "POST",
            "/admin/api/passkeys/require",
            post(passkeys::require),
        )
        .add(
            Owner,
            "POST",
            "/admin/api/passkeys/{id}/delete",
            post(passkeys::remove),
        )
    }

    /// The admin console: its static files (open) and its own owner-only routes (`console.rs`).
    fn merge_console(self) -> Table {
        use Access::*;
        self.add(Open, "GET", "/admin", get(ui::root))
            .add(Open, "GET", "/admin/", get(ui::page))
            .add(Open, "GET", "/admin/setup", get(ui::page))
            .add(Open, "GET", "/admin/consent", get(ui::page))
            .add(Open, "GET", "/admin/assets/{*path}", get(ui::asset))
            .add(Open, "GET", "/favicon.ico", get(ui::favicon))
            .add(Owner, "GET", "/admin/api/overview", get(console::overview))
            .add(
                Owner,
                "GET",
                "/admin/api/credentials",
                get(console::credentials),
            )
            .add(
                Owner,
                "POST",
                "/admin/api/credentials",
                post(console::add_credential),
            )
            .add(
                Owner,
                "POST",
                "/admin/api/credentials/{id}/rotate",
                post(console::rotate_credential),
            )
            .add(
                Owner,
                "POST",
                "/admin/api/credentials/{id}/check",
                post(console::check_credential),
            )
            .add(
                Owner,
                "POST",
                "/admin/api/credentials/{id}/delete",
                post(console::delete_credential),
            )
            .add(Owner, "GET", "/admin/api/plugins", get(plugins::plugins))
            .add(
                Owner,
                "POST",
                "/admin/api/providers/{id}/hosts/{action}",
                post(plugins::host_action),
            )
            .add(Owner, "GET", "/admin/api/prices", get(plugins::prices))
            .add(
                Owner,
                "PUT",
                "/admin/api/providers/{id}/prices",
                put(plugins::set_prices),
            )
            .add(Owner, "GET", "/admin/api/models", get(console::models))
            .add(
                Owner,
                "GET",
                "/admin/api/usage/rollup",
                get(console::usage_rollup),
            )
            .add(
                Owner,
                "GET",
                "/admin/api/usage/requests",
                get(console::usage_requests),
            )
            .add(
                Owner,
                "GET",
                "/admin/api/usage/export.csv",
                get(console::usage_csv),
            )
            .add(
                Owner,
                "GET",
                "/admin/api/grants/{id}/remaining",
                get(console::grant_remaining),
            )
            .add(Owner, "POST", "/admin/api/qr", post(console::qr))
    }
}

/// Every route with its access class.
pub fn route_table() -> Vec<RouteInfo> {
    table().rows
}

/// With server nonces on, every answer of an app route (`/v1/...`, `/r/...`) carries the nonce
/// the app's next proof should use (RFC 9449 §8.2), so a well-behaved app never needs a retry.
async fn next_nonce(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let app_route = {
        let path = req.uri().path();
        path.starts_with("/v1/") || path.starts_with("/r/")
    };
    let mut res = next.run(req).await;
    if app_route
        && state.config.dpop_require_nonce
        && !res.headers().contains_key("dpop-nonce")
        && let Ok(v) = http::HeaderValue::from_str(&crate::domain::proof::current_nonce(
            &state,
            crate::base::clock::now_ms(),
        ))
    {
        res.headers_mut().insert("dpop-nonce", v);
    }
    res
}

/// Builds the whole application.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let max_in_flight = state.config.max_in_flight_requests;
    let body_read_timeout = state.config.body_read_timeout;
    table()
        .router()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            next_nonce,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            client_ip::resolve,
        ))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(tokio::sync::Semaphore::new(max_in_flight)),
            shed_load,
        ))
        .layer(axum::middleware::from_fn_with_state(
            body_read_timeout,
            body_timeout::limit_body_time,
        ))
        .layer(axum::middleware::from_fn(record_metrics))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body))
        .layer(axum::middleware::from_fn_with_state(
            max_body,
            crate::base::error::refuse_declared_oversize,
        ))
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
        .layer(tower::util::MapRequestLayer::new(drop_client_request_id))
}

/// Sheds load: at most `max_in_flight_requests` requests are handled at once; one more is
/// refused at once with `503 overloaded` instead of queueing (which under overload grows memory
/// without bound). Health and metrics routes are never shed.
async fn shed_load(
    axum::extract::State(gate): axum::extract::State<Arc<tokio::sync::Semaphore>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics") {
        return next.run(req).await;
    }
    match gate.try_acquire_owned() {
        Ok(permit) => {
            let res = next.run(req).await;
            drop(permit);
            res
        }
        Err(_) => {
            use axum::response::IntoResponse;
            crate::base::error::ApiError::Degraded {
                code: "overloaded",
                message: "the gateway is handling as many requests as it is configured to; retry \
                          shortly"
                    .into(),
            }
            .into_response()
        }
    }
}

/// Removes a client-sent `x-request-id`, so [`NewRequestId`] names every request.
fn drop_client_request_id<B>(mut req: Request<B>) -> Request<B> {
    req.headers_mut().remove(REQUEST_ID);
    req
}

/// Counts every request by route template (never the raw path) and status class, and every
/// error by code.
async fn record_metrics(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", |p| p.as_str());
    crate::base::metrics::request(route, res.status().as_u16(), started.elapsed());
    res
}

/// Generates request ids ([`crate::base::ids::new_request_id`]: unique, so each names one
/// usage-ledger row, and in the order they were made).
#[derive(Debug, Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let id = crate::base::ids::new_request_id(crate::base::clock::now_ms());
        http::HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}
