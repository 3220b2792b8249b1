//! Typed helpers for the StateChannelManager: deployment, funding, and the reads a peer needs.
//! Every rule is the manager's own (its real bytecode runs); these only encode and decode.

use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::SolCall;
use entente_contracts::IStateChannelManager::{self, Channel, ChannelSpec};
use entente_contracts::{Artifact, artifacts};
use entente_types::Domain;

use crate::{DevChain, DevChainConfig, DevChainError, Receipt};

impl DevChain {
    /// A chain with the default configuration and a StateChannelManager (with its extension)
    /// deployed by [`DevChain::DEPLOYER`].
    pub fn with_manager() -> Result<Self, DevChainError> {
        Self::with_manager_config(DevChainConfig::default())
    }

    /// A chain with `config` and a StateChannelManager deployed by [`DevChain::DEPLOYER`].
    pub fn with_manager_config(config: DevChainConfig) -> Result<Self, DevChainError> {
        let mut chain = Self::new(config)?;
        chain.deploy_manager(Self::DEPLOYER)?;
        Ok(chain)
    }

    /// Deploys a StateChannelManager from `from` (its two extensions, then the manager linked to
    /// them) and returns its address. Its logs are decoded from then on; the first one deployed
    /// is [`Self::manager`].
    pub fn deploy_manager(&mut self, from: Address) -> Result<Address, DevChainError> {
        let extension = Artifact::parse(artifacts::CHANNEL_EXTENSION)?
            .creation_code()?
            .clone();
        let extension = self.deploy(from, extension)?;
        let verdicts = Artifact::parse(artifacts::VERDICT_EXTENSION)?
            .creation_code()?
            .clone();
        let verdicts = self.deploy(from, verdicts)?;
        let mut code = Artifact::parse(artifacts::STATE_CHANNEL_MANAGER)?
            .creation_code()?
            .to_vec();
        code.extend_from_slice(&alloy_sol_types::SolValue::abi_encode_params(&(
            extension, verdicts,
        )));
        let manager = self.deploy(from, code.into())?;
        self.managers.push(manager);
        Ok(manager)
    }

    /// The chain's StateChannelManager (the first deployed), if any.
    pub fn manager(&self) -> Option<Address> {
        self.managers.first().copied()
    }

    fn require_manager(&self) -> Result<Address, DevChainError> {
        self.manager().ok_or(DevChainError::NoManager)
    }

    /// The EIP-712 domain of [`Self::manager`] on this chain: what every participant signs under.
    pub fn domain(&self) -> Result<Domain, DevChainError> {
        Ok(Domain::new(self.chain_id(), self.require_manager()?))
    }

    /// Sends a typed call to [`Self::manager`] (the receipt of a reverted call says why).
    pub fn manager_send<C: SolCall>(
        &mut self,
        from: Address,
        call: &C,
        value: U256,
    ) -> Result<Receipt, DevChainError> {
        let manager = self.require_manager()?;
        self.send_call(from, manager, call, value)
    }

    /// A typed read-only call of [`Self::manager`].
    pub fn manager_view<C: SolCall>(&mut self, call: &C) -> Result<C::Return, DevChainError> {
        let manager = self.require_manager()?;
        self.view_call(manager, call)
    }

    // ------------------------------------------------------------------ funding

    /// Opens a channel: `opener` calls `open(spec, genesisState)` paying its own deposit (the one
    /// at its index in `spec`; nothing if it is not a participant, which the manager refuses).
    /// Returns the channel id, or [`DevChainError::Failed`] with the manager's refusal.
    pub fn open_channel(
        &mut self,
        opener: Address,
        spec: &ChannelSpec,
        genesis_state: &[u8],
    ) -> Result<B256, DevChainError> {
        let value = spec
            .participants
            .iter()
            .position(|p| *p == opener)
            .and_then(|i| spec.deposits.get(i).copied())
            .unwrap_or_default();
        let call = IStateChannelManager::openCall {
            spec: spec.clone(),
            genesisState: genesis_state.to_vec().into(),
        };
        let receipt = self.manager_send(opener, &call, value)?.into_result()?;
        IStateChannelManager::openCall::abi_decode_returns(&receipt.output).map_err(|e| {
            DevChainError::BadReturn {
                call: IStateChannelManager::openCall::SIGNATURE,
                reason: e.to_string(),
            }
        })
    }

    /// Pays participant `index`'s deposit of a channel in its funding phase, from `from`, with
    /// `value` wei (the manager requires exactly the deposit of the spec).
    pub fn deposit(
        &mut self,
        from: Address,
        channel_id: B256,
        index: usize,
        value: U256,
    ) -> Result<Receipt, DevChainError> {
        let call = IStateChannelManager::depositCall {
            channelId: channel_id,
            index: U256::from(index),
        };
        self.manager_send(from, &call, value)?.into_result()
    }

    /// Opens `spec` by its first participant and pays every other participant's deposit from
    /// that participant's own account: the channel is live when this returns. Each account must
    /// hold its deposit ([`Self::fund`]).
    pub fn open_and_fund(&mut self, spec: &ChannelSpec, genesis_state: &[u8]) -> Result<B256, DevChainError> {
        let opener = spec
            .participants
            .first()
            .copied()
            .ok_or_else(|| DevChainError::Config("a channel needs participants".into()))?;
        let id = self.open_channel(opener, spec, genesis_state)?;
        for (index, (participant, deposit)) in
            spec.participants.iter().zip(&spec.deposits).enumerate().skip(1)
        {
            if !deposit.is_zero() {
                self.deposit(*participant, id, index, *deposit)?;
            }
        }
        Ok(id)
    }

    // ------------------------------------------------------------------ reads

    /// The id `open(spec, genesisState)` gives a channel (`computeChannelId`).
    pub fn compute_channel_id(
        &mut self,
        spec: &ChannelSpec,
        genesis_state: &[u8],
    ) -> Result<B256, DevChainError> {
        self.manager_view(&IStateChannelManager::computeChannelIdCall {
            spec: spec.clone(),
            genesisState: genesis_state.to_vec().into(),
        })
    }

    /// A channel's stored record (`getChannel`): status, fork, genesis, participants hash, ...
    pub fn channel(&mut self, channel_id: B256) -> Result<Channel, DevChainError> {
        self.manager_view(&IStateChannelManager::getChannelCall {
            channelId: channel_id,
        })
    }

    /// A channel's current participants, in signing order (`getParticipants`).
    pub fn channel_participants(&mut self, channel_id: B256) -> Result<Vec<Address>, DevChainError> {
        self.manager_view(&IStateChannelManager::getParticipantsCall {
            channelId: channel_id,
        })
    }

    /// Credited exits `account` can withdraw in `token` (`pendingBalance`; `Address::ZERO` is ETH).
    pub fn pending_balance(&mut self, account: Address, token: Address) -> Result<U256, DevChainError> {
        self.manager_view(&IStateChannelManager::pendingBalanceCall { account, token })
    }

    /// Chain time at which the transaction with EIP-712 digest `digest` was posted as calldata,
    /// 0 if never (`postedAt`).
    pub fn posted_at(&mut self, digest: B256) -> Result<u64, DevChainError> {
        self.manager_view(&IStateChannelManager::postedAtCall { digest })
    }

    /// The manager's EIP-712 digest of `transaction` (`transactionDigest`).
    pub fn transaction_digest(
        &mut self,
        transaction: &entente_types::Transaction,
    ) -> Result<B256, DevChainError> {
        self.manager_view(&IStateChannelManager::transactionDigestCall {
            transaction: transaction.clone().into(),
        })
    }
}
