//! The `entente` program's parts: encrypted key files ([`keystore`]), the daemon's configuration
//! ([`config`]), and private files ([`files`]).

pub mod accounts;
pub mod config;
pub mod files;
pub mod keystore;
pub mod password;
mod scrypt;
