//! Test helpers for acting as the owner over the admin API: a session cookie and CSRF token.

use serde_json::Value;

use crate::Gateway;
use crate::gateway::run_cli;

pub const PASSWORD: &str = "correct horse battery staple";

/// A logged-in owner.
#[derive(Debug, Clone)]
pub struct OwnerSession {
    pub base: String,
    pub cookie: String,
    pub csrf: String,
}

/// The `name=value` part of a Set-Cookie header.
pub fn cookie_of(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let v = headers.get("set-cookie")?.to_str().ok()?;
    Some(v.split(';').next()?.to_string())
}

/// Creates the owner with the CLI (password on stdin).
pub async fn create_owner(gw: &Gateway) {
    let (code, _, err) = run_cli(
        gw,
        &["owner", "create", "owner"],
        Some(&format!("{PASSWORD}\n")),
    )
    .await;
    assert_eq!(code, 0, "owner create: {err}");
}

/// Logs in over the API.
pub async fn login(gw: &Gateway) -> OwnerSession {
    let res = reqwest::Client::new()
        .post(gw.url("/admin/api/login"))
        .json(&serde_json::json!({ "username": "owner", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = cookie_of(res.headers()).unwrap();
    let body: Value = res.json().await.unwrap();
    OwnerSession {
        base: gw.base_url.clone(),
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
    }
}

impl OwnerSession {
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let res = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (
            res.status().as_u16(),
            res.json().await.unwrap_or(Value::Null),
        )
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, body).await
    }

    /// A state-changing request with the session and its CSRF token.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        let res = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .json(body)
            .send()
            .await
            .unwrap();
        (
            res.status().as_u16(),
            res.json().await.unwrap_or(Value::Null),
        )
    }
}
