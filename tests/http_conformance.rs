//! The server against a table of raw requests: each case is the bytes a client sends, the
//! statuses it must get back, in order, and whether the connection stays open afterwards.
//!
//! The expectations come from RFC 9112 (HTTP/1.1 messages) and RFC 9110 (semantics):
//! - §2.2: empty lines before a request line are ignored; a bare LF or whitespace in the wrong
//!   place is malformed;
//! - §3: the request line is `method SP request-target SP HTTP-version`, one space each; `*`
//!   only with OPTIONS; an unsupported version gets 505;
//! - §3.2: an HTTP/1.1 request needs exactly one Host;
//! - §5: no whitespace between a field name and its colon; obsolete line folding is refused;
//! - §6.1, §6.3: Transfer-Encoding with Content-Length, a coding list whose last coding is not
//!   `chunked`, and a Content-Length that is not one run of digits are framing errors (400 and
//!   close); a coding the server does not know gets 501;
//! - §7.1: chunk sizes are hex, lines end in CRLF;
//! - §9.3: HTTP/1.1 keeps the connection open unless `close` is asked for, HTTP/1.0 closes
//!   unless `keep-alive` is.
//!
//! "Open" is shown by sending a further request on the same connection and getting its answer;
//! "closed" by reading the end of the stream.

mod support;

use std::time::Duration;

use support::http::{echo_handler, request, start};
use weft::net::http::Server;

#[derive(Clone, Copy, Debug, PartialEq)]
enum After {
    Open,
    Closed,
}
use After::{Closed, Open};

struct Case {
    name: &'static str,
    raw: Vec<u8>,
    statuses: &'static [u16],
    /// The first response's body, where the case pins it.
    body: Option<&'static str>,
    after: After,
    head: bool,
}

fn case(
    name: &'static str,
    raw: impl Into<Vec<u8>>,
    statuses: &'static [u16],
    after: After,
) -> Case {
    Case { name, raw: raw.into(), statuses, body: None, after, head: false }
}

fn with_body(mut c: Case, body: &'static str) -> Case {
    c.body = Some(body);
    c
}

const H: &str = "Host: test";

fn post(fields: &[&str], body: &str) -> Vec<u8> {
    let mut all = vec![H];
    all.extend_from_slice(fields);
    request("POST /p HTTP/1.1", &all, body.as_bytes())
}

fn chunked(body: &str) -> Vec<u8> {
    post(&["Transfer-Encoding: chunked"], body)
}

fn cases() -> Vec<Case> {
    let get = |line: &str| request(line, &[H], b"");
    vec![
        // Request lines.
        with_body(case("origin form", get("GET /a HTTP/1.1"), &[200], Open), "GET /a 0"),
        with_body(
            case("origin form with query", get("GET /a?b=c&d HTTP/1.1"), &[200], Open),
            "GET /a 0",
        ),
        with_body(
            case("absolute form", get("GET http://test/x HTTP/1.1"), &[200], Open),
            "GET /x 0",
        ),
        case("asterisk form with OPTIONS", get("OPTIONS * HTTP/1.1"), &[200], Open),
        with_body(case("extension method", get("PURGE /a HTTP/1.1"), &[200], Open), "PURGE /a 0"),
        with_body(
            case(
                "leading empty lines",
                [&b"\r\n\r\n"[..], &get("GET /a HTTP/1.1")].concat(),
                &[200],
                Open,
            ),
            "GET /a 0",
        ),
        case("HTTP/1.0 closes by default", request("GET / HTTP/1.0", &[], b""), &[200], Closed),
        case(
            "HTTP/1.0 keep-alive",
            request("GET / HTTP/1.0", &["Connection: keep-alive"], b""),
            &[200],
            Open,
        ),
        case("HTTP/1.0 needs no Host", request("GET / HTTP/1.0", &[], b""), &[200], Closed),
        case(
            "HTTP/1.1 Connection: close",
            request("GET / HTTP/1.1", &[H, "Connection: close"], b""),
            &[200],
            Closed,
        ),
        case(
            "close among other tokens",
            request("GET / HTTP/1.1", &[H, "Connection: Keep-Alive, CLOSE"], b""),
            &[200],
            Closed,
        ),
        case("HTTP/0.9 request line", "GET /\r\n\r\n", &[400], Closed),
        case("HTTP/1.2 is not supported", get("GET / HTTP/1.2"), &[505], Closed),
        case("HTTP/2.0 on an HTTP/1 line", get("GET / HTTP/2.0"), &[505], Closed),
        case("lower-case version", get("GET / http/1.1"), &[400], Closed),
        case("version without minor", get("GET / HTTP/1"), &[400], Closed),
        case("two spaces after method", get("GET  / HTTP/1.1"), &[400], Closed),
        case("tabs as separators", get("GET\t/\tHTTP/1.1"), &[400], Closed),
        case("no target", get("GET HTTP/1.1"), &[400], Closed),
        case("space inside target", get("GET /a b HTTP/1.1"), &[400], Closed),
        case("asterisk with GET", get("GET * HTTP/1.1"), &[400], Closed),
        case("authority form with GET", get("GET test:80 HTTP/1.1"), &[400], Closed),
        case("bad character in method", get("GE(T / HTTP/1.1"), &[400], Closed),
        case("control character in target", get("GET /\x01 HTTP/1.1"), &[400], Closed),
        case("not HTTP at all", "hello there\r\n\r\n", &[400], Closed),
        // Header fields.
        case("HTTP/1.1 without Host", request("GET / HTTP/1.1", &[], b""), &[400], Closed),
        case(
            "two Host fields",
            request("GET / HTTP/1.1", &[H, "Host: other"], b""),
            &[400],
            Closed,
        ),
        case(
            "space before colon",
            request("GET / HTTP/1.1", &["Host : test"], b""),
            &[400],
            Closed,
        ),
        case(
            "obsolete line folding",
            request("GET / HTTP/1.1", &[H, "X-A: b", " c"], b""),
            &[400],
            Closed,
        ),
        case(
            "field without colon",
            request("GET / HTTP/1.1", &[H, "NoColon"], b""),
            &[400],
            Closed,
        ),
        case("empty field name", request("GET / HTTP/1.1", &[H, ": v"], b""), &[400], Closed),
        case(
            "NUL in a field value",
            request("GET / HTTP/1.1", &[H, "X-A: a\0b"], b""),
            &[400],
            Closed,
        ),
        case(
            "tab as optional whitespace",
            request("GET / HTTP/1.1", &[H, "X-A:\tv"], b""),
            &[200],
            Open,
        ),
        case(
            "unknown expectation",
            request("GET / HTTP/1.1", &[H, "Expect: teapot"], b""),
            &[417],
            Closed,
        ),
        // Content-Length bodies.
        with_body(
            case("Content-Length body", post(&["Content-Length: 5"], "hello"), &[200], Open),
            "POST /p 5",
        ),
        with_body(
            case("Content-Length zero", post(&["Content-Length: 0"], ""), &[200], Open),
            "POST /p 0",
        ),
        with_body(
            case("leading zeros", post(&["Content-Length: 003"], "abc"), &[200], Open),
            "POST /p 3",
        ),
        case("plus sign", post(&["Content-Length: +3"], "abc"), &[400], Closed),
        case("minus sign", post(&["Content-Length: -1"], ""), &[400], Closed),
        case("list of lengths", post(&["Content-Length: 3,3"], "abc"), &[400], Closed),
        case("space inside length", post(&["Content-Length: 3 3"], "abc"), &[400], Closed),
        case("hex length", post(&["Content-Length: 0x3"], "abc"), &[400], Closed),
        case("empty length", post(&["Content-Length: "], ""), &[400], Closed),
        case(
            "two equal lengths",
            post(&["Content-Length: 3", "Content-Length: 3"], "abc"),
            &[400],
            Closed,
        ),
        case(
            "two different lengths",
            post(&["Content-Length: 3", "Content-Length: 4"], "abcd"),
            &[400],
            Closed,
        ),
        case(
            "length overflows u64",
            post(&["Content-Length: 99999999999999999999"], ""),
            &[400],
            Closed,
        ),
        case("length over the body limit", post(&["Content-Length: 9000000"], ""), &[413], Closed),
        // Chunked bodies.
        with_body(
            case("chunked body", chunked("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), &[200], Open),
            "POST /p 11",
        ),
        with_body(
            case("chunk extensions", chunked("5;a=b;c=\"d\"\r\nhello\r\n0\r\n\r\n"), &[200], Open),
            "POST /p 5",
        ),
        with_body(
            case("trailer fields", chunked("5\r\nhello\r\n0\r\nX-T: v\r\n\r\n"), &[200], Open),
            "POST /p 5",
        ),
        with_body(
            case("upper-case hex size", chunked("A\r\n0123456789\r\n0\r\n\r\n"), &[200], Open),
            "POST /p 10",
        ),
        case("chunk size not hex", chunked("z\r\nhello\r\n0\r\n\r\n"), &[400], Closed),
        case("chunk size with plus", chunked("+5\r\nhello\r\n0\r\n\r\n"), &[400], Closed),
        case("chunk size then space", chunked("5 \r\nhello\r\n0\r\n\r\n"), &[400], Closed),
        case(
            "chunk size overflows u64",
            chunked("1ffffffffffffffff\r\nx\r\n0\r\n\r\n"),
            &[400],
            Closed,
        ),
        case(
            "chunk size over the body limit",
            chunked("ffffffffffffffff\r\nx\r\n0\r\n\r\n"),
            &[413],
            Closed,
        ),
        case("no CRLF after chunk data", chunked("5\r\nhelloX0\r\n\r\n"), &[400], Closed),
        case("bare LF chunk lines", chunked("5\nhello\n0\n\n"), &[400], Closed),
        case(
            "chunk extension too long",
            chunked(&format!("5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(2000))),
            &[400],
            Closed,
        ),
        case("trailer with folding", chunked("5\r\nhello\r\n0\r\n folded\r\n\r\n"), &[400], Closed),
        // Expect: 100-continue.
        case(
            "100-continue then the body",
            post(&["Content-Length: 5", "Expect: 100-continue"], "hello"),
            &[100, 200],
            Open,
        ),
        // HEAD.
        Case {
            head: true,
            ..with_body(case("HEAD has no body", get("HEAD /a HTTP/1.1"), &[200], Open), "")
        },
        // Pipelining.
        case(
            "three pipelined GETs",
            [get("GET /1 HTTP/1.1"), get("GET /2 HTTP/1.1"), get("GET /3 HTTP/1.1")].concat(),
            &[200, 200, 200],
            Open,
        ),
        case(
            "pipelined bodies of both framings",
            [
                post(&["Content-Length: 3"], "abc"),
                chunked("3\r\nabc\r\n0\r\n\r\n"),
                get("GET /3 HTTP/1.1"),
            ]
            .concat(),
            &[200, 200, 200],
            Open,
        ),
        case(
            "nothing after Connection: close",
            [request("GET / HTTP/1.1", &[H, "Connection: close"], b""), get("GET /2 HTTP/1.1")]
                .concat(),
            &[200],
            Closed,
        ),
        case(
            "pipelined after a bad request",
            [get("GET  / HTTP/1.1"), get("GET /2 HTTP/1.1")].concat(),
            &[400],
            Closed,
        ),
        // Smuggling: Transfer-Encoding spellings × Content-Length order.
        case(
            "TE then CL",
            post(&["Transfer-Encoding: chunked", "Content-Length: 5"], "0\r\n\r\n"),
            &[400],
            Closed,
        ),
        case(
            "CL then TE",
            post(&["Content-Length: 5", "Transfer-Encoding: chunked"], "0\r\n\r\n"),
            &[400],
            Closed,
        ),
        case(
            "CL then obfuscated TE",
            post(&["Content-Length: 4", "Transfer-Encoding: xchunked"], "0\r\n\r\n"),
            &[400],
            Closed,
        ),
        case(
            "CL zero then TE",
            post(&["Content-Length: 0", "Transfer-Encoding: chunked"], "0\r\n\r\n"),
            &[400],
            Closed,
        ),
        with_body(
            case(
                "TE Chunked (case)",
                post(&["Transfer-Encoding: Chunked"], "3\r\nabc\r\n0\r\n\r\n"),
                &[200],
                Open,
            ),
            "POST /p 3",
        ),
        with_body(
            case(
                "TE with spaces around",
                post(&["Transfer-Encoding:   chunked  "], "3\r\nabc\r\n0\r\n\r\n"),
                &[200],
                Open,
            ),
            "POST /p 3",
        ),
        with_body(
            case(
                "TE after a tab",
                post(&["Transfer-Encoding:\tchunked"], "3\r\nabc\r\n0\r\n\r\n"),
                &[200],
                Open,
            ),
            "POST /p 3",
        ),
        case("TE xchunked", post(&["Transfer-Encoding: xchunked"], "0\r\n\r\n"), &[400], Closed),
        case(
            "TE chunked, identity",
            post(&["Transfer-Encoding: chunked, identity"], "0\r\n\r\n"),
            &[400],
            Closed,
        ),
        case(
            "TE identity, chunked",
            post(&["Transfer-Encoding: identity, chunked"], "0\r\n\r\n"),
            &[501],
            Closed,
        ),
        case(
            "TE gzip, chunked",
            post(&["Transfer-Encoding: gzip, chunked"], "0\r\n\r\n"),
            &[501],
            Closed,
        ),
        case(
            "TE chunked twice in one field",
            post(&["Transfer-Encoding: chunked, chunked"], "0\r\n\r\n"),
            &[400],
            Closed,
        ),
        case(
            "TE in two fields",
            post(&["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], "0\r\n\r\n"),
            &[400],
            Closed,
        ),
        case("TE quoted", post(&["Transfer-Encoding: \"chunked\""], "0\r\n\r\n"), &[400], Closed),
        case(
            "TE with vertical tab",
            post(&["Transfer-Encoding: chunked\x0b"], "0\r\n\r\n"),
            &[400],
            Closed,
        ),
        case("TE empty", post(&["Transfer-Encoding: "], ""), &[400], Closed),
        case("TE only a comma", post(&["Transfer-Encoding: ,"], ""), &[400], Closed),
        case(
            "TE with space before colon",
            post(&["Transfer-Encoding : chunked"], "0\r\n\r\n"),
            &[400],
            Closed,
        ),
        case(
            "TE folded onto the next line",
            post(&["Transfer-Encoding:", " chunked"], "0\r\n\r\n"),
            &[400],
            Closed,
        ),
        case(
            "TE in HTTP/1.0",
            request("POST / HTTP/1.0", &["Transfer-Encoding: chunked"], b"0\r\n\r\n"),
            &[400],
            Closed,
        ),
        // Not a framing field at all: the body is read as the next request, which is bad.
        case(
            "Transfer_Encoding is just a field",
            post(&["Transfer_Encoding: chunked"], "5\r\nhello\r\n0\r\n\r\n"),
            &[200, 400],
            Closed,
        ),
    ]
}

#[test]
fn conformance_table() {
    let _wd = support::watchdog("conformance_table", Duration::from_secs(120));
    let server = Server::bind("127.0.0.1:0").unwrap().header_timeout(Duration::from_secs(5));
    let server = start(server, echo_handler);
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(why) = run(&server, case) {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn run(server: &support::http::Running, case: &Case) -> Result<(), String> {
    let mut conn = server.connect();
    conn.send(&case.raw).map_err(|e| format!("send: {e}"))?;
    let mut got = Vec::new();
    for (i, _) in case.statuses.iter().enumerate() {
        let reply = conn.reply(case.head).map_err(|e| format!("reply {i}: {e}"))?;
        let Some(reply) = reply else { break };
        if i == 0 {
            if let Some(body) = case.body {
                if reply.body_str() != body {
                    return Err(format!("body {:?}, wanted {body:?}", reply.body_str()));
                }
            }
        }
        if case.after == Closed && i + 1 == case.statuses.len() && !reply.says_close() {
            return Err(format!("response {i} does not say `connection: close`"));
        }
        got.push(reply.status);
    }
    if got != case.statuses {
        return Err(format!("statuses {got:?}, wanted {:?}", case.statuses));
    }
    match case.after {
        Closed if conn.closed() => Ok(()),
        Closed => Err("connection left open".into()),
        Open => {
            conn.send(&request("GET /probe HTTP/1.1", &[H], b""))
                .map_err(|e| format!("probe: {e}"))?;
            match conn.reply(false) {
                Ok(Some(r)) if r.status == 200 && r.body_str() == "GET /probe 0" => Ok(()),
                other => Err(format!("connection not usable afterwards: {other:?}")),
            }
        }
    }
}
