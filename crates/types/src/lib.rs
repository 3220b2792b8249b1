//! Entente's shared vocabulary: the channel spec, transactions, signatures, EIP-712 hashing
//! identical to the contracts, and the CBOR wire messages every peer exchanges.
