//! Starts anvil (from the repository's `node_modules`) on a free loopback port and stops it again.
//!
//! The process is owned by a keeper thread that lives exactly as long as the [`Anvil`] value. The
//! child is started with `PR_SET_PDEATHSIG = SIGKILL`, bound to that keeper thread, so anvil dies
//! when the value is dropped (also while a failing test unwinds) and when the test process itself
//! dies for any reason, including `kill -9`: no leaked processes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;

/// Where the npm package `@foundry-rs/anvil-linux-amd64` puts the binary, relative to the
/// repository root.
const ANVIL_IN_NODE_MODULES: &str = "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";

/// Environment variable that overrides where the anvil binary is looked up.
pub const ANVIL_PATH_ENV: &str = "ENTENTE_ANVIL";

/// Why anvil could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum AnvilError {
    /// No anvil binary was found.
    #[error(
        "anvil binary not found (looked for {ANVIL_IN_NODE_MODULES} above {searched} and ${ANVIL_PATH_ENV}); run `npm ci` in the repository root"
    )]
    NotFound {
        /// The directory the search started from.
        searched: String,
    },
    /// The process could not be spawned.
    #[error("failed to start anvil at {path}: {source}")]
    Spawn {
        /// The binary that was started.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// anvil exited or closed its output before it reported its listening address.
    #[error("anvil exited before it was ready; its output:\n{output}")]
    ExitedEarly {
        /// What anvil printed.
        output: String,
    },
    /// anvil did not report its listening address in time.
    #[error("anvil was not ready after {0:?}")]
    Timeout(Duration),
    /// A dev account index beyond the accounts anvil created.
    #[error("anvil has {available} dev accounts; index {index} is out of range")]
    NoSuchAccount {
        /// Requested index.
        index: usize,
        /// Number of accounts available.
        available: usize,
    },
    /// A private key anvil printed could not be parsed.
    #[error("anvil printed an invalid private key: {0}")]
    BadKey(String),
}

/// Options for starting anvil.
#[derive(Debug, Clone)]
pub struct AnvilBuilder {
    binary: Option<PathBuf>,
    port: Option<u16>,
    chain_id: Option<u64>,
    block_time: Option<u64>,
    accounts: usize,
    extra_args: Vec<String>,
    timeout: Duration,
}

impl Default for AnvilBuilder {
    fn default() -> Self {
        Self {
            binary: None,
            port: None,
            chain_id: None,
            block_time: None,
            accounts: 10,
            extra_args: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

impl AnvilBuilder {
    /// Use this anvil binary instead of the one in `node_modules`.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Listen on this loopback port instead of a free one the OS picks (e.g. to bring a chain
    /// back where clients expect it).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Chain id of the new chain (anvil's default is 31337).
    pub fn chain_id(mut self, chain_id: u64) -> Self {
        self.chain_id = Some(chain_id);
        self
    }

    /// Mine a block every `seconds` instead of one per transaction.
    pub fn block_time(mut self, seconds: u64) -> Self {
        self.block_time = Some(seconds);
        self
    }

    /// Number of funded dev accounts (default 10).
    pub fn accounts(mut self, accounts: usize) -> Self {
        self.accounts = accounts;
        self
    }

    /// Pass an extra command-line argument to anvil.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// How long to wait for anvil to report that it listens (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts anvil and waits until it listens.
    pub fn spawn(self) -> Result<Anvil, AnvilError> {
        let binary = match self.binary.clone() {
            Some(path) => path,
            None => find_anvil()?,
        };
        let mut command = Command::new(&binary);
        command
            .args(["--host", "127.0.0.1", "--port"])
            .arg(self.port.unwrap_or(0).to_string())
            .arg("--accounts")
            .arg(self.accounts.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(chain_id) = self.chain_id {
            command.arg("--chain-id").arg(chain_id.to_string());
        }
        if let Some(block_time) = self.block_time {
            command.arg("--block-time").arg(block_time.to_string());
        }
        command.args(&self.extra_args);
        kill_with_parent_thread(&mut command);

        let (ready_tx, ready_rx) = sync_channel::<Result<Ready, AnvilError>>(1);
        let (stop_tx, stop_rx) = sync_channel::<()>(1);
        let keeper = std::thread::Builder::new()
            .name("anvil-keeper".into())
            .spawn(move || keeper(command, binary, ready_tx, stop_rx))
            .map_err(|source| AnvilError::Spawn {
                path: PathBuf::from("anvil-keeper thread"),
                source,
            })?;

        let ready = match ready_rx.recv_timeout(self.timeout) {
            Ok(Ok(ready)) => ready,
            Ok(Err(e)) => {
                let _ = keeper.join();
                return Err(e);
            }
            Err(_) => {
                drop(stop_tx);
                let _ = keeper.join();
                return Err(AnvilError::Timeout(self.timeout));
            }
        };
        tracing::debug!(target: "entente::chain", port = ready.port, pid = ready.pid, "anvil is listening");
        Ok(Anvil {
            port: ready.port,
            pid: ready.pid,
            keys: ready.keys,
            chain_id: self.chain_id.unwrap_or(31337),
            stop: Some(stop_tx),
            keeper: Some(keeper),
        })
    }
}

struct Ready {
    port: u16,
    pid: u32,
    keys: Vec<B256>,
}

/// A running anvil chain on `127.0.0.1`. Stopped (killed and reaped) when dropped.
#[derive(Debug)]
pub struct Anvil {
    port: u16,
    pid: u32,
    keys: Vec<B256>,
    chain_id: u64,
    stop: Option<SyncSender<()>>,
    keeper: Option<JoinHandle<()>>,
}

impl Anvil {
    /// Starts anvil with default options.
    pub fn spawn() -> Result<Self, AnvilError> {
        AnvilBuilder::default().spawn()
    }

    /// Options for starting anvil.
    pub fn builder() -> AnvilBuilder {
        AnvilBuilder::default()
    }

    /// The port anvil listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the anvil process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// JSON-RPC endpoint, e.g. `http://127.0.0.1:8545`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// JSON-RPC endpoint as a URL.
    pub fn endpoint_url(&self) -> alloy::transports::http::reqwest::Url {
        #[allow(clippy::expect_used)] // a formatted loopback address always parses
        self.endpoint().parse().expect("loopback URL parses")
    }

    /// Private keys of the funded dev accounts.
    pub fn keys(&self) -> &[B256] {
        &self.keys
    }

    /// A signer for dev account `index`.
    pub fn signer(&self, index: usize) -> Result<PrivateKeySigner, AnvilError> {
        let key = self.keys.get(index).ok_or(AnvilError::NoSuchAccount {
            index,
            available: self.keys.len(),
        })?;
        PrivateKeySigner::from_bytes(key).map_err(|e| AnvilError::BadKey(e.to_string()))
    }

    /// A wallet for dev account `index`, ready for `ProviderBuilder::wallet`.
    pub fn wallet(&self, index: usize) -> Result<EthereumWallet, AnvilError> {
        Ok(EthereumWallet::from(self.signer(index)?))
    }

    /// Address of dev account `index`.
    pub fn address(&self, index: usize) -> Result<Address, AnvilError> {
        Ok(self.signer(index)?.address())
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        // Closing the stop channel wakes the keeper, which kills and reaps the child.
        drop(self.stop.take());
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.join();
        }
    }
}

/// Owns the child process for its whole life.
fn keeper(
    mut command: Command,
    binary: PathBuf,
    ready: SyncSender<Result<Ready, AnvilError>>,
    stop: Receiver<()>,
) {
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(source) => {
            let _ = ready.send(Err(AnvilError::Spawn { path: binary, source }));
            return;
        }
    };
    let pid = child.id();
    let Some(stdout) = child.stdout.take() else {
        stop_child(&mut child);
        let _ = ready.send(Err(AnvilError::ExitedEarly {
            output: "no stdout".into(),
        }));
        return;
    };
    let mut lines = BufReader::new(stdout).lines();
    let mut output = String::new();
    let mut keys = Vec::new();
    let mut in_keys = false;
    let mut port = None;
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        output.push_str(&line);
        output.push('\n');
        let trimmed = line.trim();
        if trimmed == "Private Keys" {
            in_keys = true;
        } else if in_keys && trimmed.starts_with('(') {
            if let Some(hex) = trimmed.split_whitespace().nth(1) {
                match hex.parse::<B256>() {
                    Ok(key) => keys.push(key),
                    Err(_) => {
                        stop_child(&mut child);
                        let _ = ready.send(Err(AnvilError::BadKey(hex.to_string())));
                        return;
                    }
                }
            }
        } else if in_keys && !trimmed.is_empty() && !trimmed.starts_with('=') {
            in_keys = false;
        }
        if let Some(addr) = trimmed.strip_prefix("Listening on ") {
            port = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
            break;
        }
    }
    let Some(port) = port else {
        stop_child(&mut child);
        let _ = ready.send(Err(AnvilError::ExitedEarly { output }));
        return;
    };
    if ready.send(Ok(Ready { port, pid, keys })).is_err() {
        // The caller gave up waiting.
        stop_child(&mut child);
        return;
    }
    // Keep draining anvil's output so a full pipe never blocks it.
    let drain = std::thread::Builder::new()
        .name("anvil-stdout".into())
        .spawn(move || for _ in lines.by_ref() {});
    // Returns when the Anvil value is dropped (sender closed).
    let _ = stop.recv();
    stop_child(&mut child);
    if let Ok(drain) = drain {
        let _ = drain.join();
    }
}

fn stop_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Makes the kernel kill the child when the thread that spawned it (the keeper) ends, which also
/// happens when the whole test process dies.
#[allow(unsafe_code)]
fn kill_with_parent_thread(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls prctl, which is
    // async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Looks for `node_modules/.../anvil` in `$ENTENTE_ANVIL`, then above this crate's source
/// directory, then above the current directory.
fn find_anvil() -> Result<PathBuf, AnvilError> {
    if let Some(path) = std::env::var_os(ANVIL_PATH_ENV) {
        return Ok(PathBuf::from(path));
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    for start in [crate_dir, cwd.as_path()] {
        for dir in start.ancestors() {
            let candidate = dir.join(ANVIL_IN_NODE_MODULES);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(AnvilError::NotFound {
        searched: format!("{} and {}", crate_dir.display(), cwd.display()),
    })
}
