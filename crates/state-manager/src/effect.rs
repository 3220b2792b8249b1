use entente_types::{Address, B256, Bytes, Message, Signature, SignedIntent, Transaction};

use crate::Rejection;

/// Something the host must carry out, in order. Every `Persist` must be durable before any later
/// `Send` or `Broadcast` leaves the node: a transaction is stored before anything that builds on
/// it is signed and sent, and every digest the node signs is recorded before the signature
/// leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send to every other participant of the channel.
    Broadcast(Message),
    /// Send to one participant.
    Send {
        /// Recipient.
        to: Address,
        /// The message.
        message: Message,
    },
    /// Store something durably.
    Persist(PersistRecord),
    /// Tell observers.
    Notify(Event),
}

/// What to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersistRecord {
    /// A transaction was applied (the state it produced is included).
    Transaction {
        /// The transaction.
        transaction: Transaction,
        /// Its digest.
        digest: B256,
        /// The issuer's signature; none on a transaction the court wrote (a forced intent,
        /// docs/protocol.md, section 11).
        signature: Option<Signature>,
        /// The encoded state after it.
        state: Bytes,
    },
    /// A participant's signature on an applied transaction.
    Signature {
        /// Fork.
        fork: u64,
        /// Height.
        height: u64,
        /// Digest.
        digest: B256,
        /// Signer.
        signer: Address,
        /// Signature.
        signature: Signature,
    },
    /// This node is about to sign `digest` at `fork`/`height` (the own-signature log).
    OwnSignature {
        /// Fork.
        fork: u64,
        /// Height.
        height: u64,
        /// Digest.
        digest: B256,
    },
    /// This node signed `intent` and sends it now (`sent`, chain seconds): kept across a restart,
    /// so that no second intent is signed at its nonce while it may still apply, and a left-out
    /// one still goes to the court.
    OwnIntent {
        /// The intent with our signature.
        intent: Box<SignedIntent>,
        /// When it was (last) sent, in chain seconds.
        sent: u64,
    },
    /// Our intent at `nonce` expired: it can no longer apply anywhere, and is forgotten.
    OwnIntentExpired {
        /// Its nonce.
        nonce: u64,
    },
    /// Transactions up to `height` are final.
    Finalized {
        /// Fork.
        fork: u64,
        /// Height.
        height: u64,
    },
}

/// What observers hear about. Serializable, so hosts can keep an event log (a refusal's reason
/// is stored as its text and read back as [`Rejection::Logged`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Event {
    /// A transaction was applied (not final yet).
    Applied {
        /// Fork.
        fork: u64,
        /// Height.
        height: u64,
        /// Issuer.
        issuer: Address,
        /// Digest.
        digest: B256,
        /// State after it.
        state_hash: B256,
    },
    /// Every transaction up to `height` is final.
    Finalized {
        /// Fork.
        fork: u64,
        /// Height.
        height: u64,
        /// State at `height`.
        state_hash: B256,
    },
    /// The machine reports that the game is over.
    GameOver {
        /// Fork.
        fork: u64,
        /// Height.
        height: u64,
    },
    /// A message was refused.
    Rejected {
        /// Who sent it.
        from: Address,
        /// Why.
        #[serde(with = "rejection_text")]
        reason: Rejection,
    },
    /// The chain enforced a state: a new fork starts from it.
    ForkStarted {
        /// The new fork.
        fork: u64,
        /// Height of its genesis.
        genesis_height: u64,
        /// Its participants.
        participants: Vec<Address>,
    },
    /// A sequencer left an intent out because it no longer applies (it reverts, or expired); its
    /// issuer may sign it again with the same nonce.
    IntentDropped {
        /// Who signed it.
        issuer: Address,
        /// Its nonce.
        nonce: u64,
        /// Why.
        reason: String,
        /// The move it asked for (its issuer's application may sign it again).
        #[serde(default)]
        data: Bytes,
    },
    /// A participant signed two transactions at one fork and height.
    Equivocation {
        /// Who.
        signer: Address,
        /// Fork.
        fork: u64,
        /// Height.
        height: u64,
    },
}

/// A [`Rejection`] in an event log: its text.
mod rejection_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::Rejection;

    pub(super) fn serialize<S: Serializer>(reason: &Rejection, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&reason.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Rejection, D::Error> {
        Ok(Rejection::Logged(String::deserialize(deserializer)?))
    }
}
