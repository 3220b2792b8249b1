//! The `entente` program's parts: encrypted key files ([`keystore`]) and the accounts that use them
//! ([`accounts`], [`password`]), the daemon's configuration ([`config`]), the daemon itself ([`daemon`]:
//! a node per account, the machine book), its API ([`api`], served by [`server`]), calls and views by
//! ABI ([`abi`]), a client of the API ([`client`]), and private files ([`files`]). See
//! `docs/daemon.md`.

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
