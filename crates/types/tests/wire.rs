//! Wire format: round trips, and every kind of bad frame gets its typed error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use entente_types::{
    Address, B256, Bytes, Confirmation, Envelope, LocalSigner, MAX_MESSAGE_BYTES, Message, PROTOCOL_VERSION,
    SignedTransaction, Signer, Transaction, TypesError,
};
use proptest::prelude::*;

fn sample(data_len: usize) -> Envelope {
    let signer = LocalSigner::from_bytes(&B256::repeat_byte(9)).unwrap();
    let transaction = Transaction {
        channelId: B256::repeat_byte(1),
        forkCnt: 2,
        height: 17,
        participant: signer.address(),
        timestamp: 1_700_000_123,
        prevStateHash: B256::repeat_byte(3),
        stateHash: B256::repeat_byte(4),
        data: Bytes::from(vec![0xab; data_len]),
    };
    let signature = signer.sign_digest(&B256::repeat_byte(5));
    Envelope::new(Message::Transaction(SignedTransaction {
        transaction,
        signature,
    }))
}

#[test]
fn round_trip() {
    let env = sample(36);
    let bytes = env.encode().unwrap();
    assert_eq!(Envelope::decode(&bytes).unwrap(), env);
}

#[test]
fn oversized_frame_is_refused_before_decoding() {
    let bytes = vec![0u8; MAX_MESSAGE_BYTES + 1];
    assert_eq!(
        Envelope::decode(&bytes),
        Err(TypesError::TooLarge {
            size: MAX_MESSAGE_BYTES + 1,
            limit: MAX_MESSAGE_BYTES
        })
    );
    assert!(matches!(
        sample(MAX_MESSAGE_BYTES).encode(),
        Err(TypesError::TooLarge { .. })
    ));
}

#[test]
fn truncated_frame_is_malformed() {
    let bytes = sample(10).encode().unwrap();
    for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            matches!(Envelope::decode(&bytes[..cut]), Err(TypesError::Malformed(_))),
            "cut at {cut}"
        );
    }
}

#[test]
fn garbage_is_malformed() {
    assert!(matches!(
        Envelope::decode(b"\xff\x00garbage"),
        Err(TypesError::Malformed(_))
    ));
    // Deeply nested arrays must not blow the stack.
    let nested = vec![0x81u8; 100_000];
    assert!(matches!(Envelope::decode(&nested), Err(TypesError::Malformed(_))));
}

#[test]
fn wrong_version_is_refused() {
    let mut env = sample(1);
    env.version = PROTOCOL_VERSION + 1;
    let mut bytes = Vec::new();
    ciborium::into_writer(&env, &mut bytes).unwrap();
    assert_eq!(
        Envelope::decode(&bytes),
        Err(TypesError::UnsupportedVersion {
            got: PROTOCOL_VERSION + 1,
            supported: PROTOCOL_VERSION
        })
    );
}

#[test]
fn bad_signature_bytes_are_malformed() {
    // A confirmation whose signature has a high s must not decode.
    let conf = Confirmation {
        channel_id: B256::ZERO,
        fork: 0,
        height: 1,
        digest: B256::ZERO,
        signature: LocalSigner::from_bytes(&B256::repeat_byte(2))
            .unwrap()
            .sign_digest(&B256::ZERO),
    };
    let mut bytes = Envelope::new(Message::Confirmation(conf.clone()))
        .encode()
        .unwrap();
    // The signature's v byte is the last byte of the 65-byte string; set it to 0.
    let sig = conf.signature.as_bytes();
    let pos = bytes.windows(65).position(|w| w == sig).unwrap();
    bytes[pos + 64] = 0;
    assert!(matches!(Envelope::decode(&bytes), Err(TypesError::Malformed(m)) if m.contains("v=0")));
}

proptest! {
    #[test]
    fn any_transaction_round_trips(
        fork in any::<u64>(), height in any::<u64>(), ts in any::<u64>(),
        who in any::<[u8; 20]>(), data in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut env = sample(0);
        if let Message::Transaction(st) = &mut env.message {
            st.transaction.forkCnt = fork;
            st.transaction.height = height;
            st.transaction.timestamp = ts;
            st.transaction.participant = Address::from(who);
            st.transaction.data = Bytes::from(data);
        }
        let bytes = env.encode().unwrap();
        prop_assert_eq!(Envelope::decode(&bytes).unwrap(), env);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Envelope::decode(&bytes);
    }
}
