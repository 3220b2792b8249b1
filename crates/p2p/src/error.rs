//! The crate's error type.

use entente_types::{Address, B256};

/// Everything that can go wrong in the P2P layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum P2pError {
    /// The secret key is not a valid secp256k1 scalar.
    #[error("invalid secp256k1 secret key")]
    InvalidKey,
    /// A configured listen address could not be used.
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// A bootstrap or relay address has no `/p2p/<peer id>` suffix.
    #[error("address {0} does not end with /p2p/<peer id>")]
    MissingPeerId(String),
    /// The transport could not be built.
    #[error("transport setup failed: {0}")]
    Transport(String),
    /// The local node is not a participant of the channel it tried to join.
    #[error("this node ({local}) is not a participant of channel {channel_id}")]
    LocalNotParticipant {
        /// The channel.
        channel_id: B256,
        /// This node's address.
        local: Address,
    },
    /// The channel was not joined.
    #[error("channel {0} was not joined")]
    UnknownChannel(B256),
    /// The recipient is not a participant of the channel.
    #[error("{to} is not a participant of channel {channel_id}")]
    NotParticipant {
        /// The channel.
        channel_id: B256,
        /// The recipient.
        to: Address,
    },
    /// A message to oneself.
    #[error("cannot send a message to oneself")]
    SelfSend,
    /// The envelope's channel differs from the channel it is sent on.
    #[error("envelope is about channel {envelope}, not {channel_id}")]
    ChannelMismatch {
        /// The channel it was sent on.
        channel_id: B256,
        /// The channel the message is about.
        envelope: B256,
    },
    /// The message could not be encoded (or is too large).
    #[error("cannot encode message: {0}")]
    Encode(#[from] entente_types::TypesError),
    /// The per-peer outbound queue is full (back-pressure: retry later).
    #[error("outbound queue to {0} is full")]
    QueueFull(Address),
    /// The peer refused the message.
    #[error("{peer} refused the message: {reason}")]
    Refused {
        /// The peer.
        peer: Address,
        /// Its reason.
        reason: String,
    },
    /// The message was not delivered in time (peer not found, not reachable or not answering).
    #[error("message to {0} was not delivered in time")]
    Timeout(Address),
    /// Delivery failed on the connection.
    #[error("delivery to {peer} failed: {reason}")]
    Delivery {
        /// The peer.
        peer: Address,
        /// Why.
        reason: String,
    },
    /// The P2P task has stopped.
    #[error("the p2p task has stopped")]
    Stopped,
}
