//! Outbound calls pinned to checked addresses: an `openai-compatible` provider whose approved
//! host name resolves to a loopback address (pinned with `upstream.resolve`, which goes through
//! the same check as a DNS answer) is refused before anything connects, with a clear 502 naming
//! the host, never the key; the owner's log says why; the credential test takes the same path.
//! The same name served with `allow_private = true` works.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pairgate_protocol::keys::KeyKind;
use pairgate_tests::app::raw_pair;
use pairgate_tests::fake::{FakeProvider, REPLY};
use pairgate_tests::gateway::run_cli;
use pairgate_tests::owner::{create_owner, login};
use pairgate_tests::probe::books_with;
use pairgate_tests::{Backend, Gateway, providers};
use serde_json::json;
use tokio::net::TcpListener;

use crate::hostile::{assert_openai_error, signed};

/// The provider host name: pinned to 127.0.0.1 (no DNS is needed, here or on CI).
const HOST: &str = "llm.internal.test";
const INTRANET_KEY: &str = "sk-intranet-secret-0123456789";
const LOCAL_KEY: &str = "sk-local-secret-0123456789";

/// A listener that only counts the connections made to it.
async fn trap() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    (port, seen)
}

/// `intranet`: the name, https, private addresses not allowed (the default), pointing at the
/// trap. `local`: the same name, allowed private addresses, pointing at the fake provider.
fn config(fake: &FakeProvider, trap_port: u16) -> String {
    let fake_port = fake.addr.port();
    let extra = format!(
        "[providers.intranet]\nplugin = \"openai-compatible\"\n\
         [providers.intranet.config]\nbase_url = \"https://{HOST}:{trap_port}/v1\"\nmodels = [\"m1\"]\n\
         [providers.local]\nplugin = \"openai-compatible\"\nallow_private = true\n\
         [providers.local.config]\nbase_url = \"http://{HOST}:{fake_port}/v1\"\nmodels = [\"m1\"]\n\
         [upstream]\nresolve = [\"{HOST}=127.0.0.1\"]\n"
    );
    providers::fake_config(fake, &extra)
}

fn chat(model: &str) -> Vec<u8> {
    json!({ "model": model, "max_tokens": 20, "messages": [{ "role": "user", "content": "hi" }] })
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn a_provider_host_resolving_to_a_private_address_is_never_called_with_the_key() {
    let fake = FakeProvider::start().await;
    let (trap_port, connections) = trap().await;
    let gw = Gateway::builder(Backend::Sqlite)
        .config(config(&fake, trap_port))
        .start()
        .await;
    for (provider, key) in [("intranet", INTRANET_KEY), ("local", LOCAL_KEY)] {
        let (code, _, err) = run_cli(
            &gw,
            &["credential", "add", provider],
            Some(&format!("{key}\n")),
        )
        .await;
        assert_eq!(code, 0, "credential add {provider}: {err}");
    }
    let app = raw_pair(&gw, KeyKind::Ed25519, &[]).await;

    // Refused before connecting: a clear 502 naming the host, not the key or the address.
    let (status, body, _) = signed(&gw, &app, chat("intranet/m1"), &[]).await;
    assert_eq!(status, 502, "{body}");
    assert_openai_error(&body, "provider_address_refused", "a private provider host");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(HOST) && message.contains("allow_private"),
        "{message}"
    );
    assert!(!body.to_string().contains(INTRANET_KEY), "{body}");
    assert_eq!(connections.load(Ordering::SeqCst), 0, "nothing connected");
    assert!(fake.received().is_empty(), "the provider saw no request");

    // The ledger records the refusal; nothing is held or charged.
    let books = books_with(&gw, &app.grant_id, 1).await;
    let row = books.ledger.last().expect("a ledger row");
    assert_eq!(
        row.error_code.as_deref(),
        Some("provider_address_refused"),
        "{row:?}"
    );
    assert_eq!(row.status, 502);
    assert_eq!((row.tokens(), row.cost_micros), (0, 0), "{row:?}");
    assert_eq!(books.reservations, 0, "nothing held");

    // The owner's log says which host, which addresses and what to do; never the key.
    let logs = gw.logs();
    assert!(
        logs.contains(&format!("provider host {HOST} resolves only to private"))
            && logs.contains("127.0.0.1"),
        "{logs}"
    );
    assert!(!logs.contains(INTRANET_KEY), "the key is not logged");

    // The credential test takes the same path: not testable, nothing sent.
    create_owner(&gw).await;
    let owner = login(&gw).await;
    let (_, list) = owner.get("/admin/api/credentials").await;
    let id = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["provider"] == "intranet")
        .and_then(|c| c["id"].as_str())
        .unwrap()
        .to_string();
    let (s, answer) = owner
        .post(&format!("/admin/api/credentials/{id}/check"), &json!({}))
        .await;
    assert_eq!(s, 200, "{answer}");
    let check = &answer["provider_check"];
    assert_eq!(check["outcome"], "not_testable", "{check}");
    assert!(check["message"].as_str().unwrap().contains(HOST), "{check}");
    assert!(!answer.to_string().contains(INTRANET_KEY));
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the test connected nowhere"
    );

    // The same name, for an instance that allows private addresses: served, with its key.
    let (status, body, _) = signed(&gw, &app, chat("local/m1"), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], REPLY, "{body}");
    let seen = fake.last();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {LOCAL_KEY}").as_str())
    );
    assert_eq!(fake.received().len(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}
