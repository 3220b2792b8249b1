use alloy_primitives::Address;

/// Errors of decoding, size limits and signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypesError {
    /// A message is larger than the protocol allows.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the message.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not a valid CBOR message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message speaks another protocol version.
    #[error("unsupported protocol version {got} (this node speaks {supported})")]
    UnsupportedVersion {
        /// Version in the message.
        got: u16,
        /// Version this node speaks.
        supported: u16,
    },
    /// A signature is not 65 bytes.
    #[error("signature must be 65 bytes, got {0}")]
    SignatureLength(usize),
    /// A signature's `v` is not 27 or 28.
    #[error("signature recovery id v={0} is not 27 or 28")]
    SignatureRecoveryId(u8),
    /// A signature has a high `s` (malleable) value.
    #[error("signature has a high s value (malleable); only low-s signatures are accepted")]
    SignatureHighS,
    /// The signature does not recover to a public key.
    #[error("signature does not recover to a public key")]
    SignatureInvalid,
    /// A private key is not a valid secp256k1 scalar.
    #[error("invalid secp256k1 private key")]
    InvalidKey,
    /// The signer is not the expected one.
    #[error("signed by {actual}, expected {expected}")]
    WrongSigner {
        /// Who should have signed.
        expected: Address,
        /// Who did.
        actual: Address,
    },
}
