-- pairgate schema v6: model prices the owner sets from the console (issue 16). Forward-only.
-- Consulted before the configuration's prices and the plugin's catalogue; a `fallback` row prices
-- every model nobody else prices (gateway/server/src/prices.rs). Prices in micro-USD per million
-- tokens, like the plugins' catalogues.

CREATE TABLE model_prices (
    provider            TEXT NOT NULL,            -- the provider instance id ([providers.<id>])
    position            BIGINT NOT NULL,          -- order of the owner's list: first match wins
    model               TEXT NOT NULL,            -- glob over the provider's model ids; '*' for the fallback
    fallback            BIGINT NOT NULL,          -- 1: the provider's fallback price
    input_micros        BIGINT NOT NULL,
    output_micros       BIGINT NOT NULL,
    cached_input_micros BIGINT,
    max_output_tokens   BIGINT,
    set_by              TEXT NOT NULL,            -- the audit actor
    set_at              BIGINT NOT NULL,
    PRIMARY KEY (provider, position)
);
