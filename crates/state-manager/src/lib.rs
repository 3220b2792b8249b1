//! The StateManager: one peer's view of one channel.
//!
//! Every received transaction passes the verification pipeline of seed 002, each step with its
//! own typed [`Rejection`]: decode and size limits, channel, fork, height (duplicate, conflict,
//! future heights are buffered), issuer signature, participant, turn, previous state hash,
//! timestamp against the local logical clock, execution of the real bytecode, and the resulting
//! state hash. A valid transaction is applied at once (the next writer may build on it before it
//! is final: pipelining), persisted, confirmed (in explicit-confirmation mode) and handed to the
//! [`AgreementManager`](entente_agreement::AgreementManager) for finality.
//!
//! The manager is sans-IO: inputs are messages, local moves, block timestamps and timer ticks
//! with the local time in milliseconds; outputs are [`Effect`]s (broadcast, send, persist,
//! notify) that the host carries out in order. The deterministic simulation (`entente-sim`) and
//! the node drive the very same code.
//!
//! ```
//! use alloy_sol_types::SolCall;
//! use entente_contracts::{TicTacToe, artifacts};
//! use entente_evm_runtime::{MachineCode, MachineInstance};
//! use entente_state_manager::{Config, Effect, StateManager};
//! use entente_types::*;
//!
//! let (x, o) = (LocalSigner::from_bytes(&B256::repeat_byte(1)).unwrap(), LocalSigner::from_bytes(&B256::repeat_byte(2)).unwrap());
//! let code = MachineCode::from_artifact_json(artifacts::TIC_TAC_TOE).unwrap();
//! let genesis = MachineInstance::deploy(&code, 1_000_000).unwrap()
//!     .view_decode(&TicTacToe::initialStateCall { x: x.address(), o: o.address(), stake: Default::default() })
//!     .unwrap();
//! let spec = ChannelSpec {
//!     channel_id: B256::repeat_byte(7),
//!     domain: Domain::new(31337, Address::repeat_byte(9)),
//!     participants: vec![x.address(), o.address()],
//!     state_machine: Address::ZERO,
//!     timing: Timing::default(),
//!     agreement_mode: AgreementMode::ExplicitConfirmations,
//!     genesis_state: genesis,
//!     genesis_timestamp: 1_700_000_000,
//! };
//! let mut px = StateManager::new(spec.clone(), x, &code, Config::default(), 0).unwrap();
//! let mut po = StateManager::new(spec, o, &code, Config::default(), 0).unwrap();
//!
//! px.submit(TicTacToe::playCall { cell: 4 }.abi_encode().into(), 10).unwrap();
//! let x_addr = px.me();
//! let sent: Vec<_> = px.drain_effects().collect();
//! for effect in sent {
//!     if let Effect::Broadcast(message) = effect {
//!         po.handle_message(x_addr, message, 20).unwrap();
//!     }
//! }
//! assert_eq!(po.tip(), 1);
//! assert!(po.is_my_turn());
//! ```

mod effect;
mod error;
mod manager;
mod membership;

pub use effect::{Effect, Event, PersistRecord};
pub use error::{Rejection, SetupError, SubmitError};
pub use manager::restore::{ChannelSnapshot, RestoreError, StoredTransaction};
pub use manager::{
    Accepted, Config, ForkInfo, FraudEvidence, FraudKind, MAX_INTENT_DATA, Recover, StateManager,
};
pub use membership::{ApprovalContext, ApprovalRefusal, approval_window};
