//! `weft::net::http::Client` against real servers over loopback: weft's own server, and raw
//! TCP servers that answer with exactly the bytes a test needs (a reused connection, a close
//! in the wrong place, a malformed response).

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::http::start;
use weft::net::http::{Body, Client, Method, Request, Response, Server};

/// A raw server: each connection gets `answer` called with the requests' bytes it reads, one
/// head at a time (bodies are not expected); `answer` returns the bytes to send and whether to
/// close afterwards. Counts accepted connections.
struct Raw {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

/// What a raw server sends for the n-th request of a connection, and whether it then closes.
type Answer = fn(usize) -> (&'static [u8], bool);

fn raw_server(answer: Answer) -> Raw {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let (acc, clo) = (accepted.clone(), closed.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            acc.fetch_add(1, SeqCst);
            let clo = clo.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut served = 0;
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let mut chunk = [0u8; 1024];
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    let (bytes, close) = answer(served);
                    served += 1;
                    if stream.write_all(bytes).is_err() || close {
                        drop(stream);
                        clo.fetch_add(1, SeqCst);
                        return;
                    }
                }
            });
        }
    });
    Raw { addr, accepted, closed }
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

#[test]
fn keep_alive_connections_are_reused() {
    let _wd = support::watchdog("keep_alive_connections_are_reused", Duration::from_secs(30));
    let raw = raw_server(|_| (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false));
    let client = Client::new();
    for _ in 0..10 {
        let resp = client.get(&url(raw.addr, "/")).unwrap();
        assert_eq!(resp.body(), b"ok");
    }
    assert_eq!(raw.accepted.load(SeqCst), 1, "ten requests, one connection");
    // Clones share the pool.
    client.clone().get(&url(raw.addr, "/")).unwrap();
    assert_eq!(raw.accepted.load(SeqCst), 1);
    // Without reuse, each request connects.
    let fresh = Client::new().max_idle_per_host(0);
    for _ in 0..3 {
        fresh.get(&url(raw.addr, "/")).unwrap();
    }
    assert_eq!(raw.accepted.load(SeqCst), 4);
}

#[test]
fn close_delimited_and_http10_responses() {
    let _wd = support::watchdog("close_delimited_and_http10_responses", Duration::from_secs(30));
    let raw = raw_server(|_| (b"HTTP/1.1 200 OK\r\n\r\nuntil the end", true));
    let client = Client::new();
    assert_eq!(client.get(&url(raw.addr, "/")).unwrap().body(), b"until the end");
    assert_eq!(client.get(&url(raw.addr, "/")).unwrap().body(), b"until the end");
    assert_eq!(raw.accepted.load(SeqCst), 2, "a close-delimited response ends its connection");

    let old = raw_server(|_| (b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\nold", false));
    assert_eq!(client.get(&url(old.addr, "/")).unwrap().body(), b"old");
    assert_eq!(client.get(&url(old.addr, "/")).unwrap().version(), http_10());
    assert_eq!(old.accepted.load(SeqCst), 2, "HTTP/1.0 without keep-alive is not reused");
}

fn http_10() -> weft::net::http::Version {
    weft::net::http::Version::HTTP_10
}

#[test]
fn a_stale_pooled_connection_is_retried_once_on_a_new_one() {
    let _wd = support::watchdog("a_stale_pooled_connection_is_retried", Duration::from_secs(30));
    // Answers as keep-alive, then closes: the pooled connection is dead when next used.
    let raw = raw_server(|_| (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", true));
    let client = Client::new();
    assert_eq!(client.get(&url(raw.addr, "/")).unwrap().body(), b"ok");
    let deadline = Instant::now() + Duration::from_secs(10);
    while raw.closed.load(SeqCst) < 1 {
        assert!(Instant::now() < deadline, "the server did not close");
        std::thread::yield_now();
    }
    assert_eq!(client.get(&url(raw.addr, "/")).unwrap().body(), b"ok");
    assert_eq!(raw.accepted.load(SeqCst), 2);
}

#[test]
fn malformed_responses_are_invalid_data() {
    let _wd = support::watchdog("malformed_responses_are_invalid_data", Duration::from_secs(30));
    let answers: [Answer; 5] = [
        |_| (b"HTTP/1.1 abc\r\n\r\n", true),
        |_| (b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\nhello", true),
        |_| (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", true),
        |_| (b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n", true),
        |_| (b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab", true),
    ];
    for (i, answer) in answers.into_iter().enumerate() {
        let raw = raw_server(answer);
        let err = Client::new().get(&url(raw.addr, "/")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData, "answer {i}: {err}");
    }
    let truncated = raw_server(|_| (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", true));
    let err = Client::new().get(&url(truncated.addr, "/")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
    let big = raw_server(|_| (b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello world", false));
    let err = Client::new().max_response_body(10).get(&url(big.addr, "/")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
}

#[test]
fn bad_urls_are_invalid_input() {
    let client = Client::new();
    for bad in ["https://example.invalid/", "/relative", "not a url"] {
        assert_eq!(client.get(bad).unwrap_err().kind(), ErrorKind::InvalidInput, "{bad}");
    }
}

#[test]
fn request_and_connect_timeouts() {
    let _wd = support::watchdog("request_and_connect_timeouts", Duration::from_secs(30));
    // A server that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    let err = Client::new().timeout(timeout).get(&url(addr, "/")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(start.elapsed() >= timeout, "timed out after {:?}", start.elapsed());
    drop(listener);

    let full = support::full_listener();
    let start = Instant::now();
    let err = Client::new().connect_timeout(timeout).get(&url(full.addr, "/")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(start.elapsed() >= timeout, "connect timed out after {:?}", start.elapsed());
}

/// Reads the body (chunked or not) and answers with its length, streamed back in pieces.
fn count_and_stream(mut req: Request<'_>) -> Response {
    let body = req.body_mut().read_all(1 << 20).unwrap_or_default();
    let n = body.len();
    Response::new(Body::stream(move |w| {
        for i in 0..n / 1000 {
            writeln!(w, "{i:>999}")?;
        }
        write!(w, "{n}")
    }))
}

#[test]
fn chunked_bodies_both_ways_against_the_server() {
    let _wd =
        support::watchdog("chunked_bodies_both_ways_against_the_server", Duration::from_secs(30));
    let server = start(Server::bind("127.0.0.1:0").unwrap(), count_and_stream);
    let client = Client::new();
    for n in [0usize, 1, 999, 4096, 100_000] {
        let body = Body::stream(move |w| {
            for piece in vec![b'x'; n].chunks(777) {
                w.write_all(piece)?;
            }
            Ok(())
        });
        let resp = client.send(Method::POST, &url(server.addr, "/up"), body).unwrap();
        assert_eq!(resp.headers().get("transfer-encoding").unwrap(), "chunked");
        let text = String::from_utf8(resp.into_body()).unwrap();
        assert_eq!(text.len(), n / 1000 * 1000 + n.to_string().len(), "n = {n}");
        assert!(text.ends_with(&n.to_string()), "n = {n}");
    }
    // And bytes bodies, on the same pooled connection.
    let resp = client.send(Method::PUT, &url(server.addr, "/up"), vec![b'y'; 2500]).unwrap();
    assert!(String::from_utf8(resp.into_body()).unwrap().ends_with("2500"));
}

#[test]
fn many_coroutines_share_one_client() {
    let _wd = support::watchdog("many_coroutines_share_one_client", Duration::from_secs(60));
    let server = start(Server::bind("127.0.0.1:0").unwrap(), |req: Request<'_>| {
        Response::new(req.uri().path().to_owned().into())
    });
    let client = Client::new().max_idle_per_host(8);
    let handles: Vec<_> = (0..100)
        .map(|c| {
            let (client, base) = (client.clone(), url(server.addr, ""));
            weft::spawn(move || {
                for i in 0..20 {
                    let path = format!("/{c}/{i}");
                    let resp = client.get(&format!("{base}{path}")).unwrap();
                    assert_eq!(resp.body(), path.as_bytes());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
