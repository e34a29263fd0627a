//! Failures inside the server: a panicking handler, a streamed body that fails part way, and the
//! graceful shutdown (idle connections, a request in flight, a connection stuck past the grace
//! period).

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::http::{request, start};
use weft::net::http::{Body, Request, Response, Server};
use weft::sync::mpsc;

fn get(path: &str) -> Vec<u8> {
    request(&format!("GET {path} HTTP/1.1"), &["Host: t"], b"")
}

fn panicky(req: Request<'_>) -> Response {
    match req.uri().path() {
        "/panic" => panic!("handler panics on purpose"),
        "/stream-panic" => Response::new(Body::stream(|w| {
            w.write_all(&[b'x'; 100])?;
            w.flush()?;
            panic!("stream panics on purpose");
        })),
        "/stream-error" => Response::new(Body::stream(|w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("the source failed"))
        })),
        _ => Response::new("fine".into()),
    }
}

#[test]
fn panicking_handler_gives_500_and_the_server_lives_on() {
    let _wd = support::watchdog("panicking_handler_gives_500", Duration::from_secs(30));
    let server = start(Server::bind("127.0.0.1:0").unwrap(), panicky);
    for _ in 0..3 {
        let mut conn = server.connect();
        conn.send(&[get("/panic"), get("/after")].concat()).unwrap();
        let reply = conn.reply(false).unwrap().unwrap();
        assert_eq!(reply.status, 500);
        assert!(reply.says_close());
        assert!(conn.closed(), "the connection of a panicking handler closes");
        let mut next = server.connect();
        next.send(&get("/")).unwrap();
        assert_eq!(next.reply(false).unwrap().unwrap().body_str(), "fine");
    }
}

#[test]
fn failing_stream_truncates_and_closes() {
    let _wd = support::watchdog("failing_stream_truncates_and_closes", Duration::from_secs(30));
    let server = start(Server::bind("127.0.0.1:0").unwrap(), panicky);
    for path in ["/stream-panic", "/stream-error"] {
        let mut conn = server.connect();
        conn.send(&[get(path), get("/after")].concat()).unwrap();
        let reply = conn.reply(false).unwrap().unwrap();
        assert_eq!(reply.status, 200, "{path}: the head went out before the failure");
        assert_eq!(reply.chunked_complete, Some(false), "{path}: no last chunk");
        assert!(conn.closed(), "{path}");
    }
    let mut next = server.connect();
    next.send(&get("/")).unwrap();
    assert_eq!(next.reply(false).unwrap().unwrap().body_str(), "fine");
}

#[test]
fn graceful_shutdown_finishes_requests_in_flight() {
    let _wd =
        support::watchdog("graceful_shutdown_finishes_requests_in_flight", Duration::from_secs(30));
    // The handler of /wait blocks until the test sends it a word; it says when it started.
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<&'static str>();
    let go_rx = std::sync::Mutex::new(go_rx);
    let server = start(Server::bind("127.0.0.1:0").unwrap(), move |req: Request<'_>| {
        if req.uri().path() == "/wait" {
            started_tx.send(()).unwrap();
            let word = go_rx.lock().unwrap().recv().unwrap_or("gone");
            return Response::new(word.into());
        }
        Response::new("fine".into())
    });
    let addr = server.addr;
    let mut idle = server.connect();
    idle.send(&get("/")).unwrap();
    assert_eq!(idle.reply(false).unwrap().unwrap().body_str(), "fine");
    let mut busy = server.connect();
    busy.send(&get("/wait")).unwrap();
    started_rx.recv().unwrap();

    let stop = server.stop.clone();
    let shutting = std::thread::spawn(move || server.shutdown(Duration::from_secs(20)));
    // The idle connection closes at once, the listener stops accepting.
    assert!(idle.closed(), "idle keep-alive connections close on shutdown");
    assert!(stop.is_shutdown());
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_ok() {
        assert!(Instant::now() < deadline, "the listener still accepts");
        std::thread::yield_now();
    }
    // The request in flight finishes, and its response ends the connection.
    go_tx.send("finished").unwrap();
    let reply = busy.reply(false).unwrap().unwrap();
    assert_eq!(reply.body_str(), "finished");
    assert!(reply.says_close());
    assert!(busy.closed());
    shutting.join().unwrap().unwrap();
}

#[test]
fn shutdown_closes_connections_still_busy_after_the_grace_period() {
    let _wd = support::watchdog("shutdown_closes_stuck_connections", Duration::from_secs(30));
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let server = Server::bind("127.0.0.1:0").unwrap().read_timeout(Duration::from_secs(600));
    let server = start(server, move |mut req: Request<'_>| {
        started_tx.send(()).unwrap();
        // Blocks: the client sends 3 of the 10 bytes and stalls.
        let body = req.body_mut().read_all(100);
        Response::new(format!("{body:?}").into())
    });
    let mut stuck = server.connect();
    stuck.send(&request("POST / HTTP/1.1", &["Host: t", "Content-Length: 10"], b"abc")).unwrap();
    started_rx.recv().unwrap();
    let grace = Duration::from_millis(300);
    let start = Instant::now();
    server.shutdown(grace).unwrap();
    let took = start.elapsed();
    assert!(took >= grace, "serve returned after {took:?}, before the grace period");
    assert!(took < Duration::from_secs(10), "serve returned after {took:?}");
    let mut rest = Vec::new();
    let closed = match std::io::Read::read_to_end(&mut stuck.stream, &mut rest) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "the stuck connection was shut down");
}
