//! The admin console's own JSON routes (owner only): overview numbers, credentials, plugins and
//! providers, the model catalogue for the pairing form, usage (rollups, request log, CSV), grant
//! remaining limits and pairing QR codes. Handlers are thin: each calls the domain function the
//! CLI uses. The response types derive `ts_rs::TS`; `admin-ui/api-types.d.ts` is generated from
//! them (see `api_types`), so the console's JavaScript is type-checked against these shapes.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use pairgate_custody::SecretString;
use pairgate_store::{LedgerRow, RollupRow, UsageFilter};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::base::clock::now_ms;
use crate::base::error::ApiError;
use crate::domain::credentials::{self, CredentialError, CredentialInfo, Selector};
use crate::domain::usage::{parse_date, totals};
use crate::http::owner_session::Owner;
use crate::relay::probe::{self, CredentialTest};
use crate::state::AppState;

const DAY_MS: i64 = 86_400_000;
/// Most rows one request-log page returns.
const MAX_PAGE: i64 = 500;
/// Most rows one CSV export holds.
const MAX_EXPORT: i64 = 100_000;

/// A list wrapper, as every list route answers.
#[derive(Debug, Serialize)]
pub struct ListOf<T> {
    pub data: Vec<T>,
}

/// Usage totals over a range.
#[derive(Debug, Default, Serialize, TS)]
pub struct Totals {
    pub requests: u64,
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cost_micros: u64,
}

impl Totals {
    fn of(rows: &[RollupRow]) -> Totals {
        let t = totals(rows);
        Totals {
            requests: t.requests,
            errors: t.errors,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cached_tokens: t.cached_tokens,
            cost_micros: t.cost_micros,
        }
    }
}

/// `GET /admin/api/overview`.
#[derive(Debug, Serialize, TS)]
pub struct Overview {
    pub active_grants: u64,
    pub suspended_grants: u64,
    pub revoked_grants: u64,
    pub open_pairings: u64,
    pub pending_consents: u64,
    /// Since midnight UTC.
    pub today: Totals,
    /// The newest failed requests of today (at most 10).
    pub recent_errors: Vec<LedgerRow>,
}

/// `POST /admin/api/credentials`: a provider key, read once and sealed; never shown again.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    provider: String,
    #[serde(default)]
    name: Option<String>,
    value: String,
}

impl std::fmt::Debug for NewCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCredential")
            .field("provider", &self.provider)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `POST /admin/api/credentials/{id}/rotate`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateCredential {
    value: String,
    #[serde(default)]
    grace_secs: Option<u64>,
}

impl std::fmt::Debug for RotateCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateCredential")
            .field("grace_secs", &self.grace_secs)
            .finish_non_exhaustive()
    }
}

/// One model of a provider's catalogue, for the pairing form.
#[derive(Debug, Serialize, TS)]
pub struct CatalogueModel {
    /// `provider/model`, as a policy names it.
    pub id: String,
    pub provider: String,
    pub model: String,
    pub context_window: u32,
    /// Micro-USD per million tokens.
    pub input_price: u64,
    pub output_price: u64,
}

/// Query of the usage routes. Dates are `YYYY-MM-DD` (UTC) or RFC 3339.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    grant: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

/// One rollup row with its day spelled out.
#[derive(Debug, Serialize, TS)]
pub struct RollupView {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    #[serde(flatten)]
    pub row: RollupRow,
}

/// `GET /admin/api/usage/rollup`.
#[derive(Debug, Serialize, TS)]
pub struct UsageRollup {
    pub from: i64,
    pub to: i64,
    pub rows: Vec<RollupView>,
    pub totals: Totals,
}

/// `GET /admin/api/usage/requests`: one page of the request log.
#[derive(Debug, Serialize, TS)]
pub struct RequestPage {
    pub data: Vec<LedgerRow>,
    /// Rows matching the filter.
    pub total: u64,
    pub limit: i64,
    pub offset: i64,
}

/// `POST /admin/api/qr`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QrBody {
    text: String,
}

/// A QR code as SVG markup.
#[derive(Debug, Serialize, TS)]
pub struct QrView {
    pub svg: String,
}

/// What remains of a grant's limits and budgets (the shape of `GET /v1/grant`'s `remaining`).
#[derive(Debug, Serialize, TS)]
pub struct RemainingView {
    pub grant_id: String,
    #[ts(type = "Record<string, unknown>")]
    pub remaining: serde_json::Value,
}

fn credential_error(e: CredentialError) -> ApiError {
    match e {
        CredentialError::NotFound(_) => ApiError::NotFound,
        CredentialError::Store(s) => ApiError::from(s),
        CredentialError::Duplicate(_) => ApiError::bad_request("duplicate", e.to_string()),
        CredentialError::NotStored(_) => ApiError::bad_request("not_stored", e.to_string()),
        CredentialError::Unusable { .. } => {
            ApiError::bad_request("credential_unusable", e.to_string())
        }
        CredentialError::KeyChanged => ApiError::bad_request("master_key_changed", e.to_string()),
        other => ApiError::bad_request("invalid_request", other.to_string()),
    }
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Not echoing serde's message: it could quote part of a credential value.
    serde_json::from_slice(body).map_err(|_| {
        ApiError::bad_request(
            "invalid_request",
            "the JSON body is not valid for this route",
        )
    })
}

fn no_store<T: Serialize>(value: T) -> Response {
    let mut res = Json(value).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `GET /admin/api/overview`.
pub async fn overview(
    State(state): State<AppState>,
    _owner: Owner,
) -> Result<Json<Overview>, ApiError> {
    let now = now_ms();
    let grants = state.store.list_grants().await?;
    let count = |s: &str| grants.iter().filter(|g| g.status == s).count() as u64;
    let day_start = now.div_euclid(DAY_MS) * DAY_MS;
    // what was answered before this request is in what it reads
    state.ledger.flush().await;
    let rollup = state.store.usage_rollup(day_start, now + 1, None).await?;
    let filter = UsageFilter {
        from_ms: Some(day_start),
        ..UsageFilter::default()
    };
    let recent = state.store.recent_usage(&filter, 200, 0).await?;
    Ok(Json(Overview {
        active_grants: count("active"),
        suspended_grants: count("suspended"),
        revoked_grants: count("revoked"),
        open_pairings: state.store.list_open_pairings(now).await?.len() as u64,
        pending_consents: state.store.pending_device_requests(now).await?.len() as u64,
        today: Totals::of(&rollup),
        recent_errors: recent
            .into_iter()
            .filter(|r| r.status >= 400)
            .take(10)
            .collect(),
    }))
}

/// `GET /admin/api/credentials`: never a value.
pub async fn credentials(
    State(state): State<AppState>,
    _owner: Owner,
) -> Result<Json<ListOf<CredentialInfo>>, ApiError> {
    let data = credentials::list(&state).await.map_err(credential_error)?;
    Ok(Json(ListOf { data }))
}

/// `POST /admin/api/credentials`.
pub async fn add_credential(
    State(state): State<AppState>,
    owner: Owner,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let b: NewCredential = json_body(&body)?;
    let name = b.name.filter(|n| !n.is_empty());
    credentials::validate_provider(&b.provider).map_err(credential_error)?;
    credentials::known_provider(&state, &b.provider).map_err(credential_error)?;
    let info = credentials::add_stored(
        &state,
        &b.provider,
        name.as_deref().unwrap_or("default"),
        SecretString::from(b.value),
        &owner.actor(),
    )
    .await
    .map_err(credential_error)?;
    Ok(no_store(info))
}

/// `POST /admin/api/credentials/{id}/rotate`: the old value stays usable for `grace_secs`
/// (default one hour).
pub async fn rotate_credential(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let b: RotateCredential = json_body(&body)?;
    let grace = Duration::from_secs(b.grace_secs.unwrap_or(3600).min(30 * 24 * 3600));
    let info = credentials::rotate(
        &state,
        Selector::Id(&id),
        SecretString::from(b.value),
        grace,
        &owner.actor(),
    )
    .await
    .map_err(credential_error)?;
    Ok(no_store(info))
}

/// `POST /admin/api/credentials/{id}/check`: decrypt (or fetch) it now and report fingerprints,
/// then test it against its provider with one cheap authenticated call (`relay::probe`).
pub async fn check_credential(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<Json<CredentialTest>, ApiError> {
    let check = credentials::check(&state, Selector::Id(&id), &owner.actor())
        .await
        .map_err(credential_error)?;
    let provider_check = probe::test_credential(&state, &check.info, &owner.actor()).await?;
    Ok(Json(CredentialTest {
        check,
        provider_check,
    }))
}

/// `POST /admin/api/credentials/{id}/delete`.
pub async fn delete_credential(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<Json<CredentialInfo>, ApiError> {
    let info = credentials::remove(&state, Selector::Id(&id), &owner.actor())
        .await
        .map_err(credential_error)?;
    Ok(Json(info))
}

/// `GET /admin/api/models`: every provider's catalogue, for the pairing form.
pub async fn models(
    State(state): State<AppState>,
    _owner: Owner,
) -> Result<Json<ListOf<CatalogueModel>>, ApiError> {
    let data = state
        .relay
        .providers()
        .flat_map(|p| {
            p.descriptor.models.iter().map(|m| CatalogueModel {
                id: format!("{}/{}", p.id, m.id),
                provider: p.id.clone(),
                model: m.id.clone(),
                context_window: m.context_window,
                input_price: m.input_price,
                output_price: m.output_price,
            })
        })
        .collect();
    Ok(Json(ListOf { data }))
}

fn date(s: &Option<String>, end: bool) -> Result<Option<i64>, ApiError> {
    s.as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            parse_date(s, end).map_err(|e| ApiError::bad_request("invalid_date", e.to_string()))
        })
        .transpose()
}

fn blank(s: &Option<String>) -> Option<String> {
    s.clone().filter(|s| !s.trim().is_empty())
}

fn filter_of(q: &UsageQuery) -> Result<UsageFilter, ApiError> {
    Ok(UsageFilter {
        grant_id: blank(&q.grant),
        model: blank(&q.model),
        status: q.status,
        request_id: blank(&q.request_id),
        from_ms: date(&q.from, false)?,
        to_ms: date(&q.to, true)?,
    })
}

/// `GET /admin/api/usage/rollup?from=&to=&grant=`: per UTC day, grant, provider and model
/// (default: the last 30 days).
pub async fn usage_rollup(
    State(state): State<AppState>,
    _owner: Owner,
    Query(q): Query<UsageQuery>,
) -> Result<Json<UsageRollup>, ApiError> {
    let now = now_ms();
    let to = date(&q.to, true)?.unwrap_or(now + 1);
    let from = date(&q.from, false)?.unwrap_or((now.div_euclid(DAY_MS) - 29) * DAY_MS);
    if from >= to {
        return Err(ApiError::bad_request(
            "invalid_date",
            "from must be earlier than to",
        ));
    }
    state.ledger.flush().await;
    let rows = state
        .store
        .usage_rollup(from, to, blank(&q.grant).as_deref())
        .await?;
    let totals = Totals::of(&rows);
    let rows = rows
        .into_iter()
        .map(|row| RollupView {
            day: crate::domain::usage::day(row.day_ms),
            row,
        })
        .collect();
    Ok(Json(UsageRollup {
        from,
        to,
        rows,
        totals,
    }))
}

/// `GET /admin/api/usage/requests?grant=&model=&status=&request_id=&from=&to=&limit=&offset=`.
pub async fn usage_requests(
    State(state): State<AppState>,
    _owner: Owner,
    Query(q): Query<UsageQuery>,
) -> Result<Json<RequestPage>, ApiError> {
    let filter = filter_of(&q)?;
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let offset = q.offset.unwrap_or(0).max(0);
    // what was answered before this request is in what it reads
    state.ledger.flush().await;
    let data = state.store.recent_usage(&filter, limit, offset).await?;
    let total = state.store.count_usage(&filter).await?;
    Ok(Json(RequestPage {
        data,
        total,
        limit,
        offset,
    }))
}

/// One CSV cell: quoted when needed, and a leading `= + - @` defused so a spreadsheet never
/// runs it as a formula.
fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The request log as CSV (header line first).
pub fn ledger_csv(rows: &[LedgerRow]) -> String {
    let mut out = String::from(
        "request_id,created_at,grant_id,app_name,provider,model,endpoint,status,error_code,\
         input_tokens,output_tokens,cached_tokens,cost_micros,estimated,upstream_ms,total_ms\n",
    );
    let opt = |v: &Option<String>| csv_cell(v.as_deref().unwrap_or(""));
    for r in rows {
        let line = [
            csv_cell(&r.request_id),
            r.created_at.to_string(),
            opt(&r.grant_id),
            opt(&r.app_name),
            opt(&r.provider),
            opt(&r.model),
            csv_cell(&r.endpoint),
            r.status.to_string(),
            opt(&r.error_code),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            r.cached_tokens.to_string(),
            r.cost_micros.to_string(),
            r.estimated.to_string(),
            r.upstream_ms.map(|v| v.to_string()).unwrap_or_default(),
            r.total_ms.to_string(),
        ]
        .join(",");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `GET /admin/api/usage/export.csv` (same filters as the request log, up to 100 000 rows).
pub async fn usage_csv(
    State(state): State<AppState>,
    _owner: Owner,
    Query(q): Query<UsageQuery>,
) -> Result<Response, ApiError> {
    let filter = filter_of(&q)?;
    // what was answered before this request is in what it reads
    state.ledger.flush().await;
    let rows = state.store.recent_usage(&filter, MAX_EXPORT, 0).await?;
    let mut res = ledger_csv(&rows).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"pairgate-usage.csv\""),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `GET /admin/api/grants/{id}/remaining`.
pub async fn grant_remaining(
    State(state): State<AppState>,
    _owner: Owner,
    Path(id): Path<String>,
) -> Result<Json<RemainingView>, ApiError> {
    let g = state
        .store
        .get_grant(&id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let policy = crate::domain::grant_policy::parse(
        &serde_json::from_str(&g.policy)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored policy is invalid: {e}")))?,
    )?;
    let quotas = state
        .relay
        .quota_limits(&serde_json::to_value(&policy).unwrap_or_default());
    let remaining = state
        .limiter
        .remaining_with_quotas(&g.id, &policy, &quotas, now_ms())
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("limits: {e}")))?;
    Ok(Json(RemainingView {
        grant_id: g.id,
        remaining,
    }))
}

/// QR code of `text` as SVG (black on white, quiet zone included).
pub fn qr_svg(text: &str) -> Result<String, ApiError> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|_| ApiError::bad_request("invalid_request", "the text does not fit a QR code"))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .build())
}

/// `POST /admin/api/qr`: the QR code of a pairing string the console just received, so the
/// owner can scan it from a phone. Nothing is stored or logged.
pub async fn qr(_owner: Owner, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let b: QrBody = json_body(&body)?;
    if b.text.is_empty() || b.text.len() > 1024 {
        return Err(ApiError::bad_request(
            "invalid_request",
            "text must be 1 to 1024 bytes",
        ));
    }
    Ok(no_store(QrView {
        svg: qr_svg(&b.text)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=1+1"), "'=1+1");
        assert_eq!(csv_cell("@x,y"), "\"'@x,y\"");
        let row = LedgerRow {
            request_id: "req_1".into(),
            app_name: Some("=cmd".into()),
            status: 200,
            ..LedgerRow::default()
        };
        let csv = ledger_csv(&[row]);
        let mut lines = csv.lines();
        assert!(lines.next().unwrap().starts_with("request_id,created_at,"));
        assert_eq!(
            lines.next().unwrap(),
            "req_1,0,,'=cmd,,,,200,,0,0,0,0,false,,0"
        );
    }

    #[test]
    fn qr_codes_render_as_svg() {
        let svg = qr_svg("pgp1_example_pairing_string").unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"));
        assert!(qr_svg(&"x".repeat(5000)).is_err());
    }
}
