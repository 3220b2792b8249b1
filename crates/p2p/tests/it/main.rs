//! Integration tests of the P2P layer on real sockets: discovery and delivery among peers on
//! loopback, bad input from a raw libp2p peer, and NAT traversal in network namespaces.

// Test helpers panic on failure; tests measure wall-clock time to report it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod bad_input;
mod loopback;
mod nat;
mod util;
