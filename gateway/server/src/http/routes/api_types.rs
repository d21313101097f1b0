//! TypeScript declarations of the admin JSON API, generated from the Rust response types with
//! `ts-rs` into the committed `admin-ui/api-types.d.ts`. A unit test fails when the committed
//! file differs from what the types generate; `PAIRGATE_UPDATE_API_TYPES=1 cargo test -p pairgate
//! --lib api_types` rewrites it. The console's JavaScript imports these with JSDoc
//! `@typedef {import('../api-types').X}` and `tsc --checkJs` checks it in the UI test.

use ts_rs::{Config, TS};

use crate::domain::consent::PendingView;
use crate::domain::credentials::{CheckReport, CredentialInfo, PreviousCheck};
use crate::domain::hosts::{ConsoleApproval, HostState};
use crate::domain::pairing::CreatedPairing;
use crate::domain::passkeys::{PasskeyChallenge, PasskeyView, PasskeysView};
use crate::domain::prices::{CataloguePrice, PriceView, PricesBody, ProviderPrices};
use crate::http::routes::admin::{GrantView, LoginView, PolicyBody, SessionView};
use crate::http::routes::console::{
    CatalogueModel, Overview, QrView, RemainingView, RequestPage, RollupView, Totals, UsageRollup,
};
use crate::http::routes::plugins::{HostBody, PluginView, PluginsView, ProviderView};
use crate::relay::probe::{CheckOutcome, CredentialTest, ProviderCheck};
use pairgate_policy::{Budget, GrantPolicy, OutputMode};
use pairgate_store::{AuditEntry, LedgerRow, PairingRow, RollupRow};

/// Where the generated file lives, relative to the repository root.
pub const PATH: &str = "admin-ui/api-types.d.ts";

fn decl<T: TS>(cfg: &Config) -> String {
    format!("export {}\n", T::decl(cfg))
}

/// The whole declaration file.
pub fn declarations() -> String {
    let cfg = Config::new().with_large_int("number");
    let mut out = String::from(
        "// Generated from the Rust types by gateway/server/src/routes/api_types.rs: do not edit.\n\
         // Regenerate: PAIRGATE_UPDATE_API_TYPES=1 cargo test -p pairgate --lib api_types\n\n\
         export type JsonValue = number | string | boolean | Array<JsonValue> | { [key in string]?: JsonValue } | null;\n\
         /** Every list route answers `{ data: T[] }`. */\n\
         export type ListOf<T> = { data: Array<T> };\n",
    );
    for d in [
        decl::<GrantPolicy>(&cfg),
        decl::<Budget>(&cfg),
        decl::<OutputMode>(&cfg),
        decl::<SessionView>(&cfg),
        decl::<LoginView>(&cfg),
        decl::<PasskeyChallenge>(&cfg),
        decl::<PasskeyView>(&cfg),
        decl::<PasskeysView>(&cfg),
        decl::<GrantView>(&cfg),
        decl::<PolicyBody>(&cfg),
        decl::<RemainingView>(&cfg),
        decl::<CreatedPairing>(&cfg),
        decl::<PairingRow>(&cfg),
        decl::<PendingView>(&cfg),
        decl::<AuditEntry>(&cfg),
        decl::<CredentialInfo>(&cfg),
        decl::<CheckReport>(&cfg),
        decl::<PreviousCheck>(&cfg),
        decl::<CredentialTest>(&cfg),
        decl::<ProviderCheck>(&cfg),
        decl::<CheckOutcome>(&cfg),
        decl::<PluginView>(&cfg),
        decl::<ProviderView>(&cfg),
        decl::<HostState>(&cfg),
        decl::<ConsoleApproval>(&cfg),
        decl::<HostBody>(&cfg),
        decl::<PluginsView>(&cfg),
        decl::<CatalogueModel>(&cfg),
        decl::<Totals>(&cfg),
        decl::<Overview>(&cfg),
        decl::<LedgerRow>(&cfg),
        decl::<RollupRow>(&cfg),
        decl::<RollupView>(&cfg),
        decl::<UsageRollup>(&cfg),
        decl::<RequestPage>(&cfg),
        decl::<QrView>(&cfg),
        decl::<PriceView>(&cfg),
        decl::<CataloguePrice>(&cfg),
        decl::<ProviderPrices>(&cfg),
        decl::<PricesBody>(&cfg),
    ] {
        out.push_str(&d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_types_file_is_current() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let path = root.join(PATH);
        let want = declarations();
        if std::env::var("PAIRGATE_UPDATE_API_TYPES").is_ok_and(|v| v == "1") {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{PATH} is stale: run PAIRGATE_UPDATE_API_TYPES=1 cargo test -p pairgate --lib api_types"
        );
    }
}
