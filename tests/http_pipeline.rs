//! Pipelining: requests written back to back on one connection are answered in order, whatever
//! their bodies, and streamed responses are framed for the version that asked.

mod support;

use std::io::Write;
use std::time::Duration;

use support::http::{echo_handler, request, start};
use weft::net::http::{Body, Request, Response, Server};

#[test]
fn hundred_pipelined_requests_answered_in_order() {
    let _wd =
        support::watchdog("hundred_pipelined_requests_answered_in_order", Duration::from_secs(60));
    let server = start(Server::bind("127.0.0.1:0").unwrap(), echo_handler);
    let mut conn = server.connect();
    let all: Vec<u8> =
        (0..100).flat_map(|i| request(&format!("GET /{i} HTTP/1.1"), &["Host: t"], b"")).collect();
    conn.send(&all).unwrap();
    for i in 0..100 {
        let reply = conn.reply(false).unwrap().expect("a response per request");
        assert_eq!((reply.status, reply.body_str()), (200, format!("GET /{i} 0")), "response {i}");
        assert!(!reply.says_close());
    }
    // The connection is still good for more.
    conn.send(&request("GET /after HTTP/1.1", &["Host: t"], b"")).unwrap();
    assert_eq!(conn.reply(false).unwrap().unwrap().body_str(), "GET /after 0");
}

#[test]
fn pipelined_bodies_of_both_framings_stay_in_order() {
    let wd = support::watchdog(
        "pipelined_bodies_of_both_framings_stay_in_order",
        Duration::from_secs(60),
    );
    let mut rng = support::Rng::new(wd.seed());
    let server = start(Server::bind("127.0.0.1:0").unwrap(), echo_handler);
    let mut conn = server.connect();
    let mut all = Vec::new();
    let mut lens = Vec::new();
    for i in 0..60 {
        let len = (rng.next_u64() % 3000) as usize;
        let body = vec![b'x'; len];
        if i % 2 == 0 {
            all.extend(request(
                &format!("POST /{i} HTTP/1.1"),
                &["Host: t", &format!("Content-Length: {len}")],
                &body,
            ));
        } else {
            let mut chunked = Vec::new();
            for piece in body.chunks(700) {
                write!(chunked, "{:x}\r\n", piece.len()).unwrap();
                chunked.extend_from_slice(piece);
                chunked.extend_from_slice(b"\r\n");
            }
            chunked.extend_from_slice(b"0\r\n\r\n");
            all.extend(request(
                &format!("POST /{i} HTTP/1.1"),
                &["Host: t", "Transfer-Encoding: chunked"],
                &chunked,
            ));
        }
        lens.push(len);
    }
    // Written in uneven pieces, so requests straddle the server's reads.
    for piece in all.chunks(1237) {
        conn.send(piece).unwrap();
    }
    for (i, len) in lens.iter().enumerate() {
        let reply = conn.reply(false).unwrap().expect("a response per request");
        assert_eq!(reply.body_str(), format!("POST /{i} {len}"), "response {i}");
    }
}

fn streaming(req: Request<'_>) -> Response {
    let n: usize = req.uri().path().trim_start_matches('/').parse().unwrap_or(0);
    Response::new(Body::stream(move |w| {
        for i in 0..n {
            writeln!(w, "line {i}")?;
        }
        Ok(())
    }))
}

#[test]
fn streamed_responses_are_chunked_for_http11_and_close_delimited_for_http10() {
    let _wd = support::watchdog("streamed_responses_are_chunked", Duration::from_secs(60));
    let server = start(Server::bind("127.0.0.1:0").unwrap(), streaming);
    let expected: String = (0..5000).map(|i| format!("line {i}\n")).collect();

    let mut conn = server.connect();
    let two = [
        request("GET /5000 HTTP/1.1", &["Host: t"], b""),
        request("GET /0 HTTP/1.1", &["Host: t"], b""),
    ]
    .concat();
    conn.send(&two).unwrap();
    let first = conn.reply(false).unwrap().unwrap();
    assert_eq!(first.header("transfer-encoding"), Some("chunked"));
    assert_eq!(first.chunked_complete, Some(true));
    assert_eq!(first.body_str(), expected);
    let empty = conn.reply(false).unwrap().unwrap();
    assert_eq!((empty.body.len(), empty.chunked_complete), (0, Some(true)));

    let mut old = server.connect();
    old.send(&request("GET /5000 HTTP/1.0", &[], b"")).unwrap();
    let reply = old.reply(false).unwrap().unwrap();
    assert_eq!(reply.header("transfer-encoding"), None);
    assert!(reply.says_close());
    assert_eq!(reply.body_str(), expected);

    let mut head = server.connect();
    head.send(&request("HEAD /5000 HTTP/1.1", &["Host: t"], b"")).unwrap();
    let reply = head.reply(true).unwrap().unwrap();
    assert_eq!((reply.status, reply.body.len()), (200, 0));
    head.send(&request("GET /1 HTTP/1.1", &["Host: t"], b"")).unwrap();
    assert_eq!(head.reply(false).unwrap().unwrap().body_str(), "line 0\n");
}
