//! Fuzz target: `user_code::normalize` on arbitrary text; accepted codes are canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pairgate_protocol::user_code::{ALPHABET, normalize};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(code) = normalize(text) {
        let bytes = code.as_bytes();
        assert_eq!(bytes.len(), 9);
        assert_eq!(bytes[4], b'-');
        assert!(
            bytes
                .iter()
                .enumerate()
                .all(|(i, c)| i == 4 || ALPHABET.contains(c))
        );
        assert_eq!(normalize(&code).as_deref(), Ok(code.as_str()));
    }
});
