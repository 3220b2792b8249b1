//! The compiled Entente contracts, embedded from `contracts/artifacts/` (checked against a fresh
//! compile of `contracts/src` by `npm run check-artifacts`), with typed `sol!` bindings for
//! encoding calls, decoding results, events and custom errors.
//!
//! - [`artifacts`]: the artifact JSON of every contract Rust deploys or binds (the two example
//!   machines, the StateChannelManager, its extension, its interfaces) and [`Artifact`] to read
//!   the ABI and bytecode out of one.
//! - Bindings: [`TicTacToe`], [`RoundRobinCounter`], [`IStateChannelManager`] (the manager's whole
//!   ABI, events and errors included) and [`IStateChannelEvents`].
//! - [`decode_manager_log`] / [`decode_manager_error`]: a manager log or revert into its typed
//!   event or error ([`ManagerEvent`], [`ManagerError`]).
//! - [`ChannelStatus`], [`ProofKind`], [`DisputeKind`]: the Solidity enums, which the bindings
//!   carry as `u8` (a JSON ABI records enums as `uint8`).
//! - `From` conversions between [`entente_types::Transaction`] and the bindings' `Transaction`.
//!
//! This crate has no IO and no provider: the sans-IO cores, the revm runtime and the in-process
//! chain use it. The JSON-RPC bindings live in `entente-chain`.
//!
//! ```
//! use alloy_sol_types::{SolCall, SolEvent};
//! use entente_contracts::{IStateChannelManager, ManagerEvent, TicTacToe, artifacts, decode_manager_log};
//! use entente_types::B256;
//!
//! let data = TicTacToe::playCall { cell: 4 }.abi_encode();
//! assert_eq!(&data[..4], TicTacToe::playCall::SELECTOR.as_slice());
//!
//! let manager = artifacts::Artifact::parse(artifacts::STATE_CHANNEL_MANAGER).unwrap();
//! assert!(!manager.creation_code().unwrap().is_empty());
//!
//! let activated = IStateChannelManager::ChannelActivated { channelId: B256::repeat_byte(1), genesisTimestamp: 7 };
//! let log = activated.encode_log_data();
//! assert_eq!(
//!     decode_manager_log(log.topics(), &log.data),
//!     Some(ManagerEvent::ChannelActivated(activated))
//! );
//! ```

pub mod artifacts;
mod bindings;
mod convert;
mod error;
mod kinds;

use alloy_primitives::B256;
use alloy_sol_types::abi::AbiDecoderConfig;
use alloy_sol_types::{SolEventInterface, SolInterface};

pub use artifacts::Artifact;
pub use bindings::{
    IStateChannelEvents, IStateChannelManager, Payments, RoundRobinCounter, TestToken, TicTacToe,
};
pub use error::ContractsError;
pub use kinds::{ChannelStatus, DisputeKind, ProofKind};

/// Every event of the StateChannelManager, typed (`IStateChannelManager`'s event enum).
pub type ManagerEvent = IStateChannelManager::IStateChannelManagerEvents;

/// Every custom error of the StateChannelManager, typed (`IStateChannelManager`'s error enum).
pub type ManagerError = IStateChannelManager::IStateChannelManagerErrors;

/// Decodes a log of the StateChannelManager (its topics and data) into its event; `None` if it is
/// not one of the manager's events or does not decode strictly (the manager emits only canonical
/// encodings, see `CalldataPosted` in `docs/contracts.md`).
pub fn decode_manager_log(topics: &[B256], data: &[u8]) -> Option<ManagerEvent> {
    ManagerEvent::decode_raw_log_with_config(topics, data, AbiDecoderConfig::new().strict(true)).ok()
}

/// Decodes revert data of the StateChannelManager into its custom error; `None` for anything else
/// (`Error(string)`, a panic, a machine's own error, empty data).
pub fn decode_manager_error(data: &[u8]) -> Option<ManagerError> {
    ManagerError::abi_decode(data).ok()
}
