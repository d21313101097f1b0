//! A plugin that reaches for the filesystem: the host must refuse to install it.

use pairgate_plugin_sdk::{
    Credential, Descriptor, Failure, Finished, Plugin, PrepareRequest, Rejection, UpstreamCall,
    UpstreamResponse, reply,
};

struct WasiImport;

impl Plugin for WasiImport {
    fn describe(_config: &str) -> Result<Descriptor, Rejection> {
        let secret = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        Ok(Descriptor {
            id: "wasi-import".into(),
            display_name: secret,
            version: "0.1.0".into(),
            actions: Vec::new(),
            models: Vec::new(),
            hosts: Vec::new(),
            credential: Credential::None,
            passthrough: Vec::new(),
            quotas: Vec::new(),
        })
    }

    fn prepare(req: PrepareRequest) -> Result<UpstreamCall, Rejection> {
        Err(reply::unsupported_action(&req.action))
    }

    fn finish(_resp: UpstreamResponse) -> Result<Finished, Failure> {
        Err(reply::bad_response("unused"))
    }
}

pairgate_plugin_sdk::plugin!(WasiImport);
