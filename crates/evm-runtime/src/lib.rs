//! Runs a channel's state machine, the real compiled Solidity bytecode, in revm.
//!
//! One [`MachineInstance`] per channel: the machine is deployed once from its creation bytecode
//! into an in-memory database, and one EVM is kept and reused for every call. Storage *is* the
//! channel state; the instance holds the state the peer currently builds on. A transition is
//! executed speculatively ([`MachineInstance::apply`]): the state it produces is hashed and only
//! committed when the caller's expectation (the transaction's `stateHash`) holds. Every call has a
//! gas limit; reverts are decoded (`Error(string)`, `Panic(uint256)` and the machine's own custom
//! errors from its ABI).
//!
//! ```
//! use alloy_sol_types::SolCall;
//! use entente_contracts::{TicTacToe, artifacts};
//! use entente_evm_runtime::{MachineCode, MachineInstance};
//! use entente_types::{Address, B256, Transaction, state_hash};
//!
//! let code = MachineCode::from_artifact_json(artifacts::TIC_TAC_TOE).unwrap();
//! let (x, o) = (Address::repeat_byte(1), Address::repeat_byte(2));
//! let mut game = MachineInstance::deploy(&code, 1_000_000).unwrap();
//! let genesis = game
//!     .view_decode::<TicTacToe::initialStateCall>(&TicTacToe::initialStateCall { x, o, stake: Default::default() })
//!     .unwrap();
//! game.set_state(&genesis).unwrap();
//! assert_eq!(game.next_to_write().unwrap(), x);
//!
//! let tx = Transaction {
//!     participant: x,
//!     height: 1,
//!     prevStateHash: state_hash(&genesis),
//!     data: TicTacToe::playCall { cell: 4 }.abi_encode().into(),
//!     ..Default::default()
//! };
//! let outcome = game.apply(&tx, None).unwrap();
//! assert_eq!(game.next_to_write().unwrap(), o);
//! assert_eq!(outcome.state_hash, state_hash(&outcome.state));
//! ```

mod error;
mod instance;

pub use error::{EvmError, Revert};
pub use instance::{ApplyOutcome, Exit, MachineCode, MachineInstance, Pending, apply_intents_calldata};
