//! Bad frames sent by a raw libp2p peer to a real node: each is refused with a reason, the
//! connection survives, and a good message still gets through afterwards.

use std::io;
use std::time::Duration;

use entente_p2p::{CHANNEL_PROTOCOL, P2pEvent, keypair_from_secret};
use entente_types::{Address, B256, Envelope, MAX_MESSAGE_BYTES};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, StreamProtocol, Swarm, SwarmBuilder, noise, tcp, yamux};
use tokio::time::timeout;

use crate::util::{Node, WAIT, address_of, height_of, key, loopback_config, message};

/// Writes the request bytes verbatim; reads the whole answer.
#[derive(Clone, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
    ) -> io::Result<Vec<u8>> {
        Err(io::Error::other("the raw peer serves nothing"))
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut answer = Vec::new();
        io.take(4096).read_to_end(&mut answer).await?;
        Ok(answer)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&request).await?;
        io.close().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: Vec<u8>,
    ) -> io::Result<()> {
        Ok(())
    }
}

type Raw = Swarm<request_response::Behaviour<RawCodec>>;

fn raw_peer(secret: B256) -> Raw {
    SwarmBuilder::with_existing_identity(keypair_from_secret(&secret).unwrap())
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                RawCodec,
                [(CHANNEL_PROTOCOL, ProtocolSupport::Outbound)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
            )
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// What the node answered: `Ok(())` for accepted, `Err(reason)` for refused; panics when the
/// connection closed or the exchange failed.
async fn exchange(raw: &mut Raw, node: &entente_p2p::PeerId, frame: Vec<u8>) -> Result<(), String> {
    let id = raw.behaviour_mut().send_request(node, frame);
    let answer = timeout(WAIT, async {
        loop {
            match raw.select_next_some().await {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { request_id, response },
                    ..
                }) if request_id == id => return response,
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                    request_id, error, ..
                }) if request_id == id => {
                    panic!("exchange failed: {error}")
                }
                SwarmEvent::ConnectionClosed { cause, .. } => {
                    panic!("the node closed the connection: {cause:?}")
                }
                _ => {}
            }
        }
    })
    .await
    .expect("no answer in time");
    match answer.split_first() {
        Some((0, [])) => Ok(()),
        Some((1, rest)) if rest.len() >= 2 => Err(String::from_utf8_lossy(&rest[2..]).into_owned()),
        _ => panic!("unexpected answer {answer:?}"),
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

async fn connect(raw: &mut Raw, address: Multiaddr) {
    raw.dial(address).unwrap();
    timeout(WAIT, async {
        loop {
            if let SwarmEvent::ConnectionEstablished { .. } = raw.select_next_some().await {
                return;
            }
        }
    })
    .await
    .expect("raw peer could not connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_are_refused_with_a_reason_and_the_connection_survives() {
    let mut node = Node::spawn(loopback_config(21, true, false));
    let address = node.listen_addr(false).await;
    let node_peer = node.handle.local_peer_id();
    let raw_secret = key(22);
    let raw_address = address_of(&raw_secret);
    let channel_id = B256::repeat_byte(0x21);
    node.handle
        .join_channel(channel_id, vec![node.handle.local_address(), raw_address])
        .await
        .unwrap();

    let mut raw = raw_peer(raw_secret);
    connect(&mut raw, address.clone()).await;
    let good = message(channel_id, 7).encode().unwrap();

    // Announced size above the limit: refused without reading the body.
    let mut oversized = (MAX_MESSAGE_BYTES as u32 + 1).to_be_bytes().to_vec();
    oversized.extend_from_slice(&[0u8; 64]);
    let reason = exchange(&mut raw, &node_peer, oversized).await.unwrap_err();
    assert!(reason.contains("exceeds the limit"), "{reason}");

    // A lying prefix of 4 GiB.
    let reason = exchange(&mut raw, &node_peer, vec![0xff; 16]).await.unwrap_err();
    assert!(reason.contains("exceeds the limit"), "{reason}");

    // Truncated: the prefix announces more than the stream carries.
    let mut truncated = frame(&good);
    truncated.truncate(truncated.len() - 5);
    let reason = exchange(&mut raw, &node_peer, truncated).await.unwrap_err();
    assert!(reason.contains("truncated"), "{reason}");

    // Garbage that is not CBOR of an envelope.
    let reason = exchange(&mut raw, &node_peer, frame(b"\xde\xad\xbe\xef garbage \x00\xff"))
        .await
        .unwrap_err();
    assert!(reason.contains("malformed"), "{reason}");

    // A well-formed envelope of another protocol version.
    let mut future = message(channel_id, 8);
    future.version = 99;
    let reason = exchange(&mut raw, &node_peer, frame(&future.encode().unwrap()))
        .await
        .unwrap_err();
    assert!(reason.contains("unsupported protocol version 99"), "{reason}");

    // A message about a channel the node did not join.
    let other = message(B256::repeat_byte(0x99), 1).encode().unwrap();
    let reason = exchange(&mut raw, &node_peer, frame(&other)).await.unwrap_err();
    assert!(reason.contains("not joined"), "{reason}");

    // A stream closed before the length prefix: the node logs an inbound failure and resets
    // the stream (no answer), the connection stays.
    let id = raw.behaviour_mut().send_request(&node_peer, vec![0x00, 0x01]);
    timeout(WAIT, async {
        loop {
            match raw.select_next_some().await {
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure { request_id, .. })
                | SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { request_id, .. },
                    ..
                }) if request_id == id => return,
                SwarmEvent::ConnectionClosed { cause, .. } => panic!("connection closed: {cause:?}"),
                _ => {}
            }
        }
    })
    .await
    .unwrap();

    // The same connection still carries a good message to the application.
    exchange(&mut raw, &node_peer, frame(&good)).await.unwrap();
    node.wait("the good message", |e| match e {
        P2pEvent::Message { from, envelope, .. } if *from == raw_address => Some(height_of(envelope)),
        _ => None,
    })
    .await;
    assert_eq!(raw.connected_peers().count(), 1);
    let refused = node
        .seen
        .iter()
        .filter(|e| matches!(e, P2pEvent::Refused { .. }))
        .count();
    // Five refusals reach the application; the message for a channel not joined does not
    // (a restarting peer sends many of those).
    assert_eq!(refused, 5, "{:#?}", node.seen);
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
    connect(&mut raw, address).await;
    let reason = exchange(
        &mut raw,
        &node_peer,
        frame(&message(channel_id, 1).encode().unwrap()),
    )
    .await
    .unwrap_err();
    assert!(reason.contains("is not a participant of channel"), "{reason}");
    node.drain();
    assert!(!node.seen.iter().any(|e| matches!(e, P2pEvent::Message { .. })));
}

/// How one request ended.
enum Ended {
    Accepted,
    Refused(String),
    Closed,
}

/// Sends `frame` and waits for the answer or the end of the connection.
async fn try_exchange(raw: &mut Raw, node: &entente_p2p::PeerId, frame: Vec<u8>) -> Ended {
    let id = raw.behaviour_mut().send_request(node, frame);
    timeout(WAIT, async {
        loop {
            match raw.select_next_some().await {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { request_id, response },
                    ..
                }) if request_id == id => {
                    return match response.split_first() {
                        Some((0, [])) => Ended::Accepted,
                        Some((1, rest)) if rest.len() >= 2 => {
                            Ended::Refused(String::from_utf8_lossy(&rest[2..]).into_owned())
                        }
                        _ => panic!("unexpected answer {response:?}"),
                    };
                }
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure { request_id, .. })
                    if request_id == id =>
                {
                    return Ended::Closed;
                }
                SwarmEvent::ConnectionClosed { .. } => return Ended::Closed,
                _ => {}
            }
        }
    })
    .await
    .expect("no answer in time")
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
    connect(&mut raw, address.clone()).await;
    // A flood of frames that are not envelopes.
    let junk = frame(b"\xde\xad\xbe\xef garbage \x00\xff");
    let mut refused = 0;
    let mut closed = false;
    for _ in 0..1_000 {
        match try_exchange(&mut raw, &node_peer, junk.clone()).await {
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
    let good = frame(&message(joined, 7).encode().unwrap());
    raw.dial(address).unwrap();
    match try_exchange(&mut raw, &node_peer, good).await {
        Ended::Accepted => panic!("a blocked peer's message was taken"),
        Ended::Refused(reason) => assert!(reason.contains("blocked"), "{reason}"),
        Ended::Closed => {}
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
    connect(&mut raw, address).await;
    let channels: Vec<B256> = (0..200u8).map(B256::repeat_byte).collect();
    for channel_id in &channels {
        let reason = exchange(
            &mut raw,
            &node_peer,
            frame(&message(*channel_id, 1).encode().unwrap()),
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
    for channel_id in &channels {
        exchange(
            &mut raw,
            &node_peer,
            frame(&message(*channel_id, 2).encode().unwrap()),
        )
        .await
        .unwrap();
    }
    assert_eq!(raw.connected_peers().count(), 1, "still connected");
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
    connect(&mut raw, address).await;
    let send = |channel: B256, height: u64| frame(&message(channel, height).encode().unwrap());
    exchange(&mut raw, &node_peer, send(a, 1)).await.unwrap();
    node.handle.leave_channel(a).await.unwrap();
    let reason = exchange(&mut raw, &node_peer, send(a, 2)).await.unwrap_err();
    assert!(reason.contains("not joined"), "{reason}");
    exchange(&mut raw, &node_peer, send(b, 3)).await.unwrap();
    // Joined again without the raw peer: it is no participant of `a` any more.
    let other = Address::repeat_byte(0x63);
    node.handle.join_channel(a, vec![me, other]).await.unwrap();
    let reason = exchange(&mut raw, &node_peer, send(a, 4)).await.unwrap_err();
    assert!(reason.contains("is not a participant"), "{reason}");
    // And with it again.
    node.handle.join_channel(a, vec![me, raw_address]).await.unwrap();
    exchange(&mut raw, &node_peer, send(a, 5)).await.unwrap();
    node.handle.leave_channel(b).await.unwrap();
    exchange(&mut raw, &node_peer, send(a, 6)).await.unwrap();
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
