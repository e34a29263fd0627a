// A line-protocol server in thread-per-connection style, written once against std's names.
//
// This file is not a module of its own. `examples/port_std.rs` and `tests/net_port.rs` paste it
// with `include!` into two modules that differ only in their `use` lines:
//
//     mod with_std {
//         use std::net::{TcpListener, TcpStream};
//         use std::thread;
//         include!("port_std/server.rs");
//     }
//     mod with_weft {
//         use weft::net::{TcpListener, TcpStream};
//         use weft as thread;
//         include!("port_std/server.rs");
//     }
//
// so the same text runs once on OS threads and once on weft coroutines. That is the porting
// promise of weft: thread-per-connection code moves over by changing its imports. (It is a
// plain `//` comment because an included file cannot carry `//!` module docs.)
//
// The protocol: one command per line (`\n` or `\r\n`), one answer line per command.
//
//     PING          ->  PONG
//     ECHO <text>   ->  <text>
//     QUIT          ->  BYE, then the server closes the connection
//     <other>       ->  ERR unknown command: <other>
//     a line longer than MAX_LINE bytes     ->  ERR line too long, then close
//     no complete line for the idle timeout ->  BYE idle, then close
//
// The only difference the server has to know about: on a read timeout, std on Unix returns
// `WouldBlock` and weft returns `TimedOut` (weft's errors have fixed meanings); the handler
// accepts both.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

/// The longest command line, newline included, that the server reads. A client cannot make a
/// handler buffer more than this.
pub const MAX_LINE: u64 = 1024;

/// Binds `addr` and runs [`serve`] on a new thread (under weft, a new coroutine); returns the
/// bound address and the server's handle.
///
/// # Errors
///
/// The error of `TcpListener::bind` or `local_addr`.
pub fn start(
    addr: &str,
    idle: Duration,
    limit: Option<usize>,
) -> io::Result<(SocketAddr, thread::JoinHandle<io::Result<()>>)> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let server = thread::spawn(move || serve(listener, idle, limit));
    Ok((local, server))
}

/// Accepts connections and handles each on a thread of its own; a connection that sends no
/// complete line for `idle` is closed.
///
/// Without a `limit` it serves until the process ends. With one, it accepts that many
/// connections, waits for their handlers to finish, and returns.
///
/// # Errors
///
/// With a `limit`, the first error a handler ended with. Accept errors are printed and
/// skipped, as a long-running server must.
pub fn serve(listener: TcpListener, idle: Duration, limit: Option<usize>) -> io::Result<()> {
    let mut handlers = Vec::new();
    for stream in listener.incoming().take(limit.unwrap_or(usize::MAX)) {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("port_std: accept: {e}");
                continue;
            }
        };
        let handler = thread::spawn(move || handle(stream, idle));
        if limit.is_some() {
            handlers.push(handler);
        }
    }
    let mut result = Ok(());
    for handler in handlers {
        let outcome = handler.join().unwrap_or_else(|_| Err(io::Error::other("handler panicked")));
        result = result.and(outcome);
    }
    result
}

/// Answers the commands of one connection until `QUIT`, end of input, or `idle` of silence.
///
/// # Errors
///
/// A failed read or write; the connection is closed when `stream` drops.
pub fn handle(stream: TcpStream, idle: Duration) -> io::Result<()> {
    // One write per answer line, so Nagle could only delay them.
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(idle))?;
    // `Read` and `Write` are implemented for `&TcpStream`: one socket, a reader and a writer.
    let mut reader = BufReader::new(&stream);
    let mut writer = &stream;
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            // std reports an expired read timeout as `WouldBlock` on Unix, weft as `TimedOut`.
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return writer.write_all(b"BYE idle\n");
            }
            Err(e) => return Err(e),
        }
        if line.last() != Some(&b'\n') && line.len() as u64 == MAX_LINE {
            return writer.write_all(b"ERR line too long\n");
        }
        let command = String::from_utf8_lossy(&line);
        let (mut reply, close) = answer(command.trim_end_matches(['\r', '\n']));
        reply.push('\n');
        writer.write_all(reply.as_bytes())?;
        if close {
            return Ok(());
        }
    }
}

/// The answer to one command, and whether the connection ends after it.
pub fn answer(command: &str) -> (String, bool) {
    match command.split_once(' ').unwrap_or((command, "")) {
        ("PING", "") => ("PONG".to_owned(), false),
        ("QUIT", "") => ("BYE".to_owned(), true),
        ("ECHO", text) => (text.to_owned(), false),
        _ => (format!("ERR unknown command: {command}"), false),
    }
}
