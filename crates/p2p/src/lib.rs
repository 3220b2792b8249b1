//! The P2PManager: a libp2p swarm (TCP and QUIC, Kademlia discovery, relay and DCUtR hole
//! punching) carrying the channel protocol between participants.
//!
//! # Bird's-eye view
//!
//! - **Identity.** A participant's secp256k1 key (its Ethereum key) is its libp2p identity. A
//!   secp256k1 PeerId embeds the public key, and the Noise handshake proves the remote holds
//!   it, so [`eth_address_of`] turns any connected PeerId into an authenticated address.
//! - **Swarm.** TCP (Noise, Yamux) and QUIC; identify, ping, Kademlia (a private DHT,
//!   `/entente/kad/1.0.0`), AutoNAT, relay client (and optionally a relay server for others),
//!   DCUtR. It runs in its own tokio task; the application talks to it through a
//!   [`P2pHandle`] and reads a bounded stream of [`P2pEvent`]s.
//! - **Discovery.** A node publishes a record mapping its address to its PeerId under
//!   [`peer_record_key`]. For a joined channel with participants it does not know yet, it looks
//!   up their peer records (one query per participant, shared by every channel that misses it)
//!   and, if they are still missing after that first round, publishes a Kademlia provider
//!   record under [`channel_key`] and looks up the channel's providers, in rounds that back off
//!   until every participant is found. Records are checked: a PeerId counts for an address only
//!   if its key hashes to it.
//! - **Channel protocol.** One long-lived stream per connection and direction
//!   (`/entente/channel/2`), opened with the first message and kept: each message is a
//!   numbered frame carrying a length-prefixed CBOR [`Envelope`](entente_types::Envelope) of at
//!   most [`MAX_MESSAGE_BYTES`](entente_types::MAX_MESSAGE_BYTES), answered on the same stream
//!   by "accepted" or "refused: reason"; many may be on the wire at once and they arrive in
//!   order. Messages from peers that are not participants of the message's channel, and
//!   frames that are garbage or of another version, are refused with a logged reason; a frame
//!   announced above the limit is refused and ends its stream, as does one that cannot be
//!   framed. The connection stays up.
//! - **Delivery.** Each peer has a bounded queue with a bounded number of messages in flight;
//!   a message waits there while the peer is found or (re)dialed with exponential backoff,
//!   up to [`P2pConfig::send_timeout`]. [`P2pHandle::send`] resolves when the peer
//!   acknowledged the message.
//! - **NAT traversal.** A node behind a NAT reserves a slot on its configured relays and is
//!   reached through them; DCUtR then punches a direct connection and the relayed one is
//!   closed ([`P2pEvent::Upgraded`]).
//!
//! Logs use the `tracing` target `entente::p2p`.
//!
//! # Example
//!
//! ```
//! use entente_p2p::{P2pConfig, P2pEvent, P2pManager};
//! use entente_types::{B256, Envelope, Message, SyncRequest};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), entente_p2p::P2pError> {
//! let local = |seed: u8| {
//!     let mut config = P2pConfig::new(B256::repeat_byte(seed));
//!     config.listen_addrs = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
//!     config.public = true;
//!     config
//! };
//! let (alice, mut alice_events) = P2pManager::spawn(local(1))?;
//! // Bob knows only Alice's address; he finds her through the DHT.
//! let alice_addr = loop {
//!     if let Some(P2pEvent::Listening { address }) = alice_events.recv().await {
//!         break address.with_p2p(alice.local_peer_id()).unwrap();
//!     }
//! };
//! let mut config = local(2);
//! config.bootstrap_addrs = vec![alice_addr];
//! let (bob, _bob_events) = P2pManager::spawn(config)?;
//!
//! let channel_id = B256::repeat_byte(0xcc);
//! let participants = vec![alice.local_address(), bob.local_address()];
//! alice.join_channel(channel_id, participants.clone()).await?;
//! bob.join_channel(channel_id, participants).await?;
//!
//! let hello = Envelope::new(Message::SyncRequest(SyncRequest { channel_id, fork: 0, from_height: 1 }));
//! bob.send(channel_id, alice.local_address(), hello.clone()).await?;
//! loop {
//!     if let Some(P2pEvent::Message { from, envelope, .. }) = alice_events.recv().await {
//!         assert_eq!((from, envelope), (bob.local_address(), hello));
//!         break;
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod codec;
mod config;
mod discovery;
mod error;
mod event;
mod identity;
mod manager;
mod protocol;

pub use codec::{CHANNEL_PROTOCOL, MAX_REASON_BYTES};
pub use config::{InboundHook, P2pConfig};
pub use discovery::{channel_key, peer_record_key};
pub use error::P2pError;
pub use event::{ConnectionKind, P2pEvent};
pub use identity::{eth_address_of, eth_address_of_key, keypair_from_secret, peer_id_of_secret};
pub use manager::{P2pHandle, P2pManager, PeerInfo, PostError, PostPeersError};

/// Re-exported libp2p types of the public API.
pub use libp2p::{Multiaddr, PeerId};
