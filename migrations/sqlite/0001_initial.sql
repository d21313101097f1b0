-- pairgate schema v1 (SQLite). Forward-only: never edit an applied migration; add a new file.
-- Times are unix milliseconds (BIGINT); JSON documents are TEXT; flags are 0/1 integers so the
-- same portable queries run on SQLite and PostgreSQL (see docs/ARCHITECTURE.md, "Storage").

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE owners (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE owner_sessions (
    id_hash      TEXT PRIMARY KEY NOT NULL,
    owner_id     TEXT NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
    csrf_hash    TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    user_agent   TEXT
);
CREATE INDEX owner_sessions_owner ON owner_sessions(owner_id);

CREATE TABLE credentials (
    id                   TEXT PRIMARY KEY NOT NULL,
    provider             TEXT NOT NULL,
    name                 TEXT NOT NULL,
    kind                 TEXT NOT NULL,           -- 'stored' | 'reference'
    wrapped_dek          BLOB,
    ciphertext           BLOB,
    reference            TEXT,                    -- JSON CredentialRef when kind = 'reference'
    fingerprint          TEXT NOT NULL,
    last4                TEXT NOT NULL,
    previous_wrapped_dek BLOB,
    previous_ciphertext  BLOB,
    previous_until       BIGINT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    UNIQUE (provider, name)
);

CREATE TABLE grants (
    id           TEXT PRIMARY KEY NOT NULL,
    app_name     TEXT NOT NULL,
    policy       TEXT NOT NULL,                   -- JSON grant policy
    jkt          TEXT NOT NULL,                   -- RFC 7638 thumbprint of the bound key
    alg          TEXT NOT NULL,
    status       TEXT NOT NULL,                   -- 'active' | 'suspended' | 'revoked'
    origin       TEXT NOT NULL,                   -- 'pairing' | 'consent'
    bearer_hash  TEXT,
    bearer_expires_at BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX grants_status ON grants(status);
CREATE UNIQUE INDEX grants_bearer ON grants(bearer_hash);

CREATE TABLE pairings (
    id           TEXT PRIMARY KEY NOT NULL,
    secret_hmac  TEXT NOT NULL,
    app_name     TEXT,
    policy       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT,
    cancelled_at BIGINT,
    grant_id     TEXT
);

CREATE TABLE device_requests (
    device_code_hash TEXT PRIMARY KEY NOT NULL,
    user_code        TEXT NOT NULL UNIQUE,
    app_name         TEXT NOT NULL,
    requested_policy TEXT NOT NULL,
    granted_policy   TEXT,
    jkt              TEXT NOT NULL,
    alg              TEXT NOT NULL,
    status           TEXT NOT NULL,               -- 'pending' | 'approved' | 'denied' | 'redeemed'
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    last_poll_at     BIGINT,
    grant_id         TEXT
);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    grant_id   TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    jkt        TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens(grant_id);

CREATE TABLE usage_ledger (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id    TEXT NOT NULL,
    grant_id      TEXT,
    app_name      TEXT,
    provider      TEXT,
    model         TEXT,
    endpoint      TEXT NOT NULL,
    input_tokens  BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cached_tokens BIGINT NOT NULL DEFAULT 0,
    cost_micros   BIGINT NOT NULL DEFAULT 0,
    estimated     BIGINT NOT NULL DEFAULT 0,
    status        BIGINT NOT NULL,
    error_code    TEXT,
    upstream_ms   BIGINT,
    total_ms      BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX usage_ledger_grant_time ON usage_ledger(grant_id, created_at);
CREATE UNIQUE INDEX usage_ledger_request ON usage_ledger(request_id);

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT,
    detail  TEXT
);
CREATE INDEX audit_log_at ON audit_log(at);
