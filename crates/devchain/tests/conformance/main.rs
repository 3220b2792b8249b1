//! Conformance tests of the in-process chain: the StateChannelManager's real bytecode on
//! `DevChain`, driven through the chain-agnostic scenarios of `entente-conformance` (its
//! `Chain` trait, implemented here), plus checks of the devchain's own behaviour (blocks, time,
//! determinism, bounds).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)] // test helpers

mod devchain;
