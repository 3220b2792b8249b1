//! One anvil for the whole measurement: a blocking [`ChainClient`] front that is also the
//! conformance fixture's [`Chain`], so Entente's flows run through `entente_conformance::World`
//! and Nitro's through plain transactions on the same node.

// `Chain` is an infallible interface (a test-support trait): a chain that stops answering aborts
// the measurement with a panic, which `crate::measure` turns back into an error.
#![allow(clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, anyhow};
use entente_chain::{ANVIL_PATH_ENV, Anvil, ChainClient, Receipt};
use entente_conformance::harness::ether;
use entente_conformance::{Chain, ChainLog, Sent};
use tokio::runtime::Runtime;

/// Gas limit of every measured transaction: explicit, so nothing depends on estimation (the gas
/// a transaction uses does not depend on its limit).
pub const GAS_LIMIT: u64 = 15_000_000;

/// A running anvil, a runtime to block on, and a client of anvil's first account.
pub struct BenchChain {
    rt: Runtime,
    client: ChainClient,
    impersonated: HashSet<Address>,
    timestamps: HashMap<u64, u64>,
    // Last: dropped (and anvil killed) after everything that talks to it.
    anvil: Anvil,
}

impl std::fmt::Debug for BenchChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchChain")
            .field("endpoint", &self.anvil.endpoint())
            .field("manager", &self.client.manager())
            .finish()
    }
}

impl BenchChain {
    /// Starts anvil and deploys Entente's StateChannelManager from its first account (its first
    /// transaction: the devchain's manager address).
    pub fn start() -> Result<Self> {
        let anvil = Anvil::builder().accounts(10).spawn().context("starting anvil")?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the tokio runtime")?;
        let client = rt.block_on(async {
            let mut client = ChainClient::connect(&anvil.endpoint(), anvil.signer(0)?).await?;
            client.deploy_manager().await?;
            Ok::<_, anyhow::Error>(client)
        })?;
        Ok(Self {
            rt,
            client,
            impersonated: HashSet::new(),
            timestamps: HashMap::new(),
            anvil,
        })
    }

    /// The running anvil.
    pub fn anvil(&self) -> &Anvil {
        &self.anvil
    }

    /// Runs `f` to completion on the chain's runtime.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The client of anvil's first account (the deployer).
    pub fn client(&self) -> &ChainClient {
        &self.client
    }

    /// A client signing with anvil's dev account `index`.
    pub fn client_of(&self, index: usize) -> Result<ChainClient> {
        let signer: PrivateKeySigner = self.anvil.signer(index)?;
        Ok(self
            .rt
            .block_on(ChainClient::connect(&self.anvil.endpoint(), signer))?)
    }

    /// Deploys `creation_code` from the deployer.
    pub fn deploy_code(&self, creation_code: Bytes) -> Result<Address> {
        Ok(self.rt.block_on(self.client.deploy(creation_code))?)
    }

    /// Sends `calldata` with `value` from `client`'s account to `to`; a revert is an error.
    pub fn send_from(
        &self,
        client: &ChainClient,
        to: Address,
        calldata: Bytes,
        value: U256,
    ) -> Result<Receipt> {
        let receipt = self.rt.block_on(client.send(to, calldata, value))?;
        Ok(receipt.into_result()?)
    }

    /// Moves chain time forward by `seconds` and mines a block.
    pub fn advance_time(&self, seconds: u64) -> Result<()> {
        self.rt.block_on(async {
            self.client.dev_increase_time(seconds).await?;
            self.client.dev_mine().await
        })?;
        Ok(())
    }

    fn impersonate(&mut self, from: Address) {
        if self.impersonated.insert(from) {
            self.rt
                .block_on(self.client.dev_impersonate(from))
                .expect("anvil_impersonateAccount");
        }
    }

    fn timestamp(&mut self, block: u64) -> u64 {
        if let Some(t) = self.timestamps.get(&block) {
            return *t;
        }
        let t = self
            .rt
            .block_on(self.client.block_timestamp(block))
            .expect("a block's timestamp");
        self.timestamps.insert(block, t);
        t
    }
}

impl Chain for BenchChain {
    fn chain_id(&self) -> u64 {
        self.client.chain_id()
    }

    fn manager(&self) -> Address {
        self.client.manager().expect("the manager is deployed at start")
    }

    fn fund(&mut self, account: Address, wei: U256) {
        let balance = self.balance(account);
        self.rt
            .block_on(self.client.dev_set_balance(account, balance + wei))
            .expect("anvil_setBalance");
    }

    fn balance(&mut self, account: Address) -> U256 {
        self.rt
            .block_on(self.client.balance(account))
            .expect("eth_getBalance")
    }

    fn deploy(&mut self, from: Address, creation_code: Bytes) -> Address {
        if self.balance(from) < ether(1) {
            self.fund(from, ether(10));
        }
        self.impersonate(from);
        let receipt = self
            .rt
            .block_on(
                self.client
                    .send_unsigned(from, None, creation_code, U256::ZERO, GAS_LIMIT),
            )
            .expect("a deployment is mined");
        assert!(receipt.success, "deployment reverted: {:?}", receipt.revert);
        receipt.contract_address.expect("a deployment's address")
    }

    fn send(&mut self, from: Address, to: Address, calldata: Bytes, value: U256) -> Sent {
        self.impersonate(from);
        let receipt = self
            .rt
            .block_on(
                self.client
                    .send_unsigned(from, Some(to), calldata.clone(), value, GAS_LIMIT),
            )
            .expect("a transaction is mined");
        // The return data (or revert data): the same call at the parent block.
        let replay = TransactionRequest::default()
            .with_from(from)
            .with_to(to)
            .with_input(calldata)
            .with_value(value)
            .with_gas_limit(GAS_LIMIT);
        let output = match self
            .rt
            .block_on(
                self.client
                    .call_at(replay, Some(receipt.block_number.saturating_sub(1))),
            )
            .expect("eth_call replay")
        {
            Ok(out) | Err(out) => out,
        };
        self.timestamps.insert(receipt.block_number, receipt.timestamp);
        Sent {
            success: receipt.success,
            gas_used: receipt.gas_used,
            fee: receipt.fee(),
            output,
            logs: receipt.logs,
            block_number: receipt.block_number,
            timestamp: receipt.timestamp,
        }
    }

    fn view(&mut self, to: Address, calldata: Bytes) -> Result<Bytes, Bytes> {
        let request = TransactionRequest::default().with_to(to).with_input(calldata);
        self.rt
            .block_on(self.client.call_at(request, None))
            .expect("eth_call")
    }

    fn logs_since(&mut self, block: u64) -> Vec<ChainLog> {
        let filter = Filter::new().from_block(block);
        let logs = self
            .rt
            .block_on(self.client.provider().get_logs(&filter))
            .expect("eth_getLogs");
        logs.into_iter()
            .filter_map(|log| {
                let block_number = log.block_number?;
                Some(ChainLog {
                    block_number,
                    timestamp: self.timestamp(block_number),
                    log: log.inner,
                })
            })
            .collect()
    }

    fn block_number(&mut self) -> u64 {
        self.rt
            .block_on(self.client.block_number())
            .expect("eth_blockNumber")
    }

    fn now(&mut self) -> u64 {
        self.rt.block_on(self.client.now()).expect("chain time")
    }

    fn advance(&mut self, seconds: u64) {
        self.advance_time(seconds).expect("evm_increaseTime");
    }
}

/// `node_modules` above this crate or the current directory (where `npm ci` puts the toolchain).
pub fn node_modules() -> Result<PathBuf> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    for start in [crate_dir, cwd.as_path()] {
        for dir in start.ancestors() {
            let candidate = dir.join("node_modules");
            if candidate.join("@statechannels").is_dir() {
                return Ok(candidate);
            }
        }
    }
    Err(anyhow!(
        "no node_modules with @statechannels/nitro-protocol above {} or {}: run `npm ci` in the repository root",
        crate_dir.display(),
        cwd.display()
    ))
}

/// The anvil binary's `--version` output, e.g. `anvil Version: 1.7.1-v1.7.1` with its commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnvilVersion {
    /// The version line.
    pub version: String,
    /// The commit it was built from.
    pub commit: String,
}

/// Asks the anvil binary the launcher uses (`$ENTENTE_ANVIL` or `node_modules`) for its version.
pub fn anvil_version() -> Result<AnvilVersion> {
    let binary = match std::env::var_os(ANVIL_PATH_ENV) {
        Some(path) => PathBuf::from(path),
        None => node_modules()?.join("@foundry-rs/anvil-linux-amd64/bin/anvil"),
    };
    let out = Command::new(&binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
    };
    let version = field("anvil Version:")
        .or_else(|| text.lines().next().map(|l| l.trim().to_string()))
        .unwrap_or_default();
    let commit = field("Commit SHA:").unwrap_or_default();
    Ok(AnvilVersion { version, commit })
}
