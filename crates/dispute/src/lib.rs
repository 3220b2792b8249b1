//! The DisputeHandler: when cooperation fails, decide when to go to the chain and build the
//! proof from stored evidence.
//!
//! It watches a peer's [`StateManager`](entente_state_manager::StateManager) and the chain's
//! events, and asks for [`ChainAction`]s: post a transaction as calldata, raise a timeout
//! dispute, prove a double signature, challenge a false dispute with a later N-signed state,
//! finalize a dispute whose challenge period is over. A proof needs at most the latest provable
//! state (the fork's genesis, an N-signed or a posted transaction with its state) plus the
//! transactions it concerns. Sans-IO: the host carries out the actions through a chain adapter
//! and feeds back the chain's [`ChainEvent`]s.

mod codec;
mod handler;
mod types;

pub use codec::{decode_event, encode_action};
pub use handler::DisputeHandler;
pub use types::{ChainAction, ChainEvent, DisputeKind, DisputeRecord, FraudKind, ProofKind, StateProof};
