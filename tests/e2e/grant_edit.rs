//! The owner edits a paired app's policy (`PUT /admin/api/grants/{id}/policy`, `grant edit`):
//! the app's very next request obeys it, on SQLite and PostgreSQL and on another replica; a bad
//! policy changes nothing; no session, no CSRF token or the app's own credentials reach nothing.

use pairgate_protocol::keys::KeyKind;
use pairgate_tests::Backend;
use pairgate_tests::app::{self, pair};
use pairgate_tests::gateway::run_cli;
use pairgate_tests::owner::{OwnerSession, create_owner, login};
use pairgate_tests::providers;
use serde_json::{Value, json};

use crate::limits::{chat, chat_calls, pair_on_both, send, two_replicas};

fn policy_path(grant: &str) -> String {
    format!("/admin/api/grants/{grant}/policy")
}

async fn edit(owner: &OwnerSession, grant: &str, policy: Value) -> Value {
    let (s, body) = owner
        .put(&policy_path(grant), &json!({ "policy": policy }))
        .await;
    assert_eq!(s, 200, "{body}");
    body
}

async fn narrowing_applies_to_the_next_request(backend: Backend) {
    let (gw, fake) = providers::start(backend, "").await;
    create_owner(&gw).await;
    let owner = login(&gw).await;
    let client = pair(
        &gw,
        KeyKind::Ed25519,
        &["--rpm", "3", "--daily-tokens", "1000"],
    )
    .await;
    let grant = client.grant_id();
    let (s, body, _) = send(&client, &chat(20)).await;
    assert_eq!(s, 200, "{body}");

    // A lowered rate: the request just made (at the old spacing) leaves no room.
    let g = edit(
        &owner,
        &grant,
        json!({ "requests_per_minute": 1, "token_budget": { "daily": 1000 } }),
    )
    .await;
    assert_eq!(g["policy"]["requests_per_minute"], 1, "{g}");
    let (s, body, _) = send(&client, &chat(20)).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (429, Some("rate_limit_exceeded")),
        "{body}"
    );

    // A lowered budget: the 18 tokens spent so far count against it.
    edit(&owner, &grant, json!({ "token_budget": { "daily": 30 } })).await;
    let (s, body, _) = send(&client, &chat(20)).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (429, Some("insufficient_quota")),
        "{body}"
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("30"),
        "{body}"
    );

    // A removed model.
    edit(&owner, &grant, json!({ "models": ["openai/gpt-4o"] })).await;
    let (s, body, _) = send(&client, &chat(20)).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (403, Some("model_not_allowed")),
        "{body}"
    );
    assert_eq!(
        chat_calls(&fake),
        1,
        "refused requests never reach the provider"
    );

    // An invalid policy: a clear 400 and the grant unchanged.
    let (_, before) = owner.get(&format!("/admin/api/grants/{grant}")).await;
    for bad in [
        json!({ "request_per_minute": 5 }),
        json!({ "requests_per_minute": "many" }),
        json!({ "source_ips": ["not an address"] }),
    ] {
        let (s, body) = owner
            .put(&policy_path(&grant), &json!({ "policy": bad }))
            .await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (400, Some("invalid_policy")),
            "{bad}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("the policy is not valid: "),
            "{body}"
        );
    }
    let (_, after) = owner.get(&format!("/admin/api/grants/{grant}")).await;
    assert_eq!(before["policy"], after["policy"]);

    // The owner may widen too; the CLI edits over the current policy.
    edit(&owner, &grant, json!({})).await;
    let (s, body, _) = send(&client, &chat(20)).await;
    assert_eq!(s, 200, "{body}");
    let (code, out, err) = run_cli(&gw, &["grant", "edit", &grant, "--rpm", "7"], None).await;
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&shown["requests_per_minute"], &shown["models"]),
        (&json!(7), &json!(["*"]))
    );

    // Every change is in the audit log with what changed (owner and CLI).
    let (_, audit) = owner.get("/admin/api/audit").await;
    let changes: Vec<&Value> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "grant.policy_changed" && e["subject"] == grant.as_str())
        .collect();
    assert_eq!(changes.len(), 5, "{audit}");
    let detail: Value = serde_json::from_str(changes[0]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(
        detail["changed"],
        json!({ "requests_per_minute": { "from": null, "to": 7 } }),
        "{detail}"
    );
    assert_eq!(changes[0]["actor"], "owner:cli");
    assert!(
        changes[1]["actor"].as_str().unwrap().starts_with("owner:"),
        "{}",
        changes[1]
    );
}

#[tokio::test]
async fn a_narrowed_grant_refuses_the_next_request_on_sqlite() {
    narrowing_applies_to_the_next_request(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_narrowed_grant_refuses_the_next_request_on_postgres() {
    narrowing_applies_to_the_next_request(Backend::Postgres).await;
}

#[tokio::test]
async fn only_the_owner_session_can_edit_a_policy() {
    let (gw, _fake) = providers::start(Backend::Sqlite, "").await;
    create_owner(&gw).await;
    let a = app::raw_pair(&gw, KeyKind::Ed25519, &["--rpm", "2"]).await;
    let path = policy_path(&a.grant_id);
    let widen = json!({ "policy": {} }).to_string();
    let p = app::proof(&a.key, "PUT", &gw.url(&path), Some(&a.access_token), None);
    let auth = format!("DPoP {}", a.access_token);
    let attempts: Vec<Vec<(&str, String)>> = vec![
        vec![],
        // The app's own token and proof: not an owner credential.
        vec![("authorization", auth.clone()), ("dpop", p)],
        vec![
            ("cookie", format!("pairgate_session={}", a.access_token)),
            ("x-csrf-token", "x".into()),
        ],
    ];
    for headers in attempts {
        let mut hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        hs.push(("content-type", "application/json"));
        let (s, body, _) = app::call(&gw, "PUT", &path, &hs, Some(widen.as_bytes())).await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (401, Some("owner_required")),
            "{headers:?}"
        );
    }
    let owner = login(&gw).await;
    let cookie = [
        ("cookie", owner.cookie.as_str()),
        ("content-type", "application/json"),
    ];
    let (s, _, _) = app::call(&gw, "PUT", &path, &cookie, Some(widen.as_bytes())).await;
    assert_eq!(s, 403, "a session without the CSRF token");
    let (_, g) = owner
        .get(&format!("/admin/api/grants/{}", a.grant_id))
        .await;
    assert_eq!(g["policy"]["requests_per_minute"], 2, "unchanged: {g}");

    let (s, _) = owner.put(&policy_path("gr_unknown"), &widen_body()).await;
    assert_eq!(s, 404);
    let (s, _) = owner
        .post(
            &format!("/admin/api/grants/{}/revoke", a.grant_id),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, body) = owner.put(&path, &widen_body()).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("invalid_state")),
        "{body}"
    );
}

fn widen_body() -> Value {
    json!({ "policy": {} })
}

#[tokio::test]
async fn an_edit_on_one_replica_applies_on_the_other() {
    let fake = pairgate_tests::fake::FakeProvider::start().await;
    let (a, b) = two_replicas(&fake, "").await;
    create_owner(&a).await;
    let owner = login(&a).await;
    let (on_a, on_b) = pair_on_both(&a, &b, &[]).await;
    let (s, body, _) = send(&on_b, &chat(20)).await;
    assert_eq!(s, 200, "{body}");
    edit(
        &owner,
        &on_a.grant_id(),
        json!({ "models": ["anthropic/*"] }),
    )
    .await;
    let (s, body, _) = send(&on_b, &chat(20)).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (403, Some("model_not_allowed")),
        "B applies the policy edited on A at once: {body}"
    );
}
