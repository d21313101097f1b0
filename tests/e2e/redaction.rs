//! The log redaction layer through the real binary: secrets that reach a log line anyway (here
//! a provider key an app put into a request path, logged with the request span) are written as
//! `[redacted]`, in both log formats, while the request id stays.

use pairgate_protocol::keys::KeyKind;
use pairgate_tests::Backend;
use pairgate_tests::app::pair;
use pairgate_tests::providers::{self, test_key};

#[tokio::test]
async fn secrets_in_request_paths_are_redacted_from_logs_in_both_formats() {
    for format in ["human", "json"] {
        let (gw, _fake) =
            providers::start_with(Backend::Sqlite, "", &[("PAIRGATE_LOG_FORMAT", format)]).await;
        let app = pair(&gw, KeyKind::Ed25519, &[]).await;
        // A relayed call: the gateway decrypts and uses the key (and its log scrubber learns it).
        let res = app.get("/v1/models").send().await.unwrap();
        assert_eq!(res.status(), 200);
        let key = test_key("openai");
        let pairing = pairgate_tests::app::pairing_string(&gw, &[]).await;
        let mut ids = Vec::new();
        for path in [
            format!("/v1/models/{key}"),
            format!("/r/openai/v1/files/{pairing}"),
        ] {
            let res = reqwest::Client::new()
                .get(gw.url(&path))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 401);
            ids.push(res.headers()["x-request-id"].to_str().unwrap().to_string());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let logs = gw.logs();
        for id in &ids {
            assert!(
                logs.contains(id.as_str()),
                "{format}: the request id is logged: {logs}"
            );
        }
        assert!(logs.contains("[redacted]"), "{format}: {logs}");
        assert!(
            !logs.contains(&key),
            "{format}: the provider key leaked: {logs}"
        );
        assert!(
            !logs.contains(&pairing),
            "{format}: the pairing string leaked: {logs}"
        );
    }
}
