//! One server connection: the loop that reads requests, calls the handler and writes the
//! responses, in order, until either side is done.
//!
//! Each turn of the loop:
//!
//! 1. **Head.** Parse the head from the read buffer, reading more while it is incomplete. The
//!    first byte of a request has [`Limits::keep_alive_timeout`] to arrive (on a new
//!    connection, [`Limits::header_timeout`] from the accept); from then on the whole head
//!    has `header_timeout`. A refused head gets its status and the connection closes.
//! 2. **Handler.** The handler gets the request, with a body that reads through this
//!    connection (sending `100 Continue` first, if the client asked). A panic is caught: 500
//!    and close.
//! 3. **Response.** Written into the write buffer. The buffer goes out when it is large, or
//!    before the connection would wait for input, so the responses to pipelined requests
//!    leave in one write.
//! 4. **Rest of the body.** Whatever the handler did not read is read and dropped, up to
//!    [`Limits::max_drain`]; past that, or if the framing failed, the connection closes.
//!
//! A connection that closes with input it did not read shuts down its write side and reads
//! for a moment ([`LINGER`]) before it closes, so that the kernel does not answer the unread
//! bytes with a reset that would destroy the response in flight.

use std::io::{self, IoSlice};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::SeqCst};
use std::time::{Duration, Instant};

use http::{Method, StatusCode, Version};

use super::body::{BodyError, Decoder, Framing, ReadBuf, Source};
use super::date::push_date;
use super::head::{self, Head};
use super::request::{BodySource, RequestBody};
use super::response::{push_content_length, push_fields, push_status_line, BodyWriter, Mode, Sink};
use super::{Limits, Request, Response};
use crate::socket::Deadline;

/// What a connection reads from and writes to: a `TcpStream`, or memory for the fuzzer.
pub(crate) trait Transport {
    fn read_until(&self, buf: &mut [u8], deadline: Deadline) -> io::Result<usize>;
    /// Writes from `a` then `b`; `b` may be empty.
    fn write_until(&self, a: &[u8], b: &[u8], deadline: Deadline) -> io::Result<usize>;
    fn shutdown_write(&self);
}

impl Transport for crate::TcpStream {
    fn read_until(&self, buf: &mut [u8], deadline: Deadline) -> io::Result<usize> {
        crate::TcpStream::read_until(self, buf, deadline)
    }

    fn write_until(&self, a: &[u8], b: &[u8], deadline: Deadline) -> io::Result<usize> {
        // `send` where one buffer does: it is the cheaper call.
        match (a.is_empty(), b.is_empty()) {
            (_, true) => crate::TcpStream::write_until(self, a, deadline),
            (true, false) => crate::TcpStream::write_until(self, b, deadline),
            (false, false) => {
                self.write_vectored_until(&[IoSlice::new(a), IoSlice::new(b)], deadline)
            }
        }
    }

    fn shutdown_write(&self) {
        // The peer may be gone already; closing follows either way.
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

/// How long a closing connection keeps reading unread input, and how much it reads.
pub(crate) const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;

/// The first size of a connection's read buffer; it grows up to the head limit.
const READ_BUF: usize = 4096;

/// Written-but-unsent bytes beyond this go out before the next response is built.
const WRITE_HIGH: usize = 64 * 1024;

/// A connection's part in a graceful shutdown, shared with the server.
///
/// The connection stores `IDLE` before it waits for the next request and then reads the
/// server's `draining` flag; the server stores `draining` and then moves each `IDLE`
/// connection to `CLOSED` and shuts its socket down. Both sides use `SeqCst`, so at least one
/// sees the other's store: either the connection sees `draining` and closes, or the server
/// sees `IDLE` and its shutdown wakes the connection's read. A connection that gets a byte
/// moves `IDLE` → `BUSY`; if the server got there first, the request is dropped unread, as
/// when any idle keep-alive connection closes.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    state: AtomicU8,
}

pub(crate) const BUSY: u8 = 0;
pub(crate) const IDLE: u8 = 1;
pub(crate) const CLOSED: u8 = 2;

impl Lifecycle {
    /// The server's side: `true` if the connection was idle and is now the server's to close.
    pub(crate) fn close_if_idle(&self) -> bool {
        self.state.compare_exchange(IDLE, CLOSED, SeqCst, SeqCst).is_ok()
    }
}

/// The server state a connection watches.
#[derive(Clone, Copy)]
pub(crate) struct Watch<'a> {
    pub(crate) life: &'a Lifecycle,
    pub(crate) draining: &'a AtomicBool,
}

/// The handler, as a connection calls it.
pub(crate) type Handler<'h> = &'h (dyn Fn(Request<'_>) -> Response + Sync);

/// Serves requests on `io` until the connection ends. `accepted` starts the first request's
/// header timeout.
pub(crate) fn serve<T: Transport>(
    io: &T,
    limits: &Limits,
    watch: Option<Watch<'_>>,
    accepted: Instant,
    handler: Handler<'_>,
) {
    let mut conn = Conn {
        io,
        limits,
        watch,
        rbuf: ReadBuf::new(READ_BUF),
        wbuf: Vec::with_capacity(READ_BUF),
        phase: Phase::Head(Some(accepted + limits.header_timeout)),
        body: Decoder::new(Framing::Empty, 0, limits.chunk()),
        body_failed: None,
        continue_pending: false,
        broken: false,
    };
    let mut first = true;
    loop {
        let head = match conn.next_head(first) {
            Ok(Some(head)) => head,
            Ok(None) => break,
            Err(status) => {
                conn.refuse(status);
                return;
            }
        };
        first = false;
        if !conn.serve_one(head, handler) {
            break;
        }
    }
    conn.close();
}

/// Where the deadline of the next read comes from.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Reading a head: the deadline is fixed once the head's first read needs it, so a
    /// pipelined head that is in the buffer already costs no clock read.
    Head(Option<Instant>),
    /// Reading a body: each read has the read timeout.
    Body,
}

struct Conn<'a, T> {
    io: &'a T,
    limits: &'a Limits,
    watch: Option<Watch<'a>>,
    rbuf: ReadBuf,
    wbuf: Vec<u8>,
    phase: Phase,
    /// The current request's body.
    body: Decoder,
    /// The status the server sends in place of the handler's response: the body was bad.
    body_failed: Option<StatusCode>,
    /// `100 Continue` is owed before the first body read.
    continue_pending: bool,
    /// The transport failed: nothing more can be sent.
    broken: bool,
}

impl<T: Transport> Conn<'_, T> {
    /// The next request head; `Ok(None)` when the connection should close without a word
    /// (the peer closed, went idle too long, or the server is draining).
    fn next_head(&mut self, first: bool) -> Result<Option<Head>, StatusCode> {
        if !first && !self.rbuf.is_empty() {
            // A pipelined request: its head has the header timeout from its first read.
            self.phase = Phase::Head(None);
        }
        loop {
            if !self.rbuf.is_empty() {
                if let Some((head, len)) = head::parse(self.rbuf.data(), self.limits)? {
                    self.rbuf.consume(len);
                    return Ok(Some(head));
                }
            } else {
                // A new connection's first request has the header timeout from the accept;
                // a later one the keep-alive timeout for its first bytes, and the header
                // timeout from its next read (a head that came whole reads no clock).
                let (wait, head) = match self.phase {
                    Phase::Head(Some(accepted)) if first => {
                        (Deadline::At(accepted), Some(accepted))
                    }
                    _ => (Deadline::After(self.limits.keep_alive_timeout), None),
                };
                if !self.wait_idle(wait) {
                    return Ok(None);
                }
                self.phase = Phase::Head(head);
                continue;
            }
            match self.fill() {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut && !self.rbuf.is_empty() => {
                    return Err(StatusCode::REQUEST_TIMEOUT)
                }
                Err(e) if e.kind() == io::ErrorKind::OutOfMemory => {
                    return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
                }
                Err(_) => {
                    self.broken = true;
                    return Ok(None);
                }
            }
        }
    }

    /// Waits until `deadline` for the first bytes of the next request; `false` if the
    /// connection should close instead.
    fn wait_idle(&mut self, deadline: Deadline) -> bool {
        if self.flush().is_err() {
            return false;
        }
        if let Some(w) = self.watch {
            // Pairs with the server's store of `draining` (see `Lifecycle`).
            w.life.state.store(IDLE, SeqCst);
            if w.draining.load(SeqCst) {
                return false;
            }
        }
        let got = matches!(self.read_more(deadline), Ok(n) if n > 0);
        if let Some(w) = self.watch {
            if w.life.state.compare_exchange(IDLE, BUSY, SeqCst, SeqCst).is_err() {
                return false;
            }
        }
        got
    }

    /// Calls the handler for one request and writes its response; `true` if the connection
    /// can carry another request.
    fn serve_one(&mut self, head: Head, handler: Handler<'_>) -> bool {
        let Head { method, uri, version, headers, framing, keep_alive, expect_continue } = head;
        self.body = Decoder::new(framing, self.limits.max_body, self.limits.chunk());
        self.body_failed = None;
        self.continue_pending = expect_continue;
        self.phase = Phase::Body;
        let is_head = method == Method::HEAD;
        // weft does not tunnel: after its answer to CONNECT, the connection ends.
        let keep_alive = keep_alive && method != Method::CONNECT;

        let mut req = Request::new(RequestBody::new(self));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.version_mut() = version;
        *req.headers_mut() = headers;
        let response = catch_unwind(AssertUnwindSafe(|| handler(req)));

        if self.broken {
            return false;
        }
        let Ok(response) = response else {
            self.refuse(StatusCode::INTERNAL_SERVER_ERROR);
            return false;
        };
        if let Some(status) = self.body_failed {
            self.refuse(status);
            return false;
        }
        if response.status().is_informational() {
            // A 1xx is not a final answer, and weft does not switch protocols: the request
            // has no response the handler could mean.
            self.refuse(StatusCode::INTERNAL_SERVER_ERROR);
            return false;
        }
        let draining = self.watch.is_some_and(|w| w.draining.load(SeqCst));
        // A body the client holds back for `100 Continue`, or one too long to drain, means
        // the connection cannot be read past it.
        let unread_held = self.continue_pending && !self.body.is_done();
        let too_long = self.body.remaining_length().is_some_and(|n| n > self.limits.max_drain);
        let keep = keep_alive && !draining && !unread_held && !too_long;
        match self.write_response(response, version, is_head, keep) {
            Ok(true) => {}
            Ok(false) => return false,
            Err(_) => {
                self.broken = true;
                return false;
            }
        }
        let max_drain = self.limits.max_drain;
        matches!(self.with_body(|body, conn| body.skip(conn, max_drain)), Ok(true))
    }

    /// Writes `response` into the write buffer (sending it if it is large); `Ok(true)` if the
    /// connection stays open after it.
    fn write_response(
        &mut self,
        response: Response,
        version: Version,
        is_head: bool,
        mut keep: bool,
    ) -> io::Result<bool> {
        let (parts, body) = response.into_parts();
        let status = parts.status;
        push_status_line(&mut self.wbuf, status);
        let fields = push_fields(&mut self.wbuf, &parts.headers);
        keep &= !fields.close;
        if !fields.has_date {
            self.wbuf.extend_from_slice(b"date: ");
            push_date(&mut self.wbuf);
            self.wbuf.extend_from_slice(b"\r\n");
        }
        let bodiless = status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        match body.into_parts() {
            Ok(bytes) => {
                if !bodiless {
                    push_content_length(&mut self.wbuf, bytes.len() as u64);
                }
                self.push_connection(version, keep);
                if is_head || bodiless || bytes.is_empty() {
                } else if bytes.len() <= WRITE_HIGH - self.wbuf.len().min(WRITE_HIGH) {
                    self.wbuf.extend_from_slice(&bytes);
                } else {
                    let res = write_all(
                        self.io,
                        &self.wbuf,
                        &bytes,
                        Deadline::After(self.limits.write_timeout),
                    );
                    self.wbuf.clear();
                    res?;
                }
            }
            Err(stream) => {
                let mode = if is_head || bodiless {
                    Mode::Discard
                } else if version == Version::HTTP_11 {
                    Mode::Chunked
                } else {
                    keep = false;
                    Mode::Raw
                };
                if !bodiless && version == Version::HTTP_11 {
                    self.wbuf.extend_from_slice(b"transfer-encoding: chunked\r\n");
                }
                self.push_connection(version, keep);
                if mode != Mode::Discard {
                    let mut writer = BodyWriter::new(self, mode);
                    match catch_unwind(AssertUnwindSafe(|| stream(&mut writer))) {
                        Ok(Ok(())) => writer.finish()?,
                        // The head is gone and the body cut short: only closing can say so.
                        Ok(Err(_)) | Err(_) => {
                            let _ = self.flush();
                            return Ok(false);
                        }
                    }
                }
            }
        }
        if self.wbuf.len() >= WRITE_HIGH {
            self.flush()?;
        }
        Ok(keep)
    }

    /// Ends the head with the `Connection` field it needs, and the blank line.
    fn push_connection(&mut self, version: Version, keep: bool) {
        if !keep {
            self.wbuf.extend_from_slice(b"connection: close\r\n");
        } else if version == Version::HTTP_10 {
            self.wbuf.extend_from_slice(b"connection: keep-alive\r\n");
        }
        self.wbuf.extend_from_slice(b"\r\n");
    }

    /// Answers with `status` and closes.
    fn refuse(&mut self, status: StatusCode) {
        if !self.broken {
            push_status_line(&mut self.wbuf, status);
            self.wbuf.extend_from_slice(b"date: ");
            push_date(&mut self.wbuf);
            self.wbuf.extend_from_slice(b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
        self.close();
    }

    /// Sends what is buffered and closes, lingering if input is left unread.
    fn close(&mut self) {
        if self.broken || self.flush().is_err() {
            return;
        }
        let mut scratch = [0u8; 4096];
        let mut read = 0;
        if self.rbuf.is_empty() && self.body.is_done() {
            // Nothing unread that we know of: one look (a deadline already passed means one
            // try, no wait) tells whether the peer sent more.
            match self.io.read_until(&mut scratch, Deadline::After(Duration::ZERO)) {
                Ok(n) if n > 0 => read = n,
                _ => return,
            }
        }
        self.io.shutdown_write();
        let deadline = Deadline::At(Instant::now() + LINGER);
        while read < LINGER_BYTES {
            match self.io.read_until(&mut scratch, deadline) {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    }

    /// Runs `f` on the body decoder, with the connection as its source.
    fn with_body<R>(&mut self, f: impl FnOnce(&mut Decoder, &mut Self) -> R) -> R {
        let empty = Decoder::new(Framing::Empty, 0, self.limits.chunk());
        let mut body = std::mem::replace(&mut self.body, empty);
        let res = f(&mut body, self);
        self.body = body;
        res
    }

    /// Sends what is buffered for writing, then reads more into the read buffer.
    fn read_more(&mut self, deadline: Deadline) -> io::Result<usize> {
        self.flush()?;
        let max = self.limits.max_head.max(self.limits.max_request_line) + 1;
        let spare = self.rbuf.spare(max);
        if spare.is_empty() {
            return Err(io::Error::new(io::ErrorKind::OutOfMemory, "read buffer full"));
        }
        let n = self.io.read_until(spare, deadline)?;
        self.rbuf.filled(n);
        Ok(n)
    }

    /// Sends the write buffer.
    fn flush(&mut self) -> io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let res = write_all(self.io, &self.wbuf, &[], Deadline::After(self.limits.write_timeout));
        self.wbuf.clear();
        if res.is_err() {
            self.broken = true;
        }
        res
    }
}

/// Writes `a` then `b`, whole, each write waiting until `deadline` at most (a relative
/// deadline counts from each write's first wait).
fn write_all(
    io: &impl Transport,
    mut a: &[u8],
    mut b: &[u8],
    deadline: Deadline,
) -> io::Result<()> {
    while !a.is_empty() || !b.is_empty() {
        let n = io.write_until(a, b, deadline)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_a = n.min(a.len());
        a = &a[from_a..];
        b = &b[n - from_a..];
    }
    Ok(())
}

impl<T: Transport> Source for Conn<'_, T> {
    fn buf(&mut self) -> &mut ReadBuf {
        &mut self.rbuf
    }

    /// Sends pending output first: the peer may wait for it before it sends more.
    fn fill(&mut self) -> io::Result<usize> {
        let deadline = match &mut self.phase {
            Phase::Head(d) => {
                Deadline::At(*d.get_or_insert_with(|| Instant::now() + self.limits.header_timeout))
            }
            Phase::Body => Deadline::After(self.limits.read_timeout),
        };
        self.read_more(deadline)
    }

    fn read_direct(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.flush()?;
        self.io.read_until(out, Deadline::After(self.limits.read_timeout))
    }
}

impl<T: Transport> BodySource for Conn<'_, T> {
    fn read_body(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.continue_pending {
            self.continue_pending = false;
            self.wbuf.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        self.with_body(|body, conn| body.read(conn, out)).map_err(|e| {
            match &e {
                BodyError::Malformed(_) => self.body_failed = Some(StatusCode::BAD_REQUEST),
                BodyError::TooLarge(_) => self.body_failed = Some(StatusCode::PAYLOAD_TOO_LARGE),
                BodyError::Io(err) if err.kind() == io::ErrorKind::TimedOut => {
                    self.body_failed = Some(StatusCode::REQUEST_TIMEOUT)
                }
                BodyError::Io(_) => self.broken = true,
            }
            e.to_io()
        })
    }

    fn content_length(&self) -> Option<u64> {
        self.body.remaining_length()
    }

    fn too_large(&mut self, _limit: usize) {
        self.body_failed = Some(StatusCode::PAYLOAD_TOO_LARGE);
    }
}

impl<T: Transport> Sink for Conn<'_, T> {
    fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.wbuf
    }

    fn flush(&mut self) -> io::Result<()> {
        Conn::flush(self)
    }
}
