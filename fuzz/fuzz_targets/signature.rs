//! Any 65 bytes and digest: parsing and recovering a signature never panics, and a parsed
//! signature is always low-s with v in {27, 28}.
#![no_main]

use entente_types::{B256, Signature, recover_signer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 32 {
        return;
    }
    let digest = B256::from_slice(&data[..32]);
    if let Ok(signature) = Signature::from_slice(&data[32..]) {
        assert!(matches!(signature.as_bytes()[64], 27 | 28));
        let _ = recover_signer(&digest, &signature);
    }
});
