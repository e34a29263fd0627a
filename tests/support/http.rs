//! A server under test and a raw HTTP/1.1 client for `tests/http_*.rs`.
//!
//! Requests go out as raw bytes over a std `TcpStream`, exactly as written in each test, and
//! responses are read back with `httparse` (not the server's own parser), with a read timeout
//! so that a missing response fails the test instead of hanging it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use weft::net::http::{Request, Response, Server, ShutdownHandle};

/// How long a test waits for any single read from the server.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A server serving on its own coroutine; shut down (and joined) on drop.
pub struct Running {
    pub addr: SocketAddr,
    pub stop: ShutdownHandle,
    serving: Option<weft::JoinHandle<io::Result<()>>>,
}

/// Starts `server` with `handler` on the default runtime.
pub fn start<F>(server: Server, handler: F) -> Running
where
    F: Fn(Request<'_>) -> Response + Send + Sync + 'static,
{
    let addr = server.local_addr().expect("a bound server has an address");
    let stop = server.shutdown_handle();
    let serving = weft::spawn(move || server.serve(handler));
    Running { addr, stop, serving: Some(serving) }
}

impl Running {
    /// Shuts the server down with `grace` and waits for `serve` to return.
    pub fn shutdown(mut self, grace: Duration) -> io::Result<()> {
        self.stop.shutdown(grace);
        self.serving.take().expect("joined once").join().expect("serve does not panic")
    }

    /// A new connection to the server, with the read timeout set.
    pub fn connect(&self) -> Conn {
        Conn::new(TcpStream::connect(self.addr).expect("the server accepts"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(serving) = self.serving.take() {
            self.stop.shutdown(Duration::from_secs(1));
            let _ = serving.join();
        }
    }
}

/// One response as read off the wire.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body was chunked and ended with its last chunk.
    pub chunked_complete: Option<bool>,
}

impl Reply {
    /// The first field named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the response says the connection closes after it.
    pub fn says_close(&self) -> bool {
        self.header("connection").is_some_and(|v| v.to_ascii_lowercase().contains("close"))
    }
}

/// A client connection that reads responses with a buffer of its own.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        stream.set_read_timeout(Some(READ_TIMEOUT)).expect("read timeout");
        Conn { stream, buf: Vec::new() }
    }

    pub fn send(&mut self, raw: &[u8]) -> io::Result<()> {
        self.stream.write_all(raw)
    }

    /// Reads more from the socket into the buffer; `Ok(0)` at end of stream.
    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads one response; `Ok(None)` if the server closed before sending any byte of one.
    /// `head_request` says the request was HEAD, whose response has no body.
    pub fn reply(&mut self, head_request: bool) -> io::Result<Option<Reply>> {
        loop {
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut fields);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = resp.code.expect("a complete head has a status");
                    let headers: Vec<(String, String)> = resp
                        .headers
                        .iter()
                        .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
                        .collect();
                    self.buf.drain(..len);
                    let mut reply =
                        Reply { status, headers, body: Vec::new(), chunked_complete: None };
                    self.body(&mut reply, head_request)?;
                    return Ok(Some(reply));
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => {
                    let text = String::from_utf8_lossy(&self.buf).into_owned();
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{e}: {text:?}"),
                    ));
                }
            }
            if self.fill()? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed inside a response head",
                ));
            }
        }
    }

    fn body(&mut self, reply: &mut Reply, head_request: bool) -> io::Result<()> {
        let bodiless = head_request
            || (100..200).contains(&reply.status)
            || reply.status == 204
            || reply.status == 304;
        if bodiless {
            return Ok(());
        }
        if reply.header("transfer-encoding").is_some() {
            return self.chunked(reply);
        }
        let len: usize = match reply.header("content-length") {
            Some(v) => v
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?,
            None => {
                // Delimited by the close.
                while self.fill()? > 0 {}
                reply.body = std::mem::take(&mut self.buf);
                return Ok(());
            }
        };
        while self.buf.len() < len {
            if self.fill()? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed inside a body"));
            }
        }
        reply.body = self.buf.drain(..len).collect();
        Ok(())
    }

    /// Decodes a chunked body; a close before the last chunk leaves `chunked_complete` false.
    fn chunked(&mut self, reply: &mut Reply) -> io::Result<()> {
        reply.chunked_complete = Some(false);
        loop {
            let Some(line_end) = self.line_end()? else { return Ok(()) };
            let line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("bad chunk line {line:?}"))
                })?;
            self.buf.drain(..line_end + 2);
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    let Some(end) = self.line_end()? else { return Ok(()) };
                    self.buf.drain(..end + 2);
                    if end == 0 {
                        reply.chunked_complete = Some(true);
                        return Ok(());
                    }
                }
            }
            while self.buf.len() < size + 2 {
                if self.fill()? == 0 {
                    return Ok(());
                }
            }
            reply.body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }

    /// The position of the next CRLF in the buffer, reading until there is one; `None` if the
    /// server closes first.
    fn line_end(&mut self) -> io::Result<Option<usize>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                return Ok(Some(i));
            }
            if self.fill()? == 0 {
                return Ok(None);
            }
        }
    }

    /// Whether the server has closed the connection: end of stream (or a reset) with nothing
    /// left unread. Waits up to the read timeout for the close.
    pub fn closed(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        match self.fill() {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => {
                matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
            }
        }
    }
}

/// The text of a request with the given request line, fields and body: `Host: test` is added
/// unless `fields` holds a Host (or `no_host` is set).
pub fn request(line: &str, fields: &[&str], body: &[u8]) -> Vec<u8> {
    let mut raw = format!("{line}\r\n");
    for f in fields {
        raw.push_str(f);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// The handler most tests serve: reads the body whole (up to 1 MiB) and answers
/// `<method> <path> <body length>`.
pub fn echo_handler(mut req: Request<'_>) -> Response {
    let body = match req.body_mut().read_all(1 << 20) {
        Ok(body) => body,
        Err(_) => return Response::default(),
    };
    let text = format!("{} {} {}", req.method(), req.uri().path(), body.len());
    Response::new(text.into())
}
