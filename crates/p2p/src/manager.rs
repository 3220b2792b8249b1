//! The swarm task and the handle that talks to it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use entente_types::{Address, B256, Envelope, Message};
use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::kad::store::RecordStore;
use libp2p::kad::{self, GetProvidersOk, GetRecordOk, QueryId, QueryResult, Quorum, Record};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, autonat, dcutr, identify, noise, ping, relay,
    tcp, yamux,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, trace, warn};

use crate::codec::{Request, Response};
use crate::discovery::{channel_key, peer_record_key, verify_peer_record, verify_provider_record};
use crate::identity::{eth_address_of, eth_address_of_key, keypair_from_secret};
use crate::protocol::{self, Failure, RequestId};
use crate::{ConnectionKind, P2pConfig, P2pError, P2pEvent};

/// The Kademlia protocol of entente's private DHT.
const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/entente/kad/1.0.0");
/// The identify protocol version string.
const IDENTIFY_VERSION: &str = "/entente/0.1.0";
/// How often the task checks deadlines, redials and discovery.
const TICK: Duration = Duration::from_millis(50);
/// The participant with the larger address waits this long for the other to dial first
/// (two simultaneous relayed dials would make two hole punches race each other).
const DIAL_GRACE: Duration = Duration::from_millis(1500);

const TARGET: &str = "entente::p2p";

/// Least time between two publications of our peer record on joining channels.
const SELF_PUBLISH_ON_JOIN: Duration = Duration::from_secs(1);

#[derive(NetworkBehaviour)]
struct Behaviour {
    relay_client: relay::client::Behaviour,
    relay_server: Toggle<relay::Behaviour>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    autonat: autonat::Behaviour,
    dcutr: dcutr::Behaviour,
    channel: protocol::Behaviour,
}

type Reply = oneshot::Sender<Result<(), P2pError>>;
/// The outcome of one message to one recipient.
type Outcome = oneshot::Receiver<Result<(), P2pError>>;
/// The outcomes of one message to each of its recipients.
type Outcomes = Vec<(Address, Outcome)>;

enum Command {
    Join {
        channel_id: B256,
        participants: Vec<Address>,
        reply: Reply,
    },
    Leave {
        channel_id: B256,
        done: oneshot::Sender<()>,
    },
    Send {
        channel_id: B256,
        to: Vec<Address>,
        frame: Arc<[u8]>,
        reply: oneshot::Sender<Result<Outcomes, P2pError>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Misbehaved {
        address: Address,
    },
    AddPeer {
        address: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, P2pError>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
}

/// A peer this node is connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its libp2p identity.
    pub peer: PeerId,
    /// Its Ethereum address, once it authenticated as a channel participant.
    pub address: Option<Address>,
    /// Every connection to it goes through a relay.
    pub relayed: bool,
}

/// Spawns the swarm task.
#[derive(Debug, Clone, Copy)]
pub struct P2pManager;

impl P2pManager {
    /// Builds the swarm from `config`, starts listening and dialing the bootstrap and relay
    /// nodes, and runs it in its own tokio task (call from within a tokio runtime).
    ///
    /// Returns the handle to command it and the bounded stream of its events. The task stops
    /// when every handle is dropped.
    pub fn spawn(config: P2pConfig) -> Result<(P2pHandle, mpsc::Receiver<P2pEvent>), P2pError> {
        let keypair = keypair_from_secret(&config.secret_key)?;
        let local_peer_id = keypair.public().to_peer_id();
        let local_address = eth_address_of_key(&keypair.public()).ok_or(P2pError::InvalidKey)?;
        let mut swarm = build_swarm(keypair, &config)?;
        // Only reachable nodes serve the DHT. Left to Kademlia, a NATed node would turn server
        // as soon as its relayed address is confirmed; others' queries would then dial it
        // through the relay behind our back, and two relayed connections make two hole
        // punches collide. AutoNAT moves a node to server mode when it finds it reachable.
        swarm.behaviour_mut().kad.set_mode(Some(if config.public {
            kad::Mode::Server
        } else {
            kad::Mode::Client
        }));

        for address in &config.listen_addrs {
            swarm.listen_on(address.clone()).map_err(|e| P2pError::Listen {
                address: address.to_string(),
                reason: e.to_string(),
            })?;
        }
        let mut bootstrap = HashSet::new();
        for address in &config.bootstrap_addrs {
            let peer = peer_id_in(address)?;
            bootstrap.insert(peer);
            swarm
                .behaviour_mut()
                .kad
                .add_address(&peer, without_peer_id(address));
            if let Err(e) = swarm.dial(address.clone()) {
                warn!(target: TARGET, %address, error = %e, "cannot dial bootstrap node");
            }
        }
        let mut relays = HashMap::new();
        for address in &config.relay_addrs {
            let peer = peer_id_in(address)?;
            relays.insert(
                peer,
                RelayState {
                    address: address.clone(),
                    listening: false,
                },
            );
            if let Err(e) = swarm.dial(address.clone()) {
                warn!(target: TARGET, %address, error = %e, "cannot dial relay");
            }
        }

        let (command_tx, command_rx) = mpsc::channel(config.command_queue_size.max(1));
        let (event_tx, event_rx) = mpsc::channel(config.event_queue_size.max(1));
        info!(target: TARGET, peer = %local_peer_id, address = %local_address, "p2p node starting");
        let task = Task {
            swarm,
            config,
            local_peer_id,
            local_address,
            commands: command_rx,
            events: event_tx,
            bootstrap,
            relays,
            channels: HashMap::new(),
            by_participant: HashMap::new(),
            self_published_on_join: None,
            peers: HashMap::new(),
            addr_book: HashMap::new(),
            queues: HashMap::new(),
            in_flight: HashMap::new(),
            redial: HashMap::new(),
            connections: HashMap::new(),
            addresses: HashMap::new(),
            relayed_since: HashMap::new(),
            discovery_queries: HashMap::new(),
            peer_lookups: HashSet::new(),
            searching: HashSet::new(),
            strikes: HashMap::new(),
            next_self_publish: Instant::now(),
        };
        tokio::spawn(task.run());
        Ok((
            P2pHandle {
                commands: command_tx,
                local_peer_id,
                local_address,
            },
            event_rx,
        ))
    }
}

fn build_swarm(keypair: libp2p::identity::Keypair, config: &P2pConfig) -> Result<Swarm<Behaviour>, P2pError> {
    let relay_server = config.relay_server;
    let request_timeout = config.request_timeout;
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| P2pError::Transport(e.to_string()))?
        .with_quic()
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| P2pError::Transport(e.to_string()))?
        .with_behaviour(|key, relay_client| {
            let peer_id = key.public().to_peer_id();
            let mut kad_config = kad::Config::new(KAD_PROTOCOL);
            kad_config.set_record_filtering(kad::StoreInserts::FilterBoth);
            kad_config.set_query_timeout(Duration::from_secs(20));
            let kad = kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
            let autonat = autonat::Behaviour::new(
                peer_id,
                autonat::Config {
                    // Our labs and many deployments use private (10.x) addresses.
                    only_global_ips: false,
                    ..Default::default()
                },
            );
            Behaviour {
                relay_client,
                relay_server: Toggle::from(
                    relay_server.then(|| relay::Behaviour::new(peer_id, relay::Config::default())),
                ),
                identify: identify::Behaviour::new(identify::Config::new(
                    IDENTIFY_VERSION.to_owned(),
                    key.public(),
                )),
                ping: ping::Behaviour::new(ping::Config::new()),
                kad,
                autonat,
                dcutr: dcutr::Behaviour::new(peer_id),
                channel: protocol::Behaviour::new(request_timeout),
            }
        })
        .map_err(|e| P2pError::Transport(e.to_string()))?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(config.idle_connection_timeout)
                // Each of our outbound streams proposes one protocol: the proposal travels with
                // the first bytes of the stream instead of costing a round trip of its own.
                .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
        })
        .with_connection_timeout(config.connection_timeout)
        .build();
    Ok(swarm)
}

/// The PeerId at the end of an address (`.../p2p/<peer id>`).
fn peer_id_in(address: &Multiaddr) -> Result<PeerId, P2pError> {
    match address.iter().last() {
        Some(Protocol::P2p(peer)) => Ok(peer),
        _ => Err(P2pError::MissingPeerId(address.to_string())),
    }
}

fn without_peer_id(address: &Multiaddr) -> Multiaddr {
    address
        .iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

/// Commands the swarm task; cheap to clone.
#[derive(Debug, Clone)]
pub struct P2pHandle {
    commands: mpsc::Sender<Command>,
    local_peer_id: PeerId,
    local_address: Address,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Join { .. } => "Join",
            Command::Leave { .. } => "Leave",
            Command::Send { .. } => "Send",
            Command::ListenAddrs { .. } => "ListenAddrs",
            Command::Misbehaved { .. } => "Misbehaved",
            Command::AddPeer { .. } => "AddPeer",
            Command::Peers { .. } => "Peers",
        })
    }
}

impl P2pHandle {
    /// This node's PeerId.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// This node's Ethereum address.
    pub fn local_address(&self) -> Address {
        self.local_address
    }

    async fn command(&self, command: Command) -> Result<(), P2pError> {
        self.commands.send(command).await.map_err(|_| P2pError::Stopped)
    }

    /// Joins a channel: announces this node for it in the DHT, looks up the other
    /// participants, keeps connections to them, and accepts their messages on this channel.
    /// `participants` must include this node's address.
    pub async fn join_channel(&self, channel_id: B256, participants: Vec<Address>) -> Result<(), P2pError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Join {
            channel_id,
            participants,
            reply,
        })
        .await?;
        rx.await.map_err(|_| P2pError::Stopped)?
    }

    /// Leaves a channel: its messages are refused once this returns.
    pub async fn leave_channel(&self, channel_id: B256) -> Result<(), P2pError> {
        let (done, rx) = oneshot::channel();
        self.command(Command::Leave { channel_id, done }).await?;
        rx.await.map_err(|_| P2pError::Stopped)
    }

    /// Reports that the peer of `address` sent a message that proves it misbehaves (a bad
    /// signature, a false state): it counts like a refused frame towards disconnecting and
    /// blocking the peer.
    pub async fn report_misbehaviour(&self, address: Address) -> Result<(), P2pError> {
        self.command(Command::Misbehaved { address }).await
    }

    /// Adds a node to reach the network through (`.../p2p/<peer id>`), as a bootstrap node given
    /// at start is: it is dialed, and the DHT learns of it.
    pub async fn add_peer(&self, address: Multiaddr) -> Result<PeerId, P2pError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::AddPeer { address, reply }).await?;
        rx.await.map_err(|_| P2pError::Stopped)?
    }

    /// The peers this node is connected to.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, P2pError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Peers { reply }).await?;
        rx.await.map_err(|_| P2pError::Stopped)
    }

    /// The addresses the node currently listens on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, P2pError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::ListenAddrs { reply }).await?;
        rx.await.map_err(|_| P2pError::Stopped)
    }

    fn encode(channel_id: B256, envelope: &Envelope) -> Result<Arc<[u8]>, P2pError> {
        let about = envelope.message.channel_id();
        if about != channel_id {
            return Err(P2pError::ChannelMismatch {
                channel_id,
                envelope: about,
            });
        }
        Ok(envelope.encode()?.into())
    }

    async fn enqueue(
        &self,
        channel_id: B256,
        to: Vec<Address>,
        frame: Arc<[u8]>,
    ) -> Result<Outcomes, P2pError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Send {
            channel_id,
            to,
            frame,
            reply,
        })
        .await?;
        rx.await.map_err(|_| P2pError::Stopped)?
    }

    /// Joins a channel with these participants, or leaves it when `participants` is empty,
    /// without waiting: it takes effect before any message posted or sent after it. The swarm
    /// task logs a failure. When the command queue is full the participants come back
    /// ([`PostPeersError::Busy`]): post them again, or use [`P2pHandle::join_channel`] or
    /// [`P2pHandle::leave_channel`].
    pub fn post_peers(&self, channel_id: B256, participants: Vec<Address>) -> Result<(), PostPeersError> {
        let command = if participants.is_empty() {
            let (done, _) = oneshot::channel();
            Command::Leave { channel_id, done }
        } else {
            let (reply, _) = oneshot::channel();
            Command::Join {
                channel_id,
                participants,
                reply,
            }
        };
        match self.commands.try_send(command) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(command)) => Err(PostPeersError::Busy(match command {
                Command::Join { participants, .. } => participants,
                _ => Vec::new(),
            })),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(PostPeersError::Stopped),
        }
    }

    /// Queues a channel message without waiting for its outcome: to `to`, or to every other
    /// participant when `None`. Messages posted one after another are queued in that order;
    /// the swarm task logs a message it could not queue or deliver. When the command queue is full the
    /// envelope comes back ([`PostError::Busy`]): send it with [`P2pHandle::send`] instead.
    pub fn post(&self, channel_id: B256, to: Option<Address>, envelope: Envelope) -> Result<(), PostError> {
        let frame = Self::encode(channel_id, &envelope).map_err(PostError::Failed)?;
        // Nobody waits for the outcomes: the swarm task's replies go nowhere.
        let (reply, _) = oneshot::channel();
        let command = Command::Send {
            channel_id,
            to: to.into_iter().collect(),
            frame,
            reply,
        };
        match self.commands.try_send(command) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(PostError::Busy(Box::new(envelope))),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(PostError::Failed(P2pError::Stopped)),
        }
    }

    /// Sends a channel message to one participant and waits until it acknowledged it (or the
    /// message was refused, timed out, or could not be queued).
    ///
    /// The message waits in the peer's bounded queue while the peer is being found or dialed,
    /// at most [`P2pConfig::send_timeout`].
    pub async fn send(&self, channel_id: B256, to: Address, envelope: Envelope) -> Result<(), P2pError> {
        let frame = Self::encode(channel_id, &envelope)?;
        let mut receivers = self.enqueue(channel_id, vec![to], frame).await?;
        match receivers.pop() {
            Some((_, rx)) => rx.await.map_err(|_| P2pError::Stopped)?,
            None => Err(P2pError::Stopped),
        }
    }

    /// Sends a channel message to every other participant (encoded once) and waits for each
    /// outcome, returned per participant.
    pub async fn broadcast(
        &self,
        channel_id: B256,
        envelope: Envelope,
    ) -> Result<Vec<(Address, Result<(), P2pError>)>, P2pError> {
        let frame = Self::encode(channel_id, &envelope)?;
        let receivers = self.enqueue(channel_id, Vec::new(), frame).await?;
        let mut outcomes = Vec::with_capacity(receivers.len());
        for (to, rx) in receivers {
            outcomes.push((to, rx.await.unwrap_or(Err(P2pError::Stopped))));
        }
        Ok(outcomes)
    }
}

/// Why [`P2pHandle::post`] did not queue a message.
#[derive(Debug)]
pub enum PostError {
    /// The command queue is full: the envelope, to send another way.
    Busy(Box<Envelope>),
    /// The message cannot be sent (not encodable, about another channel, the task stopped).
    Failed(P2pError),
}

/// Why [`P2pHandle::post_peers`] did not queue a change of peers.
#[derive(Debug)]
pub enum PostPeersError {
    /// The command queue is full: the participants (empty for a leave), to post again.
    Busy(Vec<Address>),
    /// The p2p task has stopped.
    Stopped,
}

struct ChannelState {
    participants: Vec<Address>,
    announced: HashSet<Address>,
    next_discovery: Instant,
    discovery_interval: Duration,
    /// Discovery rounds so far: the first looks up the missing participants' peer records
    /// only; later ones also announce the channel and look up its providers.
    rounds: u32,
}

/// What a discovery query looks for.
#[derive(Debug, Clone, Copy)]
enum Lookup {
    /// The providers of a channel.
    Channel(B256),
    /// The peer record of a participant (one query for all the channels it is missing from).
    Peer(Address),
}

struct RelayState {
    address: Multiaddr,
    listening: bool,
}

struct Outgoing {
    frame: Arc<[u8]>,
    reply: Reply,
    deadline: Instant,
}

#[derive(Default)]
struct PeerQueue {
    waiting: VecDeque<Outgoing>,
    in_flight: usize,
}

struct InFlight {
    to: Address,
    reply: Reply,
}

struct Redial {
    next_at: Instant,
    backoff: Duration,
}

struct Task {
    swarm: Swarm<Behaviour>,
    config: P2pConfig,
    local_peer_id: PeerId,
    local_address: Address,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<P2pEvent>,
    bootstrap: HashSet<PeerId>,
    relays: HashMap<PeerId, RelayState>,
    channels: HashMap<B256, ChannelState>,
    /// The joined channels of each participant: events about a peer touch its channels only,
    /// not every channel of the node.
    by_participant: HashMap<Address, HashSet<B256>>,
    /// When our peer record was last published on joining a channel (once for many joins).
    self_published_on_join: Option<Instant>,
    /// Verified: the PeerId's key hashes to the address.
    peers: HashMap<Address, PeerId>,
    /// Direct addresses peers told us about (identify) or the DHT gave.
    addr_book: HashMap<PeerId, Vec<Multiaddr>>,
    queues: HashMap<Address, PeerQueue>,
    in_flight: HashMap<RequestId, InFlight>,
    redial: HashMap<PeerId, Redial>,
    connections: HashMap<PeerId, HashMap<ConnectionId, ConnectionKind>>,
    /// The address of each connected peer whose PeerId carries a secp256k1 key, computed once
    /// per peer (decompressing the key and hashing it costs about as much as a signature
    /// recovery, and every inbound message needs its sender's address).
    addresses: HashMap<PeerId, Address>,
    relayed_since: HashMap<PeerId, Instant>,
    discovery_queries: HashMap<QueryId, Lookup>,
    /// Participants whose peer record is being looked up.
    peer_lookups: HashSet<Address>,
    /// Joined channels with participants not found yet: the only ones the tick looks at for
    /// discovery (a participant once found stays known).
    searching: HashSet<B256>,
    /// When to publish our own peer record next (so that a proposer can find us before we
    /// joined any channel).
    next_self_publish: Instant,
    /// Refused frames per peer: a peer that keeps sending what we refuse is disconnected and
    /// blocked for a while, and its refusals are logged only a few times.
    strikes: HashMap<PeerId, Strikes>,
}

/// A peer's refused frames in the current window.
#[derive(Debug, Clone, Copy)]
struct Strikes {
    window_start: Instant,
    count: u32,
    blocked_until: Option<Instant>,
}

/// The window over which refused frames are counted.
const STRIKE_WINDOW: Duration = Duration::from_secs(10);
/// Refusals logged per peer and window (the rest are counted, not logged).
const STRIKES_LOGGED: u32 = 3;
/// Refusals per window after which a peer is disconnected and blocked.
const STRIKE_LIMIT: u32 = 64;
/// How long a blocked peer stays blocked.
const BLOCK_FOR: Duration = Duration::from_secs(60);

/// How often a node republishes its own peer record.
const SELF_PUBLISH_INTERVAL: Duration = Duration::from_secs(60);

impl Task {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = tick.tick() => self.on_tick(),
            }
        }
        info!(target: TARGET, peer = %self.local_peer_id, "p2p node stopped");
    }

    fn is_blocked(&self, peer: &PeerId) -> bool {
        self.strikes
            .get(peer)
            .and_then(|s| s.blocked_until)
            .is_some_and(|until| Instant::now() < until)
    }

    /// Counts a refused frame from `peer`; past the limit, disconnects and blocks it.
    fn strike(&mut self, peer: PeerId) {
        let now = Instant::now();
        let strikes = self.strikes.entry(peer).or_insert(Strikes {
            window_start: now,
            count: 0,
            blocked_until: None,
        });
        if now.duration_since(strikes.window_start) > STRIKE_WINDOW {
            strikes.window_start = now;
            strikes.count = 0;
        }
        strikes.count = strikes.count.saturating_add(1);
        if strikes.count >= STRIKE_LIMIT && strikes.blocked_until.is_none_or(|until| until <= now) {
            strikes.blocked_until = Some(now + BLOCK_FOR);
            warn!(target: TARGET, %peer, refused = strikes.count, "peer keeps sending refused frames: disconnected and blocked for {} s", BLOCK_FOR.as_secs());
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        // Forget peers that behaved for a while (bounded memory).
        if self.strikes.len() > 4_096 {
            self.strikes.retain(|_, s| {
                now.duration_since(s.window_start) <= STRIKE_WINDOW
                    || s.blocked_until.is_some_and(|u| now < u)
            });
        }
    }

    /// Reports an event other than a message. Messages keep at least half of the event queue:
    /// once it is half full, the other events are dropped (a flood of refusals must not make
    /// the node refuse its participants' messages as "busy").
    fn emit(&self, event: P2pEvent) {
        if self.events.capacity() < self.events.max_capacity() / 2 {
            debug!(target: TARGET, ?event, "event dropped: the queue is kept for messages");
            return;
        }
        if let Err(e) = self.events.try_send(event) {
            debug!(target: TARGET, error = %e, "event dropped: the application does not keep up");
        }
    }

    fn is_participant(&self, address: &Address) -> bool {
        self.by_participant.contains_key(address)
    }

    /// Removes a joined channel and its participants from the index.
    fn forget_channel(&mut self, channel_id: &B256) {
        self.searching.remove(channel_id);
        let Some(state) = self.channels.remove(channel_id) else {
            return;
        };
        for address in &state.participants {
            if let Some(channels) = self.by_participant.get_mut(address) {
                channels.remove(channel_id);
                if channels.is_empty() {
                    self.by_participant.remove(address);
                }
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Join {
                channel_id,
                participants,
                reply,
            } => {
                let result = self.join(channel_id, participants);
                if let Err(e) = &result {
                    warn!(target: TARGET, channel = %channel_id, error = %e, "cannot join the channel");
                }
                let _ = reply.send(result);
            }
            Command::Leave { channel_id, done } => {
                self.forget_channel(&channel_id);
                self.swarm
                    .behaviour_mut()
                    .kad
                    .stop_providing(&channel_key(&channel_id));
                info!(target: TARGET, channel = %channel_id, "left channel");
                let _ = done.send(());
            }
            Command::Send {
                channel_id,
                to,
                frame,
                reply,
            } => {
                trace!(target: TARGET, channel = %channel_id, "send queued");
                let result = self.enqueue(channel_id, to, frame);
                if let Err(e) = &result {
                    debug!(target: TARGET, channel = %channel_id, error = %e, "message not queued");
                }
                let _ = reply.send(result);
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Misbehaved { address } => {
                if let Some(peer) = self.peers.get(&address).copied() {
                    self.strike(peer);
                }
            }
            Command::AddPeer { address, reply } => {
                let result = peer_id_in(&address).inspect(|peer| {
                    let peer = *peer;
                    self.bootstrap.insert(peer);
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, without_peer_id(&address));
                    if let Err(e) = self.swarm.dial(address.clone()) {
                        warn!(target: TARGET, %address, error = %e, "cannot dial the added peer");
                    }
                });
                let _ = reply.send(result);
            }
            Command::Peers { reply } => {
                let by_peer: HashMap<PeerId, Address> = self.peers.iter().map(|(a, p)| (*p, *a)).collect();
                let mut out: Vec<PeerInfo> = self
                    .connections
                    .iter()
                    .filter(|(_, c)| !c.is_empty())
                    .map(|(peer, c)| PeerInfo {
                        peer: *peer,
                        address: by_peer.get(peer).copied(),
                        relayed: c.values().all(|k| *k == ConnectionKind::Relayed),
                    })
                    .collect();
                out.sort_by_key(|p| p.peer.to_bytes());
                let _ = reply.send(out);
            }
        }
    }

    fn join(&mut self, channel_id: B256, participants: Vec<Address>) -> Result<(), P2pError> {
        if !participants.contains(&self.local_address) {
            return Err(P2pError::LocalNotParticipant {
                channel_id,
                local: self.local_address,
            });
        }
        info!(target: TARGET, channel = %channel_id, participants = participants.len(), "joined channel");
        let mut state = ChannelState {
            participants,
            announced: HashSet::new(),
            next_discovery: Instant::now(),
            discovery_interval: self.config.min_discovery_interval,
            rounds: 0,
        };
        // Participants already connected or known need no lookup.
        for address in &state.participants {
            if let Some(peer) = self.peers.get(address) {
                state.announced.insert(*address);
                self.emit(P2pEvent::ParticipantFound {
                    channel_id,
                    address: *address,
                    peer: *peer,
                });
            }
        }
        self.forget_channel(&channel_id);
        for address in &state.participants {
            self.by_participant
                .entry(*address)
                .or_default()
                .insert(channel_id);
        }
        let unknown = state
            .participants
            .iter()
            .any(|a| *a != self.local_address && !self.peers.contains_key(a));
        self.channels.insert(channel_id, state);
        self.searching.insert(channel_id);
        // A connected peer not known as a participant yet may be one of this channel. Known
        // ones were handled above: registering them again would walk every channel they share
        // with us, for each join (a node restoring 10,000 channels while connected to their
        // peer walked 50 million).
        if unknown {
            let connected: Vec<PeerId> = self.connections.keys().copied().collect();
            for peer in connected {
                self.register_peer(peer, "connected");
            }
        }
        self.discover(channel_id);
        Ok(())
    }

    fn enqueue(
        &mut self,
        channel_id: B256,
        to: Vec<Address>,
        frame: Arc<[u8]>,
    ) -> Result<Outcomes, P2pError> {
        let channel = self
            .channels
            .get(&channel_id)
            .ok_or(P2pError::UnknownChannel(channel_id))?;
        let recipients: Vec<Address> = if to.is_empty() {
            channel
                .participants
                .iter()
                .filter(|a| **a != self.local_address)
                .copied()
                .collect()
        } else {
            for address in &to {
                if *address == self.local_address {
                    return Err(P2pError::SelfSend);
                }
                if !channel.participants.contains(address) {
                    return Err(P2pError::NotParticipant {
                        channel_id,
                        to: *address,
                    });
                }
            }
            to
        };
        let deadline = Instant::now() + self.config.send_timeout;
        let mut receivers = Vec::with_capacity(recipients.len());
        for address in recipients {
            let (reply, rx) = oneshot::channel();
            let queue = self.queues.entry(address).or_default();
            if queue.waiting.len() + queue.in_flight >= self.config.peer_queue_size {
                debug!(target: TARGET, %address, "message not queued: the peer's queue is full");
                let _ = reply.send(Err(P2pError::QueueFull(address)));
            } else {
                queue.waiting.push_back(Outgoing {
                    frame: frame.clone(),
                    reply,
                    deadline,
                });
            }
            receivers.push((address, rx));
            self.pump(address);
        }
        Ok(receivers)
    }

    /// Moves queued messages for `address` onto the wire while the peer is connected.
    fn pump(&mut self, address: Address) {
        let Some(peer) = self.peers.get(&address).copied() else {
            return;
        };
        if !self.swarm.is_connected(&peer) {
            return;
        }
        let Some(queue) = self.queues.get_mut(&address) else {
            return;
        };
        let now = Instant::now();
        while queue.in_flight < self.config.max_in_flight_per_peer.max(1) {
            let Some(outgoing) = queue.waiting.pop_front() else {
                break;
            };
            if outgoing.deadline <= now {
                let _ = outgoing.reply.send(Err(P2pError::Timeout(address)));
                continue;
            }
            let id = self
                .swarm
                .behaviour_mut()
                .channel
                .send_request(&peer, outgoing.frame);
            trace!(target: TARGET, %peer, "request sent");
            queue.in_flight += 1;
            self.in_flight.insert(
                id,
                InFlight {
                    to: address,
                    reply: outgoing.reply,
                },
            );
        }
    }

    fn settle(&mut self, id: RequestId, result: Result<(), P2pError>) {
        let Some(InFlight { to, reply }) = self.in_flight.remove(&id) else {
            return;
        };
        if let Some(queue) = self.queues.get_mut(&to) {
            queue.in_flight = queue.in_flight.saturating_sub(1);
        }
        if let Err(e) = &result {
            debug!(target: TARGET, %to, error = %e, "message not delivered");
        }
        let _ = reply.send(result);
        self.pump(to);
    }

    /// Starts a discovery round for a channel with missing participants: look up their peer
    /// records (one query per participant, however many channels miss it); from the second
    /// round on, also announce the channel and look up its providers. A node that restarts with
    /// many channels with the same peers thus makes a few queries, not a few per channel.
    fn discover(&mut self, channel_id: B256) {
        let Some(channel) = self.channels.get_mut(&channel_id) else {
            return;
        };
        let missing: Vec<Address> = channel
            .participants
            .iter()
            .filter(|a| **a != self.local_address && !self.peers.contains_key(*a))
            .copied()
            .collect();
        let now = Instant::now();
        channel.next_discovery = now + channel.discovery_interval;
        channel.discovery_interval = (channel.discovery_interval * 2).min(self.config.max_discovery_interval);
        if missing.is_empty() {
            self.searching.remove(&channel_id);
            return;
        }
        channel.rounds = channel.rounds.saturating_add(1);
        let announce = channel.rounds >= 2;
        // Once for the many channels joined at a start, not once per channel.
        if self
            .self_published_on_join
            .is_none_or(|at| now.duration_since(at) >= SELF_PUBLISH_ON_JOIN)
        {
            self.self_published_on_join = Some(now);
            self.publish_self();
        }
        debug!(target: TARGET, channel = %channel_id, missing = missing.len(), announce, "looking up participants");
        for address in missing {
            if self.peer_lookups.insert(address) {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_record(peer_record_key(&address));
                self.discovery_queries.insert(id, Lookup::Peer(address));
            }
        }
        if announce {
            let key = channel_key(&channel_id);
            let kad = &mut self.swarm.behaviour_mut().kad;
            if let Err(e) = kad.start_providing(key.clone()) {
                warn!(target: TARGET, channel = %channel_id, error = %e, "cannot announce channel");
            }
            let id = kad.get_providers(key);
            self.discovery_queries.insert(id, Lookup::Channel(channel_id));
        }
    }

    /// Publishes the record that maps our address to our PeerId.
    fn publish_self(&mut self) {
        let mut record = Record::new(
            peer_record_key(&self.local_address),
            self.local_peer_id.to_bytes(),
        );
        record.publisher = Some(self.local_peer_id);
        if let Err(e) = self.swarm.behaviour_mut().kad.put_record(record, Quorum::One) {
            warn!(target: TARGET, error = %e, "cannot publish peer record");
        }
    }

    /// Learns a verified PeerId: if its address is a participant of a joined channel, remember
    /// it, report it and plan a dial.
    fn register_peer(&mut self, peer: PeerId, source: &'static str) {
        if peer == self.local_peer_id {
            return;
        }
        let Some(address) = self.address_of(&peer) else {
            return;
        };
        if !self.is_participant(&address) {
            return;
        }
        let new = self.peers.insert(address, peer).is_none();
        let mut found = Vec::new();
        for channel_id in self.by_participant.get(&address).into_iter().flatten() {
            if let Some(channel) = self.channels.get_mut(channel_id)
                && channel.announced.insert(address)
            {
                found.push(*channel_id);
            }
        }
        for channel_id in found {
            info!(target: TARGET, channel = %channel_id, %peer, %address, source, "participant found");
            self.emit(P2pEvent::ParticipantFound {
                channel_id,
                address,
                peer,
            });
        }
        if new && !self.swarm.is_connected(&peer) {
            // The smaller address dials first; the other waits a moment for that dial.
            let delay = if self.local_address < address {
                Duration::ZERO
            } else {
                DIAL_GRACE
            };
            self.redial.insert(
                peer,
                Redial {
                    next_at: Instant::now() + delay,
                    backoff: self.config.min_redial_backoff,
                },
            );
        }
        self.pump(address);
    }

    fn dial(&mut self, peer: PeerId) {
        let mut addresses = self.addr_book.get(&peer).cloned().unwrap_or_default();
        for (relay, state) in &self.relays {
            if self.swarm.is_connected(relay) {
                addresses.push(
                    state
                        .address
                        .clone()
                        .with(Protocol::P2pCircuit)
                        .with(Protocol::P2p(peer)),
                );
            }
        }
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .addresses(addresses)
            .extend_addresses_through_behaviour()
            .build();
        debug!(target: TARGET, %peer, "dialing participant");
        if let Err(e) = self.swarm.dial(opts) {
            debug!(target: TARGET, %peer, error = %e, "dial not started");
            if matches!(e, libp2p::swarm::DialError::NoAddresses) {
                self.swarm.behaviour_mut().kad.get_closest_peers(peer);
            }
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        // Expire messages that waited too long.
        for (address, queue) in &mut self.queues {
            while queue.waiting.front().is_some_and(|o| o.deadline <= now) {
                if let Some(outgoing) = queue.waiting.pop_front() {
                    debug!(target: TARGET, to = %address, "message expired in queue");
                    let _ = outgoing.reply.send(Err(P2pError::Timeout(*address)));
                }
            }
        }
        // Discovery of channels with missing participants (a round finds them found, or looks).
        let due: Vec<B256> = self
            .searching
            .iter()
            .filter(|id| self.channels.get(*id).is_some_and(|c| c.next_discovery <= now))
            .copied()
            .collect();
        for channel_id in due {
            self.discover(channel_id);
        }
        // Our own peer record, once connected to anyone, then periodically.
        if now >= self.next_self_publish && !self.connections.is_empty() {
            self.next_self_publish = now + SELF_PUBLISH_INTERVAL;
            self.publish_self();
        }
        // Redial participants with backoff.
        let mut to_dial = Vec::new();
        for (address, peer) in &self.peers {
            if !self.is_participant(address) || self.swarm.is_connected(peer) {
                continue;
            }
            let redial = self.redial.entry(*peer).or_insert(Redial {
                next_at: now,
                backoff: self.config.min_redial_backoff,
            });
            if redial.next_at <= now {
                redial.next_at = now + redial.backoff;
                redial.backoff = (redial.backoff * 2).min(self.config.max_redial_backoff);
                to_dial.push(*peer);
            }
        }
        for peer in to_dial {
            self.dial(peer);
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::NewListenAddr { address, .. } => {
                let relayed = address.iter().any(|p| p == Protocol::P2pCircuit);
                info!(target: TARGET, %address, relayed, "listening");
                if self.config.public && !relayed {
                    self.swarm.add_external_address(address.clone());
                }
                self.emit(P2pEvent::Listening { address });
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                let kind = if endpoint.is_relayed() {
                    ConnectionKind::Relayed
                } else {
                    ConnectionKind::Direct
                };
                let remote = match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => address.clone(),
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr.clone(),
                };
                let address = eth_address_of(&peer_id);
                if self.is_blocked(&peer_id) {
                    debug!(target: TARGET, peer = %peer_id, "blocked peer connected: disconnecting");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                info!(target: TARGET, peer = %peer_id, ?address, ?kind, %remote, "connected");
                self.connections
                    .entry(peer_id)
                    .or_default()
                    .insert(connection_id, kind);
                if let Some(address) = address {
                    self.addresses.insert(peer_id, address);
                }
                if kind == ConnectionKind::Relayed {
                    self.relayed_since.entry(peer_id).or_insert_with(Instant::now);
                }
                self.redial.remove(&peer_id);
                if self.bootstrap.contains(&peer_id) {
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
                self.emit(P2pEvent::Connected {
                    peer: peer_id,
                    address,
                    kind,
                    remote,
                });
                self.register_peer(peer_id, "connection");
                if let Some(address) = address {
                    self.pump(address);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                if let Some(connections) = self.connections.get_mut(&peer_id) {
                    connections.remove(&connection_id);
                }
                if num_established == 0 {
                    self.connections.remove(&peer_id);
                    self.relayed_since.remove(&peer_id);
                    let address = self
                        .addresses
                        .remove(&peer_id)
                        .or_else(|| eth_address_of(&peer_id));
                    info!(target: TARGET, peer = %peer_id, ?address, cause = ?cause, "disconnected");
                    self.emit(P2pEvent::Disconnected {
                        peer: peer_id,
                        address,
                    });
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                debug!(target: TARGET, peer = ?peer_id, error = %error, "dial failed");
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                info!(target: TARGET, %address, "external address confirmed");
            }
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Channel(event) => self.on_channel_event(event),
            BehaviourEvent::Kad(event) => self.on_kad_event(event),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if info.protocols.contains(&KAD_PROTOCOL) {
                    for address in &info.listen_addrs {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer_id, address.clone());
                    }
                }
                let direct: Vec<Multiaddr> = info
                    .listen_addrs
                    .into_iter()
                    .filter(|a| !a.iter().any(|p| p == Protocol::P2pCircuit))
                    .collect();
                self.addr_book.insert(peer_id, direct);
                if let Some(relay) = self.relays.get_mut(&peer_id)
                    && !relay.listening
                {
                    relay.listening = true;
                    let circuit = relay.address.clone().with(Protocol::P2pCircuit);
                    match self.swarm.listen_on(circuit.clone()) {
                        Ok(_) => info!(target: TARGET, relay = %peer_id, %circuit, "listening through relay"),
                        Err(e) => {
                            warn!(target: TARGET, relay = %peer_id, error = %e, "cannot listen through relay")
                        }
                    }
                }
            }
            BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            }) => {
                info!(target: TARGET, relay = %relay_peer_id, renewal, "relay reservation accepted");
                if !renewal {
                    self.emit(P2pEvent::RelayReservation { relay: relay_peer_id });
                }
            }
            BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            }) => match result {
                Ok(direct) => {
                    let after = self
                        .relayed_since
                        .get(&remote_peer_id)
                        .map(|since| since.elapsed())
                        .unwrap_or_default();
                    let address = eth_address_of(&remote_peer_id);
                    info!(target: TARGET, peer = %remote_peer_id, ?address, ?after, "hole punch succeeded: direct connection");
                    // Keep the direct connection only, so channel traffic cannot use the relay.
                    let relayed: Vec<ConnectionId> = self
                        .connections
                        .get(&remote_peer_id)
                        .into_iter()
                        .flatten()
                        .filter(|(id, kind)| **kind == ConnectionKind::Relayed && **id != direct)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in relayed {
                        self.swarm.close_connection(id);
                    }
                    self.emit(P2pEvent::Upgraded {
                        peer: remote_peer_id,
                        address,
                        after,
                    });
                }
                Err(e) => {
                    warn!(target: TARGET, peer = %remote_peer_id, error = %e, "hole punch failed; staying relayed");
                    self.emit(P2pEvent::HolePunchFailed {
                        peer: remote_peer_id,
                        reason: e.to_string(),
                    });
                }
            },
            BehaviourEvent::Autonat(autonat::Event::StatusChanged { old, new }) => {
                info!(target: TARGET, ?old, ?new, "NAT status changed");
                if !self.config.public {
                    let mode = match new {
                        autonat::NatStatus::Public(_) => kad::Mode::Server,
                        _ => kad::Mode::Client,
                    };
                    self.swarm.behaviour_mut().kad.set_mode(Some(mode));
                }
            }
            _ => {}
        }
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::OutboundQueryProgressed { id, result, step, .. } => {
                let lookup = if step.last {
                    self.discovery_queries.remove(&id)
                } else {
                    self.discovery_queries.get(&id).copied()
                };
                if step.last
                    && let Some(Lookup::Peer(address)) = lookup
                {
                    self.peer_lookups.remove(&address);
                }
                let channel_id = match lookup {
                    Some(Lookup::Channel(channel_id)) => Some(channel_id),
                    _ => None,
                };
                match result {
                    QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders { providers, .. })) => {
                        for peer in providers {
                            match eth_address_of(&peer) {
                                Some(address)
                                    if channel_id
                                        .and_then(|c| self.channels.get(&c))
                                        .is_some_and(|c| c.participants.contains(&address)) =>
                                {
                                    self.register_peer(peer, "provider record");
                                    // Dial while the query still knows the provider's addresses.
                                    if self.local_address < address {
                                        self.dial(peer);
                                    }
                                }
                                address => {
                                    warn!(target: TARGET, channel = ?channel_id, %peer, ?address, "ignoring provider that is not a participant");
                                }
                            }
                        }
                    }
                    QueryResult::GetRecord(Ok(GetRecordOk::FoundRecord(found))) => {
                        match verify_peer_record(&found.record) {
                            Ok((_, peer)) => self.register_peer(peer, "peer record"),
                            Err(e) => {
                                warn!(target: TARGET, from = ?found.peer, reason = %e, "ignoring forged peer record");
                            }
                        }
                    }
                    QueryResult::GetClosestPeers(Ok(ok)) => {
                        for info in ok.peers {
                            if !info.addrs.is_empty() {
                                self.addr_book.entry(info.peer_id).or_default().extend(info.addrs);
                            }
                        }
                    }
                    _ => {}
                }
            }
            kad::Event::InboundRequest { request } => match request {
                kad::InboundRequest::PutRecord {
                    source,
                    record: Some(record),
                    ..
                } => match verify_peer_record(&record) {
                    Ok(_) => {
                        if let Err(e) = self.swarm.behaviour_mut().kad.store_mut().put(record) {
                            debug!(target: TARGET, error = %e, "cannot store peer record");
                        }
                    }
                    Err(e) => warn!(target: TARGET, peer = %source, reason = %e, "refused DHT record"),
                },
                kad::InboundRequest::AddProvider { record: Some(record) } => {
                    match verify_provider_record(&record) {
                        Ok(_) => {
                            if let Err(e) = self.swarm.behaviour_mut().kad.store_mut().add_provider(record) {
                                debug!(target: TARGET, error = %e, "cannot store provider record");
                            }
                        }
                        Err(e) => {
                            warn!(target: TARGET, peer = %record.provider, reason = %e, "refused provider record");
                        }
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn on_channel_event(&mut self, event: protocol::Event) {
        match event {
            protocol::Event::Request {
                peer,
                connection,
                inbound,
                request,
            } => {
                let via = self
                    .connections
                    .get(&peer)
                    .and_then(|c| c.get(&connection))
                    .copied()
                    .unwrap_or(ConnectionKind::Direct);
                let response = self.on_inbound(peer, request, via);
                self.swarm
                    .behaviour_mut()
                    .channel
                    .send_response(peer, inbound, response);
            }
            protocol::Event::Response { id, response } => {
                let result = match response {
                    Response::Accepted => Ok(()),
                    Response::Refused(reason) => Err(P2pError::Refused {
                        peer: self.in_flight.get(&id).map(|f| f.to).unwrap_or_default(),
                        reason,
                    }),
                };
                self.settle(id, result);
            }
            protocol::Event::OutboundFailure { peer, id, failure } => {
                let address = self.address_of(&peer).unwrap_or_default();
                let error = match failure {
                    Failure::Timeout => P2pError::Timeout(address),
                    Failure::Closed(reason) => P2pError::Delivery {
                        peer: address,
                        reason,
                    },
                };
                warn!(target: TARGET, %peer, %address, %error, "message delivery failed");
                self.settle(id, Err(error));
            }
            // A stream that could not be framed counts like a refused frame (a peer must not
            // send them for ever).
            protocol::Event::InboundFailure {
                peer,
                reason,
                framing,
            } => {
                if !framing {
                    debug!(target: TARGET, %peer, %reason, "inbound channel stream broke");
                    return;
                }
                self.strike(peer);
                if self.strikes.get(&peer).map_or(0, |s| s.count) <= STRIKES_LOGGED {
                    warn!(target: TARGET, %peer, %reason, "inbound channel stream failed");
                }
            }
        }
    }

    /// The address behind `peer`'s PeerId (kept for connected peers).
    fn address_of(&self, peer: &PeerId) -> Option<Address> {
        self.addresses.get(peer).copied().or_else(|| eth_address_of(peer))
    }

    /// Accepts a message from `peer` only if it decoded, its channel was joined, and the
    /// peer's (authenticated) address is a participant of that channel. A proposal to open a
    /// channel not joined yet is accepted when both the sender and this node are among the
    /// participants it proposes.
    fn on_inbound(&mut self, peer: PeerId, request: Request, via: ConnectionKind) -> Response {
        let address = self.address_of(&peer);
        if self.is_blocked(&peer) {
            return Response::Refused("blocked for sending refused frames".to_owned());
        }
        let verdict = match request {
            Request::Received(Ok(envelope)) => {
                let channel_id = envelope.message.channel_id();
                match (address, self.channels.get(&channel_id)) {
                    (None, _) => Err("peer id carries no secp256k1 key".to_owned()),
                    (Some(from), None)
                        if matches!(&envelope.message, Message::Proposal(_) | Message::JoinTicket(_)) =>
                    {
                        match &envelope.message {
                            Message::Proposal(p)
                                if p.participants.contains(&from)
                                    && p.participants.contains(&self.local_address) =>
                            {
                                Ok((from, channel_id, envelope))
                            }
                            // A ticket to join: for us, from one of the channel's participants.
                            Message::JoinTicket(t)
                                if t.approval.change.participant() == self.local_address
                                    && t.channel.participants.contains(&from) =>
                            {
                                Ok((from, channel_id, envelope))
                            }
                            _ => Err(format!(
                                "proposal for channel {channel_id} from {from} does not list both of us"
                            )),
                        }
                    }
                    // A channel not joined here (yet): the sender restarted or joined first and
                    // we are still restoring ours (our participants may not be known yet), or
                    // we left it. Not misbehaviour, and cheap to refuse: refused without a
                    // strike (a node that restarts with many channels would otherwise get its
                    // peers blocked) and without an event for the application, logged at debug
                    // level. It costs no more than a proposal any peer may send.
                    (Some(from), None) => {
                        let reason = format!("channel {channel_id} is not joined here");
                        debug!(target: TARGET, %peer, %from, "{reason}: refused");
                        return Response::Refused(reason);
                    }
                    (Some(from), Some(channel)) if !channel.participants.contains(&from) => {
                        Err(format!("{from} is not a participant of channel {channel_id}"))
                    }
                    (Some(from), Some(_)) => Ok((from, channel_id, envelope)),
                }
            }
            Request::Received(Err(e)) => Err(format!("bad frame: {e}")),
        };
        let reason = match verdict {
            Ok((from, channel_id, envelope)) => {
                debug!(target: TARGET, %peer, %from, channel = %channel_id, ?via, "message received");
                if let Some(hook) = &self.config.inbound_hook {
                    hook(from, &envelope);
                }
                match self.events.try_send(P2pEvent::Message {
                    from,
                    channel_id,
                    envelope: *envelope,
                    via,
                }) {
                    Ok(()) => return Response::Accepted,
                    Err(mpsc::error::TrySendError::Full(_)) => "receiver busy: retry later".to_owned(),
                    Err(mpsc::error::TrySendError::Closed(_)) => "receiver shutting down".to_owned(),
                }
            }
            Err(reason) => {
                self.strike(peer);
                reason
            }
        };
        let logged = self.strikes.get(&peer).map_or(0, |s| s.count);
        if logged <= STRIKES_LOGGED {
            warn!(target: TARGET, %peer, ?address, %reason, "refused inbound message");
        } else if logged == STRIKES_LOGGED + 1 {
            warn!(target: TARGET, %peer, ?address, "more refused messages from this peer: not logged for {} s", STRIKE_WINDOW.as_secs());
        }
        self.emit(P2pEvent::Refused {
            peer,
            address,
            reason: reason.clone(),
        });
        Response::Refused(reason)
    }
}
