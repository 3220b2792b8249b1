//! The P2PManager: a libp2p swarm (TCP and QUIC, Kademlia discovery, relay and DCUtR hole
//! punching) carrying the channel protocol between participants.
