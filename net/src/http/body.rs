//! Message bodies on the wire: the read buffer a connection parses from, and the decoder that
//! turns `Content-Length`, chunked or close-delimited framing into body bytes.
//!
//! The decoder is shared by the server (request bodies) and the client (response bodies). It
//! reads through a [`Source`]: a buffer over a transport, so the bytes after a body (the next
//! pipelined request) stay in the buffer for whoever reads next.
//!
//! A chunked body, as the decoder walks it:
//!
//! ```text
//!   Size ──"5;ext\r\n"──▶ Data(5) ──5 bytes──▶ DataEnd ──"\r\n"──▶ Size
//!     │
//!     └──"0\r\n"──▶ Trailer ──"Name: v\r\n"──▶ Trailer ──"\r\n"──▶ done
//! ```

use std::io;

use super::wire::parse_chunk_size;

/// A read buffer: `buf[start..end]` holds bytes read from the transport and not consumed.
pub(crate) struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    pub(crate) fn new(capacity: usize) -> ReadBuf {
        ReadBuf { buf: vec![0; capacity], start: 0, end: 0 }
    }

    /// The bytes read and not consumed yet.
    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room to read into, after the data: the data is moved to the front if that makes room,
    /// and the buffer grows (doubling) while it holds less than `max` bytes. Empty only when
    /// the data alone fills `max`.
    pub(crate) fn spare(&mut self, max: usize) -> &mut [u8] {
        if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() && self.buf.len() < max {
            let len = (self.buf.len() * 2).clamp(1024, max);
            self.buf.resize(len, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes of the last [`spare`](ReadBuf::spare) slice as read.
    pub(crate) fn filled(&mut self, n: usize) {
        debug_assert!(self.end + n <= self.buf.len());
        self.end += n;
    }
}

/// Where a decoder gets its bytes: a [`ReadBuf`] over a transport.
pub(crate) trait Source {
    fn buf(&mut self) -> &mut ReadBuf;
    /// Reads more into the buffer; `Ok(0)` at end of stream.
    fn fill(&mut self) -> io::Result<usize>;
    /// Reads into `out` directly; called only when the buffer is empty.
    fn read_direct(&mut self, out: &mut [u8]) -> io::Result<usize>;
}

/// A read of at least this much with an empty buffer goes straight to the caller's slice.
const DIRECT_READ: usize = 4096;

/// How a body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (a GET without `Content-Length`, a 204).
    Empty,
    Length(u64),
    Chunked,
    /// Until the peer closes: only a response can be framed so.
    UntilEof,
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Bad framing: a chunk line, a missing CRLF, a malformed trailer (400).
    Malformed(&'static str),
    /// More body than the limit allows (413).
    TooLarge(u64),
    /// The transport failed, or ended before the body did.
    Io(io::Error),
}

impl From<io::Error> for BodyError {
    fn from(e: io::Error) -> BodyError {
        BodyError::Io(e)
    }
}

impl BodyError {
    pub(crate) fn to_io(&self) -> io::Error {
        match self {
            BodyError::Malformed(what) => {
                io::Error::new(io::ErrorKind::InvalidData, format!("malformed body: {what}"))
            }
            BodyError::TooLarge(limit) => io::Error::new(
                io::ErrorKind::InvalidData,
                format!("body larger than the limit of {limit} bytes"),
            ),
            BodyError::Io(e) => io::Error::new(e.kind(), e.to_string()),
        }
    }
}

/// Bounds on a chunked body's framing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChunkLimits {
    /// The longest chunk-size line, extensions included, without its CRLF.
    pub(crate) line: usize,
    /// All trailer lines together.
    pub(crate) trailers: usize,
}

#[derive(Debug)]
enum State {
    Length(u64),
    Chunk(Chunk),
    UntilEof,
    Done,
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailer(usize),
}

/// Reads one body out of a [`Source`], whatever its framing.
#[derive(Debug)]
pub(crate) struct Decoder {
    state: State,
    /// Body bytes handed out so far.
    received: u64,
    limit: u64,
    chunk: ChunkLimits,
}

impl Decoder {
    /// A decoder for a body framed as `framing`, refusing more than `limit` bytes of it. A
    /// `Content-Length` over the limit is the caller's to refuse before reading.
    pub(crate) fn new(framing: Framing, limit: u64, chunk: ChunkLimits) -> Decoder {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunk(Chunk::Size),
            Framing::UntilEof => State::UntilEof,
        };
        Decoder { state, received: 0, limit, chunk }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Body bytes still to come under `Content-Length` framing.
    pub(crate) fn remaining_length(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// Reads body bytes into `out`; `Ok(0)` once the body is complete (or `out` is empty).
    pub(crate) fn read(
        &mut self,
        src: &mut impl Source,
        out: &mut [u8],
    ) -> Result<usize, BodyError> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Length(left) => {
                    let n = self.data(src, out, left)?;
                    if n == 0 {
                        return Err(unexpected_eof());
                    }
                    self.state =
                        if left == n as u64 { State::Done } else { State::Length(left - n as u64) };
                    return Ok(n);
                }
                State::UntilEof => {
                    let n = self.data(src, out, u64::MAX)?;
                    if n == 0 {
                        self.state = State::Done;
                    }
                    return Ok(n);
                }
                State::Chunk(Chunk::Data(left)) => {
                    let n = self.data(src, out, left)?;
                    if n == 0 {
                        return Err(unexpected_eof());
                    }
                    let left = left - n as u64;
                    self.state =
                        State::Chunk(if left == 0 { Chunk::DataEnd } else { Chunk::Data(left) });
                    return Ok(n);
                }
                State::Chunk(chunk) => match self.framing(chunk, src.buf().data())? {
                    Some(used) => src.buf().consume(used),
                    None => {
                        if src.fill()? == 0 {
                            return Err(unexpected_eof());
                        }
                    }
                },
            }
        }
    }

    /// Reads and drops the rest of the body, at most `max` bytes of it; `Ok(false)` if more
    /// than that was left.
    pub(crate) fn skip(&mut self, src: &mut impl Source, max: u64) -> Result<bool, BodyError> {
        if self.is_done() {
            return Ok(true);
        }
        if self.remaining_length().is_some_and(|n| n > max) {
            return Ok(false);
        }
        let mut skipped = 0u64;
        let mut scratch = [0u8; 2048];
        while !self.is_done() {
            let n = self.read(src, &mut scratch)?;
            skipped += n as u64;
            if skipped > max {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Copies up to `max` body bytes into `out`, from the buffer or the transport.
    fn data(
        &mut self,
        src: &mut impl Source,
        out: &mut [u8],
        max: u64,
    ) -> Result<usize, BodyError> {
        let want = out.len().min(usize::try_from(max).unwrap_or(usize::MAX));
        let n = if !src.buf().is_empty() {
            let data = src.buf().data();
            let n = want.min(data.len());
            out[..n].copy_from_slice(&data[..n]);
            src.buf().consume(n);
            n
        } else if want >= DIRECT_READ {
            src.read_direct(&mut out[..want])?
        } else {
            if src.fill()? == 0 {
                return Ok(0);
            }
            let data = src.buf().data();
            let n = want.min(data.len());
            out[..n].copy_from_slice(&data[..n]);
            src.buf().consume(n);
            n
        };
        self.received += n as u64;
        if self.received > self.limit {
            return Err(BodyError::TooLarge(self.limit));
        }
        Ok(n)
    }

    /// Parses one piece of chunked framing at the start of `input`; the bytes it used, or
    /// `None` if `input` does not hold the whole piece yet.
    fn framing(&mut self, chunk: Chunk, input: &[u8]) -> Result<Option<usize>, BodyError> {
        let (next, used) = match chunk {
            Chunk::Size => {
                let Some(line) = line(input, self.chunk.line)? else { return Ok(None) };
                let size =
                    parse_chunk_size(line).ok_or(BodyError::Malformed("bad chunk-size line"))?;
                if self.received.saturating_add(size) > self.limit {
                    return Err(BodyError::TooLarge(self.limit));
                }
                let next = if size == 0 { Chunk::Trailer(0) } else { Chunk::Data(size) };
                (next, line.len() + 2)
            }
            Chunk::DataEnd => match input {
                [b'\r', b'\n', ..] => (Chunk::Size, 2),
                [] | [b'\r'] => return Ok(None),
                _ => return Err(BodyError::Malformed("chunk data not followed by CRLF")),
            },
            Chunk::Trailer(seen) => {
                // A line may take the budget's last bytes and its CRLF two more: saturate.
                let room = self.chunk.trailers.saturating_sub(seen);
                let Some(line) = line(input, room)? else { return Ok(None) };
                if line.is_empty() {
                    self.state = State::Done;
                    return Ok(Some(2));
                }
                let well_formed = !matches!(line[0], b' ' | b'\t' | b':') && line.contains(&b':');
                if !well_formed {
                    return Err(BodyError::Malformed("bad trailer field"));
                }
                (Chunk::Trailer(seen + line.len() + 2), line.len() + 2)
            }
            Chunk::Data(_) => unreachable!("chunk data is read by Decoder::read"),
        };
        self.state = State::Chunk(next);
        Ok(Some(used))
    }
}

/// The CRLF-terminated line at the start of `input`, without its CRLF, if it is all there.
/// A line longer than `max`, a bare LF or a CR not followed by LF is malformed.
fn line(input: &[u8], max: usize) -> Result<Option<&[u8]>, BodyError> {
    let window = &input[..input.len().min(max + 2)];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && input[i - 1] == b'\r' && !input[..i - 1].contains(&b'\r') => {
            Ok(Some(&input[..i - 1]))
        }
        Some(_) => Err(BodyError::Malformed("line not ended by CRLF")),
        None if window.len() > max + 1 => Err(BodyError::Malformed("line too long")),
        None if window.iter().position(|&b| b == b'\r').is_some_and(|i| i + 1 < window.len()) => {
            Err(BodyError::Malformed("line not ended by CRLF"))
        }
        None => Ok(None),
    }
}

fn unexpected_eof() -> BodyError {
    BodyError::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed in the middle of a body",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source over a byte string, handed out `step` bytes per fill.
    struct Slice<'a> {
        input: &'a [u8],
        buf: ReadBuf,
        step: usize,
    }

    impl Source for Slice<'_> {
        fn buf(&mut self) -> &mut ReadBuf {
            &mut self.buf
        }
        fn fill(&mut self) -> io::Result<usize> {
            let n = self.step.min(self.input.len());
            let spare = self.buf.spare(1 << 20);
            let n = n.min(spare.len());
            spare[..n].copy_from_slice(&self.input[..n]);
            self.buf.filled(n);
            self.input = &self.input[n..];
            Ok(n)
        }
        fn read_direct(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(self.input.len()).min(out.len());
            out[..n].copy_from_slice(&self.input[..n]);
            self.input = &self.input[n..];
            Ok(n)
        }
    }

    const LIMITS: ChunkLimits = ChunkLimits { line: 64, trailers: 256 };

    /// Decodes all of `input`, for every fill size from 1 byte up; the body and what is left.
    fn decode(framing: Framing, input: &[u8], limit: u64) -> Result<(Vec<u8>, Vec<u8>), String> {
        let mut last = None;
        for step in [1, 2, 3, 7, 4096] {
            let mut src = Slice { input, buf: ReadBuf::new(16), step };
            let mut dec = Decoder::new(framing, limit, LIMITS);
            let mut body = Vec::new();
            let res = loop {
                let mut out = [0u8; 5000];
                match dec.read(&mut src, &mut out) {
                    Ok(0) => {
                        let mut rest = src.buf.data().to_vec();
                        rest.extend_from_slice(src.input);
                        break Ok((body, rest));
                    }
                    Ok(n) => body.extend_from_slice(&out[..n]),
                    Err(e) => break Err(e.to_io().to_string()),
                }
            };
            if let Some(prev) = &last {
                assert_eq!(prev, &res, "fill size {step} disagrees");
            }
            last = Some(res);
        }
        last.unwrap()
    }

    #[test]
    fn chunked_bodies_decode_and_leave_what_follows() {
        let (body, rest) = decode(
            Framing::Chunked,
            b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nT: v\r\n\r\nNEXT",
            100,
        )
        .unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(rest, b"NEXT");
    }

    #[test]
    fn length_bodies_stop_at_the_length() {
        let (body, rest) = decode(Framing::Length(5), b"helloGET", 100).unwrap();
        assert_eq!((&body[..], &rest[..]), (&b"hello"[..], &b"GET"[..]));
        let big = vec![7u8; 10_000];
        let (body, _) = decode(Framing::Length(10_000), &big, 20_000).unwrap();
        assert_eq!(body, big);
    }

    #[test]
    fn bad_framing_is_an_error() {
        for bad in [
            &b"5\r\nhelloX\r\n0\r\n\r\n"[..],
            b"5\nhello\r\n0\r\n\r\n",
            b"z\r\n",
            b"5\rx\n",
            b"ffffffffffffffffff\r\n",
            b"0\r\n bad\r\n\r\n",
            b"0\r\nnocolon\r\n\r\n",
        ] {
            let err = decode(Framing::Chunked, bad, 1 << 30).unwrap_err();
            assert!(err.contains("malformed"), "{:?}: {err}", String::from_utf8_lossy(bad));
        }
        let long_line = [&[b'1'; 80][..], b"\r\n"].concat();
        assert!(decode(Framing::Chunked, &long_line, 1 << 30).unwrap_err().contains("too long"));
    }

    /// Found by cargo fuzz: a trailer line that used the whole trailer budget left the
    /// budget's remainder to underflow at the next line (a panic in debug builds, and no
    /// bound on trailers in release).
    #[test]
    fn trailer_budget_cannot_underflow() {
        let exact = format!("0\r\nT:{}\r\n\r\n", "v".repeat(254));
        assert!(decode(Framing::Chunked, exact.as_bytes(), 100).is_ok());
        let over = format!("0\r\nT:{}\r\nU: w\r\n\r\n", "v".repeat(254));
        assert!(decode(Framing::Chunked, over.as_bytes(), 100).unwrap_err().contains("too long"));
    }

    #[test]
    fn limits_and_truncation() {
        assert!(decode(Framing::Chunked, b"a\r\n0123456789\r\n0\r\n\r\n", 9)
            .unwrap_err()
            .contains("limit of 9"));
        assert!(decode(Framing::Chunked, b"5\r\nhel", 100).unwrap_err().contains("closed"));
        assert!(decode(Framing::Length(5), b"hel", 100).unwrap_err().contains("closed"));
        let (body, _) = decode(Framing::UntilEof, b"all of it", 100).unwrap();
        assert_eq!(body, b"all of it");
    }
}
