//! The channel protocol's libp2p behaviour: requests and their answers over one long-lived
//! stream per connection and direction (the frames are in [`crate::codec`]).
//!
//! A connection's handler opens its outbound stream when the first request for that
//! connection arrives and keeps it: later requests are written behind the earlier ones without
//! waiting for their answers, so a message costs one frame on an open stream instead of a
//! stream of its own (open, negotiate, answer, close). The peer's requests arrive on the
//! streams it opened; each is handed to the swarm task, whose answer is written back on the
//! stream it came from. A request with no answer within the timeout fails, and so does every
//! request written on a stream or connection that closed before its answer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::upgrade::ReadyUpgrade;
use libp2p::core::{Endpoint, transport::PortUse};
use libp2p::swarm::handler::{
    ConnectionEvent, ConnectionHandler, ConnectionHandlerEvent, DialUpgradeError, FullyNegotiatedInbound,
    FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler, StreamProtocol,
    SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, Stream};
use tokio::time::{Instant, Sleep};

use crate::codec::{CHANNEL_PROTOCOL, Frame, Request, Response, parse, put_request, put_response};

/// The number a request carries on the wire; chosen by its sender.
pub(crate) type RequestId = u64;

/// Streams a peer may have open towards us on one connection (it opens a new one when its
/// previous one broke); beyond that the oldest is dropped.
const MAX_INBOUND_STREAMS: usize = 4;

/// Bytes read from a stream at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Frames, and bytes of frames, taken from one stream per poll; the handler yields to the
/// connection's other work after that and comes back at once.
const FRAMES_PER_POLL: usize = 256;
const BYTES_PER_POLL: usize = 1024 * 1024;

/// Answers not yet written to a peer's stream beyond which its requests are not read: a peer
/// that sends without reading its answers is slowed down, not buffered for.
const MAX_UNSENT_ANSWERS: usize = 64 * 1024;

/// Where an inbound request came from, to answer it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InboundId {
    connection: ConnectionId,
    stream: u64,
    id: RequestId,
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No answer within the request timeout.
    Timeout,
    /// The stream or connection closed, or could not be opened.
    Closed(String),
}

/// What the behaviour reports to the swarm task.
#[derive(Debug)]
pub(crate) enum Event {
    /// A request from `peer`, to be answered with [`Behaviour::send_response`].
    Request {
        peer: PeerId,
        connection: ConnectionId,
        inbound: InboundId,
        request: Request,
    },
    /// The answer to one of our requests.
    Response { id: RequestId, response: Response },
    /// One of our requests got no answer.
    OutboundFailure {
        peer: PeerId,
        id: RequestId,
        failure: Failure,
    },
    /// A peer's stream ended in a way that loses what it was sending: `framing` when what it
    /// carried could not be framed (the peer's fault), not when the stream broke.
    InboundFailure {
        peer: PeerId,
        reason: String,
        framing: bool,
    },
}

/// The channel protocol's behaviour.
pub(crate) struct Behaviour {
    request_timeout: Duration,
    next_id: RequestId,
    /// Each peer's connections, oldest first; requests go on the newest.
    connections: HashMap<PeerId, Vec<ConnectionId>>,
    /// Requests handed to each connection without an outcome yet: they fail when it closes
    /// (its handler, and what it held, is gone).
    outstanding: HashMap<ConnectionId, HashSet<RequestId>>,
    events: VecDeque<ToSwarm<Event, Command>>,
}

impl Behaviour {
    pub(crate) fn new(request_timeout: Duration) -> Self {
        Self {
            request_timeout,
            next_id: 0,
            connections: HashMap::new(),
            outstanding: HashMap::new(),
            events: VecDeque::new(),
        }
    }

    /// Sends an encoded envelope to `peer` on its newest connection. The outcome comes as an
    /// [`Event::Response`] or [`Event::OutboundFailure`] with the returned id.
    pub(crate) fn send_request(&mut self, peer: &PeerId, frame: Arc<[u8]>) -> RequestId {
        self.next_id += 1;
        let id = self.next_id;
        match self.connections.get(peer).and_then(|c| c.last()) {
            Some(connection) => {
                self.outstanding.entry(*connection).or_default().insert(id);
                self.events.push_back(ToSwarm::NotifyHandler {
                    peer_id: *peer,
                    handler: NotifyHandler::One(*connection),
                    event: Command::Send { id, frame },
                });
            }
            None => self
                .events
                .push_back(ToSwarm::GenerateEvent(Event::OutboundFailure {
                    peer: *peer,
                    id,
                    failure: Failure::Closed("not connected".to_owned()),
                })),
        }
        id
    }

    /// Answers a request on the stream it came from (dropped if that stream is gone).
    pub(crate) fn send_response(&mut self, peer: PeerId, inbound: InboundId, response: Response) {
        self.events.push_back(ToSwarm::NotifyHandler {
            peer_id: peer,
            handler: NotifyHandler::One(inbound.connection),
            event: Command::Respond {
                stream: inbound.stream,
                id: inbound.id,
                response,
            },
        });
    }

    fn settled(&mut self, connection: ConnectionId, id: RequestId) {
        if let Some(ids) = self.outstanding.get_mut(&connection) {
            ids.remove(&id);
            if ids.is_empty() {
                self.outstanding.remove(&connection);
            }
        }
    }

    fn handler(&self, connection: ConnectionId) -> Handler {
        Handler::new(connection, self.request_timeout)
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(connection))
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(connection))
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                self.connections
                    .entry(e.peer_id)
                    .or_default()
                    .push(e.connection_id);
            }
            FromSwarm::ConnectionClosed(e) => {
                if let Some(connections) = self.connections.get_mut(&e.peer_id) {
                    connections.retain(|c| *c != e.connection_id);
                    if connections.is_empty() {
                        self.connections.remove(&e.peer_id);
                    }
                }
                let mut lost: Vec<RequestId> = self
                    .outstanding
                    .remove(&e.connection_id)
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                lost.sort_unstable();
                for id in lost {
                    self.events
                        .push_back(ToSwarm::GenerateEvent(Event::OutboundFailure {
                            peer: e.peer_id,
                            id,
                            failure: Failure::Closed("the connection closed".to_owned()),
                        }));
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        let event = match event {
            Report::Request { stream, id, request } => Event::Request {
                peer,
                connection,
                inbound: InboundId {
                    connection,
                    stream,
                    id,
                },
                request,
            },
            Report::Response { id, response } => {
                self.settled(connection, id);
                Event::Response { id, response }
            }
            Report::Failed { id, failure } => {
                self.settled(connection, id);
                Event::OutboundFailure { peer, id, failure }
            }
            Report::InboundFailed { reason, framing } => Event::InboundFailure {
                peer,
                reason,
                framing,
            },
        };
        self.events.push_back(ToSwarm::GenerateEvent(event));
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        match self.events.pop_front() {
            Some(event) => Poll::Ready(event),
            None => Poll::Pending,
        }
    }
}

/// From the behaviour to a connection's handler.
#[derive(Debug)]
pub(crate) enum Command {
    Send {
        id: RequestId,
        frame: Arc<[u8]>,
    },
    Respond {
        stream: u64,
        id: RequestId,
        response: Response,
    },
}

/// From a connection's handler to the behaviour.
#[derive(Debug)]
pub(crate) enum Report {
    Request {
        stream: u64,
        id: RequestId,
        request: Request,
    },
    Response {
        id: RequestId,
        response: Response,
    },
    Failed {
        id: RequestId,
        failure: Failure,
    },
    InboundFailed {
        reason: String,
        framing: bool,
    },
}

/// One stream with its read and write buffers.
struct Link {
    stream: Stream,
    read: Vec<u8>,
    write: Vec<u8>,
    written: usize,
    /// The stream is being closed: flush what is written, read nothing more.
    closing: bool,
    /// Requests read from it that the swarm task has not answered yet.
    owed: usize,
}

/// How a link's read side stands after draining it.
enum ReadEnd {
    /// Nothing more to read now.
    Pending,
    /// The peer closed the stream cleanly (between frames).
    Closed,
    /// What the stream carried cannot be framed (the peer's fault).
    Failed(String),
    /// The stream broke (an I/O error: a reset, the connection going away).
    Broken(String),
}

impl Link {
    fn new(mut stream: Stream) -> Self {
        // An open stream with nothing in flight must not keep an idle connection up.
        stream.ignore_for_keep_alive();
        Self {
            stream,
            read: Vec::new(),
            write: Vec::new(),
            written: 0,
            closing: false,
            owed: 0,
        }
    }

    /// Writes and flushes what is buffered. `Ready(Ok)` once everything is out.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.write.is_empty() {
            return Poll::Ready(Ok(()));
        }
        while self.written < self.write.len() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.write[self.written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    // Keep only what is not written yet: a slow reader must not make the
                    // buffer hold what it already took (moved once half of it is written, so
                    // each byte is moved a bounded number of times).
                    if self.written * 2 >= self.write.len() {
                        self.write.drain(..self.written);
                        self.written = 0;
                    }
                    return Poll::Pending;
                }
            }
        }
        match Pin::new(&mut self.stream).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.write.clear();
                self.written = 0;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }

    /// Reads every whole frame available now into `frames`.
    fn read_frames(&mut self, cx: &mut Context<'_>, frames: &mut Vec<Frame>) -> ReadEnd {
        let mut chunk = [0u8; READ_CHUNK];
        let mut taken = 0;
        loop {
            // Take the whole frames already buffered.
            let mut start = 0;
            loop {
                if frames.len() >= FRAMES_PER_POLL || taken + start >= BYTES_PER_POLL {
                    self.read.drain(..start);
                    cx.waker().wake_by_ref();
                    return ReadEnd::Pending;
                }
                match parse(&self.read[start..]) {
                    Ok(Some((frame, used))) => {
                        start += used;
                        let oversized = matches!(frame, Frame::Oversized { .. });
                        frames.push(frame);
                        if oversized {
                            // What follows the header cannot be framed: stop reading.
                            self.read.clear();
                            self.closing = true;
                            return ReadEnd::Pending;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return ReadEnd::Failed(e.to_string()),
                }
            }
            self.read.drain(..start);
            taken += start;
            match Pin::new(&mut self.stream).poll_read(cx, &mut chunk) {
                Poll::Ready(Ok(0)) if self.read.is_empty() => return ReadEnd::Closed,
                Poll::Ready(Ok(0)) => {
                    return ReadEnd::Failed(format!(
                        "stream closed inside a frame ({} bytes of it read)",
                        self.read.len()
                    ));
                }
                Poll::Ready(Ok(n)) => self.read.extend_from_slice(&chunk[..n]),
                Poll::Ready(Err(e)) => return ReadEnd::Broken(e.to_string()),
                Poll::Pending => return ReadEnd::Pending,
            }
        }
    }
}

/// A request written (or to be written) on the outbound stream, waiting for its answer.
struct Sent {
    id: RequestId,
    deadline: Instant,
}

/// One connection's side of the channel protocol.
pub(crate) struct Handler {
    connection: ConnectionId,
    request_timeout: Duration,
    /// Our requests and the peer's answers.
    outbound: Option<Link>,
    /// An outbound stream was asked for and is being negotiated.
    opening: bool,
    /// Requests waiting for the outbound stream, in order.
    queued: VecDeque<(RequestId, Arc<[u8]>, Instant)>,
    /// Requests on the outbound stream without an answer, oldest first.
    sent: VecDeque<Sent>,
    /// Fires at the oldest request's deadline.
    timer: Option<Pin<Box<Sleep>>>,
    /// The peer's requests and our answers, with the numbers our answers refer to them by.
    inbound: Vec<(u64, Link)>,
    next_stream: u64,
    reports: VecDeque<Report>,
}

impl Handler {
    fn new(connection: ConnectionId, request_timeout: Duration) -> Self {
        Self {
            connection,
            request_timeout,
            outbound: None,
            opening: false,
            queued: VecDeque::new(),
            sent: VecDeque::new(),
            timer: None,
            inbound: Vec::new(),
            next_stream: 0,
            reports: VecDeque::new(),
        }
    }

    fn fail_sent(&mut self, failure: &Failure) {
        for sent in self.sent.drain(..) {
            self.reports.push_back(Report::Failed {
                id: sent.id,
                failure: failure.clone(),
            });
        }
    }

    fn fail_queued(&mut self, failure: &Failure) {
        for (id, _, _) in self.queued.drain(..) {
            self.reports.push_back(Report::Failed {
                id,
                failure: failure.clone(),
            });
        }
    }

    /// Moves queued requests onto the outbound stream's buffer.
    fn frame_queued(&mut self) {
        let Some(link) = self.outbound.as_mut() else {
            return;
        };
        for (id, frame, deadline) in self.queued.drain(..) {
            if put_request(&mut link.write, id, &frame).is_none() {
                self.reports.push_back(Report::Failed {
                    id,
                    failure: Failure::Closed("frame exceeds MAX_MESSAGE_BYTES".to_owned()),
                });
                continue;
            }
            self.sent.push_back(Sent { id, deadline });
        }
    }

    /// Fails the requests past their deadline and arms the timer for the next one.
    fn poll_timeouts(&mut self, cx: &mut Context<'_>) {
        loop {
            let Some(deadline) = self
                .sent
                .front()
                .map(|s| s.deadline)
                .into_iter()
                .chain(self.queued.front().map(|q| q.2))
                .min()
            else {
                self.timer = None;
                return;
            };
            let timer = match &mut self.timer {
                Some(timer) if timer.deadline() == deadline => timer,
                slot => slot.insert(Box::pin(tokio::time::sleep_until(deadline))),
            };
            if timer.as_mut().poll(cx).is_pending() {
                return;
            }
            self.timer = None;
            let now = Instant::now();
            let mut stalled = false;
            while self.sent.front().is_some_and(|s| s.deadline <= now) {
                if let Some(sent) = self.sent.pop_front() {
                    stalled = true;
                    self.reports.push_back(Report::Failed {
                        id: sent.id,
                        failure: Failure::Timeout,
                    });
                }
            }
            if stalled {
                // A stream that left a request unanswered that long is dropped with what it
                // still carries (nothing piles up behind it); the next request opens another.
                self.outbound = None;
                self.fail_sent(&Failure::Closed(
                    "the stream was dropped after a request on it timed out".to_owned(),
                ));
            }
            while self.queued.front().is_some_and(|q| q.2 <= now) {
                if let Some((id, _, _)) = self.queued.pop_front() {
                    self.reports.push_back(Report::Failed {
                        id,
                        failure: Failure::Timeout,
                    });
                }
            }
        }
    }

    /// Drives the outbound stream: writes, reads answers; on failure, fails what was sent.
    fn poll_outbound(&mut self, cx: &mut Context<'_>) {
        let Some(link) = self.outbound.as_mut() else {
            return;
        };
        let mut broken = match link.poll_write(cx) {
            Poll::Ready(Err(e)) => Some(e.to_string()),
            _ => None,
        };
        let mut frames = Vec::new();
        if broken.is_none() {
            match link.read_frames(cx, &mut frames) {
                ReadEnd::Pending => {}
                ReadEnd::Closed => broken = Some("the peer closed the stream".to_owned()),
                ReadEnd::Failed(reason) | ReadEnd::Broken(reason) => broken = Some(reason),
            }
        }
        for frame in frames {
            match frame {
                Frame::Response { id, response } => {
                    if let Some(at) = self.sent.iter().position(|s| s.id == id) {
                        self.sent.remove(at);
                        self.reports.push_back(Report::Response { id, response });
                    }
                }
                // Requests go on the streams the peer opens, not on ours.
                Frame::Request { .. } | Frame::Oversized { .. } => {
                    broken = Some("a request on the answering side of a stream".to_owned());
                    break;
                }
            }
        }
        if let Some(reason) = broken {
            self.outbound = None;
            self.fail_sent(&Failure::Closed(reason));
        }
    }

    /// Drives the peer's streams: writes answers, reads requests.
    fn poll_inbound(&mut self, cx: &mut Context<'_>) {
        let mut index = 0;
        while index < self.inbound.len() {
            let (stream, link) = &mut self.inbound[index];
            let stream = *stream;
            let mut frames = Vec::new();
            // How the stream ends: cleanly, or with why and whether the peer's framing was at
            // fault (only that counts against it).
            let mut end = match link.poll_write(cx) {
                Poll::Ready(Err(e)) => Some(Err((e.to_string(), false))),
                // Closing: once the answers it is owed are out, close it and let it go.
                Poll::Ready(Ok(())) if link.closing && link.owed == 0 => {
                    match Pin::new(&mut link.stream).poll_close(cx) {
                        Poll::Pending => None,
                        Poll::Ready(_) => Some(Ok(())),
                    }
                }
                _ => None,
            };
            // A peer that does not read its answers gets no more of its requests read (the
            // pending write woke us when the stream can take more).
            let unsent = link.write.len() - link.written;
            if end.is_none() && !link.closing && unsent <= MAX_UNSENT_ANSWERS {
                match link.read_frames(cx, &mut frames) {
                    ReadEnd::Pending => {}
                    // The peer is done sending: answer what it sent, then close.
                    ReadEnd::Closed => {
                        link.closing = true;
                        cx.waker().wake_by_ref();
                    }
                    ReadEnd::Failed(reason) => end = Some(Err((reason, true))),
                    ReadEnd::Broken(reason) => end = Some(Err((reason, false))),
                }
            }
            link.owed += frames.len();
            for frame in frames {
                match frame {
                    Frame::Request { id, request } => {
                        self.reports.push_back(Report::Request { stream, id, request })
                    }
                    Frame::Oversized { id, size } => {
                        // The swarm task sees it as a request that did not decode.
                        self.reports.push_back(Report::Request {
                            stream,
                            id,
                            request: Request::Received(Err(entente_types::TypesError::TooLarge {
                                size,
                                limit: entente_types::MAX_MESSAGE_BYTES,
                            })),
                        });
                    }
                    Frame::Response { .. } => {
                        end = Some(Err((
                            "an answer on the requesting side of a stream".to_owned(),
                            true,
                        )));
                        break;
                    }
                }
            }
            match end {
                Some(end) => {
                    if let Err((reason, framing)) = end {
                        self.reports.push_back(Report::InboundFailed { reason, framing });
                    }
                    self.inbound.remove(index);
                }
                None => index += 1,
            }
        }
    }
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Command;
    type ToBehaviour = Report;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(ReadyUpgrade::new(CHANNEL_PROTOCOL), ())
    }

    fn connection_keep_alive(&self) -> bool {
        // Streams do not count for keep-alive (an idle one must not hold the connection):
        // requests in either direction do.
        self.opening
            || !self.queued.is_empty()
            || !self.sent.is_empty()
            || self
                .inbound
                .iter()
                .any(|(_, link)| link.owed > 0 || link.write.len() > link.written)
    }

    fn on_behaviour_event(&mut self, command: Command) {
        match command {
            Command::Send { id, frame } => {
                let deadline = Instant::now() + self.request_timeout;
                self.queued.push_back((id, frame, deadline));
                self.frame_queued();
            }
            Command::Respond { stream, id, response } => {
                // Answers to a stream that is gone are dropped.
                if let Some((_, link)) = self.inbound.iter_mut().find(|(s, _)| *s == stream) {
                    link.owed = link.owed.saturating_sub(1);
                    put_response(&mut link.write, id, &response);
                }
            }
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Report>> {
        if let Some(report) = self.reports.pop_front() {
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(report));
        }
        self.poll_outbound(cx);
        self.poll_inbound(cx);
        self.poll_timeouts(cx);
        if let Some(report) = self.reports.pop_front() {
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(report));
        }
        if self.outbound.is_none() && !self.opening && !self.queued.is_empty() {
            self.opening = true;
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(ReadyUpgrade::new(CHANNEL_PROTOCOL), ()),
            });
        }
        Poll::Pending
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<'_, Self::InboundProtocol, Self::OutboundProtocol>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: stream, ..
            }) => {
                self.opening = false;
                self.outbound = Some(Link::new(stream));
                self.frame_queued();
            }
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol: stream, .. }) => {
                if self.inbound.len() >= MAX_INBOUND_STREAMS {
                    self.inbound.remove(0);
                }
                self.next_stream += 1;
                self.inbound.push((self.next_stream, Link::new(stream)));
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { error, .. }) => {
                self.opening = false;
                let failure = Failure::Closed(format!(
                    "cannot open a channel stream on connection {}: {error}",
                    self.connection
                ));
                self.fail_queued(&failure);
            }
            _ => {}
        }
    }
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("connection", &self.connection)
            .field("queued", &self.queued.len())
            .field("sent", &self.sent.len())
            .field("inbound", &self.inbound.len())
            .finish_non_exhaustive()
    }
}
