//! Configuration of a [`P2pManager`](crate::P2pManager).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use entente_types::{Address, B256, Envelope};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

/// Work done on every accepted channel message on the network task's thread, before the
/// message is handed on as [`P2pEvent::Message`](crate::P2pEvent::Message) (see
/// [`P2pConfig::inbound_hook`]). Called with the sender's authenticated address.
pub type InboundHook = Arc<dyn Fn(Address, &Envelope) + Send + Sync>;

/// How a node joins the network and how hard it works for its messages.
#[derive(Clone)]
pub struct P2pConfig {
    /// The participant's 32-byte secp256k1 secret key (its Ethereum key): the libp2p identity.
    pub secret_key: B256,
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/tcp/0` and `/ip4/0.0.0.0/udp/0/quic-v1`.
    pub listen_addrs: Vec<Multiaddr>,
    /// Kademlia bootstrap nodes, each ending with `/p2p/<peer id>`.
    pub bootstrap_addrs: Vec<Multiaddr>,
    /// Relays to reserve a slot on and to reach NATed participants through, each ending with
    /// `/p2p/<peer id>`. The node listens on `<relay>/p2p-circuit` once the relay identified itself.
    pub relay_addrs: Vec<Multiaddr>,
    /// Run a relay server for others (needs a public address: see [`P2pConfig::public`]).
    pub relay_server: bool,
    /// This node is publicly reachable at its listen addresses: they are confirmed as external
    /// addresses right away (a relay server and a Kademlia server need that) instead of waiting
    /// for AutoNAT.
    pub public: bool,
    /// How long one message may take on the wire, request to acknowledgment.
    pub request_timeout: Duration,
    /// How long a message may wait in total (discovery, dialing, queueing, delivery) before
    /// [`P2pHandle::send`](crate::P2pHandle::send) gives up.
    pub send_timeout: Duration,
    /// Messages waiting per peer (queued and in flight); beyond that `send` fails with
    /// [`P2pError::QueueFull`](crate::P2pError::QueueFull).
    pub peer_queue_size: usize,
    /// Messages on the wire at once per peer (written one after the other on one stream
    /// without waiting for answers; they arrive in the order they were sent).
    pub max_in_flight_per_peer: usize,
    /// Capacity of the event stream returned by [`P2pManager::spawn`](crate::P2pManager::spawn).
    /// When the application does not keep up, incoming messages are refused with a "busy"
    /// reason (the sender sees [`P2pError::Refused`](crate::P2pError::Refused)).
    pub event_queue_size: usize,
    /// Capacity of the command queue from handles to the swarm task.
    pub command_queue_size: usize,
    /// First delay before redialing a disconnected participant; doubles up to
    /// [`P2pConfig::max_redial_backoff`].
    pub min_redial_backoff: Duration,
    /// Longest delay between redials.
    pub max_redial_backoff: Duration,
    /// First delay between two discovery rounds of a channel with missing participants;
    /// doubles up to [`P2pConfig::max_discovery_interval`].
    pub min_discovery_interval: Duration,
    /// Longest delay between discovery rounds.
    pub max_discovery_interval: Duration,
    /// Connections without traffic are closed after this long.
    pub idle_connection_timeout: Duration,
    /// How long establishing one connection (transport, security, multiplexing) may take.
    /// This also bounds each DCUtR hole-punch attempt (DCUtR makes three).
    pub connection_timeout: Duration,
    /// Called on every accepted channel message before it is handed on, on the network
    /// task's thread: a node uses it to recover the messages' signers there, off its own event
    /// loop. It must be quick and must not block (the network task waits for it).
    pub inbound_hook: Option<InboundHook>,
}

impl std::fmt::Debug for P2pConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2pConfig")
            .field("listen_addrs", &self.listen_addrs)
            .field("bootstrap_addrs", &self.bootstrap_addrs)
            .field("relay_addrs", &self.relay_addrs)
            .field("relay_server", &self.relay_server)
            .field("public", &self.public)
            .field("inbound_hook", &self.inbound_hook.is_some())
            .finish_non_exhaustive()
    }
}

impl P2pConfig {
    /// A configuration with the given key and defaults that suit a node on the internet:
    /// listens on every interface with TCP and QUIC, ports chosen by the system.
    pub fn new(secret_key: B256) -> Self {
        Self {
            secret_key,
            listen_addrs: vec![
                Multiaddr::empty()
                    .with(Protocol::Ip4(Ipv4Addr::UNSPECIFIED))
                    .with(Protocol::Tcp(0)),
                Multiaddr::empty()
                    .with(Protocol::Ip4(Ipv4Addr::UNSPECIFIED))
                    .with(Protocol::Udp(0))
                    .with(Protocol::QuicV1),
            ],
            bootstrap_addrs: Vec::new(),
            relay_addrs: Vec::new(),
            relay_server: false,
            public: false,
            request_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            peer_queue_size: 1024,
            max_in_flight_per_peer: 32,
            event_queue_size: 1024,
            command_queue_size: 256,
            min_redial_backoff: Duration::from_millis(250),
            max_redial_backoff: Duration::from_secs(30),
            min_discovery_interval: Duration::from_millis(500),
            max_discovery_interval: Duration::from_secs(30),
            idle_connection_timeout: Duration::from_secs(3600),
            connection_timeout: Duration::from_secs(10),
            inbound_hook: None,
        }
    }
}
