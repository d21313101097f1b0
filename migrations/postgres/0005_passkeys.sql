-- pairgate schema v5: the owner's passkeys (WebAuthn) and the server-side state of WebAuthn
-- ceremonies (issue 9). Forward-only.

-- "Require a passkey": a password login then only completes with a passkey assertion.
ALTER TABLE owners ADD COLUMN require_passkey BIGINT NOT NULL DEFAULT 0;

CREATE TABLE owner_passkeys (
    id            TEXT PRIMARY KEY NOT NULL,          -- pk_...
    owner_id      TEXT NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL UNIQUE,               -- base64url of the WebAuthn credential id
    name          TEXT NOT NULL,
    passkey       TEXT NOT NULL,                      -- webauthn-rs Passkey (JSON): public key, counter
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX owner_passkeys_owner ON owner_passkeys(owner_id);

-- One row per WebAuthn ceremony in progress (registration, passkey login, second factor). The
-- browser holds only the challenge id; the row is deleted when it is used (single use) and is
-- worthless after expires_at.
CREATE TABLE webauthn_challenges (
    id_hash    TEXT PRIMARY KEY NOT NULL,             -- keyed digest of the challenge id
    kind       TEXT NOT NULL,                         -- 'register' | 'login' | 'second_factor'
    owner_id   TEXT,                                  -- NULL for a usernameless login
    state      TEXT NOT NULL,                         -- webauthn-rs ceremony state (JSON)
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_challenges_expiry ON webauthn_challenges(expires_at);
