//! What a channel tells its application, and where it is in its life.

use entente_dispute::ChainEvent;
use entente_state_manager::Event as ProtocolEvent;
use entente_types::{Address, B256, U256};
use serde::{Deserialize, Serialize};

/// Where a channel is in its life (see the crate docs for the diagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Proposed (by us or to us), waiting for every answer.
    Proposed,
    /// Accepted by everyone; waiting for the opening and the deposits.
    Funding,
    /// Waiting for a join ticket, then for the chain to start our fork.
    Joining,
    /// Running.
    Live,
    /// Settled on chain; our exit is being withdrawn.
    Closed,
    /// We left or were removed; what the chain credited us is being withdrawn.
    Left,
    /// Declined, or its funding failed; a deposit we made is being reclaimed.
    Cancelled,
}

/// Something that happened in a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelEvent {
    /// An invitee answered our proposal.
    Answered {
        /// Who.
        from: Address,
        /// Accepted or not.
        accepted: bool,
        /// Why not.
        reason: String,
    },
    /// The channel is live: every deposit is in.
    Live {
        /// Fork 0's genesis timestamp (chain time).
        genesis_timestamp: u64,
    },
    /// It is our turn to write at `height` of `fork`.
    Turn {
        /// Fork.
        fork: u64,
        /// The height our move will have.
        height: u64,
    },
    /// The protocol core reported something (a transaction applied or final, a refusal, a
    /// fork, an equivocation, ...).
    Protocol(ProtocolEvent),
    /// The chain reported something about the channel (deposits, calldata, disputes, forks,
    /// removals, the settlement).
    Chain(ChainEvent),
    /// A call we made on chain for the channel, and how it went.
    ChainCall {
        /// What was called (`open`, `deposit`, `postCalldata`, `disputeTimeout`, ...).
        what: String,
        /// Gas used, or why it failed.
        outcome: Result<u64, String>,
    },
    /// Our exit or deposit came back to our account.
    Withdrawn {
        /// How much.
        amount: U256,
    },
    /// The channel will not run: declined, not opened, or its funding failed.
    Cancelled {
        /// Why.
        reason: String,
    },
}

impl ChannelEvent {
    /// CBOR bytes of this event (an event log's record).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing CBOR into a Vec cannot fail for these plain data types.
        let _ = ciborium::into_writer(self, &mut out);
        out
    }

    /// Decodes [`Self::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        ciborium::from_reader(bytes).map_err(|e| e.to_string())
    }

    /// The peer this event proves misbehaves (a refused message only a misbehaving peer
    /// sends: a bad signature, a false state, ...), whose connection it should count against.
    pub fn misbehaving_peer(&self) -> Option<Address> {
        match self {
            Self::Protocol(ProtocolEvent::Rejected { from, reason }) if reason.is_misbehaviour() => {
                Some(*from)
            }
            _ => None,
        }
    }

    /// Whether the event belongs in the channel's durable log: every event but the refusals of
    /// messages that prove nothing (peers choose what they send, so those go to the live feed
    /// only and cannot fill the log).
    pub fn is_durable(&self) -> bool {
        match self {
            Self::Protocol(ProtocolEvent::Rejected { .. }) => self.misbehaving_peer().is_some(),
            _ => true,
        }
    }
}

impl Phase {
    /// Over: settled, left or cancelled (what is owed may still be being withdrawn).
    pub fn is_over(self) -> bool {
        matches!(self, Self::Closed | Self::Left | Self::Cancelled)
    }
}

/// A snapshot of a channel as this participant sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The channel.
    pub channel_id: B256,
    /// Where it is in its life.
    pub phase: Phase,
    /// Current fork (0 before it is live).
    pub fork: u64,
    /// Height of the latest applied transaction.
    pub tip: u64,
    /// Height up to which everything is final.
    pub finalized: u64,
    /// Hash of the state at `tip`.
    pub tip_state_hash: B256,
    /// Timestamp of the transaction at `tip` (or of the fork's genesis).
    pub tip_timestamp: u64,
    /// The state machine's address.
    pub state_machine: Address,
    /// The deposits' asset: an ERC20 token, or zero for ether.
    pub token: Address,
    /// Current participants.
    pub participants: Vec<Address>,
    /// The deposits locked at the opening, by participant (the proposal's participants).
    pub deposits: Vec<(Address, U256)>,
    /// Who writes next.
    pub next_writer: Address,
    /// The state machine says the game is over.
    pub game_over: bool,
    /// A dispute is running on chain.
    pub disputed: bool,
    /// Payouts, once settled.
    pub exits: Option<Vec<(Address, U256)>>,
    /// Chain calls still to make for this channel (deposits, withdrawals, ...).
    pub calls_outstanding: usize,
}
