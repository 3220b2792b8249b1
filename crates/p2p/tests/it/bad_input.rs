//! Bad frames sent by a raw libp2p peer to a real node: each is refused with a reason (or
//! ends the stream it came on when it cannot be framed), the connection survives, and a good
//! message still gets through afterwards. The raw peer speaks the documented wire format
//! (`entente_p2p::CHANNEL_PROTOCOL`) on streams it opens itself.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use entente_p2p::{CHANNEL_PROTOCOL, P2pEvent, keypair_from_secret};
use entente_types::{Address, B256, Envelope, MAX_MESSAGE_BYTES};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::ReadyUpgrade;
use libp2p::swarm::handler::{
    ConnectionEvent, ConnectionHandlerEvent, DialUpgradeError, FullyNegotiatedInbound,
    FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler,
    SubstreamProtocol, SwarmEvent, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol, SwarmBuilder, noise, tcp, yamux};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::timeout;

use crate::util::{Node, WAIT, address_of, height_of, key, loopback_config, message};

type Opened = oneshot::Sender<Result<Stream, String>>;

/// A behaviour that opens channel-protocol streams on request and hands them out raw, and
/// takes the streams the node opens and holds them without ever answering.
#[derive(Default)]
struct Opener {
    /// How many of the node's streams the handlers hold.
    held: Arc<AtomicUsize>,
    connections: Vec<(PeerId, ConnectionId)>,
    waiting: VecDeque<(PeerId, Opened)>,
    out: VecDeque<ToSwarm<(), Opened>>,
}

impl NetworkBehaviour for Opener {
    type ConnectionHandler = OpenerHandler;
    type ToSwarm = ();

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(OpenerHandler::new(&self.held))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(OpenerHandler::new(&self.held))
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionEstablished(e) => self.connections.push((e.peer_id, e.connection_id)),
            FromSwarm::ConnectionClosed(e) => self.connections.retain(|c| c.1 != e.connection_id),
            _ => {}
        }
    }

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, _: THandlerOutEvent<Self>) {}

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<(), THandlerInEvent<Self>>> {
        while let Some((peer, opened)) = self.waiting.pop_front() {
            match self.connections.iter().rev().find(|c| c.0 == peer) {
                Some((_, connection)) => self.out.push_back(ToSwarm::NotifyHandler {
                    peer_id: peer,
                    handler: NotifyHandler::One(*connection),
                    event: opened,
                }),
                None => {
                    let _ = opened.send(Err("not connected".to_owned()));
                }
            }
        }
        self.out.pop_front().map_or(Poll::Pending, Poll::Ready)
    }
}

struct OpenerHandler {
    requests: VecDeque<Opened>,
    held: Vec<Stream>,
    count: Arc<AtomicUsize>,
}

impl OpenerHandler {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        Self {
            requests: VecDeque::new(),
            held: Vec::new(),
            count: count.clone(),
        }
    }
}

impl ConnectionHandler for OpenerHandler {
    type FromBehaviour = Opened;
    type ToBehaviour = ();
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Opened;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(ReadyUpgrade::new(CHANNEL_PROTOCOL), ())
    }

    fn connection_keep_alive(&self) -> bool {
        true
    }

    fn on_behaviour_event(&mut self, opened: Opened) {
        self.requests.push_back(opened);
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, Opened, ()>> {
        match self.requests.pop_front() {
            Some(opened) => Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(ReadyUpgrade::new(CHANNEL_PROTOCOL), opened),
            }),
            None => Poll::Pending,
        }
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<'_, Self::InboundProtocol, Self::OutboundProtocol, (), Opened>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol, .. }) => {
                self.held.push(protocol);
                self.count.fetch_add(1, Ordering::SeqCst);
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound { protocol, info }) => {
                let _ = info.send(Ok(protocol));
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info, error }) => {
                let _ = info.send(Err(error.to_string()));
            }
            _ => {}
        }
    }
}

/// A raw libp2p peer: its swarm runs in a task; the test opens streams and reads and writes
/// their bytes itself.
struct Raw {
    task: tokio::task::JoinHandle<()>,
    held: Arc<AtomicUsize>,
    dial: mpsc::UnboundedSender<Multiaddr>,
    open: mpsc::UnboundedSender<(PeerId, Opened)>,
    connected: watch::Receiver<usize>,
}

fn raw_peer(secret: B256) -> Raw {
    let mut swarm = SwarmBuilder::with_existing_identity(keypair_from_secret(&secret).unwrap())
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| Opener::default())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let (dial, mut dials) = mpsc::unbounded_channel::<Multiaddr>();
    let (open, mut opens) = mpsc::unbounded_channel::<(PeerId, Opened)>();
    let (count, connected) = watch::channel(0usize);
    let held = swarm.behaviour().held.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(address) = dials.recv() => { let _ = swarm.dial(address); }
                Some((peer, opened)) = opens.recv() => swarm.behaviour_mut().waiting.push_back((peer, opened)),
                event = swarm.select_next_some() => {
                    if matches!(event, SwarmEvent::ConnectionEstablished { .. } | SwarmEvent::ConnectionClosed { .. }) {
                        let _ = count.send(swarm.connected_peers().count());
                    }
                }
                else => break,
            }
        }
    });
    Raw {
        task,
        held,
        dial,
        open,
        connected,
    }
}

impl Raw {
    async fn connect(&mut self, address: Multiaddr) {
        self.dial.send(address).unwrap();
        timeout(WAIT, self.connected.wait_for(|n| *n > 0))
            .await
            .expect("raw peer could not connect")
            .unwrap();
    }

    fn connected(&self) -> usize {
        *self.connected.borrow()
    }

    async fn stream(&self, node: &PeerId) -> Result<Stream, String> {
        let (opened, rx) = oneshot::channel();
        self.open.send((*node, opened)).unwrap();
        // The sender is dropped when the connection closes before the stream opened.
        timeout(WAIT, rx)
            .await
            .expect("no stream in time")
            .unwrap_or_else(|_| Err("connection closed".to_owned()))
    }
}

/// A request frame: tag 0, the id, then `rest` verbatim (normally a length and a body).
fn raw_request(id: u64, rest: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(rest);
    out
}

/// A length-prefixed body.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// How one request ended.
#[derive(Debug)]
enum Ended {
    Accepted,
    Refused(String),
    Closed,
}

/// Reads the answer to request `id`; `Closed` if the stream ends first.
async fn answer(stream: &mut Stream, id: u64) -> Ended {
    timeout(WAIT, async {
        let mut head = [0u8; 9];
        if stream.read_exact(&mut head).await.is_err() {
            return Ended::Closed;
        }
        assert_eq!(
            u64::from_be_bytes(head[1..].try_into().unwrap()),
            id,
            "answers come in order"
        );
        match head[0] {
            1 => Ended::Accepted,
            2 => {
                // The node may close the connection right after a refusal (a blocked peer).
                let mut len = [0u8; 2];
                if stream.read_exact(&mut len).await.is_err() {
                    return Ended::Closed;
                }
                let mut reason = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if stream.read_exact(&mut reason).await.is_err() {
                    return Ended::Closed;
                }
                Ended::Refused(String::from_utf8(reason).unwrap())
            }
            tag => panic!("unknown answer tag {tag}"),
        }
    })
    .await
    .expect("no answer in time")
}

/// Writes request `id` (`rest` after the id) and reads its answer.
async fn try_exchange(stream: &mut Stream, id: u64, rest: &[u8]) -> Ended {
    if stream.write_all(&raw_request(id, rest)).await.is_err() || stream.flush().await.is_err() {
        return Ended::Closed;
    }
    answer(stream, id).await
}

/// Like [`try_exchange`], for an answer that must come: `Ok` accepted, `Err(reason)` refused.
async fn exchange(stream: &mut Stream, id: u64, rest: &[u8]) -> Result<(), String> {
    match try_exchange(stream, id, rest).await {
        Ended::Accepted => Ok(()),
        Ended::Refused(reason) => Err(reason),
        Ended::Closed => panic!("the node closed the stream"),
    }
}

/// A node (from `config`) that joined `channel_id` with the raw peer of `raw_secret`, and that
/// raw peer, connected to it; with the node's peer id and the raw peer's address.
async fn joined_with_raw(
    config: entente_p2p::P2pConfig,
    raw_secret: B256,
    channel_id: B256,
) -> (Node, Raw, PeerId, Address) {
    let mut node = Node::spawn(config);
    let address = node.listen_addr(false).await;
    let node_peer = node.handle.local_peer_id();
    let raw_address = address_of(&raw_secret);
    node.handle
        .join_channel(channel_id, vec![node.handle.local_address(), raw_address])
        .await
        .unwrap();
    let mut raw = raw_peer(raw_secret);
    raw.connect(address).await;
    (node, raw, node_peer, raw_address)
}

/// Reads until the node closes the stream (bounded by [`WAIT`]).
async fn until_closed(stream: &mut Stream) {
    let mut rest = Vec::new();
    let read = timeout(WAIT, stream.read_to_end(&mut rest))
        .await
        .expect("the stream stayed open");
    assert!(rest.is_empty() || read.is_err(), "unexpected bytes {rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_are_refused_with_a_reason_and_the_connection_survives() {
    let channel_id = B256::repeat_byte(0x21);
    let (mut node, raw, node_peer, raw_address) =
        joined_with_raw(loopback_config(21, true, false), key(22), channel_id).await;
    let good = message(channel_id, 7).encode().unwrap();

    // Announced size above the limit: refused without reading the body, and the stream ends
    // (what follows the header cannot be framed).
    let mut stream = raw.stream(&node_peer).await.unwrap();
    let mut oversized = (MAX_MESSAGE_BYTES as u32 + 1).to_be_bytes().to_vec();
    oversized.extend_from_slice(&[0u8; 64]);
    let reason = exchange(&mut stream, 1, &oversized).await.unwrap_err();
    assert!(reason.contains("exceeds the limit"), "{reason}");
    until_closed(&mut stream).await;

    // A lying prefix of 4 GiB.
    let mut stream = raw.stream(&node_peer).await.unwrap();
    let reason = exchange(&mut stream, 2, &[0xff; 16]).await.unwrap_err();
    assert!(reason.contains("exceeds the limit"), "{reason}");
    until_closed(&mut stream).await;

    // On a stream that goes on: garbage that is not CBOR of an envelope, a well-formed
    // envelope of another protocol version, a message about a channel the node did not join;
    // each refused with its reason, and the stream still carries the next request.
    let mut stream = raw.stream(&node_peer).await.unwrap();
    let reason = exchange(&mut stream, 3, &frame(b"\xde\xad\xbe\xef garbage \x00\xff"))
        .await
        .unwrap_err();
    assert!(reason.contains("malformed"), "{reason}");
    let mut future = message(channel_id, 8);
    future.version = 99;
    let reason = exchange(&mut stream, 4, &frame(&future.encode().unwrap()))
        .await
        .unwrap_err();
    assert!(reason.contains("unsupported protocol version 99"), "{reason}");
    let other = message(B256::repeat_byte(0x99), 1).encode().unwrap();
    let reason = exchange(&mut stream, 5, &frame(&other)).await.unwrap_err();
    assert!(reason.contains("not joined"), "{reason}");

    // An unknown frame tag: the stream ends without an answer.
    stream.write_all(&[7, 0, 0]).await.unwrap();
    stream.flush().await.unwrap();
    until_closed(&mut stream).await;

    // Truncated: the stream is closed before the body it announced is complete. Nothing to
    // answer; the node logs it and drops the stream.
    let mut stream = raw.stream(&node_peer).await.unwrap();
    let mut truncated = raw_request(6, &frame(&good));
    truncated.truncate(truncated.len() - 5);
    stream.write_all(&truncated).await.unwrap();
    stream.close().await.unwrap();
    until_closed(&mut stream).await;

    // The same connection still carries a good message to the application, and requests
    // written without waiting for answers are answered in order.
    let mut stream = raw.stream(&node_peer).await.unwrap();
    let mut pipelined = raw_request(10, &frame(&good));
    pipelined.extend(raw_request(11, &frame(&other)));
    pipelined.extend(raw_request(12, &frame(&message(channel_id, 9).encode().unwrap())));
    stream.write_all(&pipelined).await.unwrap();
    stream.flush().await.unwrap();
    assert!(matches!(answer(&mut stream, 10).await, Ended::Accepted));
    assert!(matches!(answer(&mut stream, 11).await, Ended::Refused(r) if r.contains("not joined")));
    assert!(matches!(answer(&mut stream, 12).await, Ended::Accepted));
    node.wait("the good message", |e| match e {
        P2pEvent::Message { from, envelope, .. } if *from == raw_address => {
            height_of(envelope).filter(|h| *h == 9)
        }
        _ => None,
    })
    .await;
    assert_eq!(raw.connected(), 1);
    let refused = node
        .seen
        .iter()
        .filter(|e| matches!(e, P2pEvent::Refused { .. }))
        .count();
    // Four refusals reach the application; the messages for a channel not joined do not (a
    // restarting peer sends many of those), nor do the streams that ended without a request.
    assert_eq!(refused, 4, "{:#?}", node.seen);
    let decoded = Envelope::decode(&good).unwrap();
    assert_eq!(height_of(&decoded), Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_outside_the_channel_is_refused() {
    let mut node = Node::spawn(loopback_config(31, true, false));
    let address = node.listen_addr(false).await;
    let node_peer = node.handle.local_peer_id();
    let channel_id = B256::repeat_byte(0x31);
    // The channel is the node and participant 32; the raw peer is 33.
    let member = entente_p2p::eth_address_of(&entente_p2p::peer_id_of_secret(&key(32)).unwrap()).unwrap();
    node.handle
        .join_channel(channel_id, vec![node.handle.local_address(), member])
        .await
        .unwrap();
    let mut raw = raw_peer(key(33));
    raw.connect(address).await;
    let mut stream = raw.stream(&node_peer).await.unwrap();
    let reason = exchange(&mut stream, 1, &frame(&message(channel_id, 1).encode().unwrap()))
        .await
        .unwrap_err();
    assert!(reason.contains("is not a participant of channel"), "{reason}");
    node.drain();
    assert!(!node.seen.iter().any(|e| matches!(e, P2pEvent::Message { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_keeps_sending_refused_frames_is_disconnected_and_blocked() {
    let mut node = Node::spawn(loopback_config(41, true, false));
    let address = node.listen_addr(false).await;
    let node_peer = node.handle.local_peer_id();
    let raw_secret = key(42);
    let raw_address = address_of(&raw_secret);
    let joined = B256::repeat_byte(0x41);
    node.handle
        .join_channel(joined, vec![node.handle.local_address(), raw_address])
        .await
        .unwrap();
    let mut raw = raw_peer(raw_secret);
    raw.connect(address.clone()).await;
    // A flood of frames that are not envelopes.
    let junk = frame(b"\xde\xad\xbe\xef garbage \x00\xff");
    let mut stream = raw.stream(&node_peer).await.unwrap();
    let mut refused = 0;
    let mut closed = false;
    for id in 0..1_000 {
        match try_exchange(&mut stream, id, &junk).await {
            Ended::Refused(_) => refused += 1,
            Ended::Closed => {
                closed = true;
                break;
            }
            Ended::Accepted => panic!("junk accepted"),
        }
    }
    assert!(
        closed,
        "the node never disconnected the flooding peer ({refused} refused)"
    );
    assert!(
        (60..=70).contains(&refused),
        "disconnected after {refused} refusals"
    );
    // Back at once: still blocked, even for a message it would otherwise take.
    timeout(WAIT, raw.connected.wait_for(|n| *n == 0))
        .await
        .unwrap()
        .unwrap();
    let good = frame(&message(joined, 7).encode().unwrap());
    raw.dial.send(address).unwrap();
    let _ = timeout(Duration::from_secs(5), raw.connected.wait_for(|n| *n > 0)).await;
    if let Ok(mut stream) = raw.stream(&node_peer).await {
        match try_exchange(&mut stream, 1, &good).await {
            Ended::Accepted => panic!("a blocked peer's message was taken"),
            Ended::Refused(reason) => assert!(reason.contains("blocked"), "{reason}"),
            Ended::Closed => {}
        }
    }
    node.drain();
    assert!(!node.seen.iter().any(|e| matches!(e, P2pEvent::Message { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_for_a_channel_not_joined_yet_are_refused_without_blocking_the_sender() {
    // A node that restarts with many channels asks its peers about each of them at once, while
    // they may still be restoring theirs: each message is refused ("not joined"), none counts
    // against the sender, and its messages are taken once the channel is joined.
    let mut node = Node::spawn(loopback_config(51, true, false));
    let address = node.listen_addr(false).await;
    let node_peer = node.handle.local_peer_id();
    let raw_secret = key(52);
    let raw_address = address_of(&raw_secret);
    let mut raw = raw_peer(raw_secret);
    raw.connect(address).await;
    let mut stream = raw.stream(&node_peer).await.unwrap();
    let channels: Vec<B256> = (0..200u8).map(B256::repeat_byte).collect();
    for (id, channel_id) in channels.iter().enumerate() {
        let reason = exchange(
            &mut stream,
            id as u64,
            &frame(&message(*channel_id, 1).encode().unwrap()),
        )
        .await
        .unwrap_err();
        assert!(reason.contains("not joined"), "{reason}");
    }
    for channel_id in &channels {
        node.handle
            .join_channel(*channel_id, vec![node.handle.local_address(), raw_address])
            .await
            .unwrap();
    }
    for (id, channel_id) in channels.iter().enumerate() {
        exchange(
            &mut stream,
            1_000 + id as u64,
            &frame(&message(*channel_id, 2).encode().unwrap()),
        )
        .await
        .unwrap();
    }
    assert_eq!(raw.connected(), 1, "still connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_left_and_joined_again_takes_its_participants_messages_again() {
    // The node indexes its channels by participant: leaving one channel of a participant keeps
    // the others, and joining again (with another participant list) replaces the entry.
    let mut node = Node::spawn(loopback_config(61, true, false));
    let address = node.listen_addr(false).await;
    let node_peer = node.handle.local_peer_id();
    let raw_secret = key(62);
    let raw_address = address_of(&raw_secret);
    let (a, b) = (B256::repeat_byte(0x61), B256::repeat_byte(0x62));
    let me = node.handle.local_address();
    node.handle.join_channel(a, vec![me, raw_address]).await.unwrap();
    node.handle.join_channel(b, vec![me, raw_address]).await.unwrap();
    let mut raw = raw_peer(raw_secret);
    raw.connect(address).await;
    let mut s = raw.stream(&node_peer).await.unwrap();
    let send = |channel: B256, height: u64| frame(&message(channel, height).encode().unwrap());
    exchange(&mut s, 1, &send(a, 1)).await.unwrap();
    node.handle.leave_channel(a).await.unwrap();
    let reason = exchange(&mut s, 2, &send(a, 2)).await.unwrap_err();
    assert!(reason.contains("not joined"), "{reason}");
    exchange(&mut s, 3, &send(b, 3)).await.unwrap();
    // Joined again without the raw peer: it is no participant of `a` any more.
    let other = Address::repeat_byte(0x63);
    node.handle.join_channel(a, vec![me, other]).await.unwrap();
    let reason = exchange(&mut s, 4, &send(a, 4)).await.unwrap_err();
    assert!(reason.contains("is not a participant"), "{reason}");
    // And with it again.
    node.handle.join_channel(a, vec![me, raw_address]).await.unwrap();
    exchange(&mut s, 5, &send(a, 5)).await.unwrap();
    node.handle.leave_channel(b).await.unwrap();
    exchange(&mut s, 6, &send(a, 6)).await.unwrap();
    // An accepted message was handed to the application before its answer left.
    node.drain();
    let heights: Vec<u64> = node
        .seen
        .iter()
        .filter_map(|e| match e {
            P2pEvent::Message { from, envelope, .. } if *from == raw_address => height_of(envelope),
            _ => None,
        })
        .collect();
    assert_eq!(heights, vec![1, 3, 5, 6]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_read_its_answers_is_slowed_down_not_buffered_for() {
    // Requests for a channel not joined are answered with a reason longer than the request,
    // without a strike: a peer that writes them and never reads the answers would make the node
    // hold ever more unsent answers. The node stops reading its requests instead, so its writes
    // stall once the buffers on the way are full.
    let mut node = Node::spawn(loopback_config(71, true, false));
    let address = node.listen_addr(false).await;
    let node_peer = node.handle.local_peer_id();
    let mut raw = raw_peer(key(72));
    raw.connect(address).await;
    let mut stream = raw.stream(&node_peer).await.unwrap();
    let body = frame(&message(B256::repeat_byte(0x71), 1).encode().unwrap());
    let mut chunk = Vec::new();
    for id in 0..1_000u64 {
        chunk.extend(raw_request(id, &body));
    }
    const BUDGET: usize = 256 * 1024 * 1024;
    let mut written = 0;
    let stalled = loop {
        match timeout(Duration::from_secs(3), stream.write_all(&chunk)).await {
            Ok(result) => result.unwrap(),
            Err(_) => break true,
        }
        written += chunk.len();
        if written >= BUDGET {
            break false;
        }
    };
    assert!(
        stalled,
        "the node read {written} bytes of requests whose answers nobody read"
    );
    // The peer is slowed down, not cut off: another stream on the same connection is served.
    let mut other = raw.stream(&node_peer).await.unwrap();
    let reason = exchange(&mut other, 1, &body).await.unwrap_err();
    assert!(reason.contains("not joined"), "{reason}");
    assert_eq!(raw.connected(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_closes_its_side_of_a_stream_still_gets_the_answers() {
    let channel_id = B256::repeat_byte(0x81);
    let (_node, raw, node_peer, _) =
        joined_with_raw(loopback_config(81, true, false), key(82), channel_id).await;
    let mut stream = raw.stream(&node_peer).await.unwrap();
    let mut requests = raw_request(1, &frame(&message(channel_id, 1).encode().unwrap()));
    requests.extend(raw_request(
        2,
        &frame(&message(B256::repeat_byte(0x82), 2).encode().unwrap()),
    ));
    stream.write_all(&requests).await.unwrap();
    stream.close().await.unwrap();
    assert!(matches!(answer(&mut stream, 1).await, Ended::Accepted));
    assert!(matches!(answer(&mut stream, 2).await, Ended::Refused(r) if r.contains("not joined")));
    until_closed(&mut stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_in_flight_when_its_connection_closes_fails_instead_of_waiting_for_ever() {
    // Only the end of the connection can settle the message: the peer takes the node's stream
    // and never answers, and the timeouts are far away.
    let mut config = loopback_config(91, true, false);
    config.request_timeout = Duration::from_secs(3_600);
    config.send_timeout = Duration::from_secs(3_600);
    let channel_id = B256::repeat_byte(0x91);
    let (node, raw, _, raw_address) = joined_with_raw(config, key(92), channel_id).await;
    let handle = node.handle.clone();
    let send =
        tokio::spawn(async move { handle.send(channel_id, raw_address, message(channel_id, 1)).await });
    timeout(WAIT, async {
        while raw.held.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the node never opened its stream");
    raw.task.abort();
    let outcome = timeout(WAIT, send)
        .await
        .expect("the send never settled")
        .unwrap();
    match outcome {
        Err(entente_p2p::P2pError::Delivery { peer, .. }) => assert_eq!(peer, raw_address),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_leaves_a_message_unanswered_is_dropped_and_the_next_message_opens_another() {
    // The peer takes the node's stream and never answers: the message times out, and nothing
    // is written behind it on that stream any more.
    let mut config = loopback_config(101, true, false);
    config.request_timeout = Duration::from_secs(1);
    let channel_id = B256::repeat_byte(0xa1);
    let (node, raw, _, raw_address) = joined_with_raw(config, key(102), channel_id).await;
    let outcome = node
        .handle
        .send(channel_id, raw_address, message(channel_id, 1))
        .await;
    assert!(
        matches!(outcome, Err(entente_p2p::P2pError::Timeout(a)) if a == raw_address),
        "{outcome:?}"
    );
    assert_eq!(raw.held.load(Ordering::SeqCst), 1);
    let outcome = node
        .handle
        .send(channel_id, raw_address, message(channel_id, 2))
        .await;
    assert!(
        matches!(outcome, Err(entente_p2p::P2pError::Timeout(_))),
        "{outcome:?}"
    );
    assert_eq!(
        raw.held.load(Ordering::SeqCst),
        2,
        "the second message went on a new stream"
    );
    assert_eq!(raw.connected(), 1);
}
