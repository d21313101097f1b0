// Generated from the Rust types by gateway/server/src/routes/api_types.rs: do not edit.
// Regenerate: PAIRGATE_UPDATE_API_TYPES=1 cargo test -p pairgate --lib api_types

export type JsonValue = number | string | boolean | Array<JsonValue> | { [key in string]?: JsonValue } | null;
/** Every list route answers `{ data: T[] }`. */
export type ListOf<T> = { data: Array<T> };
export type GrantPolicy = { 
/**
 * Allowed providers: exact provider ids (`"openai"`) or `"*"`. Default `["*"]`.
 */
providers: Array<string>, 
/**
 * Allowed models as `provider/model` globs (`"openai/gpt-4o*"`, `"anthropic/*"`) or
 * `"*"`. Default `["*"]`.
 */
models: Array<string>, 
/**
 * Allowed endpoints (see the module documentation), globs allowed. Default
 * `["chat", "embeddings", "models"]`: resource plugins must be granted explicitly.
 * An empty list allows nothing at all.
 */
endpoints: Array<string>, 
/**
 * Upper bound on output tokens per chat request. Default: none.
 */
max_output_tokens: number | null, 
/**
 * What to do with a request above `max_output_tokens`. Default `clamp`.
 */
output_tokens_mode: OutputMode, 
/**
 * Whether streamed responses are allowed. Default `true`.
 */
allow_streaming: boolean, 
/**
 * Whether requests may carry tool (function) definitions. Default `true`.
 */
allow_tools: boolean, 
/**
 * Whether requests may carry image inputs. Default `true`.
 */
allow_images: boolean, 
/**
 * Request rate limit per minute (GCRA, burst = the limit). Default: none.
 */
requests_per_minute: number | null, 
/**
 * Request rate limit per day (GCRA, burst = the limit). Default: none.
 */
requests_per_day: number | null, 
/**
 * Token rate limit per minute (input + output, GCRA). Default: none.
 */
tokens_per_minute: number | null, 
/**
 * Requests in flight at once. Default: none.
 */
max_concurrent: number | null, 
/**
 * Token budgets (input + output tokens). Default: none.
 */
token_budget: Budget, 
/**
 * Cost budgets in micro-USD (1 USD = 1 000 000). Default: none.
 */
cost_budget_micros: Budget, 
/**
 * The grant is not usable before this instant (unix ms, inclusive). Default: none.
 */
not_before: number | null, 
/**
 * The grant is not usable from this instant on (unix ms, exclusive). Default: none.
 */
expires_at: number | null, 
/**
 * Allowed client addresses: CIDR blocks or single addresses, IPv4 or IPv6. Empty
 * (the default) allows any address.
 */
source_ips: Array<string>, 
/**
 * Whether DPoP proofs must carry the request body digest. Default `false`.
 */
require_body_hash: boolean, 
/**
 * Per-resource-plugin limits, keyed by plugin id, each a JSON object handed to that
 * plugin, e.g. `{"resend": {"sender_domains": ["example.com"], "max_recipients": 5}}`.
 * The policy treats the objects as opaque: a plugin absent here gets no limits from
 * the grant. Default: empty.
 */
resources: { [key in string]: JsonValue }, };
export type Budget = { 
/**
 * Limit per UTC calendar day.
 */
daily: number | null, 
/**
 * Limit per UTC calendar month.
 */
monthly: number | null, 
/**
 * Limit over the grant's whole life.
 */
lifetime: number | null, };
export type OutputMode = "clamp" | "reject";
export type SessionView = { username: string, csrf_token: string, };
export type LoginView = SessionView | { passkey_required: PasskeyChallenge, };
export type PasskeyChallenge = { 
/**
 * Sent back with the browser's answer; single use, valid for a few minutes.
 */
challenge_id: string, 
/**
 * `webauthn-rs`'s options (`{ publicKey: ... }`), binary fields as base64url strings.
 */
options: JsonValue, };
export type PasskeyView = { id: string, name: string, created_at: number, last_used_at: number | null, };
export type PasskeysView = { 
/**
 * Whether this gateway can use passkeys at all (see `unavailable_reason`).
 */
available: boolean, unavailable_reason: string | null, 
/**
 * Whether a password sign-in must be completed with a passkey.
 */
require_passkey: boolean, data: Array<PasskeyView>, };
export type GrantView = { id: string, app_name: string, 
/**
 * `active`, `suspended` or `revoked`.
 */
status: string, origin: string, key_fingerprint: string, key_alg: string, policy: JsonValue, created_at: number, last_used_at: number | null, revoked_at: number | null, };
export type PolicyBody = { policy: Partial<GrantPolicy>, };
export type RemainingView = { grant_id: string, remaining: Record<string, unknown>, };
export type CreatedPairing = { id: string, pairing_string: string, expires_at: number, };
export type PairingRow = { id: string, app_name: string | null, policy: string, created_at: number, expires_at: number, used_at: number | null, cancelled_at: number | null, grant_id: string | null, };
export type PendingView = { user_code: string, app_name: string, requested_policy: JsonValue, key_fingerprint: string, created_at: number, expires_at: number, };
export type AuditEntry = { id: number, at: number, actor: string, action: string, subject: string | null, detail: string | null, };
export type CredentialInfo = { id: string, provider: string, name: string, 
/**
 * `stored` or `reference`.
 */
kind: string, 
/**
 * Where a reference points (variable, file, keychain entry, program), for references.
 */
source: string | null, 
/**
 * Keyed fingerprint of the value (12 hex characters); see `custody::fingerprint`.
 */
fingerprint: string, last4: string, created_at: number, 
/**
 * When the value was last rotated.
 */
rotated_at: number | null, 
/**
 * Until when the value before the last rotation is still usable.
 */
grace_until: number | null, };
export type CheckReport = { 
/**
 * Fingerprint of the value resolved now (for a reference it can differ from the one
 * recorded when it was added, if the value changed at its source).
 */
resolved_fingerprint: string, resolved_last4: string, 
/**
 * The previous value, when still in its grace period.
 */
previous: PreviousCheck | null, id: string, provider: string, name: string, 
/**
 * `stored` or `reference`.
 */
kind: string, 
/**
 * Where a reference points (variable, file, keychain entry, program), for references.
 */
source: string | null, 
/**
 * Keyed fingerprint of the value (12 hex characters); see `custody::fingerprint`.
 */
fingerprint: string, last4: string, created_at: number, 
/**
 * When the value was last rotated.
 */
rotated_at: number | null, 
/**
 * Until when the value before the last rotation is still usable.
 */
grace_until: number | null, };
export type PreviousCheck = { fingerprint: string, last4: string, until: number, };
export type CredentialTest = { provider_check: ProviderCheck, 
/**
 * Fingerprint of the value resolved now (for a reference it can differ from the one
 * recorded when it was added, if the value changed at its source).
 */
resolved_fingerprint: string, resolved_last4: string, 
/**
 * The previous value, when still in its grace period.
 */
previous: PreviousCheck | null, id: string, provider: string, name: string, 
/**
 * `stored` or `reference`.
 */
kind: string, 
/**
 * Where a reference points (variable, file, keychain entry, program), for references.
 */
source: string | null, 
/**
 * Keyed fingerprint of the value (12 hex characters); see `custody::fingerprint`.
 */
fingerprint: string, last4: string, created_at: number, 
/**
 * When the value was last rotated.
 */
rotated_at: number | null, 
/**
 * Until when the value before the last rotation is still usable.
 */
grace_until: number | null, };
export type ProviderCheck = { provider: string, outcome: CheckOutcome, 
/**
 * The provider's HTTP status, when it answered.
 */
status: number | null, 
/**
 * Time from sending to the provider's answer (headers), when it answered.
 */
latency_ms: number | null, message: string, };
export type CheckOutcome = "ok" | "rejected" | "unreachable" | "timeout" | "provider_error" | "not_testable";
export type PluginView = { id: string, builtin: boolean, display_name: string, version: string, sha256: string, contract: string, 
/**
 * Hosts the plugin declares it calls.
 */
hosts: Array<string>, actions: Array<string>, models: number, };
export type ProviderView = { id: string, plugin: string, credential: string, 
/**
 * Whether the plugin sends a credential at all (a local runtime such as Ollama does not),
 * so whether requests fail while no key is stored for this provider.
 */
needs_credential: boolean, 
/**
 * Every host the plugin declares for this instance, with who approved it. A call may go
 * to a host approved by the configuration or the console.
 */
hosts: Array<HostState>, 
/**
 * Set when calls go to another origin (an egress proxy).
 */
origin_override: string | null, };
export type HostState = { host: string, 
/**
 * Approved by the configuration (`approved_hosts`, or a built-in plugin's default).
 */
by_config: boolean, 
/**
 * The console approval, if any.
 */
by_console: ConsoleApproval | null, };
export type ConsoleApproval = { approved_by: string, approved_at: number, };
export type HostBody = { host: string, };
export type PluginsView = { plugins: Array<PluginView>, providers: Array<ProviderView>, };
export type CatalogueModel = { 
/**
 * `provider/model`, as a policy names it.
 */
id: string, provider: string, model: string, context_window: number, 
/**
 * Micro-USD per million tokens.
 */
input_price: number, output_price: number, };
export type Totals = { requests: number, errors: number, input_tokens: number, output_tokens: number, cached_tokens: number, cost_micros: number, };
export type Overview = { active_grants: number, suspended_grants: number, revoked_grants: number, open_pairings: number, pending_consents: number, 
/**
 * Since midnight UTC.
 */
today: Totals, 
/**
 * The newest failed requests of today (at most 10).
 */
recent_errors: Array<LedgerRow>, };
export type LedgerRow = { 
/**
 * The request's `x-request-id` (unique).
 */
request_id: string, grant_id: string | null, app_name: string | null, provider: string | null, model: string | null, 
/**
 * `chat`, `embeddings`, `models`, `resource:<plugin>/<action>`.
 */
endpoint: string, 
/**
 * All input tokens, cached included.
 */
input_tokens: number, output_tokens: number, cached_tokens: number, cost_micros: number, 
/**
 * The usage was estimated (the provider reported none).
 */
estimated: boolean, 
/**
 * HTTP status returned to the client.
 */
status: number, error_code: string | null, 
/**
 * Time spent waiting for the provider, if it was called.
 */
upstream_ms: number | null, 
/**
 * Time from receiving the request to the end of the response.
 */
total_ms: number, 
/**
 * Unix milliseconds.
 */
created_at: number, };
export type RollupRow = { 
/**
 * Start of the UTC day (unix ms).
 */
day_ms: number, grant_id: string | null, app_name: string | null, provider: string | null, model: string | null, requests: number, 
/**
 * Requests answered with a status of 400 or more.
 */
errors: number, input_tokens: number, output_tokens: number, cached_tokens: number, cost_micros: number, };
export type RollupView = { 
/**
 * `YYYY-MM-DD` (UTC).
 */
day: string, 
/**
 * Start of the UTC day (unix ms).
 */
day_ms: number, grant_id: string | null, app_name: string | null, provider: string | null, model: string | null, requests: number, 
/**
 * Requests answered with a status of 400 or more.
 */
errors: number, input_tokens: number, output_tokens: number, cached_tokens: number, cost_micros: number, };
export type UsageRollup = { from: number, to: number, rows: Array<RollupView>, totals: Totals, };
export type RequestPage = { data: Array<LedgerRow>, 
/**
 * Rows matching the filter.
 */
total: number, limit: number, offset: number, };
export type QrView = { svg: string, };
export type PriceView = { 
/**
 * Glob over the provider's model ids (`gpt-4o*`); ignored for a fallback (`*`).
 */
model: string, input: number, output: number, cached_input: number | null, max_output_tokens: number | null, };
export type CataloguePrice = { model: string, input: number, output: number, max_output_tokens: number, };
export type ProviderPrices = { provider: string, plugin: string, 
/**
 * Set here (editable), in list order.
 */
console: Array<PriceView>, console_fallback: PriceView | null, 
/**
 * Set in the configuration (read-only here).
 */
config: Array<PriceView>, config_fallback: PriceView | null, 
/**
 * The plugin's catalogue.
 */
catalogue: Array<CataloguePrice>, };
export type PricesBody = { prices: Array<PriceView>, fallback: PriceView | null, };
