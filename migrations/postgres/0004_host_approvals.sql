-- pairgate schema v4: plugin hosts approved by the owner from the console (issue 9). Forward-only.
-- A provider's call may reach a host only if its plugin declares it AND the configuration
-- (`providers.<id>.approved_hosts`) or a row here approves it (gateway/server/src/hosts.rs).

CREATE TABLE host_approvals (
    provider    TEXT NOT NULL,                    -- the provider instance id ([providers.<id>])
    host        TEXT NOT NULL,                    -- as the plugin declares it: name or name:port
    approved_by TEXT NOT NULL,                    -- the audit actor
    approved_at BIGINT NOT NULL,
    PRIMARY KEY (provider, host)
);
