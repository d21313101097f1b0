//! The grant policy's JSON Schema, generated from [`GrantPolicy`] (docs/policy.schema.json, embedded in docs/protocol.md §9).

use crate::grant::GrantPolicy;

/// The JSON Schema (draft 2020-12) of a grant policy, as apps and the owner's tools send it.
pub fn policy_json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(GrantPolicy)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: &str = "<!-- policy-schema -->\n";
    const END: &str = "<!-- /policy-schema -->";

    /// The generated file and the copy in docs/protocol.md are current; `PAIRGATE_BLESS=1`
    /// rewrites both.
    #[test]
    fn the_documented_policy_schema_is_the_generated_one() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
        let want = serde_json::to_string_pretty(&policy_json_schema()).unwrap() + "\n";
        let embedded = format!("{BEGIN}```json\n{want}```\n{END}");
        let protocol_path = docs.join("protocol.md");
        let protocol = std::fs::read_to_string(&protocol_path).unwrap();
        let (head, rest) = protocol
            .split_once(BEGIN)
            .expect("protocol.md has the schema markers");
        let (_, tail) = rest
            .split_once(END)
            .expect("protocol.md has the end marker");
        let current = format!("{head}{embedded}{tail}");
        if std::env::var("PAIRGATE_BLESS").is_ok_and(|v| v == "1") {
            std::fs::write(docs.join("policy.schema.json"), &want).unwrap();
            std::fs::write(&protocol_path, &current).unwrap();
        }
        let file = std::fs::read_to_string(docs.join("policy.schema.json")).unwrap_or_default();
        assert!(
            file == want,
            "docs/policy.schema.json is stale: PAIRGATE_BLESS=1 cargo test -p pairgate-policy schema"
        );
        assert!(
            std::fs::read_to_string(&protocol_path).unwrap() == current,
            "docs/protocol.md §9 differs from the generated schema: PAIRGATE_BLESS=1 cargo test -p pairgate-policy schema"
        );
        // The schema describes what the type accepts: the default policy validates against its
        // own field list (every property known, no unknown field allowed).
        let props = policy_json_schema()["properties"]
            .as_object()
            .unwrap()
            .clone();
        let default = serde_json::to_value(GrantPolicy::default()).unwrap();
        for key in default.as_object().unwrap().keys() {
            assert!(props.contains_key(key), "{key} is in the schema");
        }
        assert_eq!(policy_json_schema()["additionalProperties"], false);
    }
}
