//! The porting test: one thread-per-connection server, `examples/port_std/server.rs`, compiled
//! against std and against weft by changing only its `use` lines, must answer one client the
//! same way.
//!
//! Each test starts its flavour of the server on port 0 with a connection limit, runs the same
//! conversation against it from a plain-thread std client (the referee), and then joins the
//! server: it returns once the limit is reached and every handler has finished, with the first
//! error any handler met.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::Watchdog;

/// The server on OS threads.
mod with_std {
    use std::net::{TcpListener, TcpStream};
    use std::thread;

    include!(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/port_std/server.rs"));
}

/// The server on weft coroutines.
mod with_weft {
    use weft as thread;
    use weft::net::{TcpListener, TcpStream};

    include!(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/port_std/server.rs"));
}

/// The servers' idle timeout: short, so the idle case is quick.
const IDLE: Duration = Duration::from_millis(300);

/// How many connections [`conversation`] opens; the server stops accepting after these.
const CONNECTIONS: usize = 7;

/// The referee client's own read timeout: far above any answer's time, it turns a silent
/// server into a failed assertion that names the command.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sanity bound on the idle close: it must come about `IDLE` after connecting, not seconds late.
const IDLE_LATE: Duration = Duration::from_secs(5);

/// Linux counts std's `SO_RCVTIMEO` in scheduler ticks and may end the wait up to one tick
/// early (4 ms at HZ=250; 10 ms covers HZ=100). weft's timers never fire early: no slack.
const STD_TICK_SLACK: Duration = Duration::from_millis(10);

#[test]
fn std_server_answers_the_line_protocol() {
    let wd = support::watchdog("std_server_answers_the_line_protocol", Duration::from_secs(60));
    let (addr, server) =
        with_std::start("127.0.0.1:0", IDLE, Some(CONNECTIONS)).expect("start the std server");
    conversation(&wd, addr, STD_TICK_SLACK);
    wd.note("joining the server");
    server.join().expect("the server panicked").expect("a handler failed");
}

#[test]
fn weft_server_answers_the_line_protocol() {
    let wd = support::watchdog("weft_server_answers_the_line_protocol", Duration::from_secs(60));
    let (addr, server) =
        with_weft::start("127.0.0.1:0", IDLE, Some(CONNECTIONS)).expect("start the weft server");
    conversation(&wd, addr, Duration::ZERO);
    wd.note("joining the server");
    server.join().expect("the server panicked").expect("a handler failed");
}

/// The client side, the same for both servers: opens exactly [`CONNECTIONS`] connections and
/// checks every answer. `idle_slack` is how early the server's idle timeout may end.
fn conversation(wd: &Watchdog, addr: SocketAddr, idle_slack: Duration) {
    // The max line is part of the protocol, the same in both compilations.
    assert_eq!(with_std::MAX_LINE, with_weft::MAX_LINE);

    wd.note("one command at a time");
    let mut client = Client::connect(addr);
    assert_eq!(client.ask("PING"), "PONG");
    assert_eq!(client.ask("ECHO hello, world"), "hello, world");
    assert_eq!(client.ask("ECHO"), "");
    assert_eq!(client.ask("ECHO  two  spaces "), " two  spaces ");
    assert_eq!(client.ask("PING\r"), "PONG", "a CRLF line ending");
    assert_eq!(client.ask("HELLO"), "ERR unknown command: HELLO");
    assert_eq!(client.ask("PING now"), "ERR unknown command: PING now");
    assert_eq!(client.ask("QUIT"), "BYE");
    client.expect_closed("after QUIT");

    wd.note("pipelined commands");
    let mut client = Client::connect(addr);
    client.send("PING\nECHO one\nECHO two\nQUIT\n");
    for expected in ["PONG", "one", "two", "BYE"] {
        assert_eq!(client.line("pipelined"), expected);
    }
    client.expect_closed("after a pipelined QUIT");

    // Each connection has a handler of its own: all three are open at once, and each is
    // answered while the others wait, in an order no single handler could follow.
    wd.note("three connections at once");
    let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(addr)).collect();
    for round in 0..3 {
        for (i, client) in clients.iter_mut().enumerate().rev() {
            assert_eq!(client.ask(&format!("ECHO {i}.{round}")), format!("{i}.{round}"));
        }
    }
    for client in &mut clients {
        assert_eq!(client.ask("QUIT"), "BYE");
        client.expect_closed("after QUIT, concurrent");
    }

    // Exactly MAX_LINE bytes and no newline: the server has read everything we sent when it
    // closes, so the close is a FIN, not a reset that could eat the answer.
    wd.note("a line too long");
    let mut client = Client::connect(addr);
    client.send(&"x".repeat(with_std::MAX_LINE as usize));
    assert_eq!(client.line("too long"), "ERR line too long");
    client.expect_closed("after a line too long");

    // The server's read timeout: silence gets `BYE idle` and a close, no sooner than IDLE.
    wd.note("an idle connection");
    let connecting = Instant::now();
    let mut client = Client::connect(addr);
    assert_eq!(client.line("idle"), "BYE idle");
    let waited = connecting.elapsed();
    client.expect_closed("after BYE idle");
    assert!(waited + idle_slack >= IDLE, "closed after {waited:?}, before the {IDLE:?} timeout");
    assert!(waited < IDLE + IDLE_LATE, "closed after {waited:?}, long after {IDLE:?}");
}

/// The referee: a std client on the test thread.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects, with [`CLIENT_TIMEOUT`] on reads.
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).expect("set_read_timeout");
        let writer = stream.try_clone().expect("try_clone");
        Client { reader: BufReader::new(stream), writer }
    }

    /// Writes `text` as it is.
    fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).expect("write");
    }

    /// Reads one answer line, without its newline.
    fn line(&mut self, context: &str) -> String {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).unwrap_or_else(|e| panic!("{context}: {e}"));
        assert!(n > 0, "{context}: the server closed instead of answering");
        assert!(line.ends_with('\n'), "{context}: answer {line:?} is not a whole line");
        line.pop();
        line
    }

    /// Sends `command` as a line and returns the answer.
    fn ask(&mut self, command: &str) -> String {
        self.send(&format!("{command}\n"));
        self.line(command)
    }

    /// Asserts that the server closed the connection, with nothing more to say.
    fn expect_closed(&mut self, context: &str) {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).unwrap_or_else(|e| panic!("{context}: {e}"));
        assert!(rest.is_empty(), "{context}: unexpected {:?}", String::from_utf8_lossy(&rest));
    }
}
