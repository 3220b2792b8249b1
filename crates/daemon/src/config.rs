//! The daemon's configuration file (`entente.toml` in the daemon's home directory), written by
//! `entente init` and read by every other command. It holds no secret: keys live in encrypted key
//! files, passwords come from a prompt, a file or the environment, and the API token from its own
//! file (mode 0600).
//!
//! ```toml
//! [chain]
//! rpc_url = "http://127.0.0.1:8545"
//! manager = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
//!
//! [api]
//! listen = "127.0.0.1:7545"
//! token_file = "api-token"
//!
//! [[account]]
//! name = "alice"
//! address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
//! keystore = "keys/alice.json"
//! data_dir = "data/alice"
//! listen = ["/ip4/127.0.0.1/tcp/0"]
//! ```
//!
//! Relative paths are relative to the directory of the configuration file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use entente_types::Address;
use serde::{Deserialize, Serialize};

/// The name of the configuration file in a home directory.
pub const CONFIG_FILE: &str = "entente.toml";

/// Why the configuration could not be read, used or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a valid configuration.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// No account of that name.
    #[error("no account named {0:?} in the configuration (see `entente account list`)")]
    NoSuchAccount(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// The chain the channels settle on.
    pub chain: ChainConfig,
    /// The API the daemon serves.
    #[serde(default)]
    pub api: ApiConfig,
    /// The accounts the daemon runs a node for, one session each.
    #[serde(default, rename = "account")]
    pub accounts: Vec<AccountConfig>,
    /// The directory of the file (to resolve relative paths); not part of the file.
    #[serde(skip)]
    pub home: PathBuf,
}

/// The chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// JSON-RPC endpoint.
    pub rpc_url: String,
    /// The StateChannelManager (set by `entente deploy` when not given to `init`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<Address>,
    /// Blocks a chain event waits for before a node acts on it.
    #[serde(default)]
    pub confirmations: u64,
    /// How often the chain is polled, in milliseconds.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
}

fn default_poll_ms() -> u64 {
    250
}

/// The JSON-RPC API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Where the WebSocket server listens (loopback by default).
    #[serde(default = "default_api_listen")]
    pub listen: SocketAddr,
    /// The file holding the token every request must present.
    #[serde(default = "default_token_file")]
    pub token_file: PathBuf,
    /// A directory served as static files beside the API (a web front-end), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_dir: Option<PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: default_api_listen(),
            token_file: default_token_file(),
            static_dir: None,
        }
    }
}

/// The API's default address.
pub fn default_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7545))
}

fn default_token_file() -> PathBuf {
    PathBuf::from("api-token")
}

/// One account: its key file and its node's data and network settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// A short name (`[a-z0-9_-]`), unique in the file.
    pub name: String,
    /// The account's address (what the key file holds; checked when it is opened).
    pub address: Address,
    /// The encrypted key file.
    pub keystore: PathBuf,
    /// A file holding the key file's password, if it is not to be asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// The node's data directory.
    pub data_dir: PathBuf,
    /// libp2p listen addresses.
    #[serde(default)]
    pub listen: Vec<String>,
    /// Nodes to join the network through (with `/p2p/<id>`).
    #[serde(default)]
    pub bootstrap: Vec<String>,
    /// Relays to reserve a slot on when behind a NAT.
    #[serde(default)]
    pub relays: Vec<String>,
    /// The node is publicly reachable (serves the DHT).
    #[serde(default)]
    pub public: bool,
}

/// Whether `name` may name an account.
pub fn valid_account_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl DaemonConfig {
    /// Reads `home/entente.toml`.
    pub fn load(home: &Path) -> Result<Self, ConfigError> {
        let path = home.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut config: Self = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        config.home = home.to_path_buf();
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        })?;
        Ok(config)
    }

    /// Writes the file (replacing it atomically).
    pub fn save(&self) -> Result<(), ConfigError> {
        let path = self.home.join(CONFIG_FILE);
        let io = |source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        };
        self.validate().map_err(|message| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        })?;
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let tmp = self.home.join(format!(".{CONFIG_FILE}.tmp"));
        std::fs::write(
            &tmp,
            format!("# Entente daemon configuration (see `entente --help`); it holds no secret.\n{text}"),
        )
        .map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for a in &self.accounts {
            if !valid_account_name(&a.name) {
                return Err(format!(
                    "account name {:?}: use 1 to 32 of a-z, 0-9, - and _",
                    a.name
                ));
            }
            if !names.insert(a.name.as_str()) {
                return Err(format!("two accounts named {:?}", a.name));
            }
        }
        if self.chain.rpc_url.is_empty() {
            return Err("chain.rpc_url is empty".into());
        }
        Ok(())
    }

    /// `path` resolved against the home directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.home.join(path)
        }
    }

    /// The account named `name`, or the only one when `name` is `None`.
    pub fn account(&self, name: Option<&str>) -> Result<&AccountConfig, ConfigError> {
        match name {
            Some(n) => self
                .accounts
                .iter()
                .find(|a| a.name == n)
                .ok_or_else(|| ConfigError::NoSuchAccount(n.into())),
            None => match self.accounts.as_slice() {
                [one] => Ok(one),
                _ => Err(ConfigError::NoSuchAccount(
                    "(none given; the file has several or none)".into(),
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_documented_example_parses_and_round_trips() {
        let text = include_str!("config.rs")
            .split("```toml\n")
            .nth(1)
            .unwrap()
            .split("//! ```")
            .next()
            .unwrap();
        let text: String = text
            .lines()
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), &text).unwrap();
        let c = DaemonConfig::load(dir.path()).unwrap();
        assert_eq!(c.accounts[0].name, "alice");
        assert_eq!(c.api.listen, default_api_listen());
        assert_eq!(
            c.resolve(&c.accounts[0].keystore),
            dir.path().join("keys/alice.json")
        );
        c.save().unwrap();
        let again = DaemonConfig::load(dir.path()).unwrap();
        assert_eq!(again.accounts[0].address, c.accounts[0].address);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let write = |t: &str| std::fs::write(dir.path().join(CONFIG_FILE), t).unwrap();
        write("[chain]\nrpc_url = \"http://x\"\nsecret = 1\n");
        let e = DaemonConfig::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("unknown field"), "{e}");
        write(
            "[chain]\nrpc_url = \"http://x\"\n[[account]]\nname = \"Bad Name\"\naddress = \"0x0000000000000000000000000000000000000001\"\nkeystore = \"k\"\ndata_dir = \"d\"\n",
        );
        let e = DaemonConfig::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("account name"), "{e}");
        assert!(matches!(
            DaemonConfig::load(&dir.path().join("nowhere")),
            Err(ConfigError::Io { .. })
        ));
    }
}
