//! Integration tests of the P2P layer on real sockets: discovery and delivery among peers on
//! loopback, bad input from a raw libp2p peer, and NAT traversal in network namespaces.

mod bad_input;
mod loopback;
mod nat;
mod util;
