//! The admin console's static files (`admin-ui/`), embedded in the binary and served under
//! `/admin/` with a strict Content-Security-Policy (no inline script or style), `X-Frame-Options:
//! DENY` and `nosniff`. The pages hold no data: everything comes from the owner-only JSON API
//! after login, so these routes are open.

use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderValue, StatusCode, header};

/// Content-Security-Policy of every console response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

macro_rules! asset {
    ($path:literal, $mime:literal) => {
        (
            $path,
            $mime,
            include_bytes!(concat!("../../../../../admin-ui/", $path)) as &[u8],
        )
    };
}

/// Every file of the console: path under `admin-ui/`, content type, bytes. A test checks that
/// every file in `admin-ui/app/` is listed.
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app/api.js", "text/javascript; charset=utf-8"),
    asset!("app/dom.js", "text/javascript; charset=utf-8"),
    asset!("app/main.js", "text/javascript; charset=utf-8"),
    asset!("app/overview.js", "text/javascript; charset=utf-8"),
    asset!("app/pairings.js", "text/javascript; charset=utf-8"),
    asset!("app/policy_form.js", "text/javascript; charset=utf-8"),
    asset!("app/policy_summary.js", "text/javascript; charset=utf-8"),
    asset!("app/consents.js", "text/javascript; charset=utf-8"),
    asset!("app/apps.js", "text/javascript; charset=utf-8"),
    asset!("app/credentials.js", "text/javascript; charset=utf-8"),
    asset!("app/plugins.js", "text/javascript; charset=utf-8"),
    asset!("app/prices.js", "text/javascript; charset=utf-8"),
    asset!("app/usage.js", "text/javascript; charset=utf-8"),
    asset!("app/charts.js", "text/javascript; charset=utf-8"),
    asset!("app/audit.js", "text/javascript; charset=utf-8"),
    asset!("app/account.js", "text/javascript; charset=utf-8"),
    asset!("app/passkeys.js", "text/javascript; charset=utf-8"),
    asset!("app/webauthn.js", "text/javascript; charset=utf-8"),
];

fn respond(mime: &'static str, body: &'static [u8]) -> Response {
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Revalidate every time: a new binary serves new files under the same names.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

fn index() -> Response {
    match ASSETS.iter().find(|(p, _, _)| *p == "index.html") {
        Some((_, mime, body)) => respond(mime, body),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /admin`: to the console.
pub async fn root() -> Redirect {
    Redirect::to("/admin/")
}

/// `GET /admin/`, `GET /admin/setup` (the setup link carries its token in the fragment, which
/// never reaches the server) and `GET /admin/consent` (the device flow's verification URI: the
/// console opens the request named by `?user_code=`, after sign-in when needed): the console.
pub async fn page() -> Response {
    index()
}

/// `GET /favicon.ico`: the console's icon (an SVG, which browsers take under this name too).
pub async fn favicon() -> Response {
    match ASSETS.iter().find(|(p, _, _)| *p == "favicon.svg") {
        Some((_, mime, body)) => respond(mime, body),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /admin/assets/{*path}`: one embedded file.
pub async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|(p, _, _)| *p == path) {
        Some((_, mime, body)) => respond(mime, body),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_console_file_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../admin-ui");
        let mut missing = Vec::new();
        for entry in std::fs::read_dir(root.join("app")).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let path = format!("app/{name}");
            if name.ends_with(".js") && !ASSETS.iter().any(|(p, _, _)| *p == path) {
                missing.push(path);
            }
        }
        assert!(missing.is_empty(), "not in ui::ASSETS: {missing:?}");
    }

    #[test]
    fn the_page_loads_no_inline_script_or_style() {
        let html = std::str::from_utf8(ASSETS[0].2).unwrap();
        assert!(!html.contains("<script>") && !html.contains("style="));
        assert!(!html.contains("onclick") && !html.contains("<style"));
        for (path, _, body) in ASSETS {
            let text = std::str::from_utf8(body).unwrap();
            assert!(
                !text.contains(".innerHTML") && !text.contains("eval("),
                "{path} must build the DOM with textContent"
            );
        }
    }
}
