//! The channel protocol on the wire: one request-response exchange per message.
//!
//! A request is a frame `len: u32 big-endian || CBOR Envelope`, with `len <=`
//! [`MAX_MESSAGE_BYTES`]. The answer is one byte (`0` accepted, `1` refused) followed, when
//! refused, by `len: u16 big-endian || UTF-8 reason` (at most [`MAX_REASON_BYTES`]).
//!
//! The codec never trusts the length prefix: an announced size above the limit is refused
//! without reading the body, and a body shorter than announced is reported as truncated. The
//! decoded request carries its own error so that the swarm can log it with the peer's id and
//! answer with the reason; the connection stays up.

use std::io;
use std::sync::Arc;

use entente_types::{Envelope, MAX_MESSAGE_BYTES, TypesError};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;

/// The channel protocol's name.
pub const CHANNEL_PROTOCOL: StreamProtocol = StreamProtocol::new("/entente/channel/1");

/// The longest refusal reason sent back to a peer.
pub const MAX_REASON_BYTES: usize = 1024;

const ACCEPTED: u8 = 0;
const REFUSED: u8 = 1;

/// A request on the channel protocol.
#[derive(Debug, Clone)]
pub(crate) enum Request {
    /// Outbound: an envelope already encoded (shared by every recipient of a broadcast).
    Encoded(Arc<[u8]>),
    /// Inbound: what arrived, decoded and validated, or why it is not acceptable.
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

/// Length-prefixed CBOR envelopes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ChannelCodec;

/// Reads a `u32` length prefix and then at most [`MAX_MESSAGE_BYTES`] of body.
async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Result<Vec<u8>, TypesError>> {
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_MESSAGE_BYTES {
        return Ok(Err(TypesError::TooLarge {
            size: len,
            limit: MAX_MESSAGE_BYTES,
        }));
    }
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    let read = io.take(len as u64).read_to_end(&mut body).await?;
    if read < len {
        return Ok(Err(TypesError::Malformed(format!(
            "truncated frame: {read} of {len} announced bytes"
        ))));
    }
    Ok(Ok(body))
}

impl request_response::Codec for ChannelCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let frame = read_frame(io).await?;
        Ok(Request::Received(
            frame.and_then(|bytes| Envelope::decode(&bytes)).map(Box::new),
        ))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut tag = [0u8; 1];
        io.read_exact(&mut tag).await?;
        match tag[0] {
            ACCEPTED => Ok(Response::Accepted),
            REFUSED => {
                let mut len = [0u8; 2];
                io.read_exact(&mut len).await?;
                let len = usize::from(u16::from_be_bytes(len));
                if len > MAX_REASON_BYTES {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "refusal reason too long",
                    ));
                }
                let mut reason = vec![0u8; len];
                io.read_exact(&mut reason).await?;
                Ok(Response::Refused(String::from_utf8_lossy(&reason).into_owned()))
            }
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown response tag {other}"),
            )),
        }
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, request: Request) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes: Arc<[u8]> = match request {
            Request::Encoded(bytes) => bytes,
            Request::Received(Ok(envelope)) => envelope
                .encode()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
                .into(),
            Request::Received(Err(e)) => return Err(io::Error::new(io::ErrorKind::InvalidInput, e)),
        };
        let len = u32::try_from(bytes.len())
            .ok()
            .filter(|len| *len as usize <= MAX_MESSAGE_BYTES)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame exceeds MAX_MESSAGE_BYTES"))?;
        // One write: the prefix and the body go in one frame of the stream.
        let mut frame = Vec::with_capacity(4 + bytes.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&bytes);
        io.write_all(&frame).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match response {
            Response::Accepted => io.write_all(&[ACCEPTED]).await?,
            Response::Refused(reason) => {
                let mut end = reason.len().min(MAX_REASON_BYTES);
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                let reason = &reason.as_bytes()[..end];
                // `end <= MAX_REASON_BYTES < u16::MAX`.
                let len = u16::try_from(reason.len()).unwrap_or(u16::MAX);
                let mut answer = Vec::with_capacity(3 + reason.len());
                answer.push(REFUSED);
                answer.extend_from_slice(&len.to_be_bytes());
                answer.extend_from_slice(reason);
                io.write_all(&answer).await?;
            }
        }
        io.close().await
    }
}
