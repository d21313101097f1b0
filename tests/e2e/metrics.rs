//! `/metrics` is not open to whoever reaches the API listener: it needs `metrics.token` as a
//! bearer token there, is not served there at all without one, and with `metrics.listen` it is
//! served only on that separate listener (with the token, when one is set). The token is never
//! logged.

use pairgate_tests::gateway::{METRICS_TOKEN, free_port};
use pairgate_tests::{Backend, Gateway};

/// `GET url` with an optional bearer token: status, `WWW-Authenticate`, body.
async fn scrape(url: &str, token: Option<&str>) -> (u16, String, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, challenge, res.text().await.unwrap())
}

#[tokio::test]
async fn metrics_on_the_api_listener_need_the_token() {
    let gw = Gateway::start(Backend::Sqlite).await;
    let _ = reqwest::get(gw.url("/healthz")).await.unwrap();
    let url = gw.url("/metrics");
    let (s, challenge, _) = scrape(&url, None).await;
    assert_eq!((s, challenge.as_str()), (401, "Bearer realm=\"metrics\""));
    for wrong in [
        "wrong-token-0123456789",
        &METRICS_TOKEN[..METRICS_TOKEN.len() - 1],
    ] {
        assert_eq!(scrape(&url, Some(wrong)).await.0, 401, "{wrong}");
    }
    let (s, _, body) = scrape(&url, Some(METRICS_TOKEN)).await;
    assert_eq!(s, 200);
    assert!(body.contains("pairgate_requests_total"), "{body}");
    assert!(
        !gw.logs().contains(METRICS_TOKEN),
        "the token is never logged"
    );

    // Without a token configured, the API listener has no metrics at all.
    let open = Gateway::builder(Backend::Sqlite)
        .env_remove("PAIRGATE_METRICS__TOKEN")
        .start()
        .await;
    for token in [None, Some(METRICS_TOKEN)] {
        let (s, _, body) = scrape(&open.url("/metrics"), token).await;
        assert_eq!(s, 404, "{body}");
        assert!(!body.contains("pairgate_"), "{body}");
    }
}

#[tokio::test]
async fn a_separate_metrics_listener_takes_metrics_off_the_api_listener() {
    // With a token: required on the metrics listener too.
    let port = free_port();
    let gw = Gateway::builder(Backend::Sqlite)
        .env("PAIRGATE_METRICS__LISTEN", format!("127.0.0.1:{port}"))
        .start()
        .await;
    let _ = reqwest::get(gw.url("/healthz")).await.unwrap();
    assert_eq!(
        scrape(&gw.url("/metrics"), Some(METRICS_TOKEN)).await.0,
        404
    );
    let url = format!("http://127.0.0.1:{port}/metrics");
    assert_eq!(scrape(&url, None).await.0, 401);
    let (s, _, body) = scrape(&url, Some(METRICS_TOKEN)).await;
    assert_eq!(s, 200);
    assert!(body.contains("pairgate_requests_total"), "{body}");
    assert!(
        gw.logs()
            .contains(&format!("metrics on http://127.0.0.1:{port}/metrics"))
    );

    // Without a token: open on its own listener (bind it to loopback or a private network).
    let port = free_port();
    let open = Gateway::builder(Backend::Sqlite)
        .env_remove("PAIRGATE_METRICS__TOKEN")
        .env("PAIRGATE_METRICS__LISTEN", format!("127.0.0.1:{port}"))
        .start()
        .await;
    assert_eq!(scrape(&open.url("/metrics"), None).await.0, 404);
    let (s, _, body) = scrape(&format!("http://127.0.0.1:{port}/metrics"), None).await;
    assert_eq!(s, 200);
    assert!(body.contains("pairgate_"), "{body}");
}
