//! Tests of the upstream URL and header checks.

use super::*;

const OPENAI: &[&str] = &["api.openai.com"];

fn denied(url: &str, declared: &[&str], approved: &[&str], allow_private: bool) -> UpstreamDenied {
    check_upstream(url, declared, approved, allow_private).expect_err(url)
}

#[test]
fn a_declared_and_approved_https_host_passes() {
    let ok = check_upstream(
        "https://api.openai.com/v1/chat/completions#x",
        OPENAI,
        OPENAI,
        false,
    )
    .expect("allowed");
    assert_eq!(ok.as_str(), "https://api.openai.com/v1/chat/completions");
    assert_eq!((ok.host(), ok.port()), ("api.openai.com", 443));
    let ok =
        check_upstream("https://API.OpenAI.com./v1", OPENAI, OPENAI, false).expect("normalised");
    assert_eq!(ok.host(), "api.openai.com");
}

#[test]
fn the_host_must_be_declared_and_approved() {
    assert_eq!(
        denied(
            "https://evil.example.com/x",
            OPENAI,
            &["evil.example.com"],
            false
        ),
        UpstreamDenied::NotDeclared("evil.example.com".into())
    );
    assert_eq!(
        denied("https://api.openai.com/x", OPENAI, &[], false),
        UpstreamDenied::NotApproved("api.openai.com".into())
    );
    // A look-alike suffix is another host.
    assert_eq!(
        denied("https://api.openai.com.evil.io/x", OPENAI, OPENAI, false),
        UpstreamDenied::NotDeclared("api.openai.com.evil.io".into())
    );
}

#[test]
fn ports_must_match_the_entry_or_the_default() {
    assert_eq!(
        denied("https://api.openai.com:8443/x", OPENAI, OPENAI, false),
        UpstreamDenied::NotDeclared("api.openai.com".into())
    );
    let hosts = ["localhost:11434"];
    let ok =
        check_upstream("http://localhost:11434/api/chat", &hosts, &hosts, true).expect("local");
    assert_eq!(ok.port(), 11434);
    assert_eq!(
        denied("http://localhost:11435/api/chat", &hosts, &hosts, true),
        UpstreamDenied::NotDeclared("localhost".into())
    );
}

#[test]
fn only_https_unless_private_is_allowed() {
    assert_eq!(
        denied("http://api.openai.com/x", OPENAI, OPENAI, false),
        UpstreamDenied::Scheme("http".into())
    );
    for url in [
        "ftp://api.openai.com/x",
        "file:///etc/passwd",
        "gopher://api.openai.com/",
    ] {
        assert!(
            matches!(denied(url, OPENAI, OPENAI, true), UpstreamDenied::Scheme(_)),
            "{url}"
        );
    }
    assert_eq!(
        denied("not a url", OPENAI, OPENAI, false),
        UpstreamDenied::InvalidUrl
    );
}

#[test]
fn credentials_in_the_url_are_refused() {
    assert_eq!(
        denied("https://user:pw@api.openai.com/x", OPENAI, OPENAI, false),
        UpstreamDenied::Credentials
    );
}

#[test]
fn private_loopback_and_link_local_literals_are_refused() {
    let cases = [
        "https://127.0.0.1/",
        "https://10.1.2.3/",
        "https://172.16.0.1/",
        "https://192.168.1.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/",
        "https://0.0.0.0/",
        "https://2130706433/",
        "https://0x7f.1/",
        "https://[::1]/",
        "https://[fe80::1]/",
        "https://[fd00::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[::ffff:169.254.169.254]/",
        "https://[64:ff9b::10.0.0.1]/",
        "https://[::]/",
    ];
    for url in cases {
        let err = denied(url, &["*"], &["*"], false);
        assert!(
            matches!(err, UpstreamDenied::PrivateAddress(_)),
            "{url}: {err:?}"
        );
    }
    for url in [
        "https://localhost/",
        "https://LOCALHOST./",
        "https://app.localhost/",
    ] {
        assert!(
            matches!(
                denied(url, &["*"], &["*"], false),
                UpstreamDenied::Localhost(_)
            ),
            "{url}"
        );
    }
}

#[test]
fn private_addresses_pass_when_allowed_and_listed() {
    let hosts = ["10.0.0.5:8000", "[::1]:8080", "localhost"];
    for url in [
        "http://10.0.0.5:8000/v1",
        "http://[::1]:8080/v1",
        "http://localhost/v1",
    ] {
        assert!(check_upstream(url, &hosts, &hosts, true).is_ok(), "{url}");
    }
}

#[test]
fn special_ranges_and_ipv4_carried_in_ipv6_are_private() {
    for ip in [
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.255",
        "0.0.0.0",
        "0.1.2.3",
        "192.0.0.8",
        "192.0.2.1",
        "192.88.99.1",
        "198.18.0.1",
        "198.51.100.1",
        "203.0.113.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "fec0::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "2001:db8::1",
        "3fff::1",
        "100::1",
        // IPv4-mapped and IPv4-compatible.
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "::10.0.0.1",
        // NAT64: the well-known prefix with a private IPv4 address, and the local-use /48.
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::10.1.2.3",
        "64:ff9b:1::8.8.8.8",
        "64:ff9b:1:ffff::1",
        // 6to4 embedding a private IPv4 address (2002:AABB:CCDD::).
        "2002:7f00:1::1",
        "2002:a9fe:a9fe::",
        "2002:c0a8:101::1",
        "2002:a00:1::",
        // Teredo, benchmarking, ORCHID.
        "2001::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:2::1",
        "2001:10::1",
        "2001:20::1",
    ] {
        let ip: IpAddr = ip.parse().expect("ip");
        assert!(is_private(ip), "{ip} must count as private");
    }
}

#[test]
fn public_addresses_are_not_private() {
    for ip in [
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255",
        "100.128.0.1",
        "172.32.0.1",
        "192.88.98.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ] {
        let ip: IpAddr = ip.parse().expect("ip");
        assert!(!is_private(ip), "{ip}");
    }
}

#[test]
fn auth_headers_and_the_credential_header_are_stripped() {
    let headers: Vec<(String, String)> = [
        ("Authorization", "Bearer stolen"),
        ("PROXY-AUTHORIZATION", "x"),
        ("x-api-key", "x"),
        ("Api-Key", "x"),
        ("x-goog-api-key", "x"),
        ("x-example-key", "x"),
        ("content-type", "application/json"),
        ("anthropic-version", "2023-06-01"),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v.to_owned()))
    .collect();
    let kept = strip_auth_headers(headers.clone(), &Credential::Header("X-Example-Key".into()));
    let names: Vec<&str> = kept.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["content-type", "anthropic-version"]);
    let kept = strip_auth_headers(headers, &Credential::Bearer);
    assert!(kept.iter().any(|(n, _)| n == "x-example-key"));
    assert_eq!(kept.len(), 3);
}
