//! Runs a channel's state machine (the real compiled Solidity bytecode) in revm: one instance per
//! channel with its own storage, a cached EVM, gas-limited calls and decoded revert reasons.
