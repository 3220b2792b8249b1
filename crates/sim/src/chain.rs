//! The simulation's chain: the in-process revm chain running the real StateChannelManager. Chain
//! time follows virtual time (one block per second of virtual time at most); every call a peer's
//! channel asks for is sent as a real transaction and every manager log is decoded and delivered
//! to every peer.

use alloy_primitives::U256;
use entente_channel::ChainCall;
use entente_contracts::IStateChannelManager;
use entente_devchain::{DevChain, DevChainConfig};
use entente_dispute::{CallOutcome, ChainAction, ChainEvent, decode_event};
use entente_types::{Address, B256, Bytes, Domain};

use crate::SimError;

/// What happened on chain, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRecord {
    /// Virtual time (ms).
    pub at_ms: u64,
    /// The peer that sent it (`usize::MAX` for events).
    pub peer: usize,
    /// The action or event, with the outcome.
    pub what: String,
}

/// The chain side of a simulation.
pub struct ChainLink {
    pub(crate) chain: DevChain,
    pub(crate) channel_id: B256,
    /// The shared machine the channel's clone copies.
    machine: Address,
    pub(crate) genesis_timestamp: u64,
    /// Next block whose logs are still to deliver.
    cursor: u64,
    /// Every action sent and event seen.
    pub(crate) records: Vec<ChainRecord>,
    /// Every event of the channel, decoded.
    pub(crate) events: Vec<ChainEvent>,
}

impl std::fmt::Debug for ChainLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainLink")
            .field("channel_id", &self.channel_id)
            .finish_non_exhaustive()
    }
}

/// A channel opened for real on a fresh in-process chain.
#[derive(Debug)]
pub struct OpenedChannel {
    /// The chain.
    pub chain: DevChain,
    /// The channel id the manager gave it.
    pub channel_id: B256,
    /// The manager's EIP-712 domain.
    pub domain: Domain,
    /// The deployed state machine.
    pub machine: Address,
    /// Chain time at which the channel went live (fork 0's genesis).
    pub genesis_timestamp: u64,
}

/// Deploys the manager and the machine, funds the participants and opens the channel with
/// `deposit` each, atomically.
#[allow(clippy::too_many_arguments)]
pub(crate) fn open_channel(
    participants: &[Address],
    deposit: U256,
    machine_artifact: &str,
    genesis: &Bytes,
    timing: &entente_types::Timing,
    machine_gas_limit: u64,
    salt: B256,
    start: u64,
) -> Result<OpenedChannel, String> {
    let config = DevChainConfig {
        genesis_timestamp: start,
        ..DevChainConfig::default()
    };
    let mut chain = DevChain::with_manager_config(config).map_err(|e| e.to_string())?;
    let machine = chain
        .deploy_artifact(DevChain::DEPLOYER, machine_artifact)
        .map_err(|e| e.to_string())?;
    for p in participants {
        chain
            .fund(*p, deposit + U256::from(10u64).pow(U256::from(20u64)))
            .map_err(|e| e.to_string())?;
    }
    let spec = IStateChannelManager::ChannelSpec {
        participants: participants.to_vec(),
        deposits: vec![deposit; participants.len()],
        stateMachine: machine,
        token: Address::ZERO,
        p2pTime: timing.p2p_time,
        agreementTime: timing.agreement_time,
        chainFallbackTime: timing.chain_fallback_time,
        challengeTime: timing.challenge_time,
        fundingPeriod: 3600,
        machineGasLimit: machine_gas_limit,
        salt,
    };
    let channel_id = chain.open_and_fund(&spec, genesis).map_err(|e| e.to_string())?;
    let domain = chain.domain().map_err(|e| e.to_string())?;
    let genesis_timestamp = chain.timestamp();
    Ok(OpenedChannel {
        chain,
        channel_id,
        domain,
        machine,
        genesis_timestamp,
    })
}

impl ChainLink {
    pub(crate) fn new(opened: OpenedChannel) -> Self {
        let cursor = opened.chain.block_number() + 1;
        Self {
            chain: opened.chain,
            channel_id: opened.channel_id,
            machine: opened.machine,
            genesis_timestamp: opened.genesis_timestamp,
            cursor,
            records: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Chain time at virtual time `now_ms`.
    pub(crate) fn chain_time(&self, now_ms: u64) -> u64 {
        self.genesis_timestamp + now_ms / 1000
    }

    /// Moves chain time to virtual time `now_ms` (never backwards).
    pub(crate) fn follow(&mut self, now_ms: u64) -> Result<(), SimError> {
        let t = self.chain_time(now_ms);
        if t > self.chain.timestamp() {
            self.chain
                .set_timestamp(t)
                .map_err(|e| sim_error(now_ms, e.to_string()))?;
        }
        Ok(())
    }

    /// Sends `action` (a call of the manager's court) from `from` as a real transaction and
    /// returns what became of it.
    pub(crate) fn execute(
        &mut self,
        now_ms: u64,
        peer: usize,
        from: Address,
        action: &ChainAction,
    ) -> CallOutcome {
        self.call(now_ms, peer, from, &ChainCall::Court(Box::new(action.clone())))
            .0
    }

    /// Sends `call` from `from` as a real transaction; returns what became of it and its gas.
    pub(crate) fn call(
        &mut self,
        now_ms: u64,
        peer: usize,
        from: Address,
        call: &ChainCall,
    ) -> (CallOutcome, u64) {
        let calldata = call.calldata(self.channel_id);
        let name = call.name();
        let Some(manager) = self.chain.manager() else {
            return (CallOutcome::NotSent("no manager".into()), 0);
        };
        let (what, outcome, gas) = match self
            .chain
            .send(from, call.target(manager), calldata, call.value())
        {
            Ok(receipt) if receipt.success => (
                format!("{name} ok (gas {})", receipt.gas_used),
                CallOutcome::Mined,
                receipt.gas_used,
            ),
            Ok(receipt) => (
                format!("{name} refused: {}", receipt.failure()),
                CallOutcome::Reverted(receipt.failure()),
                receipt.gas_used,
            ),
            Err(e) => (
                format!("{name} rejected: {e}"),
                CallOutcome::NotSent(e.to_string()),
                0,
            ),
        };
        self.records.push(ChainRecord {
            at_ms: now_ms,
            peer,
            what,
        });
        (outcome, gas)
    }

    /// Records a call (named `name`) that a simulated fault kept from reaching the chain.
    pub(crate) fn lose(&mut self, now_ms: u64, peer: usize, name: &str) -> CallOutcome {
        self.records.push(ChainRecord {
            at_ms: now_ms,
            peer,
            what: format!("{name} lost (simulated chain fault)"),
        });
        CallOutcome::NotSent("simulated chain fault".into())
    }

    /// `account`'s balance (wei).
    pub fn balance(&mut self, account: Address) -> U256 {
        self.chain.balance(account)
    }

    /// Sends raw `data` from `from` to the channel's machine clone (`clone`) or to the shared
    /// machine it copies: calls only the manager may make, tried by an attacker.
    pub(crate) fn call_machine(&mut self, now_ms: u64, peer: usize, from: Address, clone: bool, data: Bytes) {
        let to = if clone {
            let call = IStateChannelManager::machineInstanceCall {
                channelId: self.channel_id,
            };
            match self.chain.manager_view(&call) {
                Ok(address) => address,
                Err(_) => return,
            }
        } else {
            self.machine
        };
        let what = match self.chain.send(from, to, data, U256::ZERO) {
            Ok(receipt) if receipt.success => format!("machine call ok (gas {})", receipt.gas_used),
            Ok(receipt) => format!("machine call refused: {}", receipt.failure()),
            Err(e) => format!("machine call rejected: {e}"),
        };
        self.records.push(ChainRecord {
            at_ms: now_ms,
            peer,
            what,
        });
    }

    /// The channel's events mined since the last call, in order.
    pub(crate) fn new_events(&mut self, now_ms: u64) -> Vec<ChainEvent> {
        let logs = self.chain.logs_since(self.cursor);
        let mut out = Vec::new();
        for log in logs {
            self.cursor = self.cursor.max(log.block_number + 1);
            let Some(event) = &log.event else { continue };
            let Some((channel, event)) = decode_event(event, log.timestamp) else {
                continue;
            };
            if channel != self.channel_id {
                continue;
            }
            self.records.push(ChainRecord {
                at_ms: now_ms,
                peer: usize::MAX,
                what: format!("{event:?}"),
            });
            self.events.push(event.clone());
            out.push(event);
        }
        out
    }

    /// Every action sent and event seen, in order.
    pub fn records(&self) -> &[ChainRecord] {
        &self.records
    }

    /// Every event of the channel, decoded, in order.
    pub fn events(&self) -> &[ChainEvent] {
        &self.events
    }

    /// Wei credited to `account` by hooks (removal, slash) and not withdrawn.
    pub fn pending(&mut self, account: Address) -> U256 {
        self.chain
            .pending_balance(account, Address::ZERO)
            .unwrap_or_default()
    }
}

fn sim_error(at_ms: u64, reason: String) -> SimError {
    SimError {
        seed: 0,
        at_ms,
        reason,
        scenario: String::new(),
    }
}
