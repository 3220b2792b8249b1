//! The CBOR messages peers exchange, with a protocol version and a size limit.

use alloy_primitives::B256;
use serde::{Deserialize, Serialize};

use crate::{
    ApprovalSignature, ChannelProposal, JoinTicket, ProposalAnswer, Signature, Transaction, TypesError,
};

/// Version of the wire protocol this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// The largest encoded message a peer accepts (256 KiB).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// CBOR nesting a decoder follows before giving up (our messages nest a few levels).
const MAX_NESTING: usize = 32;

/// A transaction with its issuer's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTransaction {
    /// The transaction.
    pub transaction: Transaction,
    /// The issuer's signature over its EIP-712 digest.
    pub signature: Signature,
}

/// A participant's signature on a transaction it validated (explicit confirmation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// Channel.
    pub channel_id: B256,
    /// Fork of the confirmed transaction.
    pub fork: u64,
    /// Height of the confirmed transaction.
    pub height: u64,
    /// EIP-712 digest of the confirmed transaction.
    pub digest: B256,
    /// Signature over `digest`.
    pub signature: Signature,
}

/// A transaction with every signature a peer holds for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionRecord {
    /// The transaction.
    pub transaction: Transaction,
    /// Signatures (issuer's first), each over the transaction's digest.
    pub signatures: Vec<Signature>,
}

/// Asks a peer for the transactions of a fork from a height on (reconnect and catch-up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// Channel.
    pub channel_id: B256,
    /// Fork.
    pub fork: u64,
    /// First height wanted.
    pub from_height: u64,
}

/// Answer to a [`SyncRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// Channel.
    pub channel_id: B256,
    /// Fork.
    pub fork: u64,
    /// Transactions in height order.
    pub transactions: Vec<TransactionRecord>,
}

/// A channel message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A new transaction from its issuer.
    Transaction(SignedTransaction),
    /// A confirmation of a transaction.
    Confirmation(Confirmation),
    /// A catch-up request.
    SyncRequest(SyncRequest),
    /// A catch-up answer.
    SyncResponse(SyncResponse),
    /// An invitation to open a channel.
    Proposal(Box<ChannelProposal>),
    /// The answer to an invitation.
    ProposalAnswer(ProposalAnswer),
    /// A participant's signature on a join or leave.
    Approval(Box<ApprovalSignature>),
    /// A complete approval for a newcomer to join.
    JoinTicket(Box<JoinTicket>),
    /// A participant's signed intent, for the sequencer of an open state.
    Intent(Box<crate::SignedIntent>),
}

impl Message {
    /// The channel this message is about.
    pub fn channel_id(&self) -> B256 {
        match self {
            Message::Transaction(t) => t.transaction.channelId,
            Message::Confirmation(c) => c.channel_id,
            Message::SyncRequest(r) => r.channel_id,
            Message::SyncResponse(r) => r.channel_id,
            Message::Proposal(p) => p.channel_id,
            Message::ProposalAnswer(a) => a.channel_id,
            Message::Approval(a) => a.approval.channel_id,
            Message::JoinTicket(t) => t.approval.channel_id,
            Message::Intent(i) => i.channel_id,
        }
    }
}

/// The versioned frame every message travels in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Protocol version of the sender.
    pub version: u16,
    /// The message.
    pub message: Message,
}

impl Envelope {
    /// Wraps a message in the current protocol version.
    pub fn new(message: Message) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            message,
        }
    }

    /// Encodes to CBOR, refusing to produce a frame peers would reject.
    pub fn encode(&self) -> Result<Vec<u8>, TypesError> {
        let mut out = Vec::with_capacity(256);
        ciborium::into_writer(self, &mut out).map_err(|e| TypesError::Malformed(e.to_string()))?;
        if out.len() > MAX_MESSAGE_BYTES {
            return Err(TypesError::TooLarge {
                size: out.len(),
                limit: MAX_MESSAGE_BYTES,
            });
        }
        Ok(out)
    }

    /// Decodes a CBOR frame: size limit first, then bounded-depth decoding, then the version.
    pub fn decode(bytes: &[u8]) -> Result<Self, TypesError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(TypesError::TooLarge {
                size: bytes.len(),
                limit: MAX_MESSAGE_BYTES,
            });
        }
        let envelope: Envelope = ciborium::de::from_reader_with_recursion_limit(bytes, MAX_NESTING)
            .map_err(|e| TypesError::Malformed(e.to_string()))?;
        if envelope.version != PROTOCOL_VERSION {
            return Err(TypesError::UnsupportedVersion {
                got: envelope.version,
                supported: PROTOCOL_VERSION,
            });
        }
        Ok(envelope)
    }
}
