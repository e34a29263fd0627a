//! Outgoing messages: the [`Body`] type that responses (and the client's requests) carry,
//! the [`BodyWriter`] a streaming body writes through, and the serialisation of heads.
//!
//! A body is either whole bytes, sent with `Content-Length`, or a function that writes it,
//! sent chunked (or, to an HTTP/1.0 peer, delimited by closing the connection). The framing
//! headers are always weft's own: a `Content-Length` or `Transfer-Encoding` set by hand is
//! replaced, so a message can never describe its body wrongly.

use std::fmt;
use std::io::{self, Write};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::wire::{has_token, push_decimal, push_hex};

type StreamFn = Box<dyn FnOnce(&mut BodyWriter<'_>) -> io::Result<()> + Send>;

/// The body of a [`Response`](super::Response) or of a client request: bytes, or a function
/// that streams it.
///
/// Bytes are sent with `Content-Length`. A [`Body::stream`] function is called once the head
/// is sent and writes the body through a [`BodyWriter`], which sends each write as a chunk.
///
/// ```
/// use std::io::Write;
/// use weft::net::http::Body;
///
/// let hello = Body::from("Hello, World!");
/// assert_eq!(hello.len(), Some(13));
/// let counted = Body::stream(|w| {
///     for i in 0..3 {
///         writeln!(w, "line {i}")?;
///     }
///     Ok(())
/// });
/// assert_eq!(counted.len(), None);
/// ```
pub struct Body(Inner);

enum Inner {
    Full(Bytes),
    Stream(StreamFn),
}

impl Body {
    /// An empty body (`Content-Length: 0`).
    pub const fn empty() -> Body {
        Body(Inner::Full(Bytes::new()))
    }

    /// A body written by `f` after the head is sent. Each write is a chunk, buffered up to
    /// 16 KiB before it goes out. If `f` fails or panics part way, the connection is closed,
    /// so the peer sees a truncated body, never a wrong one.
    pub fn stream<F>(f: F) -> Body
    where
        F: FnOnce(&mut BodyWriter<'_>) -> io::Result<()> + Send + 'static,
    {
        Body(Inner::Stream(Box::new(f)))
    }

    /// The length of a bytes body; `None` for a stream.
    pub fn len(&self) -> Option<u64> {
        match &self.0 {
            Inner::Full(b) => Some(b.len() as u64),
            Inner::Stream(_) => None,
        }
    }

    /// Whether this is a bytes body of no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// The bytes of a bytes body, `None` for a stream.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.0 {
            Inner::Full(b) => Some(b),
            Inner::Stream(_) => None,
        }
    }

    /// A second handle on a bytes body (no copy); `None` for a stream, which can be sent
    /// only once.
    pub(crate) fn try_clone(&self) -> Option<Body> {
        match &self.0 {
            Inner::Full(b) => Some(Body(Inner::Full(b.clone()))),
            Inner::Stream(_) => None,
        }
    }

    pub(crate) fn into_parts(self) -> Result<Bytes, StreamFn> {
        match self.0 {
            Inner::Full(b) => Ok(b),
            Inner::Stream(f) => Err(f),
        }
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::Full(b) => f.debug_tuple("Body").field(b).finish(),
            Inner::Stream(_) => f.write_str("Body(<stream>)"),
        }
    }
}

macro_rules! body_from {
    ($($ty:ty => $conv:expr),* $(,)?) => {$(
        impl From<$ty> for Body {
            fn from(v: $ty) -> Body {
                Body(Inner::Full($conv(v)))
            }
        }
    )*};
}

body_from! {
    &'static str => |s: &'static str| Bytes::from_static(s.as_bytes()),
    &'static [u8] => Bytes::from_static,
    String => Bytes::from,
    Vec<u8> => Bytes::from,
    Bytes => std::convert::identity,
    () => |()| Bytes::new(),
}

/// Where a [`BodyWriter`] puts its bytes: a connection's write buffer.
pub(crate) trait Sink {
    fn buf(&mut self) -> &mut Vec<u8>;
    /// Sends the buffer and empties it.
    fn flush(&mut self) -> io::Result<()>;
}

/// How a streamed body goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Chunked,
    /// Raw bytes, delimited by closing the connection (HTTP/1.0 peers).
    Raw,
    /// Nothing at all: the response to a HEAD request.
    Discard,
}

/// A buffered write before this much is waiting goes out with the next one.
const FLUSH_AT: usize = 16 * 1024;

/// The writer a [`Body::stream`] function writes its body through.
///
/// Each `write` becomes one chunk. Writes are buffered and go out once 16 KiB wait or on
/// `flush`; the final empty chunk is sent when the function returns.
pub struct BodyWriter<'a> {
    sink: &'a mut dyn Sink,
    mode: Mode,
}

impl<'a> BodyWriter<'a> {
    pub(crate) fn new(sink: &'a mut dyn Sink, mode: Mode) -> BodyWriter<'a> {
        BodyWriter { sink, mode }
    }

    /// Ends the body: the last chunk for chunked framing.
    pub(crate) fn finish(self) -> io::Result<()> {
        if self.mode == Mode::Chunked {
            self.sink.buf().extend_from_slice(b"0\r\n\r\n");
        }
        Ok(())
    }
}

impl Write for BodyWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() || self.mode == Mode::Discard {
            return Ok(data.len());
        }
        let buf = self.sink.buf();
        if self.mode == Mode::Chunked {
            push_hex(buf, data.len() as u64);
            buf.extend_from_slice(b"\r\n");
            buf.extend_from_slice(data);
            buf.extend_from_slice(b"\r\n");
        } else {
            buf.extend_from_slice(data);
        }
        if buf.len() >= FLUSH_AT {
            self.sink.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}

impl fmt::Debug for BodyWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyWriter").field("mode", &self.mode).finish_non_exhaustive()
    }
}

/// Appends `HTTP/1.1 <code> <reason>\r\n`.
pub(crate) fn push_status_line(out: &mut Vec<u8>, status: StatusCode) {
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// What [`push_fields`] saw among the fields it wrote or left out.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Fields {
    pub(crate) has_date: bool,
    pub(crate) has_host: bool,
    /// A `Connection: close` was set: the connection ends after this message.
    pub(crate) close: bool,
}

/// Appends every field of `headers` but the framing ones (`Content-Length`,
/// `Transfer-Encoding`) and `Connection`, which the caller writes itself.
pub(crate) fn push_fields(out: &mut Vec<u8>, headers: &HeaderMap) -> Fields {
    use http::header::{CONNECTION, CONTENT_LENGTH, DATE, HOST, TRANSFER_ENCODING};
    let mut seen = Fields::default();
    for (name, value) in headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        if name == CONNECTION {
            seen.close |= has_token(value.as_bytes(), "close");
            continue;
        }
        seen.has_date |= name == DATE;
        seen.has_host |= name == HOST;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    seen
}

/// Appends `Content-Length: n\r\n`.
pub(crate) fn push_content_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"content-length: ");
    push_decimal(out, n);
    out.extend_from_slice(b"\r\n");
}
