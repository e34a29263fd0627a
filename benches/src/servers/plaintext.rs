//! The HTTP side of the callback and threads servers: TechEmpower's plaintext test on httparse.
//!
//! Both styles read into a buffer of their own and hand it here; [`respond`] answers every
//! complete request at its front and says how much it used. weft, may_minihttp and hyper bring
//! their own HTTP layers, so this module is what the two hand-written styles share, and they
//! differ only in how they wait for bytes.

use std::cell::RefCell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The body of `GET /plaintext`.
pub const BODY: &[u8] = b"Hello, World!";

/// The most header fields a request may have; more is a 400, as a malformed head is.
const MAX_HEADERS: usize = 32;

/// What [`respond`] did with the front of its input.
#[derive(Debug, PartialEq, Eq)]
pub struct Answered {
    /// Bytes of whole requests (head and body) answered; the caller drops them.
    pub consumed: usize,
    /// Close once `out` is written: the client asked to, or the request was malformed (then
    /// nothing after it was read).
    pub close: bool,
}

/// Answers the complete requests at the front of `input`, appending one response each to `out`.
/// A request whose head or body is not all there yet is left for the next call. `GET
/// /plaintext` gets 200 and [`BODY`]; any other path 404; a malformed head, or a body framed by
/// `Transfer-Encoding` (which these servers do not decode), 400 and a close.
pub fn respond(input: &[u8], out: &mut Vec<u8>) -> Answered {
    let mut consumed = 0;
    loop {
        let rest = &input[consumed..];
        if rest.is_empty() {
            return Answered { consumed, close: false };
        }
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut fields);
        let head_len = match req.parse(rest) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Answered { consumed, close: false },
            Err(_) => {
                push_response(out, "400 Bad Request", b"", true);
                return Answered { consumed: input.len(), close: true };
            }
        };
        let mut body_len = 0usize;
        let mut close = req.version == Some(0);
        for field in req.headers.iter() {
            if field.name.eq_ignore_ascii_case("content-length") {
                match std::str::from_utf8(field.value).ok().and_then(|v| v.parse().ok()) {
                    Some(n) => body_len = n,
                    None => return bad_request(input, out),
                }
            } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
                return bad_request(input, out);
            } else if field.name.eq_ignore_ascii_case("connection") {
                if field.value.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if field.value.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        }
        let Some(total) = head_len.checked_add(body_len).filter(|&t| t <= rest.len()) else {
            return Answered { consumed, close: false };
        };
        if req.method == Some("GET") && req.path == Some("/plaintext") {
            push_response(out, "200 OK", BODY, close);
        } else {
            push_response(out, "404 Not Found", b"", close);
        }
        consumed += total;
        if close {
            return Answered { consumed, close };
        }
    }
}

fn bad_request(input: &[u8], out: &mut Vec<u8>) -> Answered {
    push_response(out, "400 Bad Request", b"", true);
    Answered { consumed: input.len(), close: true }
}

fn push_response(out: &mut Vec<u8>, status: &str, body: &[u8], close: bool) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\nServer: weft-bench\r\nContent-Type: text/plain\r\nDate: ");
    with_date(|date| out.extend_from_slice(date));
    // Written into `out` in place: a `to_string` would allocate per response.
    let _ = write!(out, "\r\nContent-Length: {}", body.len());
    if close {
        out.extend_from_slice(b"\r\nConnection: close");
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// The `Date` value of the current second, formatted once per second per thread.
fn with_date(f: impl FnOnce(&[u8])) {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != second {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        f(cached.1.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statuses(out: &[u8]) -> Vec<u16> {
        let mut codes = Vec::new();
        let mut rest = out;
        while !rest.is_empty() {
            let mut fields = [httparse::EMPTY_HEADER; 16];
            let mut rsp = httparse::Response::new(&mut fields);
            let httparse::Status::Complete(head) = rsp.parse(rest).unwrap() else {
                panic!("partial response")
            };
            let len: usize = rsp
                .headers
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case("content-length"))
                .map(|f| std::str::from_utf8(f.value).unwrap().parse().unwrap())
                .unwrap();
            codes.push(rsp.code.unwrap());
            rest = &rest[head + len..];
        }
        codes
    }

    #[test]
    fn answers_pipelined_requests_and_leaves_a_partial_one() {
        let get = b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut input = Vec::new();
        input.extend_from_slice(get);
        input.extend_from_slice(b"GET /other HTTP/1.1\r\nHost: a\r\n\r\n");
        input.extend_from_slice(&get[..10]);
        let mut out = Vec::new();
        let answered = respond(&input, &mut out);
        assert_eq!(answered, Answered { consumed: input.len() - 10, close: false });
        assert_eq!(statuses(&out), [200, 404]);
        assert!(out.windows(BODY.len()).any(|w| w == BODY));
    }

    #[test]
    fn waits_for_a_whole_body_then_skips_it() {
        let req = b"POST /plaintext HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        let mut out = Vec::new();
        assert_eq!(respond(&req[..req.len() - 1], &mut out).consumed, 0);
        assert!(out.is_empty());
        assert_eq!(respond(req, &mut out), Answered { consumed: req.len(), close: false });
        assert_eq!(statuses(&out), [404]);
    }

    #[test]
    fn closes_on_request_and_on_malformed_input() {
        let mut out = Vec::new();
        let req = b"GET /plaintext HTTP/1.1\r\nConnection: close\r\n\r\nGET /plaintext";
        assert_eq!(respond(req, &mut out), Answered { consumed: req.len() - 14, close: true });
        let mut out = Vec::new();
        assert!(respond(b"GET /plaintext HTTP/1.0\r\n\r\n", &mut out).close);
        let mut out = Vec::new();
        let bad = b"GET /\x01 HTTP/1.1\r\n\r\n";
        assert_eq!(respond(bad, &mut out), Answered { consumed: bad.len(), close: true });
        assert_eq!(statuses(&out), [400]);
    }
}
