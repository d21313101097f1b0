//! A software passkey for tests: a P-256 key pair that answers the gateway's WebAuthn options the
//! way a platform authenticator and browser do (attestation `none`, user present and verified,
//! a signature counter), so the server's checks run against real signatures. The origin it
//! writes into the client data is the caller's choice, to prove wrong origins are refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Flags of the authenticator data (WebAuthn §6.1).
const USER_PRESENT: u8 = 0x01;
const USER_VERIFIED: u8 = 0x04;
const ATTESTED_DATA: u8 = 0x40;

/// One discoverable credential.
#[derive(Debug)]
pub struct SoftPasskey {
    key: SigningKey,
    pub credential_id: Vec<u8>,
    /// The user handle the relying party gave at registration.
    pub user_handle: Vec<u8>,
    /// The signature counter; every assertion increments it first.
    pub counter: u32,
}

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

fn cbor_head(major: u8, len: usize) -> Vec<u8> {
    match len {
        0..=23 => vec![(major << 5) | len as u8],
        24..=255 => vec![(major << 5) | 24, len as u8],
        _ => {
            let mut v = vec![(major << 5) | 25];
            v.extend_from_slice(&(len as u16).to_be_bytes());
            v
        }
    }
}

fn cbor_bytes(data: &[u8]) -> Vec<u8> {
    let mut v = cbor_head(2, data.len());
    v.extend_from_slice(data);
    v
}

fn cbor_text(s: &str) -> Vec<u8> {
    let mut v = cbor_head(3, s.len());
    v.extend_from_slice(s.as_bytes());
    v
}

fn client_data(kind: &str, options: &Value, origin: &str) -> Vec<u8> {
    json!({
        "type": kind,
        "challenge": options["publicKey"]["challenge"],
        "origin": origin,
        "crossOrigin": false,
    })
    .to_string()
    .into_bytes()
}

impl Default for SoftPasskey {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftPasskey {
    pub fn new() -> SoftPasskey {
        let mut id = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
        SoftPasskey {
            key: SigningKey::random(&mut rand_core::OsRng),
            credential_id: id.to_vec(),
            user_handle: Vec::new(),
            counter: 0,
        }
    }

    /// The COSE_Key of the public key: {kty: EC2, alg: ES256, crv: P-256, x, y}.
    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_encoded_point(false);
        let mut v = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21];
        v.extend(cbor_bytes(point.x().unwrap()));
        v.push(0x22);
        v.extend(cbor_bytes(point.y().unwrap()));
        v
    }

    fn auth_data(&self, rp_id: &str, flags: u8) -> Vec<u8> {
        let mut d = Sha256::digest(rp_id.as_bytes()).to_vec();
        d.push(flags);
        d.extend_from_slice(&self.counter.to_be_bytes());
        d
    }

    /// The browser's answer to registration options (`{ publicKey: ... }`), made at `origin`.
    pub fn register(&mut self, options: &Value, origin: &str) -> Value {
        let pk = &options["publicKey"];
        let rp_id = pk["rp"]["id"].as_str().unwrap();
        self.user_handle = unb64(pk["user"]["id"].as_str().unwrap());
        let mut auth = self.auth_data(rp_id, USER_PRESENT | USER_VERIFIED | ATTESTED_DATA);
        auth.extend_from_slice(&[0u8; 16]); // AAGUID
        auth.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
        auth.extend_from_slice(&self.credential_id);
        auth.extend(self.cose_key());
        // {"fmt": "none", "attStmt": {}, "authData": auth}
        let mut att = vec![0xa3];
        att.extend(cbor_text("fmt"));
        att.extend(cbor_text("none"));
        att.extend(cbor_text("attStmt"));
        att.push(0xa0);
        att.extend(cbor_text("authData"));
        att.extend(cbor_bytes(&auth));
        self.credential(json!({
            "attestationObject": b64(&att),
            "clientDataJSON": b64(&client_data("webauthn.create", options, origin)),
        }))
    }

    /// The `PublicKeyCredential` JSON around an authenticator response.
    fn credential(&self, response: Value) -> Value {
        let id = b64(&self.credential_id);
        json!({ "id": id, "rawId": id, "type": "public-key", "response": response, "extensions": {} })
    }

    /// The browser's answer to sign-in options, made at `origin`; increments the counter.
    pub fn assert(&mut self, options: &Value, origin: &str) -> Value {
        self.counter += 1;
        let rp_id = options["publicKey"]["rpId"].as_str().unwrap();
        let auth = self.auth_data(rp_id, USER_PRESENT | USER_VERIFIED);
        let cdj = client_data("webauthn.get", options, origin);
        let mut signed = auth.clone();
        signed.extend_from_slice(&Sha256::digest(&cdj));
        let sig: Signature = self.key.sign(&signed);
        self.credential(json!({
            "authenticatorData": b64(&auth),
            "clientDataJSON": b64(&cdj),
            "signature": b64(sig.to_der().as_bytes()),
            "userHandle": b64(&self.user_handle),
        }))
    }
}
