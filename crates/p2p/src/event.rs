//! What the swarm task reports to the application.

use std::time::Duration;

use entente_types::{Address, B256, Envelope};
use libp2p::{Multiaddr, PeerId};

/// How a connection reaches the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    /// A direct connection (possibly hole-punched).
    Direct,
    /// Through a relay's circuit.
    Relayed,
}

/// An event of the P2P layer.
#[derive(Debug, Clone)]
pub enum P2pEvent {
    /// The node listens on a new address.
    Listening {
        /// The address (with no `/p2p` suffix).
        address: Multiaddr,
    },
    /// A relay accepted our reservation: others can reach us through it.
    RelayReservation {
        /// The relay.
        relay: PeerId,
    },
    /// A participant of a joined channel was found (its PeerId proves its address).
    ParticipantFound {
        /// The channel.
        channel_id: B256,
        /// The participant's address.
        address: Address,
        /// Its PeerId.
        peer: PeerId,
    },
    /// A connection to a peer was established.
    Connected {
        /// The peer.
        peer: PeerId,
        /// Its Ethereum address, if its key is secp256k1.
        address: Option<Address>,
        /// Direct or relayed.
        kind: ConnectionKind,
        /// The remote address of the connection.
        remote: Multiaddr,
    },
    /// DCUtR replaced a relayed connection with a direct one.
    Upgraded {
        /// The peer.
        peer: PeerId,
        /// Its Ethereum address.
        address: Option<Address>,
        /// Time from the relayed connection to the direct one.
        after: Duration,
    },
    /// Hole punching to a peer failed; the relayed connection stays.
    HolePunchFailed {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// The last connection to a peer closed.
    Disconnected {
        /// The peer.
        peer: PeerId,
        /// Its Ethereum address, if its key is secp256k1.
        address: Option<Address>,
    },
    /// A channel message from a participant.
    Message {
        /// The sender (authenticated by the connection's handshake).
        from: Address,
        /// The channel.
        channel_id: B256,
        /// The message.
        envelope: Envelope,
        /// Over what kind of connection it came.
        via: ConnectionKind,
    },
    /// An inbound message was refused (also logged with the reason).
    Refused {
        /// The sending peer.
        peer: PeerId,
        /// Its address, if any.
        address: Option<Address>,
        /// Why.
        reason: String,
    },
}
