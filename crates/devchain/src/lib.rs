//! An in-process EVM chain on revm that runs the real compiled StateChannelManager, so that the
//! deterministic simulation reaches real on-chain verdicts without anvil.
//!
//! [`DevChain`] is a small chain in memory: revm with Cancun rules, a configurable chain id
//! (31337 by default), funded accounts, blocks and time that move only when told, receipts with
//! decoded reverts, and a log history in which every event of the manager is decoded
//! ([`LoggedEvent::event`]). The contracts are the bytecode in `contracts/artifacts/` (embedded
//! by `entente-contracts`): every rule of the court comes from that bytecode, none is written
//! again in Rust.
//!
//! - **Blocks and time.** [`DevChain::timestamp`] is the time the next transaction sees;
//!   [`DevChain::set_timestamp`] / [`DevChain::advance`] move it forward. With
//!   [`Mining::Auto`] (the default) every transaction is its own block; with [`Mining::Manual`]
//!   transactions share the open block until [`DevChain::mine`]. Receipts and logs carry their
//!   block number and timestamp.
//! - **Transactions.** [`DevChain::send`] mines a transaction and returns its [`Receipt`], also
//!   when it reverts (a failed transaction changes no contract state, like on a real chain);
//!   [`Receipt::revert`] is decoded with the ABIs the chain knows: `Error(string)`, `Panic`, and
//!   custom errors by name and arguments ([`Revert`]). [`DevChain::view`] is `eth_call`.
//! - **Bounded.** Every transaction has a gas limit (default: the block's, 30M); a block holds at
//!   most its gas limit.
//! - **Deterministic.** The same calls give the same addresses, receipts, gas and logs.
//! - **The manager.** [`DevChain::with_manager`] deploys the StateChannelManager (its constructor
//!   deploys `ChannelExtension`); typed helpers open and fund channels and read what peers need
//!   ([`DevChain::channel`], [`DevChain::pending_balance`], [`DevChain::posted_at`]); any other
//!   entry point is one [`DevChain::manager_send`] of an `IStateChannelManager` call.
//!
//! ```
//! use alloy_primitives::{B256, U256};
//! use alloy_sol_types::SolCall;
//! use entente_contracts::{IStateChannelManager::ChannelSpec, ManagerEvent, TicTacToe, artifacts};
//! use entente_devchain::DevChain;
//! use entente_types::{Address, LocalSigner, Signer};
//!
//! let mut chain = DevChain::with_manager().unwrap();
//! let game = chain.deploy_artifact(DevChain::DEPLOYER, artifacts::TIC_TAC_TOE).unwrap();
//! let [x, o] = [1u8, 2].map(|k| LocalSigner::from_bytes(&B256::repeat_byte(k)).unwrap().address());
//! let stake = U256::from(10u64).pow(U256::from(18u64));
//! chain.fund(x, stake).unwrap();
//! chain.fund(o, stake).unwrap();
//!
//! let genesis = chain.view_call(game, &TicTacToe::initialStateCall { x, o, stake }).unwrap();
//! let spec = ChannelSpec {
//!     participants: vec![x, o],
//!     deposits: vec![stake, stake],
//!     stateMachine: game,
//!     token: Address::ZERO,
//!     p2pTime: 30,
//!     agreementTime: 10,
//!     chainFallbackTime: 60,
//!     challengeTime: 3600,
//!     fundingPeriod: 86_400,
//!     machineGasLimit: 5_000_000,
//!     salt: B256::ZERO,
//! };
//! let id = chain.open_channel(x, &spec, &genesis).unwrap();
//! let receipt = chain.deposit(o, id, 1, stake).unwrap();
//! assert!(receipt.events().any(|e| matches!(e, ManagerEvent::ChannelActivated(_))));
//! assert_eq!(chain.balance(chain.manager().unwrap()), stake * U256::from(2u64));
//!
//! // A refusal is a receipt with the manager's decoded custom error.
//! let deposit = entente_contracts::IStateChannelManager::depositCall { channelId: id, index: U256::from(1u64) };
//! let again = chain.manager_send(o, &deposit, U256::ZERO).unwrap();
//! assert!(!again.success);
//! assert_eq!(again.revert_name(), Some("WrongStatus"));
//! ```

mod chain;
mod error;
mod manager;
mod receipt;

pub use chain::{BlockHeader, DevChain, DevChainConfig, Mining};
pub use error::DevChainError;
pub use receipt::{LoggedEvent, Receipt, Revert};
