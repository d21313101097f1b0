//! "Test against provider" (`POST /admin/api/credentials/{id}/check`, `doctor
//! --test-credentials`): a real authenticated call to the (fake) provider through the normal
//! outbound path, reported as ok, rejected, unreachable or not testable, never echoing the key
//! or the provider's body, and never recorded as app usage.

use pairgate_tests::fake::Fault;
use pairgate_tests::gateway::run_cli;
use pairgate_tests::owner::{OwnerSession, create_owner, login};
use pairgate_tests::providers::{self, test_key};
use pairgate_tests::{Backend, Gateway};
use serde_json::Value;

/// A second OpenAI-shaped provider whose calls go to a closed port.
const DOWN: &str =
    "[providers.down]\nplugin = \"openai\"\norigin_override = \"http://127.0.0.1:1\"\n";

async fn credential_id(owner: &OwnerSession, provider: &str) -> String {
    let (_, list) = owner.get("/admin/api/credentials").await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["provider"] == provider)
        .unwrap_or_else(|| panic!("no credential for {provider}: {list}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Tests `provider`'s credential; returns the whole answer and its `provider_check`.
async fn test(owner: &OwnerSession, provider: &str) -> (String, Value) {
    let id = credential_id(owner, provider).await;
    let (s, body) = owner
        .post(
            &format!("/admin/api/credentials/{id}/check"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    (body.to_string(), body["provider_check"].clone())
}

#[tokio::test]
async fn a_credential_test_calls_the_provider_and_reports_without_the_key() {
    let (gw, fake) = providers::start(Backend::Sqlite, DOWN).await;
    let down_key = "sk-test-down-0123456789";
    let (code, _, err) = run_cli(
        &gw,
        &["credential", "add", "down"],
        Some(&format!("{down_key}\n")),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    create_owner(&gw).await;
    let owner = login(&gw).await;
    let key = test_key("openai");

    // Accepted: a real call, with the key, to the provider's model listing.
    let (text, check) = test(&owner, "openai").await;
    assert_eq!(check["outcome"], "ok", "{check}");
    assert_eq!(check["status"], 200);
    assert!(check["latency_ms"].is_u64(), "{check}");
    let seen = fake.last();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", "/v1/models")
    );
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {key}").as_str())
    );
    assert!(!text.contains(&key), "{text}");

    // Rejected: the fake answers 401 quoting the key; neither reaches the owner.
    fake.fault(Fault::Unauthorized);
    let (text, check) = test(&owner, "openai").await;
    fake.fault(Fault::None);
    assert_eq!(
        (&check["outcome"], &check["status"]),
        (&"rejected".into(), &401.into()),
        "{check}"
    );
    assert!(
        !text.contains(&key),
        "the key is never in the answer: {text}"
    );
    assert!(
        !text.contains("Incorrect API key"),
        "nor the provider's body: {text}"
    );

    // Unreachable.
    let (text, check) = test(&owner, "down").await;
    assert_eq!(check["outcome"], "unreachable", "{check}");
    assert!(!text.contains(down_key), "{text}");

    // A plugin without a model listing cannot be tested this way, and says so.
    let (_, check) = test(&owner, "resend").await;
    assert_eq!(check["outcome"], "not_testable", "{check}");

    // Owner checks are audited, not metered as app usage.
    let (_, usage) = owner.get("/admin/api/usage/requests").await;
    assert_eq!(usage["total"], 0, "{usage}");
    let (_, audit) = owner.get("/admin/api/audit").await;
    let tested = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "credential.tested")
        .count();
    assert_eq!(tested, 4, "{audit}");
    assert!(!audit.to_string().contains(&key));

    doctor_tests_each_credential(&gw, &key).await;
}

/// `doctor --test-credentials` runs the same test per credential.
async fn doctor_tests_each_credential(gw: &Gateway, key: &str) {
    let (_, out, err) = run_cli(gw, &["doctor", "--json", "--test-credentials"], None).await;
    let checks: Vec<Value> =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(status("provider test openai/default"), "ok");
    assert_eq!(status("provider test down/default"), "warn");
    assert_eq!(status("provider test resend/default"), "skip");
    assert!(!out.contains(key) && !err.contains(key));
}
