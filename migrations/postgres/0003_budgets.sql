-- pairgate schema v3: budget counters and reservations (issue 6). Forward-only.
-- One counter per grant, kind and UTC window; requests reserve their estimate before the
-- upstream call and settle the actual usage after (see gateway/server/src/limits/sql.rs).
-- Every reservation is also a row here, so one that a crashed process never settled is released
-- by the janitor once expires_at has passed.

CREATE TABLE budget_counters (
    grant_id   TEXT NOT NULL,
    kind       TEXT NOT NULL,                     -- 'tokens' | 'cost'
    window_key TEXT NOT NULL,                     -- 'd:2026-11-20' | 'm:2026-11' | 'life'
    spent      BIGINT NOT NULL DEFAULT 0,
    reserved   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (grant_id, kind, window_key)
);

CREATE TABLE budget_reservations (
    id         TEXT NOT NULL,                     -- the admission's reservation id
    grant_id   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    window_key TEXT NOT NULL,
    amount     BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (id, kind, window_key)
);
CREATE INDEX budget_reservations_expiry ON budget_reservations(expires_at);
