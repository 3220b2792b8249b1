//! The daemon: one node per account (a session each), the book of known state machines, and the
//! API server in front of them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use entente_node::{MachineSource, Node, NodeConfig};
use entente_types::{Address, Signer as _};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::abi::MachineAbi;
use crate::accounts::{self, AccountError};
use crate::config::DaemonConfig;
use crate::password::PasswordSource;

/// Gas limit a machine's code is deployed with when it is checked against the chain's.
const CHECK_GAS: u64 = 30_000_000;

/// Why the daemon could not start or a machine could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is incomplete or wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// An account could not be opened.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// A node could not start.
    #[error("account {account}: {source}")]
    Node {
        /// The account.
        account: String,
        /// Why.
        source: Box<entente_node::NodeError>,
    },
    /// The machine book could not be read or written.
    #[error("machine book {path}: {message}")]
    Book {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// One account's node.
#[derive(Debug, Clone)]
pub struct Session {
    /// The account's name.
    pub account: String,
    /// Its node.
    pub node: Node,
}

/// A state machine the daemon knows: deployed at `address`, built from `artifact`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MachineEntry {
    /// A short name (`tictactoe`).
    pub name: String,
    /// Where it is deployed.
    pub address: Address,
    /// Its artifact `{"abi": [...], "bytecode": "0x..."}`.
    pub artifact: String,
}

/// A registered machine, with its ABI.
#[derive(Debug, Clone)]
pub struct Machine {
    /// The entry.
    pub entry: MachineEntry,
    /// The ABI.
    pub abi: MachineAbi,
}

impl Machine {
    /// The code the peers run.
    pub fn source(&self) -> MachineSource {
        MachineSource::ArtifactJson(self.entry.artifact.clone())
    }
}

/// The machines the daemon knows, kept in `machines.json` in its home.
#[derive(Debug, Default)]
pub struct MachineBook {
    path: PathBuf,
    machines: Vec<Machine>,
}

impl MachineBook {
    /// The file of a home.
    pub fn file(home: &std::path::Path) -> PathBuf {
        home.join("machines.json")
    }

    /// Reads the book (empty when the file does not exist).
    pub fn load(path: PathBuf) -> Result<Self, DaemonError> {
        let bad = |message: String| DaemonError::Book {
            path: path.display().to_string(),
            message,
        };
        let entries: Vec<MachineEntry> = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(bad(e.to_string())),
        };
        let mut machines = Vec::new();
        for entry in entries {
            let abi = MachineAbi::from_artifact(&entry.artifact)
                .map_err(|e| bad(format!("{}: {e}", entry.name)))?;
            machines.push(Machine { entry, abi });
        }
        Ok(Self { path, machines })
    }

    /// Adds or replaces (same name) a machine and writes the book.
    pub fn put(&mut self, machine: Machine) -> Result<(), DaemonError> {
        self.machines.retain(|m| m.entry.name != machine.entry.name);
        self.machines.push(machine);
        let entries: Vec<&MachineEntry> = self.machines.iter().map(|m| &m.entry).collect();
        let bad = |message: String| DaemonError::Book {
            path: self.path.display().to_string(),
            message,
        };
        let text = serde_json::to_string_pretty(&entries).map_err(|e| bad(e.to_string()))?;
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(|e| bad(e.to_string()))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| bad(e.to_string()))
    }

    /// Every machine.
    pub fn all(&self) -> &[Machine] {
        &self.machines
    }

    /// By name, or by address written as `0x...`.
    pub fn find(&self, name_or_address: &str) -> Option<&Machine> {
        let address: Option<Address> = name_or_address.parse().ok();
        self.machines
            .iter()
            .find(|m| m.entry.name == name_or_address || Some(m.entry.address) == address)
    }

    /// By address.
    pub fn at(&self, address: Address) -> Option<&Machine> {
        self.machines.iter().find(|m| m.entry.address == address)
    }
}

/// Checks that the chain's code at `address` is what `artifact` deploys.
pub async fn check_deployed(node: &Node, artifact: &str, address: Address) -> Result<(), String> {
    let code = MachineSource::ArtifactJson(artifact.to_string())
        .load()
        .map_err(|e| format!("the artifact does not load: {e}"))?;
    let deployed = node
        .chain()
        .code(address)
        .await
        .map_err(|e| format!("the chain: {e}"))?;
    entente_channel::check_machine_code(&code, address, CHECK_GAS, &deployed).map_err(|e| e.to_string())
}

/// The running daemon.
#[derive(Debug)]
pub struct Daemon {
    /// Its configuration.
    pub config: DaemonConfig,
    /// One session per account, by name.
    pub sessions: BTreeMap<String, Session>,
    /// The machines it knows.
    pub machines: RwLock<MachineBook>,
    /// Held while the configuration file is rewritten (the peer address book lives there).
    pub config_writes: tokio::sync::Mutex<()>,
}

impl Daemon {
    /// Opens every account's key file and starts its node. Checks first that the chain answers and
    /// that the manager is deployed there.
    pub async fn start(config: DaemonConfig, passwords: &PasswordSource) -> Result<Arc<Self>, DaemonError> {
        let manager = config.chain.manager.ok_or_else(|| {
            DaemonError::Config("no chain.manager: deploy one with `entente deploy` or set it".into())
        })?;
        if config.accounts.is_empty() {
            return Err(DaemonError::Config(
                "no account: add one with `entente account new`".into(),
            ));
        }
        let machines = MachineBook::load(MachineBook::file(&config.home))?;
        let mut sessions = BTreeMap::new();
        for account in &config.accounts {
            let key = accounts::unlock(&config, account, passwords)?;
            let mut nc = NodeConfig::new(
                *key.expose(),
                config.chain.rpc_url.clone(),
                manager,
                config.resolve(&account.data_dir),
            );
            let parse = |what: &str, list: &[String]| -> Result<Vec<entente_node::Multiaddr>, DaemonError> {
                list.iter()
                    .map(|a| {
                        a.parse().map_err(|e| {
                            DaemonError::Config(format!("account {}: {what} {a:?}: {e}", account.name))
                        })
                    })
                    .collect()
            };
            nc.listen = parse("listen", &account.listen)?;
            nc.bootstrap = parse("bootstrap", &account.bootstrap)?;
            nc.relays = parse("relays", &account.relays)?;
            nc.public = account.public;
            nc.confirmations = config.chain.confirmations;
            nc.poll_interval_ms = config.chain.poll_interval_ms;
            let node = Node::start(nc).await.map_err(|source| DaemonError::Node {
                account: account.name.clone(),
                source: Box::new(source),
            })?;
            let code = node.chain().code(manager).await.map_err(|e| DaemonError::Node {
                account: account.name.clone(),
                source: Box::new(e.into()),
            })?;
            if code.is_empty() {
                return Err(DaemonError::Config(format!(
                    "no contract at chain.manager {manager} on {} (chain id {}): deploy one with `entente deploy`",
                    config.chain.rpc_url,
                    node.chain().chain_id()
                )));
            }
            debug_assert_eq!(
                node.address(),
                entente_types::LocalSigner::from_bytes(key.expose())
                    .map(|s| s.address())
                    .unwrap_or_default()
            );
            sessions.insert(
                account.name.clone(),
                Session {
                    account: account.name.clone(),
                    node,
                },
            );
        }
        Ok(Arc::new(Self {
            config,
            sessions,
            machines: RwLock::new(machines),
            config_writes: Default::default(),
        }))
    }

    /// The session of `account`, or the only one when `account` is `None`.
    pub fn session(&self, account: Option<&str>) -> Option<&Session> {
        match account {
            Some(a) => self.sessions.get(a),
            None if self.sessions.len() == 1 => self.sessions.values().next(),
            None => None,
        }
    }
}

impl Daemon {
    /// Adds `address` to the address book of `account` (its bootstrap list in the configuration
    /// file, dialed at every start); false when it is there already.
    pub async fn remember_peer(
        &self,
        account: &str,
        address: &str,
    ) -> Result<bool, crate::config::ConfigError> {
        let _guard = self.config_writes.lock().await;
        let mut config = DaemonConfig::load(&self.config.home)?;
        let Some(a) = config.accounts.iter_mut().find(|a| a.name == account) else {
            return Err(crate::config::ConfigError::NoSuchAccount(account.to_string()));
        };
        if a.bootstrap.iter().any(|b| b == address) {
            return Ok(false);
        }
        a.bootstrap.push(address.to_string());
        config.save()?;
        Ok(true)
    }

    /// The address book of `account`, as the configuration file holds it now.
    pub async fn peer_book(&self, account: &str) -> Vec<String> {
        let _guard = self.config_writes.lock().await;
        DaemonConfig::load(&self.config.home)
            .ok()
            .and_then(|c| c.accounts.into_iter().find(|a| a.name == account))
            .map(|a| a.bootstrap)
            .unwrap_or_default()
    }
}
