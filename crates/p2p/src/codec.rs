//! The channel protocol on the wire: one long-lived stream per connection and direction,
//! carrying numbered frames.
//!
//! The node that sends requests opens the stream (`/entente/channel/2`) on its first message to
//! a peer and keeps it for every later one; the peer answers each request on the same stream.
//! Requests are pipelined: many may be on the wire at once, and they arrive in the order they
//! were written. Every frame starts with a tag and the request's number, chosen by its sender:
//!
//! - request: `0 || id: u64 || len: u32 || CBOR Envelope`, with `len <=` [`MAX_MESSAGE_BYTES`];
//! - accepted: `1 || id: u64`;
//! - refused: `2 || id: u64 || len: u16 || UTF-8 reason` (at most [`MAX_REASON_BYTES`]).
//!
//! All integers are big-endian. The reader never trusts a length: an announced body above the
//! limit is refused without reading it (and the stream is closed, since what follows cannot be
//! framed), and a body that decodes to no valid envelope is refused with the reason while the
//! stream goes on. An unknown tag ends the stream; the connection stays up.

use entente_types::{Envelope, MAX_MESSAGE_BYTES, TypesError};
use libp2p::StreamProtocol;

/// The channel protocol's name.
pub const CHANNEL_PROTOCOL: StreamProtocol = StreamProtocol::new("/entente/channel/2");

/// The longest refusal reason sent back to a peer.
pub const MAX_REASON_BYTES: usize = 1024;

const REQUEST: u8 = 0;
const ACCEPTED: u8 = 1;
const REFUSED: u8 = 2;

/// Bytes before a request's body: tag, id, length.
const REQUEST_HEADER: usize = 1 + 8 + 4;

/// A request as the swarm task sees it.
#[derive(Debug, Clone)]
pub(crate) enum Request {
    /// What arrived, decoded and validated, or why it is not acceptable.
    Received(Result<Box<Envelope>, TypesError>),
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Response {
    /// Delivered to the application.
    Accepted,
    /// Refused, with the reason.
    Refused(String),
}

/// One frame read from a stream.
#[derive(Debug)]
pub(crate) enum Frame {
    /// A request and its decoded envelope (or why it did not decode).
    Request { id: u64, request: Request },
    /// A request whose announced body exceeds the limit: answered, then the stream ends.
    Oversized { id: u64, size: usize },
    /// The answer to one of our requests.
    Response { id: u64, response: Response },
}

/// Why a stream cannot be read any further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// A tag that is neither a request nor an answer.
    UnknownTag(u8),
    /// A refusal reason longer than [`MAX_REASON_BYTES`].
    ReasonTooLong(usize),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownTag(tag) => write!(f, "unknown frame tag {tag}"),
            Self::ReasonTooLong(len) => write!(f, "refusal reason of {len} bytes exceeds {MAX_REASON_BYTES}"),
        }
    }
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(bytes)
}

/// Reads the frame at the front of `buf`: the frame and the bytes it took, `None` when `buf`
/// does not hold a whole frame yet.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    match tag {
        REQUEST => {
            if buf.len() < REQUEST_HEADER {
                return Ok(None);
            }
            let id = u64_at(buf, 1);
            let mut len = [0u8; 4];
            len.copy_from_slice(&buf[9..13]);
            let size = u32::from_be_bytes(len) as usize;
            if size > MAX_MESSAGE_BYTES {
                return Ok(Some((Frame::Oversized { id, size }, REQUEST_HEADER)));
            }
            let Some(body) = buf.get(REQUEST_HEADER..REQUEST_HEADER + size) else {
                return Ok(None);
            };
            let request = Request::Received(Envelope::decode(body).map(Box::new));
            Ok(Some((Frame::Request { id, request }, REQUEST_HEADER + size)))
        }
        ACCEPTED => {
            if buf.len() < 9 {
                return Ok(None);
            }
            let response = Response::Accepted;
            Ok(Some((
                Frame::Response {
                    id: u64_at(buf, 1),
                    response,
                },
                9,
            )))
        }
        REFUSED => {
            if buf.len() < 11 {
                return Ok(None);
            }
            let len = usize::from(u16::from_be_bytes([buf[9], buf[10]]));
            if len > MAX_REASON_BYTES {
                return Err(FrameError::ReasonTooLong(len));
            }
            let Some(reason) = buf.get(11..11 + len) else {
                return Ok(None);
            };
            let response = Response::Refused(String::from_utf8_lossy(reason).into_owned());
            Ok(Some((
                Frame::Response {
                    id: u64_at(buf, 1),
                    response,
                },
                11 + len,
            )))
        }
        other => Err(FrameError::UnknownTag(other)),
    }
}

/// Appends a request frame carrying an encoded envelope; `None` if it exceeds the limit.
pub(crate) fn put_request(out: &mut Vec<u8>, id: u64, body: &[u8]) -> Option<()> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|len| *len as usize <= MAX_MESSAGE_BYTES)?;
    out.reserve(REQUEST_HEADER + body.len());
    out.push(REQUEST);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Some(())
}

/// Appends an answer frame; a refusal's reason is cut to [`MAX_REASON_BYTES`] on a character
/// boundary.
pub(crate) fn put_response(out: &mut Vec<u8>, id: u64, response: &Response) {
    match response {
        Response::Accepted => {
            out.push(ACCEPTED);
            out.extend_from_slice(&id.to_be_bytes());
        }
        Response::Refused(reason) => {
            let mut end = reason.len().min(MAX_REASON_BYTES);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            let reason = &reason.as_bytes()[..end];
            // `end <= MAX_REASON_BYTES < u16::MAX`.
            let len = u16::try_from(reason.len()).unwrap_or(u16::MAX);
            out.push(REFUSED);
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use entente_types::{B256, Message, SyncRequest};

    fn envelope(height: u64) -> Envelope {
        Envelope::new(Message::SyncRequest(SyncRequest {
            channel_id: B256::repeat_byte(7),
            fork: 0,
            from_height: height,
        }))
    }

    #[test]
    fn frames_read_back_one_byte_at_a_time() {
        let mut wire = Vec::new();
        put_request(&mut wire, 5, &envelope(3).encode().unwrap()).unwrap();
        put_response(&mut wire, 6, &Response::Accepted);
        put_response(&mut wire, 7, &Response::Refused("no thanks".to_owned()));
        let mut frames = Vec::new();
        let mut start = 0;
        for end in 0..=wire.len() {
            if let Some((frame, used)) = parse(&wire[start..end]).unwrap() {
                assert_eq!(start + used, end, "a frame is complete only at its last byte");
                frames.push(frame);
                start = end;
            }
        }
        assert_eq!(start, wire.len());
        match &frames[..] {
            [
                Frame::Request {
                    id: 5,
                    request: Request::Received(Ok(got)),
                },
                Frame::Response {
                    id: 6,
                    response: Response::Accepted,
                },
                Frame::Response {
                    id: 7,
                    response: Response::Refused(reason),
                },
            ] => {
                assert_eq!(**got, envelope(3));
                assert_eq!(reason, "no thanks");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lengths_are_not_trusted() {
        // A body announced above the limit is reported from the header alone.
        let mut wire = vec![REQUEST];
        wire.extend_from_slice(&9u64.to_be_bytes());
        wire.extend_from_slice(&u32::MAX.to_be_bytes());
        match parse(&wire).unwrap() {
            Some((Frame::Oversized { id: 9, size }, REQUEST_HEADER)) => assert_eq!(size, u32::MAX as usize),
            other => panic!("{other:?}"),
        }
        // A body that is not an envelope is a refused request, and the stream goes on.
        let mut wire = Vec::new();
        put_request(&mut wire, 1, b"\xde\xad garbage").unwrap();
        match parse(&wire).unwrap() {
            Some((
                Frame::Request {
                    request: Request::Received(Err(_)),
                    ..
                },
                used,
            )) => assert_eq!(used, wire.len()),
            other => panic!("{other:?}"),
        }
        assert_eq!(parse(&[9, 0]).unwrap_err(), FrameError::UnknownTag(9));
        let mut long = vec![REFUSED];
        long.extend_from_slice(&1u64.to_be_bytes());
        long.extend_from_slice(&(MAX_REASON_BYTES as u16 + 1).to_be_bytes());
        assert_eq!(
            parse(&long).unwrap_err(),
            FrameError::ReasonTooLong(MAX_REASON_BYTES + 1)
        );
        assert!(put_request(&mut Vec::new(), 1, &vec![0; MAX_MESSAGE_BYTES + 1]).is_none());
    }

    #[test]
    fn a_long_reason_is_cut_on_a_character_boundary() {
        let mut wire = Vec::new();
        put_response(&mut wire, 1, &Response::Refused("é".repeat(MAX_REASON_BYTES)));
        match parse(&wire).unwrap() {
            Some((
                Frame::Response {
                    response: Response::Refused(reason),
                    ..
                },
                _,
            )) => {
                assert!(reason.len() <= MAX_REASON_BYTES);
                assert!(reason.chars().all(|c| c == 'é'));
            }
            other => panic!("{other:?}"),
        }
    }
}
