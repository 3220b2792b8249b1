//! Conformance tests of the in-process chain: the StateChannelManager's real bytecode on
//! [`DevChain`], driven through the chain-agnostic scenarios of [`scenarios`] (see [`harness`]
//! for the [`harness::Chain`] interface and how the anvil adapter plugs into it), plus checks of
//! the devchain's own behaviour (blocks, time, determinism, bounds).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)] // test helpers

mod devchain;
mod harness;
mod scenarios;
