//! The threads style: std's blocking sockets, with a thread per connection or a fixed pool.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use super::{plaintext, POOL_THREADS};

/// Each thread's stack: 64 KiB, the size of a weft or may coroutine stack in this suite, so
/// that memory per connection compares like with like. Both echo and HTTP use a few KiB.
const STACK_SIZE: usize = 64 * 1024;

/// The HTTP read buffer, on the thread's stack.
const BUF_SIZE: usize = 4096;

/// The most bytes of a request head kept waiting for its end; more closes the connection.
const MAX_INPUT: usize = 64 * 1024;

/// Serves `proto` with a new thread for each connection.
///
/// # Errors
///
/// The bind.
pub fn serve_per_connection(addr: SocketAddr, handler: fn(TcpStream)) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    super::ready(addr);
    loop {
        let stream = accept(&listener);
        let spawned =
            std::thread::Builder::new().stack_size(STACK_SIZE).spawn(move || handler(stream));
        // No thread (the process is at its limit): the stream was dropped with the closure,
        // so the connection closes and the server goes on.
        drop(spawned);
    }
}

/// Serves with [`POOL_THREADS`] threads started up front, each taking a connection from a
/// queue and serving it until it closes.
///
/// # Errors
///
/// The bind, or starting a pool thread.
pub fn serve_pool(addr: SocketAddr, handler: fn(TcpStream)) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    let (tx, rx) = crossbeam_channel::unbounded::<TcpStream>();
    for _ in 0..POOL_THREADS {
        let rx = rx.clone();
        std::thread::Builder::new().stack_size(STACK_SIZE).spawn(move || {
            for stream in rx {
                handler(stream);
            }
        })?;
    }
    super::ready(addr);
    loop {
        // The pool threads hold the receivers for as long as the process runs.
        let _ = tx.send(accept(&listener));
    }
}

/// The next connection. std's accept does not back off when file descriptors run out, so
/// this does, rather than spin.
fn accept(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept() {
            Ok((stream, _)) => return stream,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Writes back everything the connection reads until the peer closes it.
pub fn echo(stream: TcpStream) {
    // A reset or closed peer ends its own connection only.
    let _ = stream.set_nodelay(true).and_then(|()| super::echo_blocking(stream));
}

/// Answers HTTP plaintext requests on the connection until either side closes it. The
/// responses to pipelined requests that arrived together leave in one write.
pub fn http(stream: TcpStream) {
    fn run(mut stream: TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let mut input = Vec::with_capacity(BUF_SIZE);
        let mut out = Vec::with_capacity(BUF_SIZE);
        let mut buf = [0u8; BUF_SIZE];
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            input.extend_from_slice(&buf[..n]);
            let answered = plaintext::respond(&input, &mut out);
            input.drain(..answered.consumed);
            stream.write_all(&out)?;
            out.clear();
            if answered.close || input.len() > MAX_INPUT {
                return Ok(());
            }
        }
    }
    let _ = run(stream);
}
