//! [`Client`]: a small blocking HTTP/1.1 client, for handlers that call other services, and
//! for tests and load generators.
//!
//! A request, step by step:
//!
//! 1. Take an idle connection to the URI's host and port from the pool, or connect (with the
//!    connect timeout). Pooled connections idle for longer than the idle timeout are dropped.
//! 2. Write the head and the body: bytes with `Content-Length`, a [`Body::stream`] chunked.
//! 3. Read the response head (skipping `1xx` interim responses) and the whole body, whatever
//!    its framing, under the body limit. Every read and write has the request's deadline.
//! 4. If both sides allow keep-alive and the body's end was framed (not the close of the
//!    connection), the connection goes back to the pool.
//!
//! **The retry rule.** A pooled connection may have been closed by the server while it sat
//! idle; the request then fails before a single byte of response arrives. Such a request is
//! sent again, once, on a new connection, if its body can be sent again (bytes, not a
//! stream). The server cannot have acted on it: it closed the connection without reading a
//! request from it, or at least without answering one. A failure on a new connection, or
//! after response bytes arrived, is returned as it is.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
use weft_runtime::sync::Mutex;

use super::body::{BodyError, ChunkLimits, Decoder, Framing, ReadBuf, Source};
use super::response::{push_content_length, push_fields, BodyWriter, Mode, Sink};
use super::wire::{self, Coding};
use super::Body;
use crate::socket::Deadline;
use crate::{TcpStream, ToSocketAddrs};

/// The most header fields a response may have.
const MAX_FIELDS: usize = 100;
/// The largest response head, in bytes.
const MAX_HEAD: usize = 64 * 1024;

/// A blocking HTTP/1.1 client with a pool of keep-alive connections per host.
///
/// Clones share one pool, so one client can serve every coroutine of a program. Only `http`
/// URIs are supported (no TLS). The response body is read whole, into the `Vec<u8>` of the
/// returned [`http::Response`].
///
/// ```
/// use weft::net::http::{Client, Request, Response, Server};
///
/// let server = Server::bind("127.0.0.1:0")?;
/// let url = format!("http://{}/", server.local_addr()?);
/// let stop = server.shutdown_handle();
/// let serving = weft::spawn(move || server.serve(|_req: Request| Response::new("hi".into())));
///
/// let client = Client::new().timeout(std::time::Duration::from_secs(5));
/// let resp = client.get(&url)?;
/// assert_eq!(resp.status(), 200);
/// assert_eq!(resp.body(), b"hi");
///
/// stop.shutdown(std::time::Duration::from_secs(1));
/// serving.join().unwrap()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Client {
    config: Arc<Config>,
    pool: Arc<Mutex<Pool>>,
}

/// Idle connections by (host, port), the most recently used last.
type Pool = HashMap<(String, u16), Vec<Idle>>;

/// A response head: status, version, fields.
type ResponseHead = (StatusCode, Version, HeaderMap);

#[derive(Clone, Debug)]
struct Config {
    connect_timeout: Duration,
    timeout: Duration,
    max_idle_per_host: usize,
    idle_timeout: Duration,
    max_response_body: u64,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

impl Client {
    /// A client with a 10 s connect timeout, a 30 s timeout per request, up to 32 idle
    /// connections per host kept for 60 s, and a 64 MiB limit on response bodies.
    pub fn new() -> Client {
        let config = Config {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_idle_per_host: 32,
            idle_timeout: Duration::from_secs(60),
            max_response_body: 64 * 1024 * 1024,
        };
        Client { config: Arc::new(config), pool: Arc::default() }
    }

    fn with(mut self, f: impl FnOnce(&mut Config)) -> Client {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// How long connecting may take.
    pub fn connect_timeout(self, dur: Duration) -> Client {
        self.with(|c| c.connect_timeout = dur)
    }

    /// How long a whole request may take, from the connect to the last byte of the response.
    pub fn timeout(self, dur: Duration) -> Client {
        self.with(|c| c.timeout = dur)
    }

    /// How many idle connections to one host the pool keeps (0 turns reuse off).
    pub fn max_idle_per_host(self, n: usize) -> Client {
        self.with(|c| c.max_idle_per_host = n)
    }

    /// How long a connection may sit idle in the pool before it is dropped.
    pub fn idle_timeout(self, dur: Duration) -> Client {
        self.with(|c| c.idle_timeout = dur)
    }

    /// The largest response body accepted, in bytes.
    pub fn max_response_body(self, bytes: u64) -> Client {
        self.with(|c| c.max_response_body = bytes)
    }

    /// Sends `GET url`.
    ///
    /// # Errors
    ///
    /// As [`request`](Client::request); `InvalidInput` for a URL that does not parse.
    pub fn get(&self, url: &str) -> io::Result<http::Response<Vec<u8>>> {
        self.send(Method::GET, url, Body::empty())
    }

    /// Sends a request with `method`, `url` and `body`, and no fields of its own.
    ///
    /// ```no_run
    /// use weft::net::http::{Client, Method};
    ///
    /// let resp = Client::new().send(Method::POST, "http://127.0.0.1:8080/upload", "data")?;
    /// println!("{}", resp.status());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`request`](Client::request); `InvalidInput` for a URL that does not parse.
    pub fn send(
        &self,
        method: Method,
        url: &str,
        body: impl Into<Body>,
    ) -> io::Result<http::Response<Vec<u8>>> {
        let uri: Uri = url.parse().map_err(|e| invalid_input(format!("bad URL {url:?}: {e}")))?;
        let mut req = http::Request::new(body.into());
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        self.request(req)
    }

    /// Sends `req` and reads the whole response.
    ///
    /// The URI must be absolute (`http://host[:port]/path`); a `Host` field is added unless
    /// the request has one. A [`Body::stream`] body is sent chunked.
    ///
    /// # Errors
    ///
    /// - `InvalidInput` for a URI that is not an absolute `http` URI;
    /// - the error of the connect (`ConnectionRefused`, say), or `TimedOut` once the connect
    ///   timeout or the request's timeout has passed;
    /// - `InvalidData` for a malformed response or a body over the limit;
    /// - `UnexpectedEof` if the server closes in the middle of the response;
    /// - the error a streamed request body returns.
    pub fn request(&self, req: http::Request<Body>) -> io::Result<http::Response<Vec<u8>>> {
        let deadline = Instant::now() + self.config.timeout;
        let (parts, body) = req.into_parts();
        let target = Target::of(&parts.uri)?;
        let head = request_head(&parts.method, &parts.uri, &parts.headers, &target, &body);
        let mut body = Some(body);
        let mut from_pool = true;
        loop {
            let replayable = body.as_ref().is_some_and(|b| b.len().is_some());
            let idle = if from_pool { self.take_idle(&target) } else { None };
            let (mut conn, reused) = match idle {
                Some(conn) => (conn, true),
                None => (self.connect(&target, deadline)?, false),
            };
            conn.deadline = deadline;
            let to_send = match body.as_ref().and_then(Body::try_clone) {
                Some(again) => again,
                None => body.take().unwrap_or_default(),
            };
            match conn.exchange(&head, to_send, &parts.method, &self.config) {
                Ok((resp, keep)) => {
                    if keep {
                        self.put_idle(target, conn);
                    }
                    return Ok(resp);
                }
                Err(Failure { error, before_response }) => {
                    if reused && before_response && replayable && is_stale_close(&error) {
                        // Once, and on a new connection: the next pooled one may be stale too.
                        from_pool = false;
                        continue;
                    }
                    return Err(error);
                }
            }
        }
    }

    fn take_idle(&self, target: &Target) -> Option<Conn> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let idle = pool.get_mut(&target.key)?;
        while let Some(entry) = idle.pop() {
            if entry.since.elapsed() < self.config.idle_timeout {
                return Some(entry.conn);
            }
        }
        None
    }

    fn put_idle(&self, target: Target, conn: Conn) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let idle = pool.entry(target.key).or_default();
        if idle.len() < self.config.max_idle_per_host {
            idle.push(Idle { conn, since: Instant::now() });
        }
    }

    fn connect(&self, target: &Target, deadline: Instant) -> io::Result<Conn> {
        let mut last = None;
        for addr in (target.key.0.as_str(), target.key.1).to_socket_addrs()? {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            match TcpStream::connect_timeout(&addr, left.min(self.config.connect_timeout)) {
                Ok(stream) => {
                    // Requests are written whole; Nagle would only delay their last segment.
                    let _ = stream.set_nodelay(true);
                    return Ok(Conn {
                        stream,
                        rbuf: ReadBuf::new(4096),
                        wbuf: Vec::new(),
                        deadline,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| invalid_input(format!("{} resolved to no address", target.key.0))))
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle: usize =
            self.pool.lock().unwrap_or_else(|e| e.into_inner()).values().map(Vec::len).sum();
        f.debug_struct("Client").field("config", &self.config).field("idle", &idle).finish()
    }
}

/// Where a request goes: host and port (the pool's key), and the `Host` field's value.
struct Target {
    key: (String, u16),
    host_field: String,
}

impl Target {
    fn of(uri: &Uri) -> io::Result<Target> {
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(invalid_input(format!("{other}:// is not supported, only http://")))
            }
            None => return Err(invalid_input(format!("{uri} is not an absolute http:// URI"))),
        }
        let authority =
            uri.authority().ok_or_else(|| invalid_input(format!("{uri} has no host")))?;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = authority.port_u16().unwrap_or(80);
        Ok(Target { key: (host, port), host_field: authority.as_str().to_owned() })
    }
}

/// The request line and fields, with the `Host` and framing fields the body needs.
fn request_head(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    target: &Target,
    body: &Body,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(uri.path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    let fields = push_fields(&mut head, headers);
    if !fields.has_host {
        head.extend_from_slice(b"host: ");
        head.extend_from_slice(target.host_field.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if fields.close {
        head.extend_from_slice(b"connection: close\r\n");
    }
    match body.len() {
        None => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        // A GET or HEAD without a body says nothing about one.
        Some(0)
            if matches!(*method, Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS) => {
        }
        Some(n) => push_content_length(&mut head, n),
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// A request that failed, and whether it failed before any byte of the response arrived.
struct Failure {
    error: io::Error,
    before_response: bool,
}

impl Failure {
    fn early(error: io::Error) -> Failure {
        Failure { error, before_response: true }
    }

    fn late(error: io::Error) -> Failure {
        Failure { error, before_response: false }
    }
}

/// What a server that closed an idle keep-alive connection looks like to the next request.
fn is_stale_close(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(e.kind(), UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe)
}

/// One connection to a server.
struct Conn {
    stream: TcpStream,
    rbuf: ReadBuf,
    wbuf: Vec<u8>,
    /// The deadline of the request in progress.
    deadline: Instant,
}

impl Conn {
    /// Sends one request and reads its response; the response, and whether the connection
    /// can carry another request.
    fn exchange(
        &mut self,
        head: &[u8],
        body: Body,
        method: &Method,
        config: &Config,
    ) -> Result<(http::Response<Vec<u8>>, bool), Failure> {
        self.wbuf.clear();
        self.wbuf.extend_from_slice(head);
        match body.into_parts() {
            Ok(bytes) => {
                self.wbuf.extend_from_slice(&bytes);
                Sink::flush(self).map_err(Failure::early)?;
            }
            Err(stream) => {
                let mut writer = BodyWriter::new(self, Mode::Chunked);
                stream(&mut writer).map_err(Failure::late)?;
                writer.finish().map_err(Failure::late)?;
                Sink::flush(self).map_err(Failure::late)?;
            }
        }
        let (status, version, headers) = self.read_head()?;
        let framing = response_framing(method, status, &headers).map_err(Failure::late)?;
        let chunk = ChunkLimits { line: 4096, trailers: MAX_HEAD };
        let mut decoder = Decoder::new(framing, config.max_response_body, chunk);
        let mut data = Vec::new();
        let mut scratch = vec![0u8; 16 * 1024];
        loop {
            match decoder.read(self, &mut scratch) {
                Ok(0) => break,
                Ok(n) => data.extend_from_slice(&scratch[..n]),
                Err(e) => return Err(Failure::late(body_error(e))),
            }
        }
        let close = headers
            .get_all(http::header::CONNECTION)
            .iter()
            .any(|v| wire::has_token(v.as_bytes(), "close"));
        let keep_alive = headers
            .get_all(http::header::CONNECTION)
            .iter()
            .any(|v| wire::has_token(v.as_bytes(), "keep-alive"));
        let keep = !close
            && framing != Framing::UntilEof
            && (version == Version::HTTP_11 || keep_alive)
            && self.rbuf.is_empty();
        let mut resp = http::Response::new(data);
        *resp.status_mut() = status;
        *resp.version_mut() = version;
        *resp.headers_mut() = headers;
        Ok((resp, keep))
    }

    /// Reads response heads until a final (non-1xx) one.
    fn read_head(&mut self) -> Result<ResponseHead, Failure> {
        let mut any_byte = false;
        loop {
            if !self.rbuf.is_empty() {
                any_byte = true;
                if let Some((head, len)) =
                    parse_response_head(self.rbuf.data()).map_err(Failure::late)?
                {
                    self.rbuf.consume(len);
                    if head.0.is_informational() {
                        continue;
                    }
                    return Ok(head);
                }
            }
            let fail = |e| if any_byte { Failure::late(e) } else { Failure::early(e) };
            match self.fill() {
                Ok(0) => {
                    return Err(fail(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "server closed the connection before the response ended",
                    )))
                }
                Ok(_) => {}
                Err(e) => return Err(fail(e)),
            }
        }
    }
}

/// Parses a response head at the start of `buf`: `Ok(None)` if incomplete.
fn parse_response_head(buf: &[u8]) -> io::Result<Option<(ResponseHead, usize)>> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut resp = httparse::Response::new(&mut fields);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) => {
            return Err(invalid_data("response head too large".into()))
        }
        Err(e) => return Err(invalid_data(format!("malformed response head: {e}"))),
    };
    let code = resp.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| invalid_data(format!("bad status {code}")))?;
    let version = if resp.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    let mut headers = HeaderMap::with_capacity(resp.headers.len());
    for field in resp.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|e| invalid_data(format!("bad field name: {e}")))?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|e| invalid_data(format!("bad field value: {e}")))?;
        headers.append(name, value);
    }
    Ok(Some(((status, version, headers), len)))
}

/// How the response body is delimited (RFC 9112 §6.3).
fn response_framing(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
) -> io::Result<Framing> {
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    let codings = headers.get_all(http::header::TRANSFER_ENCODING);
    if codings.iter().next().is_some() {
        return match wire::transfer_coding(codings.iter().map(HeaderValue::as_bytes)) {
            Coding::Chunked => Ok(Framing::Chunked),
            _ => Err(invalid_data("unsupported transfer coding in response".into())),
        };
    }
    let mut lengths = headers.get_all(http::header::CONTENT_LENGTH).iter();
    match (lengths.next(), lengths.next()) {
        (None, _) => Ok(Framing::UntilEof),
        (Some(v), None) => wire::parse_length(v.as_bytes())
            .map(Framing::Length)
            .ok_or_else(|| invalid_data("bad content-length in response".into())),
        (Some(_), Some(_)) => Err(invalid_data("several content-length fields in response".into())),
    }
}

fn body_error(e: BodyError) -> io::Error {
    match e {
        BodyError::Io(e) => e,
        other => other.to_io(),
    }
}

impl Source for Conn {
    fn buf(&mut self) -> &mut ReadBuf {
        &mut self.rbuf
    }

    fn fill(&mut self) -> io::Result<usize> {
        let spare = self.rbuf.spare(MAX_HEAD + 1);
        if spare.is_empty() {
            return Err(invalid_data("response head too large".into()));
        }
        let n = self.stream.read_until(spare, Deadline::At(self.deadline))?;
        self.rbuf.filled(n);
        Ok(n)
    }

    fn read_direct(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.stream.read_until(out, Deadline::At(self.deadline))
    }
}

impl Sink for Conn {
    fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.wbuf
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut sent = 0;
        while sent < self.wbuf.len() {
            match self.stream.write_until(&self.wbuf[sent..], Deadline::At(self.deadline)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => sent += n,
                Err(e) => {
                    self.wbuf.clear();
                    return Err(e);
                }
            }
        }
        self.wbuf.clear();
        Ok(())
    }
}

fn invalid_input(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn invalid_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}
