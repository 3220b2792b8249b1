//! [`ChainClient`]: the StateChannelManager over JSON-RPC (anvil or any EVM chain), with one
//! local signing key.

use std::borrow::Cow;
use std::time::Duration;

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, TxHash, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::client::RpcClient;
use alloy::rpc::types::{BlockNumberOrTag, TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use alloy::transports::http::Http;
use alloy::transports::http::reqwest;
use entente_contracts::IStateChannelManager::{self, Channel, ChannelSpec, Exit};
use entente_contracts::{Artifact, ManagerEvent, artifacts, decode_manager_log};
use entente_dispute::{ChainAction, encode_action};

use crate::error::{ChainError, Revert};

/// Options of a [`ChainClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Gas limit of every transaction sent to the manager. Explicit, so that a transaction that
    /// would revert is mined and reverts on chain (with a receipt and a definite verdict) instead
    /// of being refused at gas estimation against a state that may already be stale. Default
    /// 15,000,000 (below the 2^24 transaction cap of EIP-7825); a dispute that re-executes a
    /// machine needs `machineGasLimit · 64/63 + 20,000` plus the proof's own cost.
    pub gas_limit: u64,
    /// How long to wait for a sent transaction's receipt. Default 60 s.
    pub receipt_timeout: Duration,
    /// How often to ask for a receipt while waiting. Default 100 ms.
    pub receipt_poll_interval: Duration,
    /// Timeout of each HTTP request. Default 10 s.
    pub request_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            gas_limit: 15_000_000,
            receipt_timeout: Duration::from_secs(60),
            receipt_poll_interval: Duration::from_millis(100),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// A mined transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Its hash.
    pub tx_hash: TxHash,
    /// Who sent it.
    pub from: Address,
    /// The block that holds it.
    pub block_number: u64,
    /// That block's timestamp.
    pub timestamp: u64,
    /// Status 1.
    pub success: bool,
    /// Gas used (the transaction gas).
    pub gas_used: u64,
    /// Price paid per gas, in wei.
    pub effective_gas_price: u128,
    /// The created contract, for a deployment.
    pub contract_address: Option<Address>,
    /// Every log it emitted.
    pub logs: Vec<alloy::primitives::Log>,
    /// Why it failed (`None` on success): the revert data from a replay of the transaction
    /// with `eth_call` at its parent block (a receipt carries none).
    pub revert: Option<Revert>,
}

impl Receipt {
    /// What the sender paid for gas: `gas_used × effective_gas_price`.
    pub fn fee(&self) -> U256 {
        U256::from(self.gas_used) * U256::from(self.effective_gas_price)
    }

    /// The StateChannelManager events among its logs (of any manager: check the log address
    /// in [`Receipt::logs`] when several are deployed).
    pub fn events(&self) -> Vec<ManagerEvent> {
        self.logs
            .iter()
            .filter_map(|log| decode_manager_log(log.topics(), &log.data.data))
            .collect()
    }

    /// The receipt if the transaction succeeded, else [`ChainError::Reverted`].
    pub fn into_result(self) -> Result<Self, ChainError> {
        match (self.success, &self.revert) {
            (true, _) => Ok(self),
            (false, revert) => Err(ChainError::Reverted {
                what: format!("transaction {}", self.tx_hash),
                revert: revert.clone().unwrap_or(Revert::Raw(Bytes::new())),
            }),
        }
    }
}

/// The StateChannelManager on a JSON-RPC chain, used with one local signing key.
///
/// Every method is async (tokio) and returns a typed [`ChainError`]; no answer of the node
/// makes it panic. Transactions to the manager carry an explicit gas limit
/// ([`ClientConfig::gas_limit`]) and are awaited until mined; a failed one is reported with the
/// manager's decoded error, found by replaying it with `eth_call` at its parent block.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use entente_chain::{Anvil, ChainClient};
///
/// let anvil = Anvil::spawn()?;
/// let mut client = ChainClient::connect(&anvil.endpoint(), anvil.signer(0)?).await?;
/// let manager = client.deploy_manager().await?;
/// println!("manager at {manager}, chain time {}", client.now().await?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ChainClient {
    url: String,
    provider: DynProvider,
    address: Address,
    chain_id: u64,
    manager: Option<Address>,
    config: ClientConfig,
}

/// Parses `url` and builds an HTTP transport with a request timeout.
pub(crate) fn rpc_client(url: &str, request_timeout: Duration) -> Result<RpcClient, ChainError> {
    let parsed = url.parse::<reqwest::Url>().map_err(|e| ChainError::BadUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let http = reqwest::Client::builder()
        .timeout(request_timeout)
        .build()
        .map_err(|e| ChainError::Local(format!("building the HTTP client: {e}")))?;
    let transport = Http::with_client(http, parsed);
    let is_local = transport.guess_local();
    Ok(RpcClient::new(transport, is_local))
}

impl ChainClient {
    /// Connects to the chain at `url` (e.g. `http://127.0.0.1:8545`) with `signer` as the sending
    /// account, and checks that it answers (its chain id).
    pub async fn connect(url: &str, signer: PrivateKeySigner) -> Result<Self, ChainError> {
        Self::connect_with(url, signer, ClientConfig::default()).await
    }

    /// [`ChainClient::connect`] with options.
    pub async fn connect_with(
        url: &str,
        signer: PrivateKeySigner,
        config: ClientConfig,
    ) -> Result<Self, ChainError> {
        let address = signer.address();
        let client = rpc_client(url, config.request_timeout)?;
        // The nonce comes from the chain (`pending`) for every transaction: a transaction lost on
        // its way (an RPC failure) must not leave a gap that holds every later one back, as a
        // locally cached nonce would. The node sends one transaction at a time.
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id()
            .wallet(EthereumWallet::from(signer))
            .connect_client(client)
            .erased();
        let chain_id = provider
            .get_chain_id()
            .await
            .map_err(|e| ChainError::from_rpc(url, "eth_chainId", e))?;
        Ok(Self {
            url: url.to_string(),
            provider,
            address,
            chain_id,
            manager: None,
            config,
        })
    }

    /// Uses the StateChannelManager at `manager` from now on.
    pub fn with_manager(mut self, manager: Address) -> Self {
        self.manager = Some(manager);
        self
    }

    /// Uses the StateChannelManager at `manager` from now on.
    pub fn set_manager(&mut self, manager: Address) {
        self.manager = Some(manager);
    }

    /// The StateChannelManager in use, if any.
    pub fn manager(&self) -> Option<Address> {
        self.manager
    }

    fn require_manager(&self) -> Result<Address, ChainError> {
        self.manager.ok_or(ChainError::NoManager)
    }

    /// The signing account.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The chain id (read at connection).
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The options.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The underlying alloy provider (signing with the client's key), for anything not covered
    /// here.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    fn rpc_error(&self, method: &'static str, e: alloy::transports::TransportError) -> ChainError {
        ChainError::from_rpc(&self.url, method, e)
    }

    // ------------------------------------------------------------------ deployment

    /// Deploys `creation_code` (constructor arguments appended) from the signing account and
    /// returns the new contract's address. The gas limit is estimated (a constructor that
    /// reverts is reported with its revert data, nothing is sent).
    pub async fn deploy(&self, creation_code: Bytes) -> Result<Address, ChainError> {
        let request = TransactionRequest::default()
            .with_from(self.address)
            .with_deploy_code(creation_code);
        let estimate = self
            .provider
            .estimate_gas(request.clone())
            .await
            .map_err(|e| self.rpc_error("eth_estimateGas", e))?;
        let request = request.with_gas_limit(estimate.saturating_add(estimate / 4));
        let receipt = self.send_request(request).await?.into_result()?;
        receipt.contract_address.ok_or_else(|| ChainError::BadResponse {
            url: self.url.clone(),
            method: "eth_getTransactionReceipt",
            reason: "a deployment's receipt has no contractAddress".into(),
        })
    }

    /// Deploys the StateChannelManager: its two extensions (`ChannelExtension`,
    /// `VerdictExtension`), then the manager linked to them, exactly as on the in-process chain;
    /// uses it from now on and returns its address. Sent by anvil's first account as its first
    /// three transactions, it gets the devchain's manager address
    /// (`0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0`).
    pub async fn deploy_manager(&mut self) -> Result<Address, ChainError> {
        let creation = |json: &str, what: &str| {
            Artifact::parse(json)
                .and_then(|a| a.creation_code().cloned())
                .map_err(|e| ChainError::Local(format!("the {what} artifact: {e}")))
        };
        let extension = self
            .deploy(creation(artifacts::CHANNEL_EXTENSION, "ChannelExtension")?)
            .await?;
        let verdicts = self
            .deploy(creation(artifacts::VERDICT_EXTENSION, "VerdictExtension")?)
            .await?;
        let mut code = creation(artifacts::STATE_CHANNEL_MANAGER, "StateChannelManager")?.to_vec();
        code.extend_from_slice(&alloy::sol_types::SolValue::abi_encode_params(&(
            extension, verdicts,
        )));
        let manager = self.deploy(code.into()).await?;
        self.manager = Some(manager);
        Ok(manager)
    }

    // ------------------------------------------------------------------ transactions

    /// Sends `calldata` with `value` wei to `to` from the signing account with the configured
    /// gas limit and waits until it is mined. A revert is a receipt with `success == false`
    /// and its [`Receipt::revert`], not an error; errors are about getting it mined.
    pub async fn send(&self, to: Address, calldata: Bytes, value: U256) -> Result<Receipt, ChainError> {
        let request = TransactionRequest::default()
            .with_from(self.address)
            .with_to(to)
            .with_input(calldata)
            .with_value(value)
            .with_gas_limit(self.config.gas_limit);
        self.send_request(request).await
    }

    /// Sends a transaction from an account the node signs for itself (`eth_sendTransaction`:
    /// anvil's dev accounts, or any account after [`ChainClient::dev_impersonate`]). `to: None`
    /// deploys `calldata`. The node fills nonce and fees; the gas limit is explicit.
    pub async fn send_unsigned(
        &self,
        from: Address,
        to: Option<Address>,
        calldata: Bytes,
        value: U256,
        gas_limit: u64,
    ) -> Result<Receipt, ChainError> {
        let mut request = TransactionRequest::default()
            .with_from(from)
            .with_input(calldata)
            .with_value(value)
            .with_gas_limit(gas_limit);
        match to {
            Some(to) => request.set_to(to),
            None => request.set_create(),
        }
        let tx_hash: TxHash = self
            .provider
            .raw_request(Cow::Borrowed("eth_sendTransaction"), (request.clone(),))
            .await
            .map_err(|e| self.rpc_error("eth_sendTransaction", e))?;
        self.finish(tx_hash, request).await
    }

    async fn send_request(&self, request: TransactionRequest) -> Result<Receipt, ChainError> {
        let pending = self
            .provider
            .send_transaction(request.clone())
            .await
            .map_err(|e| self.rpc_error("eth_sendRawTransaction", e))?;
        self.finish(*pending.tx_hash(), request).await
    }

    /// Waits for the receipt of `tx_hash` and, if it failed, replays `request` at the parent
    /// block for the revert data.
    async fn finish(&self, tx_hash: TxHash, request: TransactionRequest) -> Result<Receipt, ChainError> {
        let raw = self.wait_for_receipt(tx_hash).await?;
        let block_number = raw
            .block_number
            .ok_or_else(|| self.bad("eth_getTransactionReceipt", "no block number"))?;
        let timestamp = self.block_timestamp(block_number).await?;
        let success = raw.status();
        let revert = if success {
            None
        } else {
            let replay = request.clone();
            Some(
                match self.call_at(replay, Some(block_number.saturating_sub(1))).await {
                    Ok(Err(data)) => Revert::from_data(data),
                    Ok(Ok(_)) => Revert::NotReproduced("the replay succeeded".into()),
                    Err(e) => Revert::NotReproduced(e.to_string()),
                },
            )
        };
        Ok(Receipt {
            tx_hash,
            from: raw.from,
            block_number,
            timestamp,
            success,
            gas_used: raw.gas_used,
            effective_gas_price: raw.effective_gas_price,
            contract_address: raw.contract_address,
            logs: raw.inner.logs().iter().map(|l| l.inner.clone()).collect(),
            revert,
        })
    }

    async fn wait_for_receipt(&self, tx_hash: TxHash) -> Result<TransactionReceipt, ChainError> {
        let waited = self.config.receipt_timeout;
        let poll = async {
            loop {
                match self.provider.get_transaction_receipt(tx_hash).await {
                    Ok(Some(receipt)) => return Ok(receipt),
                    Ok(None) => {}
                    Err(e) => return Err(self.rpc_error("eth_getTransactionReceipt", e)),
                }
                tokio::time::sleep(self.config.receipt_poll_interval).await;
            }
        };
        tokio::time::timeout(waited, poll)
            .await
            .map_err(|_| ChainError::Timeout { tx_hash, waited })?
    }

    fn bad(&self, method: &'static str, reason: &str) -> ChainError {
        ChainError::BadResponse {
            url: self.url.clone(),
            method,
            reason: reason.to_string(),
        }
    }

    // ------------------------------------------------------------------ the manager

    async fn send_call<C: SolCall>(&self, call: &C, value: U256) -> Result<Receipt, ChainError> {
        let manager = self.require_manager()?;
        self.send(manager, call.abi_encode().into(), value).await
    }

    /// Opens a channel with `spec` and `genesis_state`, paying the signing account's deposit
    /// (the one at its index in `spec`), and returns the channel id.
    pub async fn open(&self, spec: &ChannelSpec, genesis_state: &[u8]) -> Result<B256, ChainError> {
        let value = spec
            .participants
            .iter()
            .position(|p| *p == self.address)
            .and_then(|i| spec.deposits.get(i).copied())
            .unwrap_or_default();
        let call = IStateChannelManager::openCall {
            spec: spec.clone(),
            genesisState: genesis_state.to_vec().into(),
        };
        let receipt = self.send_call(&call, value).await?.into_result()?;
        receipt
            .events()
            .into_iter()
            .find_map(|e| match e {
                ManagerEvent::ChannelOpened(opened) => Some(opened.channelId),
                _ => None,
            })
            .ok_or_else(|| {
                self.bad(
                    "eth_getTransactionReceipt",
                    "open succeeded without a ChannelOpened log",
                )
            })
    }

    /// Pays participant `index`'s deposit (`amount` wei, exactly the spec's) of a channel in its
    /// funding phase. The last deposit activates the channel.
    pub async fn deposit(&self, channel_id: B256, index: usize, amount: U256) -> Result<Receipt, ChainError> {
        let call = IStateChannelManager::depositCall {
            channelId: channel_id,
            index: U256::from(index),
        };
        self.send_call(&call, amount).await?.into_result()
    }

    /// Carries out a dispute-layer action on channel `channel_id`: the calldata of
    /// `entente_dispute::encode_action`, sent to the manager. A refusal is
    /// [`ChainError::Reverted`] with the manager's decoded error.
    pub async fn execute(&self, channel_id: B256, action: &ChainAction) -> Result<Receipt, ChainError> {
        let manager = self.require_manager()?;
        self.send(manager, encode_action(channel_id, action), U256::ZERO)
            .await?
            .into_result()
    }

    /// Pays out exit `index` of a closed channel (`exits` as in its `ChannelClosed` log) to its
    /// participant; anyone may send it.
    pub async fn withdraw(
        &self,
        channel_id: B256,
        exits: &[Exit],
        index: usize,
    ) -> Result<Receipt, ChainError> {
        let call = IStateChannelManager::withdrawCall {
            channelId: channel_id,
            exits: exits.to_vec(),
            index: U256::from(index),
        };
        self.send_call(&call, U256::ZERO).await?.into_result()
    }

    /// Withdraws what hooks (removal, slash, leave) credited to the signing account in `token`
    /// (`Address::ZERO` for ETH).
    pub async fn withdraw_pending(&self, token: Address) -> Result<Receipt, ChainError> {
        let call = IStateChannelManager::withdrawPendingCall { token };
        self.send_call(&call, U256::ZERO).await?.into_result()
    }

    /// A channel's stored record (`getChannel`).
    pub async fn channel(&self, channel_id: B256) -> Result<Channel, ChainError> {
        let manager = self.require_manager()?;
        self.view(
            manager,
            &IStateChannelManager::getChannelCall {
                channelId: channel_id,
            },
        )
        .await
    }

    /// Credited exits `account` can withdraw in `token` (`pendingBalance`).
    pub async fn pending_balance(&self, account: Address, token: Address) -> Result<U256, ChainError> {
        let manager = self.require_manager()?;
        self.view(
            manager,
            &IStateChannelManager::pendingBalanceCall { account, token },
        )
        .await
    }

    // ------------------------------------------------------------------ reads

    /// A typed read-only call of `to` at the latest block.
    pub async fn view<C: SolCall>(&self, to: Address, call: &C) -> Result<C::Return, ChainError> {
        let out = self.call(to, call.abi_encode().into()).await?;
        C::abi_decode_returns(&out).map_err(|e| ChainError::BadResponse {
            url: self.url.clone(),
            method: "eth_call",
            reason: format!("{} returned undecodable data: {e}", C::SIGNATURE),
        })
    }

    /// `eth_call` of `calldata` on `to` at the latest block; a revert is
    /// [`ChainError::Reverted`].
    pub async fn call(&self, to: Address, calldata: Bytes) -> Result<Bytes, ChainError> {
        let request = TransactionRequest::default()
            .with_from(self.address)
            .with_to(to)
            .with_input(calldata);
        self.call_at(request, None)
            .await?
            .map_err(|data| ChainError::Reverted {
                what: "eth_call".into(),
                revert: Revert::from_data(data),
            })
    }

    /// `eth_call` of `request` at block `block` (latest if `None`): `Ok(Ok(return data))`,
    /// `Ok(Err(revert data))` if it reverts, `Err` if the chain could not answer.
    pub async fn call_at(
        &self,
        request: TransactionRequest,
        block: Option<u64>,
    ) -> Result<Result<Bytes, Bytes>, ChainError> {
        let mut call = self.provider.call(request);
        if let Some(block) = block {
            call = call.block(block.into());
        }
        match call.await {
            Ok(out) => Ok(Ok(out)),
            Err(e) => match crate::error::revert_data(e) {
                Ok(data) => Ok(Err(data)),
                Err(e) => Err(self.rpc_error("eth_call", e)),
            },
        }
    }

    /// The code deployed at `account` (`eth_getCode`, latest block).
    pub async fn code(&self, account: Address) -> Result<Bytes, ChainError> {
        self.provider
            .get_code_at(account)
            .await
            .map_err(|e| self.rpc_error("eth_getCode", e))
    }

    /// `account`'s balance in wei.
    pub async fn balance(&self, account: Address) -> Result<U256, ChainError> {
        self.provider
            .get_balance(account)
            .await
            .map_err(|e| self.rpc_error("eth_getBalance", e))
    }

    /// The latest block's number.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.provider
            .get_block_number()
            .await
            .map_err(|e| self.rpc_error("eth_blockNumber", e))
    }

    /// Chain time: the latest block's timestamp.
    pub async fn now(&self) -> Result<u64, ChainError> {
        block_timestamp(&self.provider, &self.url, BlockNumberOrTag::Latest).await
    }

    /// Block `number`'s timestamp.
    pub async fn block_timestamp(&self, number: u64) -> Result<u64, ChainError> {
        block_timestamp(&self.provider, &self.url, BlockNumberOrTag::Number(number)).await
    }

    /// A [`ChainListener`](crate::ChainListener) of this client's manager on the same endpoint,
    /// from block `from_block` (see [`ChainListener::start`](crate::ChainListener::start)).
    pub fn listen(
        &self,
        from_block: u64,
        config: crate::ListenerConfig,
    ) -> Result<crate::ChainListener, ChainError> {
        crate::ChainListener::start(&self.url, self.require_manager()?, from_block, config)
    }

    // ------------------------------------------------------------------ dev chains (anvil)

    async fn dev_call(&self, method: &'static str, params: serde_json::Value) -> Result<(), ChainError> {
        let _: serde_json::Value = self
            .provider
            .raw_request(Cow::Borrowed(method), params)
            .await
            .map_err(|e| self.rpc_error(method, e))?;
        Ok(())
    }

    /// Sets `account`'s balance (`anvil_setBalance`; dev chains only).
    pub async fn dev_set_balance(&self, account: Address, wei: U256) -> Result<(), ChainError> {
        self.dev_call("anvil_setBalance", serde_json::json!([account, wei]))
            .await
    }

    /// Lets [`ChainClient::send_unsigned`] send from `account` (`anvil_impersonateAccount`).
    pub async fn dev_impersonate(&self, account: Address) -> Result<(), ChainError> {
        self.dev_call("anvil_impersonateAccount", serde_json::json!([account]))
            .await
    }

    /// Moves the next block's time forward (`evm_increaseTime`).
    pub async fn dev_increase_time(&self, seconds: u64) -> Result<(), ChainError> {
        self.dev_call("evm_increaseTime", serde_json::json!([seconds]))
            .await
    }

    /// Mines one empty block (`evm_mine`).
    pub async fn dev_mine(&self) -> Result<(), ChainError> {
        self.dev_call("evm_mine", serde_json::json!([])).await
    }
}

/// A block's timestamp through `provider`.
pub(crate) async fn block_timestamp(
    provider: &DynProvider,
    url: &str,
    block: BlockNumberOrTag,
) -> Result<u64, ChainError> {
    let found = provider
        .get_block_by_number(block)
        .await
        .map_err(|e| ChainError::from_rpc(url, "eth_getBlockByNumber", e))?;
    let block = found.ok_or_else(|| ChainError::BadResponse {
        url: url.to_string(),
        method: "eth_getBlockByNumber",
        reason: format!("no block {block}"),
    })?;
    Ok(block.header.timestamp)
}
