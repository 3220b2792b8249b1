//! The chain side of Entente: the StateChannelManager over JSON-RPC, the event listener that
//! follows it, and a launcher for a local anvil chain used by tests and demos.
//!
//! - [`ChainClient`]: one signing key on any EVM JSON-RPC endpoint (alloy's HTTP provider,
//!   async on tokio): deploy the manager and machines, open and fund channels, carry out the
//!   dispute layer's [`ChainAction`](entente_dispute::ChainAction)s with exactly the calldata
//!   of `entente_dispute::encode_action`, withdraw, and read channels, balances and chain
//!   time. Reverts come back as [`ChainError::Reverted`] with the manager's decoded error.
//! - [`ChainListener`]: polls the manager's logs and delivers, block by block and only for
//!   confirmed blocks, the dispute layer's [`ChainEvent`](entente_dispute::ChainEvent)s and a
//!   block marker; a cursor lets a restarted node resume exactly after the last block it
//!   handled; an unreachable chain is reported and retried, never fatal.
//! - [`Anvil`]: starts anvil from `node_modules` on a free port and stops it on drop.
//! - [`contracts`]: RPC bindings of the toolchain's smoke-test contract.
//!
//! The contracts' ABI and bytecode come from `contracts/artifacts/`, which the build checks
//! against a fresh compile of `contracts/src`, so Rust never runs stale bytecode and needs no
//! Node toolchain to build.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use alloy::providers::ProviderBuilder;
//! use entente_chain::{Anvil, contracts::Greeter};
//!
//! let anvil = Anvil::spawn()?; // stopped when dropped
//! let provider = ProviderBuilder::new().wallet(anvil.wallet(0)?).connect_http(anvil.endpoint_url());
//! let greeter = Greeter::deploy(&provider, "hello".to_string()).await?;
//! assert_eq!(greeter.greeting().call().await?, "hello");
//! # Ok(())
//! # }
//! ```

mod anvil;
mod client;
pub mod contracts;
mod error;
mod listener;

pub use anvil::{ANVIL_PATH_ENV, Anvil, AnvilBuilder, AnvilError};
pub use client::{ChainClient, ClientConfig, Receipt};
pub use error::{ChainError, Revert};
pub use listener::{ChainListener, ListenerConfig, ListenerEvent};
