//! The DisputeHandler: when cooperation fails, decide when to go to the chain and build the
//! proof from stored evidence.
//!
//! It watches a peer's [`StateManager`](entente_state_manager::StateManager) and the chain's
//! events, and asks for [`ChainAction`]s: post a transaction as calldata, show an N-signed
//! state (checkpoint), raise a timeout dispute, prove a double signature or a fraud, challenge a
//! dispute with a later N-signed state, finalize a dispute whose challenge period is over. It
//! follows the chain's head (the fork's genesis, the last N-signed state shown, or the last posted
//! transaction, which the chain ran); the rules it keeps are `docs/security.md`'s O1-O6. Sans-IO: the host carries out the actions through a chain adapter
//! and feeds back the chain's [`ChainEvent`]s.

mod codec;
mod handler;
mod types;

pub use codec::{decode_event, encode_action};
pub use handler::DisputeHandler;
pub use types::{
    CallOutcome, ChainAction, ChainEvent, DisputeKind, DisputeRecord, FraudKind, ProofKind, StateProof,
};
