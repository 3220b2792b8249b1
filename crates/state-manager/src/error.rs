use entente_agreement::AgreementError;
use entente_clock::TimestampError;
use entente_evm_runtime::EvmError;
use entente_types::{Address, B256, TypesError};

/// Why a received message was refused. Each step of the verification pipeline has its own
/// variant; nothing a peer sends can panic the state manager.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A refusal read back from an event log: its reason as text.
    #[error("{0}")]
    Logged(String),
    /// Malformed, oversized or wrong-version frame.
    #[error("undecodable message: {0}")]
    Decode(TypesError),
    /// The message is for another channel.
    #[error("message for unknown channel {0}")]
    UnknownChannel(B256),
    /// The signature is malformed or malleable.
    #[error("bad signature: {0}")]
    BadSignature(TypesError),
    /// A confirmation labelled with one height carries a signature over the transaction held at
    /// another: its labels are not covered by the signature, so it counts for nothing and is no
    /// evidence of equivocation (docs/security.md, O6).
    #[error("confirmation labelled height {labelled} signs the transaction at height {signed}")]
    MislabeledConfirmation {
        /// The height in the message.
        labelled: u64,
        /// The height of the transaction whose digest it signs.
        signed: u64,
    },
    /// The transaction's signature is not its issuer's.
    #[error("transaction claims issuer {claimed} but is signed by {signer}")]
    WrongSigner {
        /// The `participant` field.
        claimed: Address,
        /// Who actually signed.
        signer: Address,
    },
    /// The issuer or signer is not a participant of the current fork.
    #[error("{0} is not a participant of this fork")]
    NotAParticipant(Address),
    /// The issuer may not write now.
    #[error("not {issuer}'s turn: the next writer is {expected}")]
    NotYourTurn {
        /// The issuer.
        issuer: Address,
        /// Who may write.
        expected: Address,
    },
    /// Already applied.
    #[error("duplicate of the transaction at height {0}")]
    Duplicate(u64),
    /// For an older fork.
    #[error("message for fork {got}, the current fork is {current}")]
    StaleFork {
        /// Its fork.
        got: u64,
        /// Ours.
        current: u64,
    },
    /// For a fork we do not know yet.
    #[error("message for fork {got}, ahead of the current fork {current}")]
    FutureFork {
        /// Its fork.
        got: u64,
        /// Ours.
        current: u64,
    },
    /// A different transaction at a height the chain already holds.
    #[error("conflicts with the transaction at height {height} (tip {tip})")]
    Conflict {
        /// Its height.
        height: u64,
        /// Our tip.
        tip: u64,
    },
    /// A height at or below the genesis of the fork.
    #[error("height {height} is not after the fork's genesis height {genesis}")]
    BeforeGenesis {
        /// Its height.
        height: u64,
        /// The fork's genesis height.
        genesis: u64,
    },
    /// Does not build on the state at the tip.
    #[error("builds on state {got}, the tip's state is {expected}")]
    WrongPrevState {
        /// The tip's state hash.
        expected: B256,
        /// The transaction's `prevStateHash`.
        got: B256,
    },
    /// Timestamp out of order, from the future, or too late.
    #[error("timestamp refused: {0}")]
    Timestamp(TimestampError),
    /// Executing the transition failed (revert, out of gas).
    #[error("transition failed: {0}")]
    Execution(EvmError),
    /// The transition produces a different state than claimed.
    #[error("transition produces state {actual}, the transaction claims {claimed}")]
    StateHashMismatch {
        /// Claimed.
        claimed: B256,
        /// Produced.
        actual: B256,
    },
    /// A future message could not be buffered: the buffer is full.
    #[error("buffer for future messages is full")]
    BufferFull,
    /// A confirmation that does not match the chain (recorded as evidence if it equivocates).
    #[error("confirmation refused: {0}")]
    Agreement(AgreementError),
    /// A sync answer with more records than requested or allowed.
    #[error("sync response with {0} records exceeds the limit")]
    OversizedSync(usize),
    /// A message about opening a channel or changing its members, which the host handles.
    #[error("a proposal, answer or membership approval is for the host, not the running channel")]
    NotForRunningChannel,
    /// An intent that is not signed by its issuer.
    #[error("intent {nonce} of {issuer} is not signed by it")]
    IntentSignature {
        /// The claimed issuer.
        issuer: Address,
        /// Its nonce.
        nonce: u64,
    },
    /// An intent whose nonce is already used, or that expired.
    #[error("intent {nonce} of {issuer} is stale (next nonce {next}, or expired)")]
    StaleIntent {
        /// The issuer.
        issuer: Address,
        /// Its nonce.
        nonce: u64,
        /// The issuer's next nonce.
        next: u64,
    },
    /// A sequencer's transaction that leaves out our intent after the sequencers have left it out
    /// for `p2pTime`: the intent goes to the court, and we confirm nothing that leaves it out
    /// meanwhile (docs/protocol.md, section 11).
    #[error("the transaction leaves out our intent {nonce}, which waits for the court")]
    LeavesOutIntent {
        /// Our intent's nonce.
        nonce: u64,
    },
    /// The court holds an intent (docs/protocol.md, section 11): until it is forced, let go or its
    /// window ends, only the chain moves an open channel; a transaction from a peer waits.
    #[error("the court holds an intent: transactions from peers wait until it is forced or lapses")]
    CourtHoldsIntent,
    /// No room for more intents of this issuer (or in all).
    #[error("too many intents under way from {0}")]
    IntentPoolFull(Address),
    /// An intent whose move is larger than allowed.
    #[error("intent move of {bytes} bytes, at most {limit}")]
    IntentTooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// An intent too far ahead of its issuer's next nonce, or valid for longer than allowed.
    #[error("intent {nonce} of {issuer} is too far ahead or lives too long")]
    IntentOutOfBounds {
        /// The issuer.
        issuer: Address,
        /// Its nonce.
        nonce: u64,
    },
}

impl Rejection {
    /// True when the refused message proves its sender misbehaves whatever the timing: an
    /// undecodable or oversized frame, a signature that does not recover or is not its claimed
    /// signer's, a relabelled confirmation, a transition the machine refuses or whose claimed
    /// state is not what it produces. An honest peer never sends one (unlike a duplicate, a stale fork or an early
    /// message), so a host may count these against the peer's connection.
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            Self::Decode(_)
                | Self::BadSignature(_)
                | Self::MislabeledConfirmation { .. }
                | Self::WrongSigner { .. }
                | Self::StateHashMismatch { .. }
                | Self::Execution(_)
                | Self::OversizedSync(_)
                | Self::IntentSignature { .. }
        )
    }
}

/// Why a local move could not be submitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// Not this participant's turn.
    #[error("not your turn: the next writer is {expected}")]
    NotYourTurn {
        /// Who may write.
        expected: Address,
    },
    /// The machine refused the move.
    #[error("invalid move: {0}")]
    InvalidMove(EvmError),
    /// The game is over: no further transition.
    #[error("the game is over")]
    GameOver,
    /// This participant was removed from the channel.
    #[error("not a participant of the current fork")]
    NotAParticipant,
    /// The court holds an intent: nothing is written until it is forced, let go or lapses
    /// (docs/protocol.md, section 11).
    #[error("the court holds an intent: nothing is written until it is forced or lapses")]
    CourtHoldsIntent,
    /// This peer started a dispute on the fork and signs nothing more on it.
    #[error("a dispute runs on fork {fork}: no more signatures on it")]
    SigningStopped {
        /// Fork.
        fork: u64,
    },
    /// A membership approval this peer co-signed holds its signatures at `height` until it lands
    /// or expires.
    #[error(
        "a membership approval at height {height} is pending: no signatures above it until it lands or expires"
    )]
    SigningHeld {
        /// Height of the approved state.
        height: u64,
    },
    /// Signing would sign a second transaction at one fork and height.
    #[error("refusing to sign a second transaction at fork {fork}, height {height}")]
    DoubleSignGuard {
        /// Fork.
        fork: u64,
        /// Height.
        height: u64,
    },
    /// The signer gave no signature (it is not ready yet, or it failed): nothing was signed or
    /// sent; submit again.
    #[error("not signed: {0}")]
    Signer(entente_types::SignError),
    /// A move larger than an intent may carry.
    #[error("move of {bytes} bytes, an intent carries at most {limit}")]
    IntentTooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// An earlier intent of ours at this nonce was left out but may still apply until `until`:
    /// submit again after that.
    #[error("an earlier intent at nonce {nonce} may still apply until {until}")]
    IntentUnderWay {
        /// The nonce.
        nonce: u64,
        /// Its expiry (chain time, seconds).
        until: u64,
    },
}

/// Why a channel could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// The state machine failed.
    #[error("state machine: {0}")]
    Machine(#[from] EvmError),
    /// The genesis state's participants differ from the channel's.
    #[error("genesis participants {genesis:?} differ from the channel's {spec:?}")]
    ParticipantsMismatch {
        /// From the genesis state.
        genesis: Vec<Address>,
        /// From the spec.
        spec: Vec<Address>,
    },
    /// Our key is not a participant.
    #[error("{0} is not a participant of the channel")]
    NotAParticipant(Address),
}
