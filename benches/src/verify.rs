//! The correctness check each server passes before it is timed: echo bytes come back exactly,
//! and HTTP answers parse, in order, with the right status and body.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::load::{fill, PLAINTEXT_BODY, PLAINTEXT_PATH};
use crate::servers::Proto;

/// A check that takes longer than this per read or write has failed.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Echo message sizes: one byte, the suite's two sizes, and one larger than socket buffers
/// hold, which takes partial writes on the server's side.
const ECHO_SIZES: [usize; 4] = [1, 64, 4096, 4 << 20];

/// Pipelined requests sent in one write.
const PIPELINED: usize = 16;

/// Checks the server at `addr`.
///
/// # Errors
///
/// What was wrong, in words.
pub fn check(proto: Proto, addr: SocketAddr) -> Result<(), String> {
    match proto {
        Proto::Echo => check_echo(addr),
        Proto::Http => check_http(addr),
    }
}

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(stream)
}

fn check_echo(addr: SocketAddr) -> Result<(), String> {
    // Two connections at once, taking turns, so a server that mixes them up is caught.
    let mut streams = [connect(addr)?, connect(addr)?];
    for (seq, &size) in ECHO_SIZES.iter().enumerate() {
        for (id, stream) in streams.iter_mut().enumerate() {
            let mut sent = vec![0; size];
            fill(&mut sent, id, seq as u64);
            let echoed = echo_once(stream, &sent)
                .map_err(|e| format!("echo of {size} bytes on connection {id}: {e}"))?;
            if echoed != sent {
                let at = sent.iter().zip(&echoed).position(|(a, b)| a != b).unwrap_or(0);
                return Err(format!("echo of {size} bytes differs at byte {at}"));
            }
        }
    }
    Ok(())
}

/// Writes `sent` and reads as many bytes back. A second thread writes, so that a message
/// larger than the socket buffers cannot deadlock against a server that echoes as it reads.
fn echo_once(stream: &mut TcpStream, sent: &[u8]) -> io::Result<Vec<u8>> {
    let mut writer = stream.try_clone()?;
    let mut echoed = vec![0; sent.len()];
    std::thread::scope(|s| {
        let wrote = s.spawn(|| writer.write_all(sent));
        let read = stream.read_exact(&mut echoed);
        wrote.join().expect("the writer does not panic")?;
        read
    })?;
    Ok(echoed)
}

fn check_http(addr: SocketAddr) -> Result<(), String> {
    let mut stream = connect(addr)?;
    let get = format!("GET {PLAINTEXT_PATH} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut reader = Responses::default();

    write(&mut stream, get.as_bytes())?;
    reader.expect(&mut stream, 200, PLAINTEXT_BODY).map_err(|e| format!("GET: {e}"))?;

    write(&mut stream, get.repeat(PIPELINED).as_bytes())?;
    for i in 0..PIPELINED {
        reader
            .expect(&mut stream, 200, PLAINTEXT_BODY)
            .map_err(|e| format!("pipelined GET {} of {PIPELINED}: {e}", i + 1))?;
    }

    write(&mut stream, format!("GET /none HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let status = reader.next(&mut stream).map_err(|e| format!("GET /none: {e}"))?.0;
    if status != 404 {
        return Err(format!("GET /none: status {status}, not 404"));
    }
    if !reader.buf.is_empty() {
        return Err(format!("{} bytes after the last response", reader.buf.len()));
    }
    Ok(())
}

fn write(stream: &mut TcpStream, bytes: &[u8]) -> Result<(), String> {
    stream.write_all(bytes).map_err(|e| format!("write: {e}"))
}

/// Reads responses off a connection, one at a time.
#[derive(Default)]
struct Responses {
    buf: Vec<u8>,
}

impl Responses {
    fn expect(&mut self, stream: &mut TcpStream, status: u16, body: &[u8]) -> Result<(), String> {
        let (got, got_body) = self.next(stream)?;
        if got != status || got_body != body {
            return Err(format!(
                "got {got} {:?}, want {status} {:?}",
                String::from_utf8_lossy(&got_body),
                String::from_utf8_lossy(body)
            ));
        }
        Ok(())
    }

    /// The next response's status and body (framed by Content-Length, which every server of
    /// the suite sends for these answers).
    fn next(&mut self, stream: &mut TcpStream) -> Result<(u16, Vec<u8>), String> {
        loop {
            let mut fields = [httparse::EMPTY_HEADER; 32];
            let mut rsp = httparse::Response::new(&mut fields);
            match rsp.parse(&self.buf).map_err(|e| format!("malformed response: {e}"))? {
                httparse::Status::Complete(head) => {
                    let status = rsp.code.unwrap_or(0);
                    let len: usize = rsp
                        .headers
                        .iter()
                        .find(|f| f.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|f| std::str::from_utf8(f.value).ok()?.trim().parse().ok())
                        .ok_or("a response without a Content-Length")?;
                    if self.buf.len() >= head + len {
                        let body = self.buf[head..head + len].to_vec();
                        self.buf.drain(..head + len);
                        return Ok((status, body));
                    }
                }
                httparse::Status::Partial => {}
            }
            let mut chunk = [0; 4096];
            match stream.read(&mut chunk) {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}
