use alloy_primitives::{Address, B256, Bytes, U256};
use serde::{Deserialize, Serialize};

use crate::Domain;

/// The channel's timing parameters, in seconds, as committed on chain at opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// The most a writer may take to decide, execute and broadcast its transaction.
    pub p2p_time: u64,
    /// Network delay, execution and clock skew: all signatures on a transaction should be in
    /// within this time after `p2p_time`. Also the tolerance for timestamps in the future.
    pub agreement_time: u64,
    /// After `p2p_time + agreement_time`, the window (chain time) in which a writer without N
    /// signatures must post its transaction as calldata.
    pub chain_fallback_time: u64,
    /// How long a dispute can be challenged before the chain enforces its state.
    pub challenge_time: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            p2p_time: 30,
            agreement_time: 10,
            chain_fallback_time: 60,
            challenge_time: 120,
        }
    }
}

/// How signatures are collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum AgreementMode {
    /// Every participant signs and broadcasts a confirmation of every valid transaction: a
    /// transaction is final after one round.
    #[default]
    ExplicitConfirmations,
    /// Only the issuer signs; a transaction is final once every participant has issued a later
    /// transaction chaining to it (after N transactions with round-robin writers).
    VirtualVotingOnly,
}

/// Everything a peer needs to run a channel: identity, domain, participants, state machine,
/// timing and the genesis state of fork 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    /// The channel id (as opened on chain).
    pub channel_id: B256,
    /// EIP-712 domain of the manager that holds the channel.
    pub domain: Domain,
    /// Participants in signing order.
    pub participants: Vec<Address>,
    /// The state machine contract's address on chain.
    pub state_machine: Address,
    /// Timing parameters.
    pub timing: Timing,
    /// How signatures are collected.
    pub agreement_mode: AgreementMode,
    /// The encoded genesis state of fork 0.
    pub genesis_state: Bytes,
    /// Chain time (seconds) at which fork 0 started.
    pub genesis_timestamp: u64,
}

impl ChannelSpec {
    /// Position of `who` among the participants.
    pub fn participant_index(&self, who: &Address) -> Option<usize> {
        self.participants.iter().position(|p| p == who)
    }

    /// Number of participants.
    pub fn n(&self) -> usize {
        self.participants.len()
    }
}

/// An invitation to open a channel, sent by its proposer to every other participant.
///
/// It holds everything the manager's `open` commits to, so each invitee can check exactly what
/// it is asked to fund before it answers; `channel_id` is the manager's
/// `computeChannelId(spec, genesisState)` of it. A peer accepts a proposal only from one of its
/// participants, and only if it is one of them itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelProposal {
    /// The id the channel will have on chain.
    pub channel_id: B256,
    /// Chain id of the manager.
    pub chain_id: u64,
    /// The StateChannelManager that will hold the deposits.
    pub manager: Address,
    /// Participants in signing order (the proposer first).
    pub participants: Vec<Address>,
    /// Each participant's deposit, in participant order.
    pub deposits: Vec<U256>,
    /// The state machine contract.
    pub state_machine: Address,
    /// The deposit asset (zero: ether).
    pub token: Address,
    /// Timing parameters.
    pub timing: Timing,
    /// Seconds after opening within which every participant must deposit.
    pub funding_period: u64,
    /// Gas limit of each state-machine call.
    pub machine_gas_limit: u64,
    /// Makes the id unique among channels with the same parameters.
    pub salt: B256,
    /// The encoded genesis state.
    pub genesis_state: Bytes,
    /// How signatures are collected off chain.
    pub agreement_mode: AgreementMode,
}

impl ChannelProposal {
    /// Position of `who` among the participants.
    pub fn participant_index(&self, who: &Address) -> Option<usize> {
        self.participants.iter().position(|p| p == who)
    }

    /// The peers' view of the channel once it is live on chain since `genesis_timestamp`.
    pub fn channel_spec(&self, genesis_timestamp: u64) -> ChannelSpec {
        ChannelSpec {
            channel_id: self.channel_id,
            domain: Domain::new(self.chain_id, self.manager),
            participants: self.participants.clone(),
            state_machine: self.state_machine,
            timing: self.timing,
            agreement_mode: self.agreement_mode,
            genesis_state: self.genesis_state.clone(),
            genesis_timestamp,
        }
    }
}

/// An invitee's answer to a [`ChannelProposal`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalAnswer {
    /// The proposed channel.
    pub channel_id: B256,
    /// True to accept (the invitee will deposit once the proposer opened the channel).
    pub accepted: bool,
    /// Why not, when declined (at most [`MAX_REASON_BYTES`] bytes).
    pub reason: String,
}

/// Longest reason a [`ProposalAnswer`] carries.
pub const MAX_REASON_BYTES: usize = 256;
