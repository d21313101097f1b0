//! Fuzz target: `PairingString::parse` on arbitrary text, and on well-checksummed strings whose
//! embedded gateway URL is fuzzed (the checksum would otherwise stop almost every input early).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pairgate_protocol::{PairingString, pairing::PairingId, pairing::PairingSecret};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(parsed) = PairingString::parse(text) {
            // Whatever parses encodes back to the same pairing.
            let again = PairingString::parse(&parsed.encode()).expect("an encoded pairing parses");
            assert!(again == parsed);
        }
    }
    let Some((id, rest)) = data.split_first_chunk::<16>() else {
        return;
    };
    let Some((secret, url)) = rest.split_first_chunk::<32>() else {
        return;
    };
    let candidate = PairingString {
        id: PairingId(*id),
        secret: PairingSecret(*secret),
        gateway_url: String::from_utf8_lossy(url).into_owned(),
    };
    if let Ok(parsed) = PairingString::parse(&candidate.encode()) {
        assert!(
            parsed == candidate,
            "a parsed pairing differs from the one encoded"
        );
    }
});
