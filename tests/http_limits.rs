//! Every limit and timeout of the server, set to non-default values, gives its status (or its
//! close) exactly past the bound, and not before it.

mod support;

use std::io::Read;
use std::time::{Duration, Instant};

use support::http::{echo_handler, request, start, Running};
use weft::net::http::{Body, Request, Response, Server};

fn get(path: &str, fields: &[&str]) -> Vec<u8> {
    let mut all = vec!["Host: t"];
    all.extend_from_slice(fields);
    request(&format!("GET {path} HTTP/1.1"), &all, b"")
}

/// Sends `raw` on a new connection: the first status, and whether the connection then closed.
fn status_of(server: &Running, raw: &[u8]) -> (u16, bool) {
    let mut conn = server.connect();
    conn.send(raw).unwrap();
    let reply = conn.reply(false).unwrap().expect("a response");
    let closed = reply.says_close() && conn.closed();
    (reply.status, closed)
}

#[test]
fn request_line_limit() {
    let _wd = support::watchdog("request_line_limit", Duration::from_secs(30));
    let server = start(Server::bind("127.0.0.1:0").unwrap().max_request_line(100), echo_handler);
    // "GET " + path + " HTTP/1.1" is 13 bytes around the path.
    let fits = format!("/{}", "a".repeat(86));
    assert_eq!(status_of(&server, &get(&fits, &[])), (200, false));
    let over = format!("/{}", "a".repeat(87));
    assert_eq!(status_of(&server, &get(&over, &[])), (414, true));
    // A line that never ends is refused as soon as it passes the limit.
    let mut conn = server.connect();
    conn.send(format!("GET /{}", "a".repeat(200)).as_bytes()).unwrap();
    assert_eq!(conn.reply(false).unwrap().unwrap().status, 414);
}

#[test]
fn head_size_and_field_count_limits() {
    let _wd = support::watchdog("head_size_and_field_count_limits", Duration::from_secs(30));
    let server = Server::bind("127.0.0.1:0").unwrap().max_head_size(1000).max_headers(5);
    let server = start(server, echo_handler);
    let four = ["A: 1", "B: 2", "C: 3", "D: 4"];
    assert_eq!(status_of(&server, &get("/", &four)), (200, false));
    assert_eq!(status_of(&server, &get("/", &[&four[..], &["E: 5"]].concat())), (431, true));
    let big = format!("X: {}", "v".repeat(900));
    assert_eq!(status_of(&server, &get("/", &[&big])), (200, false));
    let bigger = format!("X: {}", "v".repeat(1000));
    assert_eq!(status_of(&server, &get("/", &[&bigger])), (431, true));
}

fn post(fields: &[&str], body: &[u8]) -> Vec<u8> {
    let mut all = vec!["Host: t"];
    all.extend_from_slice(fields);
    request("POST /p HTTP/1.1", &all, body)
}

#[test]
fn body_limit_by_length_and_while_reading_chunks() {
    let _wd =
        support::watchdog("body_limit_by_length_and_while_reading_chunks", Duration::from_secs(30));
    let server = start(Server::bind("127.0.0.1:0").unwrap().max_body_size(100), echo_handler);
    assert_eq!(status_of(&server, &post(&["Content-Length: 100"], &[b'x'; 100])), (200, false));
    assert_eq!(status_of(&server, &post(&["Content-Length: 101"], &[b'x'; 101])), (413, true));
    let chunks = |n: usize| format!("{n:x}\r\n{}\r\n0\r\n\r\n", "x".repeat(n));
    assert_eq!(
        status_of(&server, &post(&["Transfer-Encoding: chunked"], chunks(100).as_bytes())),
        (200, false)
    );
    let split = format!("40\r\n{}\r\n40\r\n{}\r\n0\r\n\r\n", "x".repeat(64), "x".repeat(64));
    assert_eq!(
        status_of(&server, &post(&["Transfer-Encoding: chunked"], split.as_bytes())),
        (413, true)
    );
}

#[test]
fn a_handlers_own_read_limit_gives_413() {
    let _wd = support::watchdog("a_handlers_own_read_limit_gives_413", Duration::from_secs(30));
    let server = start(Server::bind("127.0.0.1:0").unwrap(), |mut req: Request<'_>| {
        match req.body_mut().read_all(10) {
            Ok(body) => Response::new(body.into()),
            // Whatever the handler answers, the server answers 413.
            Err(_) => Response::new("ignored".into()),
        }
    });
    assert_eq!(status_of(&server, &post(&["Content-Length: 10"], &[b'x'; 10])), (200, false));
    assert_eq!(status_of(&server, &post(&["Content-Length: 11"], &[b'x'; 11])), (413, true));
    let chunked = "6\r\nxxxxxx\r\n6\r\nxxxxxx\r\n0\r\n\r\n";
    assert_eq!(
        status_of(&server, &post(&["Transfer-Encoding: chunked"], chunked.as_bytes())),
        (413, true)
    );
}

#[test]
fn chunk_line_limit() {
    let _wd = support::watchdog("chunk_line_limit", Duration::from_secs(30));
    let server = start(Server::bind("127.0.0.1:0").unwrap().max_chunk_line(16), echo_handler);
    let fits = format!("3;{}\r\nabc\r\n0\r\n\r\n", "e".repeat(14));
    assert_eq!(
        status_of(&server, &post(&["Transfer-Encoding: chunked"], fits.as_bytes())),
        (200, false)
    );
    let over = format!("3;{}\r\nabc\r\n0\r\n\r\n", "e".repeat(15));
    assert_eq!(
        status_of(&server, &post(&["Transfer-Encoding: chunked"], over.as_bytes())),
        (400, true)
    );
}

/// A handler that never reads the body.
fn ignore_body(_req: Request<'_>) -> Response {
    Response::new(Body::from("ignored"))
}

#[test]
fn unread_bodies_are_drained_up_to_the_bound() {
    let _wd =
        support::watchdog("unread_bodies_are_drained_up_to_the_bound", Duration::from_secs(30));
    let server = start(Server::bind("127.0.0.1:0").unwrap().max_drain(1000), ignore_body);
    for (framing, body) in [
        ("Content-Length: 1000", vec![b'x'; 1000]),
        (
            "Transfer-Encoding: chunked",
            format!("3e8\r\n{}\r\n0\r\n\r\n", "x".repeat(1000)).into_bytes(),
        ),
    ] {
        let mut conn = server.connect();
        conn.send(&[post(&[framing], &body), get("/next", &[])].concat()).unwrap();
        assert_eq!(conn.reply(false).unwrap().unwrap().body_str(), "ignored", "{framing}");
        let next =
            conn.reply(false).unwrap().expect("the next request is read past the drained body");
        assert_eq!(next.body_str(), "ignored");
    }
    // Past the bound, the response comes and the connection closes.
    let mut conn = server.connect();
    conn.send(&post(&["Content-Length: 1001"], &[b'x'; 1001])).unwrap();
    let reply = conn.reply(false).unwrap().unwrap();
    assert!(reply.says_close(), "a body too long to drain closes: {:?}", reply.headers);
    assert!(conn.closed());
    let mut conn = server.connect();
    let long = format!("7d0\r\n{}\r\n0\r\n\r\n", "x".repeat(2000));
    conn.send(
        &[post(&["Transfer-Encoding: chunked"], long.as_bytes()), get("/next", &[])].concat(),
    )
    .unwrap();
    assert_eq!(conn.reply(false).unwrap().unwrap().status, 200);
    assert!(conn.closed(), "a chunked body past the bound closes");
}

const SHORT: Duration = Duration::from_millis(300);

#[test]
fn header_timeout_gives_408_and_not_early() {
    let _wd = support::watchdog("header_timeout_gives_408_and_not_early", Duration::from_secs(30));
    let server = start(Server::bind("127.0.0.1:0").unwrap().header_timeout(SHORT), echo_handler);
    // A head that starts and stalls gets 408.
    let mut conn = server.connect();
    let start = Instant::now();
    conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n").unwrap();
    let reply = conn.reply(false).unwrap().unwrap();
    assert_eq!(reply.status, 408);
    assert!(start.elapsed() >= SHORT, "408 after {:?}", start.elapsed());
    assert!(conn.closed());
    // A connection that sends nothing is closed without a word.
    let mut silent = server.connect();
    let start = Instant::now();
    assert!(silent.closed());
    assert!(start.elapsed() >= SHORT, "closed after {:?}", start.elapsed());
}

#[test]
fn keep_alive_timeout_closes_idle_connections() {
    let _wd =
        support::watchdog("keep_alive_timeout_closes_idle_connections", Duration::from_secs(30));
    let server =
        start(Server::bind("127.0.0.1:0").unwrap().keep_alive_timeout(SHORT), echo_handler);
    let mut conn = server.connect();
    conn.send(&get("/", &[])).unwrap();
    assert_eq!(conn.reply(false).unwrap().unwrap().status, 200);
    let start = Instant::now();
    let mut rest = Vec::new();
    assert_eq!(conn.stream.read_to_end(&mut rest).unwrap(), 0, "closed without a response");
    assert!(start.elapsed() >= SHORT, "closed after {:?}", start.elapsed());
}

#[test]
fn body_read_timeout_gives_408() {
    let _wd = support::watchdog("body_read_timeout_gives_408", Duration::from_secs(30));
    let server = start(Server::bind("127.0.0.1:0").unwrap().read_timeout(SHORT), echo_handler);
    let mut conn = server.connect();
    let start = Instant::now();
    conn.send(&post(&["Content-Length: 10"], b"abc")).unwrap();
    let reply = conn.reply(false).unwrap().unwrap();
    assert_eq!(reply.status, 408);
    assert!(start.elapsed() >= SHORT, "408 after {:?}", start.elapsed());
}
