//! Entente's shared vocabulary: the channel spec, transactions, signatures, EIP-712 hashing
//! identical to the contracts, and the CBOR wire messages every peer exchanges.
//!
//! Everything here is plain data and pure functions; no IO. The EIP-712 digest of a
//! [`Transaction`] is byte-for-byte the one `StateChannelManager.transactionDigest` computes
//! (checked against the contracts' test vectors in `contracts/test/vectors/eip712.json`), and so
//! is [`MembershipApproval::digest`] the one of `joinApprovalDigest` / `leaveApprovalDigest`.
//!
//! ```
//! use entente_types::{Domain, LocalSigner, Signer, Transaction, recover_signer};
//! use alloy_primitives::{Address, B256, Bytes};
//!
//! let domain = Domain::new(31337, Address::repeat_byte(0x11));
//! let signer = LocalSigner::from_bytes(&B256::repeat_byte(7)).unwrap();
//! let tx = Transaction {
//!     channelId: B256::repeat_byte(1),
//!     forkCnt: 0,
//!     height: 1,
//!     participant: signer.address(),
//!     timestamp: 1_700_000_000,
//!     prevStateHash: B256::ZERO,
//!     stateHash: B256::repeat_byte(2),
//!     data: Bytes::new(),
//! };
//! let digest = domain.digest(&tx);
//! let signature = signer.sign_digest(&digest);
//! assert_eq!(recover_signer(&digest, &signature).unwrap(), signer.address());
//! ```

mod channel;
mod crypto;
mod eip712;
mod error;
mod intent;
mod membership;
mod wire;

pub use channel::{AgreementMode, ChannelProposal, ChannelSpec, MAX_REASON_BYTES, ProposalAnswer, Timing};
pub use crypto::{LocalSigner, SignError, Signature, Signer, recover_signer};
pub use eip712::{Domain, Transaction, state_hash};
pub use error::TypesError;
pub use intent::{Intent, SignedIntent, intent_domain};
pub use membership::{
    ApprovalSignature, JoinApproval, JoinTicket, LeaveApproval, MembershipApproval, MembershipChange,
};
pub use wire::{
    Confirmation, Envelope, MAX_MESSAGE_BYTES, Message, PROTOCOL_VERSION, SignedTransaction, SyncRequest,
    SyncResponse, TransactionRecord,
};

/// Re-exported primitive types used throughout the API.
pub use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
