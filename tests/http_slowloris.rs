//! Slowloris: thousands of connections that trickle a request head one byte at a time must not
//! keep a normal client from being served, and must be cut off by the header timeout.
//!
//! `WEFT_STRESS=1` raises the slow connections from 2,000 to 8,000.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::http::{echo_handler, request, start};
use weft::net::http::Server;

const HEAD: &[u8] = b"GET /slow HTTP/1.1\r\nHost: t\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";

#[test]
fn stress_slowloris_does_not_starve_normal_clients() {
    let wd = support::watchdog(
        "stress_slowloris_does_not_starve_normal_clients",
        Duration::from_secs(120),
    );
    let slow_count = support::sized(2_000, 8_000);
    let header_timeout = Duration::from_secs(2);
    let server = Server::bind("127.0.0.1:0").unwrap().header_timeout(header_timeout);
    let server = start(server, echo_handler);
    let addr = server.addr;

    // The slow side: one thread, non-blocking sockets, one byte per connection per round.
    let mut slow: Vec<(TcpStream, usize)> = (0..slow_count)
        .map(|_| {
            let s = TcpStream::connect(addr).expect("connect a slow client");
            s.set_nonblocking(true).unwrap();
            (s, 0)
        })
        .collect();
    let opened = Instant::now();
    let trickle = std::thread::spawn(move || {
        // Until the header timeout has passed for all of them, send a byte each 100 ms.
        while opened.elapsed() < header_timeout + Duration::from_millis(500) {
            for (s, sent) in &mut slow {
                if *sent < HEAD.len() && s.write(&HEAD[*sent..*sent + 1]).is_ok_and(|n| n == 1) {
                    *sent += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        slow
    });

    // The normal side: 500 requests over 5 keep-alive connections, while the slow ones trickle.
    let normal = 500;
    let mut ok = 0;
    let mut conns: Vec<_> = (0..5).map(|_| server.connect()).collect();
    for i in 0..normal {
        let conn = &mut conns[i % 5];
        conn.send(&request(&format!("GET /n{i} HTTP/1.1"), &["Host: t"], b"")).unwrap();
        let reply = conn.reply(false).unwrap().expect("a response");
        if reply.status == 200 && reply.body_str() == format!("GET /n{i} 0") {
            ok += 1;
        }
    }
    assert_eq!(ok, normal, "normal requests served while {slow_count} slow connections trickle");
    let during = opened.elapsed();
    assert!(
        during < header_timeout,
        "the normal requests took {during:?}, the whole slowloris window"
    );

    // Every slow connection is cut off: a 408, or a close, once the header timeout passes.
    let slow = trickle.join().unwrap();
    let mut cut = 0;
    for (mut s, _) in slow {
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        match s.read_to_end(&mut buf) {
            Ok(_) if buf.is_empty() || buf.starts_with(b"HTTP/1.1 408 ") => cut += 1,
            Ok(_) => panic!("a slow connection got {:?}", String::from_utf8_lossy(&buf)),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => cut += 1,
            Err(e) => panic!("a slow connection was left open: {e}"),
        }
    }
    assert_eq!(cut, slow_count);
    wd.note("all slow connections cut off");
}
