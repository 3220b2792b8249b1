//! The chain side of Entente: bindings to the compiled contracts, and a launcher for a local
//! anvil chain used by tests and demos.
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
pub mod contracts;

pub use anvil::{ANVIL_PATH_ENV, Anvil, AnvilBuilder, AnvilError};
