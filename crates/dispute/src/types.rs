//! What the dispute layer asks of the chain, and what it hears back. Plain Rust data; the chain
//! adapters (`entente-devchain`, `entente-chain`) translate them to and from the
//! StateChannelManager's ABI (see `docs/contracts.md`).

pub use entente_contracts::{DisputeKind, ProofKind};
pub use entente_state_manager::FraudKind;
use entente_types::{Address, B256, Bytes, Signature, SignedIntent, Transaction};

/// A state of the current fork with the evidence that it exists (`StateProof`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateProof {
    /// The kind of evidence.
    pub kind: ProofKind,
    /// The transaction that produced the state (a default transaction for `Genesis`).
    pub transaction: Transaction,
    /// For `Signed`: one signature per participant, in participant order.
    pub signatures: Vec<Signature>,
    /// The encoded state.
    pub state: Bytes,
}

impl StateProof {
    /// Height of the proven state (`genesis_height` for a genesis proof).
    pub fn height(&self, genesis_height: u64) -> u64 {
        match self.kind {
            ProofKind::Genesis => genesis_height,
            _ => self.transaction.height,
        }
    }
}

/// A running dispute as the chain recorded it (`DisputeRecord`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DisputeRecord {
    /// What it asks for.
    pub kind: DisputeKind,
    /// A Timeout or Exit dispute was defeated: `target` is now its submitter.
    pub challenged: bool,
    /// At finalization `target` is slashed (true) or removed (false).
    pub slash: bool,
    /// Who raised it.
    pub submitter: Address,
    /// Who finalization removes or slashes.
    pub target: Address,
    /// Fork it is about.
    pub fork: u64,
    /// Height of the state finalization enforces.
    pub height: u64,
    /// Hash of that state.
    pub state_hash: B256,
    /// Timeout only: the accused's deadline.
    pub writer_deadline: u64,
    /// End of the challenge period (chain time).
    pub deadline: u64,
}

/// What became of a [`ChainAction`] the host carried out (see
/// [`crate::DisputeHandler::on_call_outcome`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CallOutcome {
    /// Mined and successful.
    Mined,
    /// Mined, but the chain reverted it (the decoded reason).
    Reverted(String),
    /// Never mined: the chain could not be reached, or refused the transaction before running it.
    NotSent(String),
}

/// A call the dispute layer wants made on the StateChannelManager.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChainAction {
    /// Post a transaction as calldata: the chain runs it on the head and it becomes the head.
    PostCalldata {
        /// The transaction.
        transaction: Transaction,
        /// Its issuer's signature.
        signature: Signature,
        /// Its parent: the head (`Genesis`/`Posted`), or an N-signed state that becomes it.
        parent: StateProof,
    },
    /// Move the head up to an N-signed state.
    Checkpoint {
        /// The N-signed state.
        proof: StateProof,
    },
    /// Remove the writer after `latest` that missed its deadline.
    DisputeTimeout {
        /// The latest provable state.
        latest: StateProof,
    },
    /// Slash a participant that signed two transactions at one fork and height.
    ProveDoubleSign {
        /// The latest provable state (enforced after the slash).
        latest: StateProof,
        /// One transaction and the signer's signature on it.
        a: Box<(Transaction, Signature)>,
        /// The other.
        b: Box<(Transaction, Signature)>,
    },
    /// Slash the issuer of a fraudulent transaction.
    ProveFraud {
        /// The fraud claimed.
        kind: FraudKind,
        /// The proven state the transaction builds on.
        prev: StateProof,
        /// The transaction.
        transaction: Transaction,
        /// Its issuer's signature.
        signature: Signature,
    },
    /// Answer a running dispute with a later N-signed state (or the accused's post).
    Challenge {
        /// The dispute, as recorded.
        record: DisputeRecord,
        /// The proof.
        proof: StateProof,
    },
    /// Enforce a dispute whose challenge period is over.
    FinalizeDispute {
        /// The dispute, as recorded.
        record: DisputeRecord,
        /// The state it enforces (bytes hashing to `record.state_hash`).
        state: Bytes,
    },
    /// Leave through the chain with the latest provable state; a finished game then settles.
    RequestExit {
        /// The latest provable state.
        latest: StateProof,
    },
    /// Settle a game-over state with N signatures.
    Close {
        /// The N-signed final state.
        proof: StateProof,
    },
    /// Give the court a participant's signed intent that the sequencers left out: it is held, and
    /// forced onto the head once due (docs/protocol.md, section 11).
    PostIntent {
        /// The intent and its issuer's signature.
        intent: Box<SignedIntent>,
    },
    /// Apply a held intent that is due on the head (the court writes the transaction).
    ForceIntent {
        /// The issuer's index among the fork's participants.
        index: u64,
        /// The intent and its issuer's signature.
        intent: Box<SignedIntent>,
        /// The head, or an N-signed state that becomes it.
        parent: StateProof,
    },
}

impl ChainAction {
    /// The manager function the action calls.
    pub fn name(&self) -> &'static str {
        match self {
            Self::PostCalldata { .. } => "postCalldata",
            Self::Checkpoint { .. } => "checkpoint",
            Self::DisputeTimeout { .. } => "disputeTimeout",
            Self::ProveDoubleSign { .. } => "proveDoubleSign",
            Self::ProveFraud { .. } => "proveFraud",
            Self::Challenge { .. } => "challenge",
            Self::FinalizeDispute { .. } => "finalizeDispute",
            Self::RequestExit { .. } => "requestExit",
            Self::Close { .. } => "close",
            Self::PostIntent { .. } => "postIntent",
            Self::ForceIntent { .. } => "forceIntent",
        }
    }
}

/// What the chain did, as the dispute layer (and the node's channel lifecycle) needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChainEvent {
    /// A channel was opened and waits for its deposits.
    ChannelOpened {
        /// Who opened it (and paid its own deposit).
        opener: Address,
        /// Hash of the genesis state it committed to.
        genesis_state_hash: B256,
    },
    /// A participant's deposit arrived.
    Deposited {
        /// Who.
        participant: Address,
        /// How much.
        amount: alloy_primitives::U256,
    },
    /// Every deposit is in: the channel is live from `genesis_timestamp` (chain time).
    ChannelActivated {
        /// Fork 0's genesis timestamp.
        genesis_timestamp: u64,
    },
    /// The funding period passed without every deposit: the channel is cancelled.
    FundingCancelled,
    /// A new block (the clock syncs on it).
    Block {
        /// Its timestamp.
        timestamp: u64,
    },
    /// The head moved to an N-signed state.
    Checkpointed {
        /// The fork.
        fork: u64,
        /// Height of the new head.
        height: u64,
        /// Its state hash.
        state_hash: B256,
    },
    /// A transaction was posted as calldata (the chain ran it: its state is the new head).
    CalldataPosted {
        /// The transaction.
        transaction: Transaction,
        /// Its issuer's signature.
        signature: Signature,
        /// Chain time of the post.
        timestamp: u64,
    },
    /// The court holds a participant's intent (`postIntent`); from `due_at` it is forced onto the
    /// head before any post in a state that names no writer.
    IntentPosted {
        /// The fork.
        fork: u64,
        /// The issuer's index among the fork's participants.
        index: u64,
        /// The intent and its issuer's signature.
        intent: Box<SignedIntent>,
        /// Chain time from which it may be forced.
        due_at: u64,
    },
    /// A held intent was applied on the head: the court wrote `transaction` (by the issuer,
    /// signed by nobody), which is now the head as if posted.
    IntentForced {
        /// The transaction the court wrote.
        transaction: Transaction,
        /// Chain time of the force.
        timestamp: u64,
    },
    /// A held intent did not apply on the head and the court let it go.
    IntentVoided {
        /// The fork.
        fork: u64,
        /// The issuer's index.
        index: u64,
        /// The intent's EIP-712 digest.
        digest: B256,
    },
    /// A dispute started.
    DisputeStarted {
        /// The record.
        record: DisputeRecord,
        /// The state it would enforce.
        state: Bytes,
    },
    /// A dispute was challenged (the record replaces the previous one).
    DisputeChallenged {
        /// Who challenged.
        challenger: Address,
        /// The new record.
        record: DisputeRecord,
        /// The state it would enforce.
        state: Bytes,
    },
    /// The chain enforced a state: a new fork starts.
    SetState {
        /// The new fork.
        fork: u64,
        /// Height of its genesis.
        genesis_height: u64,
        /// Chain time of its genesis.
        genesis_timestamp: u64,
        /// The genesis state.
        state: Bytes,
        /// Its participants.
        participants: Vec<Address>,
    },
    /// A participant left (removed or slashed).
    ParticipantRemoved {
        /// Who.
        participant: Address,
        /// Slashed (true) or removed (false).
        slashed: bool,
    },
    /// The channel settled.
    ChannelClosed {
        /// Fork of the final state.
        fork: u64,
        /// Its height.
        height: u64,
        /// Payouts.
        exits: Vec<(Address, alloy_primitives::U256)>,
    },
}
