//! Behind a reverse proxy: `htu` is checked against the configured `public_url` only. The `Host`
//! header and `X-Forwarded-*` / `Forwarded` headers, which any client can set, never change
//! which URL a proof must name.

use pairgate_protocol::keys::KeyKind;
use pairgate_protocol::oauth::GRANT_TYPE_PAIRING;
use pairgate_tests::app::{self, call, oauth_post, pairing_string, proof};
use pairgate_tests::{Backend, Gateway};

const PUBLIC: &str = "https://gw.example";

/// Headers a client could send to claim it reached the gateway under another name.
const SPOOFED: &[(&str, &str)] = &[
    ("host", "evil.example"),
    ("x-forwarded-host", "evil.example"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-port", "443"),
    ("forwarded", "host=evil.example;proto=https"),
];

#[tokio::test]
async fn htu_follows_public_url_and_ignores_host_and_forwarded_headers() {
    let gw = Gateway::builder(Backend::Sqlite)
        .config(format!("public_url = \"{PUBLIC}/\"\n"))
        .start()
        .await;
    let code = pairing_string(&gw, &[]).await;
    let key = app::key(KeyKind::Ed25519);

    // The token request is checked against the public URL, though it arrived on 127.0.0.1.
    let wrong = proof(&key, "POST", &gw.url("/oauth/token"), None, None);
    let form = [
        ("grant_type", GRANT_TYPE_PAIRING),
        ("pairing_code", code.as_str()),
    ];
    let (status, body, _) = oauth_post(&gw, "/oauth/token", &form, Some(&wrong)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "{body}"
    );
    let right = proof(&key, "POST", &format!("{PUBLIC}/oauth/token"), None, None);
    let (status, body, _) = oauth_post(&gw, "/oauth/token", &form, Some(&right)).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    let authorization = format!("DPoP {token}");

    let attempt = |htu: String, spoof: bool| {
        let p = proof(&key, "GET", &htu, Some(&token), None);
        let authorization = authorization.clone();
        let gw = &gw;
        async move {
            let mut headers = vec![
                ("authorization", authorization.as_str()),
                ("dpop", p.as_str()),
            ];
            if spoof {
                headers.extend_from_slice(SPOOFED);
            }
            call(gw, "GET", "/v1/grant", &headers, None).await
        }
    };
    // What the connection or the spoofed headers say is refused ...
    for (htu, spoof) in [
        (gw.url("/v1/grant"), false),
        (gw.url("/v1/grant"), true),
        ("https://evil.example/v1/grant".to_string(), true),
    ] {
        let (status, body, _) = attempt(htu.clone(), spoof).await;
        assert_eq!(status, 401, "{htu} spoof={spoof}: {body}");
        assert_eq!(body["error"]["code"], "invalid_dpop_proof", "{htu}: {body}");
    }
    // ... and the public URL is accepted whatever the headers say.
    for spoof in [false, true] {
        let (status, body, _) = attempt(format!("{PUBLIC}/v1/grant"), spoof).await;
        assert_eq!(status, 200, "spoof={spoof}: {body}");
    }
}
