//! The `entente` program's parts: encrypted key files ([`keystore`]), the daemon's configuration
//! ([`config`]), and private files ([`files`]).

pub mod abi;
pub mod accounts;
pub mod api;
pub mod client;
pub mod config;
pub mod daemon;
pub mod files;
pub mod keystore;
pub mod password;
mod scrypt;
pub mod server;
