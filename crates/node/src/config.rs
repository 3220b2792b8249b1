//! Node configuration, from code or a TOML file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use entente_p2p::Multiaddr;
use entente_types::{Address, B256};
use serde::Deserialize;

use crate::NodeError;

/// Everything a [`crate::Node`] needs: its key, where it listens, whom it asks first, the
/// chain, and where it keeps its data.
///
/// From TOML (every field but `secret_key`, `rpc_url`, `manager` and `data_dir` has a default):
///
/// ```
/// let config = entente_node::NodeConfig::from_toml_str(r#"
///     secret_key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
///     listen = ["/ip4/127.0.0.1/tcp/0"]
///     bootstrap = []
///     rpc_url = "http://127.0.0.1:8545"
///     manager = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"
///     data_dir = "/tmp/alice"
///     confirmations = 0
/// "#).unwrap();
/// assert_eq!(config.confirmations, 0);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The participant's secp256k1 key: its Ethereum account (pays chain fees and deposits)
    /// and its libp2p identity.
    pub secret_key: B256,
    /// Addresses to listen on (`/ip4/0.0.0.0/tcp/0`, `/ip4/.../udp/0/quic-v1`).
    #[serde(default)]
    pub listen: Vec<Multiaddr>,
    /// Nodes to join the DHT through (with their `/p2p/<id>` suffix).
    #[serde(default)]
    pub bootstrap: Vec<Multiaddr>,
    /// Relays to reserve a slot on when behind a NAT.
    #[serde(default)]
    pub relays: Vec<Multiaddr>,
    /// This node is publicly reachable (it serves the DHT).
    #[serde(default)]
    pub public: bool,
    /// JSON-RPC endpoint of the chain.
    pub rpc_url: String,
    /// The StateChannelManager.
    pub manager: Address,
    /// Blocks a chain event waits for before the node acts on it.
    #[serde(default)]
    pub confirmations: u64,
    /// How often the chain is polled for new blocks, in milliseconds.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// The data directory (one redb file).
    pub data_dir: PathBuf,
    /// Create the data directory if it does not exist (otherwise a missing directory is an
    /// error: a node that lost its data must not sign again).
    #[serde(default = "default_true")]
    pub create_data_dir: bool,
    /// Events kept in each channel's log: older ones are dropped (a reader that resumes from a
    /// dropped event goes on from the oldest kept).
    #[serde(default = "default_event_log_keep")]
    pub event_log_keep: u64,
}

fn default_poll_ms() -> u64 {
    250
}

fn default_event_log_keep() -> u64 {
    100_000
}

fn default_true() -> bool {
    true
}

impl NodeConfig {
    /// A configuration with defaults for everything but the essentials.
    pub fn new(
        secret_key: B256,
        rpc_url: impl Into<String>,
        manager: Address,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            secret_key,
            listen: Vec::new(),
            bootstrap: Vec::new(),
            relays: Vec::new(),
            public: false,
            rpc_url: rpc_url.into(),
            manager,
            confirmations: 0,
            poll_interval_ms: default_poll_ms(),
            data_dir: data_dir.into(),
            create_data_dir: true,
            event_log_keep: default_event_log_keep(),
        }
    }

    /// Parses a TOML document.
    pub fn from_toml_str(text: &str) -> Result<Self, NodeError> {
        toml::from_str(text).map_err(|e| NodeError::Config(e.to_string()))
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, NodeError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| NodeError::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml_str(&text)
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(10))
    }
}
