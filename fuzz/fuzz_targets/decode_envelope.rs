//! Any bytes: decoding a wire frame returns a typed result and never panics; whatever decodes
//! re-encodes to a frame that decodes to the same message.
#![no_main]

use entente_types::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::decode(data) {
        let again = envelope
            .encode()
            .expect("a decoded frame re-encodes within the limit");
        assert_eq!(
            Envelope::decode(&again).expect("re-encoded frame decodes"),
            envelope
        );
    }
});
