//! One relayed request's bookkeeping, whatever route it came by: its [`Meter`] (what its ledger
//! row will say) from the start, and once admitted its [`Exchange`]: the state, the provider,
//! the admission and the meter as one value, with one way to send, one way to fail and one way
//! to finish. Every exit writes exactly one ledger row and settles or releases the reservation in
//! the same commit (the ledger's group commit); a request refused before admission has only its
//! row ([`refuse`]).

use std::sync::Arc;
use std::time::Instant;

use axum::response::{IntoResponse, Response};
use pairgate_plugin_host::{PrepareRequest, UpstreamCall};
use pairgate_policy::limits::{Prices, Usage, cost_micros};

use super::errors::send_error;
use super::plugin::plugin_prepare;
use super::upstream::{self, Redactor, SendError};
use crate::base::error::ApiError;
use crate::domain::grants::AppRequest;
use crate::engine::ledger::LedgerRow;
use crate::engine::limits::Admission;
use crate::engine::providers::Provider;
use crate::state::AppState;

/// What is known about a request while it is in flight, for its ledger row.
#[derive(Debug, Clone)]
pub struct Meter {
    pub request_id: String,
    pub grant_id: String,
    pub app_name: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub endpoint: String,
    pub started: Instant,
    pub upstream_ms: Option<i64>,
    pub prices: Option<Prices>,
    /// Keeps the request counted in `pairgate_relay_in_flight` while any copy lives.
    pub in_flight: std::sync::Arc<crate::base::metrics::InFlight>,
}

impl Meter {
    pub fn new(req: &AppRequest, endpoint: &str) -> Meter {
        Meter {
            request_id: req.request_id.clone(),
            grant_id: req.grant.row.id.clone(),
            app_name: req.grant.row.app_name.clone(),
            provider: None,
            model: None,
            endpoint: endpoint.to_string(),
            started: Instant::now(),
            upstream_ms: None,
            prices: None,
            in_flight: std::sync::Arc::new(crate::base::metrics::InFlight::start()),
        }
    }

    /// What `usage` costs at this request's prices (0 when unpriced).
    pub fn cost(&self, usage: &Usage) -> u64 {
        self.prices
            .as_ref()
            .map(|p| cost_micros(p, usage))
            .unwrap_or(0)
    }

    /// The ledger row for an outcome.
    pub fn row(
        &self,
        status: u16,
        usage: Usage,
        estimated: bool,
        error_code: Option<String>,
    ) -> LedgerRow {
        LedgerRow {
            request_id: self.request_id.clone(),
            grant_id: Some(self.grant_id.clone()),
            app_name: Some(self.app_name.clone()),
            provider: self.provider.clone(),
            model: self.model.clone(),
            endpoint: self.endpoint.clone(),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cached_tokens: usage.cached_tokens,
            cost_micros: self.cost(&usage),
            estimated,
            status,
            error_code,
            upstream_ms: self.upstream_ms,
            total_ms: self.started.elapsed().as_millis() as i64,
            created_at: crate::base::clock::now_ms(),
        }
    }
}

/// Ends a request refused before admission held anything: its ledger row, then the error.
pub async fn refuse(state: &AppState, meter: &Meter, e: ApiError) -> Response {
    let row = meter.row(
        e.status().as_u16(),
        Usage::default(),
        false,
        Some(e.code().to_string()),
    );
    state.ledger.record_committed(row).await;
    e.into_response()
}

/// Runs a relayed request in its own task. The server drops a handler's future when its client
/// hangs up; the request must still settle its reservation and write its ledger row, so it
/// finishes on its own (a stream's pump notices the client is gone and cancels upstream).
pub async fn detached(
    request: impl std::future::Future<Output = Response> + Send + 'static,
) -> Response {
    match tokio::spawn(request).await {
        Ok(res) => res,
        Err(e) => ApiError::Internal(anyhow::anyhow!("relay task failed: {e}")).into_response(),
    }
}

/// An admitted request: what it holds of the limits, and everything its ledger row needs.
#[derive(Debug)]
pub struct Exchange {
    pub state: AppState,
    pub provider: Arc<Provider>,
    pub admission: Admission,
    pub meter: Meter,
}

impl Exchange {
    pub fn new(
        state: AppState,
        provider: Arc<Provider>,
        admission: Admission,
        meter: Meter,
    ) -> Self {
        Exchange {
            state,
            provider,
            admission,
            meter,
        }
    }

    /// The rate-limit headers the answer carries.
    pub fn rate_headers(&self) -> Vec<(&'static str, String)> {
        self.admission.headers()
    }

    /// The plugin's `prepare` for this admitted request.
    pub async fn prepare(&self, prep: PrepareRequest) -> Result<UpstreamCall, ApiError> {
        plugin_prepare(&self.state, &self.provider, prep).await
    }

    /// Sends a prepared call (the URL checked, the credential attached): its response, once the
    /// headers came within the upstream timeout (a stream's own timeout then bounds the gaps
    /// between its chunks), with the [`Redactor`] for the credential it carried.
    pub async fn send(
        &mut self,
        call: UpstreamCall,
        stream: bool,
    ) -> Result<(reqwest::Response, Redactor), ApiError> {
        let (builder, redactor) =
            upstream::build(&self.state, &self.provider, call, stream).await?;
        let started = Instant::now();
        let resp =
            match tokio::time::timeout(self.state.config.upstream_timeout, builder.send()).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => return Err(send_error(&self.provider, e.into())),
                Err(_) => return Err(send_error(&self.provider, SendError::Timeout)),
            };
        self.meter.upstream_ms = Some(started.elapsed().as_millis() as i64);
        crate::base::metrics::upstream(&self.provider.id, started.elapsed());
        Ok((resp, redactor))
    }

    /// Ends a request that used nothing upstream: release the reservation, write the row (in
    /// one commit), answer with the error.
    pub async fn fail(self, e: ApiError) -> Response {
        let row = self.meter.row(
            e.status().as_u16(),
            Usage::default(),
            false,
            Some(e.code().to_string()),
        );
        let closing = self.admission.release_deferred();
        self.state.ledger.record_closing(row, closing).await;
        e.into_response()
    }

    /// Ends an answered request: settle what it really used and write its row, in one commit;
    /// returns only after both have. `code` names the error of an answer that is one.
    pub async fn finish(self, status: u16, usage: Usage, estimated: bool, code: Option<String>) {
        let cost = self.meter.cost(&usage);
        let row = self.meter.row(status, usage, estimated, code);
        let closing = self.admission.settle_deferred(usage, cost);
        self.state.ledger.record_closing(row, closing).await;
    }
}
