//! What a channel asks its host to store, and what it is restored from.

use std::collections::{BTreeMap, BTreeSet};

use entente_state_manager::{ChannelSnapshot, ForkInfo, PersistRecord};
use entente_types::{
    Address, B256, Bytes, ChannelProposal, ChannelSpec, JoinTicket, MembershipApproval, Signature, U256,
};
use serde::{Deserialize, Serialize};

use crate::Phase;
use crate::membership::JoinTerms;

/// One thing to store durably before the effects after it leave the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The channel's life outside the protocol core (replaces the stored one).
    Life(Box<Life>),
    /// The dispute handler's view, encoded (replaces the stored one).
    Court(Bytes),
    /// The channel went live (or we joined it): its spec, for the protocol core's restore.
    Spec(Box<ChannelSpec>),
    /// The chain started a new fork from this genesis state.
    Fork(ForkInfo, Bytes),
    /// A record of the protocol core (transactions, signatures, the own-signature log).
    Protocol(PersistRecord),
}

/// A chain call the channel still has to make (it is retried until it lands or is moot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Duty {
    /// Open the channel (the proposer).
    Open,
    /// Pay our deposit.
    Deposit,
    /// Cancel a funding period that passed.
    CancelFunding,
    /// Take our deposit back.
    Reclaim,
    /// Claim our exit.
    Withdraw,
    /// Take what the manager credited us.
    WithdrawPending,
    /// Join with our ticket.
    Join,
    /// Leave with our approval.
    Leave,
    /// Let the manager take our deposit in the channel's token (before `Open`, `Deposit` or
    /// `Join` in a token channel).
    Approve,
}

/// A membership approval being signed by the participants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collecting {
    /// What is approved.
    pub approval: MembershipApproval,
    /// Signatures so far, by participant.
    pub signatures: BTreeMap<Address, Signature>,
    /// We proposed it (and send the ticket, or submit the leave, once complete).
    pub sponsor: bool,
    /// Ticket sent or leave submitted.
    pub done: bool,
}

/// Everything about a channel's life that is not the protocol core's or the dispute handler's:
/// stored whole after every change, before the effects of that change leave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Life {
    /// Where the channel is.
    pub phase: Phase,
    /// The proposal (for a joined channel: the ticket's view of it).
    pub proposal: ChannelProposal,
    /// We proposed it.
    pub proposer: bool,
    /// Who accepted so far (the proposer's view).
    pub accepted: BTreeSet<Address>,
    /// The manager opened it.
    pub opened: bool,
    /// Chain time after which its funding may be cancelled.
    pub funding_deadline: Option<u64>,
    /// Our deposit (or the proposer's `open`) may have reached the chain.
    pub deposit_sent: bool,
    /// Our `open` was mined (or the manager says the channel exists): the proposal is never
    /// given up from then on, only cancelled through the chain.
    #[serde(default)]
    pub open_mined: bool,
    /// In a token channel: our `approve` of the deposit was mined.
    #[serde(default)]
    pub allowance: bool,
    /// Chain time at which we accepted (an invitee): a channel never opened is given up after
    /// twice its funding period.
    #[serde(default)]
    pub accepted_at: Option<u64>,
    /// Chain calls still to make.
    pub duties: BTreeSet<Duty>,
    /// Fork 0's genesis time, once live.
    pub genesis_timestamp: Option<u64>,
    /// The exits the channel settled with.
    pub exits: Option<Vec<(Address, U256)>>,
    /// Fork and height it settled at.
    pub settled_at: Option<(u64, u64)>,
    /// The manager may have credited us (a removal, a leave, a slash).
    pub credited: bool,
    /// Approvals being signed.
    pub approvals: Vec<Collecting>,
    /// Newcomers our application lets join.
    pub allowed_joins: BTreeSet<Address>,
    /// What we agreed to join on (a newcomer).
    #[serde(default)]
    pub join_terms: Option<JoinTerms>,
    /// Join tickets the chain refused (a newcomer gives up after a few: each cost it gas).
    #[serde(default)]
    pub join_reverts: u32,
    /// The ticket we join with.
    pub ticket: Option<Box<JoinTicket>>,
    /// Why the channel was cancelled.
    pub cancel_reason: Option<String>,
}

impl Life {
    /// A fresh life for `proposal`.
    pub fn new(proposal: ChannelProposal, proposer: bool, phase: Phase) -> Self {
        Self {
            phase,
            proposal,
            proposer,
            accepted: BTreeSet::new(),
            opened: false,
            funding_deadline: None,
            deposit_sent: false,
            open_mined: false,
            allowance: false,
            accepted_at: None,
            duties: BTreeSet::new(),
            genesis_timestamp: None,
            exits: None,
            settled_at: None,
            credited: false,
            approvals: Vec::new(),
            allowed_joins: BTreeSet::new(),
            join_terms: None,
            join_reverts: 0,
            ticket: None,
            cancel_reason: None,
        }
    }

    /// The life of a channel stored before lives were (a live or closed channel of an older data
    /// directory): rebuilt from its spec.
    pub fn from_spec(spec: &ChannelSpec, gas_limit: u64, closed: bool) -> Self {
        let proposal = ChannelProposal {
            channel_id: spec.channel_id,
            chain_id: spec.domain.chain_id(),
            manager: spec.domain.verifying_contract(),
            participants: spec.participants.clone(),
            deposits: Vec::new(),
            state_machine: spec.state_machine,
            token: Address::ZERO,
            timing: spec.timing,
            funding_period: 0,
            machine_gas_limit: gas_limit,
            salt: B256::ZERO,
            genesis_state: spec.genesis_state.clone(),
            agreement_mode: spec.agreement_mode,
        };
        let mut life = Self::new(proposal, false, if closed { Phase::Closed } else { Phase::Live });
        life.opened = true;
        life.genesis_timestamp = Some(spec.genesis_timestamp);
        life
    }

    /// CBOR bytes of this life.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::new();
        // Writing CBOR into a Vec cannot fail for these plain data types.
        ciborium::into_writer(self, &mut out).unwrap_or_default();
        out.into()
    }

    /// Decodes [`Self::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        ciborium::from_reader(bytes).map_err(|e| e.to_string())
    }
}

/// What a channel is restored from after a restart.
#[derive(Debug, Clone)]
pub struct Persisted {
    /// Its life.
    pub life: Life,
    /// The dispute handler's view (`Record::Court`), if one was stored.
    pub court: Option<Bytes>,
    /// The protocol core's snapshot, for a channel that went live.
    pub snapshot: Option<ChannelSnapshot>,
}
