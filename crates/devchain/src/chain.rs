use std::convert::Infallible;
use std::fmt;

use alloy_json_abi::JsonAbi;
use alloy_primitives::{Address, Bytes, TxKind, U256, address};
use alloy_sol_types::SolCall;
use entente_contracts::{Artifact, artifacts, decode_manager_log};
use revm::context::result::{ExecutionResult, Output};
use revm::context::{BlockEnv, CfgEnv, Context, TxEnv};
use revm::database::{CacheDB, EmptyDB};
use revm::handler::{MainBuilder, MainnetContext, MainnetEvm};
use revm::primitives::hardfork::SpecId;
use revm::{DatabaseRef, ExecuteCommitEvm, ExecuteEvm, MainContext};

use crate::receipt::ErrorDecoder;
use crate::{DevChainError, LoggedEvent, Receipt};

type Evm = MainnetEvm<MainnetContext<CacheDB<EmptyDB>>>;

/// When blocks are mined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mining {
    /// Every transaction is mined at once in a block of its own (anvil's default).
    #[default]
    Auto,
    /// Transactions join the open block until [`DevChain::mine`] seals it (or time moves, or the
    /// next transaction's gas used does not fit the block's remaining gas: it then opens the next
    /// block).
    Manual,
}

/// Parameters of a [`DevChain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevChainConfig {
    /// The chain id (`block.chainid`, and the EIP-712 domain's). Default 31337, like anvil.
    pub chain_id: u64,
    /// Timestamp of the genesis block (block 0) and the chain's time at start.
    pub genesis_timestamp: u64,
    /// Gas limit of every block. Default 30,000,000.
    pub block_gas_limit: u64,
    /// Gas limit of a transaction sent without an explicit one. Default: the block gas limit.
    pub transaction_gas_limit: u64,
    /// Gas price of every transaction, in wei. Default 0: gas is metered and reported but costs
    /// nothing, so balances move only by the value transactions carry.
    pub gas_price: u128,
    /// When blocks are mined.
    pub mining: Mining,
}

impl Default for DevChainConfig {
    fn default() -> Self {
        Self {
            chain_id: 31337,
            genesis_timestamp: 1_700_000_000,
            block_gas_limit: 30_000_000,
            transaction_gas_limit: 30_000_000,
            gas_price: 0,
            mining: Mining::Auto,
        }
    }
}

/// A mined block's number and timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// Block number (0 is genesis).
    pub number: u64,
    /// Its timestamp (seconds).
    pub timestamp: u64,
}

/// The block transactions are being added to (manual mining).
#[derive(Debug, Clone)]
struct OpenBlock {
    number: u64,
    timestamp: u64,
    gas_used: u64,
    transactions: u64,
    logs: Vec<LoggedEvent>,
}

/// An in-process EVM chain (revm, Cancun rules) with explicit blocks and time.
///
/// Contracts run from their real bytecode; nothing the contracts enforce is re-implemented here.
/// Everything is deterministic: the same calls on the same configuration give the same addresses,
/// receipts, gas and logs. Every transaction has a gas limit, and every block a gas limit.
///
/// Time only moves when told ([`Self::set_timestamp`], [`Self::advance`]); blocks carry
/// non-decreasing timestamps (several blocks may share one, which Ethereum forbids: code that
/// must also run on a real chain should not rely on either).
pub struct DevChain {
    evm: Evm,
    config: DevChainConfig,
    head: BlockHeader,
    now: u64,
    open: Option<OpenBlock>,
    logs: Vec<LoggedEvent>,
    errors: ErrorDecoder,
    pub(crate) managers: Vec<Address>,
}

impl fmt::Debug for DevChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevChain")
            .field("chain_id", &self.config.chain_id)
            .field("head", &self.head)
            .field("now", &self.now)
            .field("managers", &self.managers)
            .finish_non_exhaustive()
    }
}

fn infallible<T>(r: Result<T, Infallible>) -> T {
    match r {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

impl DevChain {
    /// The account that deploys the manager in [`Self::with_manager`]: anvil's first default
    /// account, so that at nonce 0 the manager gets the same address on both chains
    /// (`0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0`).
    pub const DEPLOYER: Address = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");

    /// A new, empty chain (block 0 at `config.genesis_timestamp`).
    pub fn new(config: DevChainConfig) -> Result<Self, DevChainError> {
        if config.transaction_gas_limit > config.block_gas_limit {
            return Err(DevChainError::Config(format!(
                "transaction gas limit {} above the block gas limit {}",
                config.transaction_gas_limit, config.block_gas_limit
            )));
        }
        if config.transaction_gas_limit < 21_000 {
            return Err(DevChainError::Config("transaction gas limit below 21,000".into()));
        }
        let mut cfg = CfgEnv::new_with_spec(SpecId::CANCUN);
        cfg.chain_id = config.chain_id;
        let block = BlockEnv {
            number: U256::ZERO,
            timestamp: U256::from(config.genesis_timestamp),
            gas_limit: config.block_gas_limit,
            basefee: 0,
            ..Default::default()
        };
        let evm = Context::mainnet()
            .with_db(CacheDB::new(EmptyDB::default()))
            .with_cfg(cfg)
            .with_block(block)
            .build_mainnet();
        let mut errors = ErrorDecoder::default();
        for json in [
            artifacts::I_STATE_CHANNEL_MANAGER,
            artifacts::CHANNEL_EXTENSION,
            artifacts::TIC_TAC_TOE,
            artifacts::ROUND_ROBIN_COUNTER,
        ] {
            errors.register(&Artifact::parse(json)?.abi);
        }
        Ok(Self {
            evm,
            head: BlockHeader {
                number: 0,
                timestamp: config.genesis_timestamp,
            },
            now: config.genesis_timestamp,
            config,
            open: None,
            logs: Vec::new(),
            errors,
            managers: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DevChainConfig {
        &self.config
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.config.chain_id
    }

    /// Registers the custom errors of `abi`, so that reverts carrying them are decoded by name.
    /// (The manager's, its extension's and the example machines' are known from the start;
    /// [`Self::deploy_artifact`] registers the deployed contract's.)
    pub fn register_abi(&mut self, abi: &JsonAbi) {
        self.errors.register(abi);
    }

    // ------------------------------------------------------------------ blocks and time

    /// The last mined block.
    pub fn head(&self) -> BlockHeader {
        self.head
    }

    /// Number of the last mined block.
    pub fn block_number(&self) -> u64 {
        self.head.number
    }

    /// The chain's time: the timestamp the next transaction (and the next block) will see.
    pub fn timestamp(&self) -> u64 {
        self.now
    }

    /// Sets the chain's time. The open block (manual mining) is sealed first, at its own time.
    /// Time cannot go back.
    pub fn set_timestamp(&mut self, timestamp: u64) -> Result<(), DevChainError> {
        if timestamp < self.now {
            return Err(DevChainError::TimeGoesBack {
                now: self.now,
                requested: timestamp,
            });
        }
        if timestamp != self.now {
            self.seal();
            self.now = timestamp;
        }
        Ok(())
    }

    /// Moves the chain's time forward by `seconds` (see [`Self::set_timestamp`]).
    pub fn advance(&mut self, seconds: u64) -> Result<(), DevChainError> {
        let to = self
            .now
            .checked_add(seconds)
            .ok_or(DevChainError::Overflow("timestamp"))?;
        self.set_timestamp(to)
    }

    /// Seals the open block, or mines an empty one if none is open, at the chain's time. Returns
    /// the mined block.
    pub fn mine(&mut self) -> BlockHeader {
        if self.open.is_none() {
            self.open = Some(self.new_block());
        }
        self.seal();
        self.head
    }

    fn new_block(&self) -> OpenBlock {
        OpenBlock {
            number: self.head.number + 1,
            timestamp: self.now,
            gas_used: 0,
            transactions: 0,
            logs: Vec::new(),
        }
    }

    fn seal(&mut self) {
        if let Some(block) = self.open.take() {
            tracing::debug!(
                target: "entente_devchain",
                block = block.number,
                timestamp = block.timestamp,
                transactions = block.transactions,
                gas_used = block.gas_used,
                "mined block"
            );
            self.head = BlockHeader {
                number: block.number,
                timestamp: block.timestamp,
            };
            self.logs.extend(block.logs);
        }
    }

    /// The block environment of the next transaction or call: the open block, or the one that
    /// would open now.
    fn set_block_env(&mut self) {
        let (number, timestamp) = match &self.open {
            Some(b) => (b.number, b.timestamp),
            None => (self.head.number + 1, self.now),
        };
        self.evm.ctx.block.number = U256::from(number);
        self.evm.ctx.block.timestamp = U256::from(timestamp);
    }

    // ------------------------------------------------------------------ accounts

    /// Adds `wei` to `account`'s balance (a faucet: the value comes from nowhere).
    pub fn fund(&mut self, account: Address, wei: U256) -> Result<(), DevChainError> {
        let db = &mut self.evm.ctx.journaled_state.database;
        let mut info = infallible(db.basic_ref(account)).unwrap_or_default();
        info.balance = info
            .balance
            .checked_add(wei)
            .ok_or(DevChainError::Overflow("balance"))?;
        db.insert_account_info(account, info);
        Ok(())
    }

    /// `account`'s balance in wei.
    pub fn balance(&self, account: Address) -> U256 {
        let db = &self.evm.ctx.journaled_state.database;
        infallible(db.basic_ref(account))
            .map(|i| i.balance)
            .unwrap_or_default()
    }

    /// `account`'s nonce (transactions sent).
    pub fn nonce(&self, account: Address) -> u64 {
        let db = &self.evm.ctx.journaled_state.database;
        infallible(db.basic_ref(account))
            .map(|i| i.nonce)
            .unwrap_or_default()
    }

    /// The runtime code at `account` (empty for an account without code).
    pub fn code(&self, account: Address) -> Bytes {
        let db = &self.evm.ctx.journaled_state.database;
        match infallible(db.basic_ref(account)) {
            Some(info) => match info.code {
                Some(code) => code.original_bytes(),
                None => infallible(db.code_by_hash_ref(info.code_hash)).original_bytes(),
            },
            None => Bytes::new(),
        }
    }

    // ------------------------------------------------------------------ transactions

    /// Deploys `creation_code` (constructor arguments appended) from `from`; returns the new
    /// contract's address, or [`DevChainError::Failed`] if the constructor failed.
    pub fn deploy(&mut self, from: Address, creation_code: Bytes) -> Result<Address, DevChainError> {
        let gas = self.config.transaction_gas_limit;
        let receipt = self
            .execute(from, TxKind::Create, creation_code, U256::ZERO, gas)?
            .into_result()?;
        receipt.contract_address.ok_or(DevChainError::NoContractCreated)
    }

    /// Deploys the contract of an exported artifact (no constructor arguments) from `from`, and
    /// registers its custom errors. For the example machines: `entente_contracts::artifacts`.
    pub fn deploy_artifact(&mut self, from: Address, artifact_json: &str) -> Result<Address, DevChainError> {
        let artifact = Artifact::parse(artifact_json)?;
        let code = artifact.creation_code()?.clone();
        self.errors.register(&artifact.abi);
        self.deploy(from, code)
    }

    /// Sends a transaction from `from` to `to` with `calldata` and `value` (wei), with the default
    /// gas limit. A transaction that reverts is mined all the same: its receipt says why. Errors
    /// only if the chain refuses it outright ([`DevChainError::Rejected`]).
    pub fn send(
        &mut self,
        from: Address,
        to: Address,
        calldata: Bytes,
        value: U256,
    ) -> Result<Receipt, DevChainError> {
        let gas = self.config.transaction_gas_limit;
        self.execute(from, TxKind::Call(to), calldata, value, gas)
    }

    /// [`Self::send`] with an explicit gas limit (at most the block gas limit).
    pub fn send_with_gas_limit(
        &mut self,
        from: Address,
        to: Address,
        calldata: Bytes,
        value: U256,
        gas_limit: u64,
    ) -> Result<Receipt, DevChainError> {
        self.execute(from, TxKind::Call(to), calldata, value, gas_limit)
    }

    /// [`Self::send`] of a typed call.
    pub fn send_call<C: SolCall>(
        &mut self,
        from: Address,
        to: Address,
        call: &C,
        value: U256,
    ) -> Result<Receipt, DevChainError> {
        self.send(from, to, call.abi_encode().into(), value)
    }

    fn execute(
        &mut self,
        from: Address,
        kind: TxKind,
        data: Bytes,
        value: U256,
        gas_limit: u64,
    ) -> Result<Receipt, DevChainError> {
        if gas_limit > self.config.block_gas_limit {
            return Err(DevChainError::Rejected(format!(
                "gas limit {gas_limit} above the block gas limit {}",
                self.config.block_gas_limit
            )));
        }
        let tx = TxEnv::builder()
            .caller(from)
            .kind(kind)
            .data(data)
            .value(value)
            .gas_limit(gas_limit)
            .gas_price(self.config.gas_price)
            .nonce(self.nonce(from))
            .chain_id(Some(self.config.chain_id))
            .build()
            .map_err(|e| DevChainError::Evm(format!("{e:?}")))?;
        self.set_block_env();
        let mut outcome = self
            .evm
            .transact(tx.clone())
            .map_err(|e| DevChainError::Rejected(e.to_string()))?;
        // Blocks are packed by gas used: a transaction that does not fit the open block's
        // remaining gas goes into the next block (executed again there, in its environment).
        if let Some(open) = &self.open
            && open.gas_used.saturating_add(outcome.result.tx_gas_used()) > self.config.block_gas_limit
        {
            self.seal();
            self.set_block_env();
            outcome = self
                .evm
                .transact(tx)
                .map_err(|e| DevChainError::Rejected(e.to_string()))?;
        }
        self.evm.commit(outcome.state);
        let result = outcome.result;

        let mut block = match self.open.take() {
            Some(b) => b,
            None => self.new_block(),
        };
        let transaction_index = block.transactions;
        let to = match kind {
            TxKind::Call(to) => Some(to),
            TxKind::Create => None,
        };
        let gas_used = result.tx_gas_used();
        let (success, raw_logs, output, revert, contract_address) = match result {
            ExecutionResult::Success { logs, output, .. } => match output {
                Output::Call(out) => (true, logs, out, None, None),
                Output::Create(out, address) => (true, logs, out, None, address),
            },
            ExecutionResult::Revert { output, .. } => {
                let revert = self.errors.decode(&output);
                (false, Vec::new(), output, Some(revert), None)
            }
            ExecutionResult::Halt { reason, .. } => (
                false,
                Vec::new(),
                Bytes::new(),
                Some(crate::Revert::Halt(format!("{reason:?}"))),
                None,
            ),
        };
        let first_log_index = block.logs.len() as u64;
        let logs: Vec<LoggedEvent> = raw_logs
            .into_iter()
            .enumerate()
            .map(|(i, log)| {
                let event = if self.managers.contains(&log.address) {
                    decode_manager_log(log.topics(), &log.data.data)
                } else {
                    None
                };
                LoggedEvent {
                    block_number: block.number,
                    timestamp: block.timestamp,
                    transaction_index,
                    log_index: first_log_index + i as u64,
                    log,
                    event,
                }
            })
            .collect();
        block.logs.extend(logs.iter().cloned());
        block.gas_used = block.gas_used.saturating_add(gas_used);
        block.transactions += 1;
        let receipt = Receipt {
            from,
            to,
            success,
            gas_used,
            gas_limit,
            logs,
            output: if contract_address.is_some() {
                Bytes::new()
            } else {
                output
            },
            revert,
            contract_address,
            block_number: block.number,
            timestamp: block.timestamp,
            transaction_index,
        };
        tracing::debug!(
            target: "entente_devchain",
            block = receipt.block_number,
            from = %from,
            to = ?to,
            success,
            gas_used,
            revert = ?receipt.revert,
            "transaction"
        );
        self.open = Some(block);
        if self.config.mining == Mining::Auto {
            self.seal();
        }
        Ok(receipt)
    }

    // ------------------------------------------------------------------ reads

    /// A read-only call (`eth_call`) on the current state, including the open block's
    /// transactions, in the environment of the next block. Its effects are discarded.
    pub fn view(&mut self, to: Address, calldata: Bytes) -> Result<Bytes, DevChainError> {
        self.set_block_env();
        let caller = Address::ZERO;
        let tx = TxEnv::builder()
            .caller(caller)
            .kind(TxKind::Call(to))
            .data(calldata)
            .gas_limit(self.config.block_gas_limit)
            .gas_price(0)
            .nonce(self.nonce(caller))
            .chain_id(Some(self.config.chain_id))
            .build()
            .map_err(|e| DevChainError::Evm(format!("{e:?}")))?;
        let outcome = self
            .evm
            .transact(tx)
            .map_err(|e| DevChainError::Evm(e.to_string()))?;
        match outcome.result {
            ExecutionResult::Success { output, .. } => Ok(output.into_data()),
            ExecutionResult::Revert { output, .. } => {
                Err(DevChainError::Reverted(self.errors.decode(&output)))
            }
            ExecutionResult::Halt { reason, .. } => Err(DevChainError::Reverted(crate::Revert::Halt(
                format!("{reason:?}"),
            ))),
        }
    }

    /// [`Self::view`] of a typed call, decoding its return value.
    pub fn view_call<C: SolCall>(&mut self, to: Address, call: &C) -> Result<C::Return, DevChainError> {
        let out = self.view(to, call.abi_encode().into())?;
        C::abi_decode_returns(&out).map_err(|e| DevChainError::BadReturn {
            call: C::SIGNATURE,
            reason: e.to_string(),
        })
    }

    /// Every log of the mined blocks numbered `block` and above, in chain order, each decoded if it
    /// is a manager's event (like `eth_getLogs` with `fromBlock = block`).
    pub fn logs_since(&self, block: u64) -> Vec<LoggedEvent> {
        let start = self.logs.partition_point(|l| l.block_number < block);
        self.logs[start..].to_vec()
    }

    /// Forgets the logs of blocks below `block` (to bound memory in long simulations).
    pub fn prune_logs_before(&mut self, block: u64) {
        let start = self.logs.partition_point(|l| l.block_number < block);
        self.logs.drain(..start);
    }
}
