//! The checks on what weft's HTTP server writes back, shared by the `cargo fuzz` target
//! (`fuzz_targets/http_request.rs`) and the generated-request test (`tests/http_fuzz.rs`).
//!
//! [`read`] splits the output of one connection into responses with a parser that is not the
//! server's own (`httparse`), and checks each of them:
//!
//! 1. the head is complete, `HTTP/1.1`, with a status in [`KNOWN`] and one `date` field; a
//!    `100 Continue` has no fields and never follows another;
//! 2. the framing reads: one `content-length` of digits, or `transfer-encoding: chunked` and
//!    a well-formed chunked body, never both; with neither, the body runs to the end of the
//!    output, so the response must close the connection (or answer a HEAD);
//! 3. an error status (4xx, 5xx) says `connection: close`, and nothing follows a response
//!    that says it.
//!
//! [`same_answers`] compares the answers to one input read in pieces of different sizes.
//!
//! A response to HEAD announces a body that it does not carry, and the output alone does not
//! tell which responses answer a HEAD. With [`Methods::Unknown`], both readings of every
//! response that announces a body are tried. The search walks (offset, state) pairs in offset
//! order and reads each pair once, however many readings reach it:
//!
//! ```text
//!   0 ──head──▶ h ──body──▶ h+n ──head──▶ …  end of output: accepted
//!               └──(HEAD)──────▶ h ──head──▶ …
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The statuses the server may answer the fuzz handler with. Not 500: that handler never
/// panics, so a 500 is a panic in the server's own code, caught. Not 408: reads from memory
/// never time out.
pub const KNOWN: [u16; 9] = [100, 200, 400, 413, 414, 417, 431, 501, 505];

/// One response read from the output.
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// It says `connection: close`.
    pub close: bool,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let close = if self.close { ", close" } else { "" };
        write!(f, "{} {:?}{close}", self.status, self.body.escape_ascii().to_string())
    }
}

/// Which final responses (not `100 Continue`) answer a HEAD request.
#[derive(Clone, Copy, Debug)]
pub enum Methods<'a> {
    /// `heads[i]`: the `i`-th final response answers a HEAD. More responses is an error.
    Known(&'a [bool]),
    /// Any response may answer a HEAD.
    Unknown,
}

/// How many bytes each read of the input returns, from a byte of the fuzzer's input: 1 to 64
/// for three quarters of the values, else a size that takes most inputs in one read.
pub fn step_for(byte: u8) -> usize {
    match byte {
        0..=191 => 1 + usize::from(byte % 64),
        _ => [128, 512, 4096, 1 << 16][usize::from(byte % 4)],
    }
}

/// The most final responses `input` can get: each answered request has a head of at least two
/// lines, and one refusal may follow them.
pub fn most_replies(input: &[u8]) -> usize {
    input.iter().filter(|&&b| b == b'\n').count() / 2 + 1
}

/// Whether the answers to one input, served in reads of two sizes, agree: how the input is
/// split must not change what the server makes of it. One latitude: a last refusal of 400,
/// 414 or 431 may name another of the three, as a head that is malformed past a limit is
/// found malformed or too long depending on how much of it has arrived.
pub fn same_answers(a: &[Reply], b: &[Reply]) -> bool {
    const EITHER: [u16; 3] = [400, 414, 431];
    match (a.split_last(), b.split_last()) {
        (Some((last_a, a)), Some((last_b, b))) => {
            a == b
                && (last_a == last_b
                    || (EITHER.contains(&last_a.status) && EITHER.contains(&last_b.status)))
        }
        _ => a.is_empty() && b.is_empty(),
    }
}

/// Reads `out` as a sequence of responses; the error names the offset where the reading that
/// got furthest failed.
///
/// # Errors
///
/// A message when no reading of `out` is a well-formed sequence of responses.
pub fn read(out: &[u8], methods: Methods<'_>) -> Result<Vec<Reply>, String> {
    let start = State { at: 0, after_continue: false, finals: 0 };
    // Each state reached, with the state it was first reached from and the reply between.
    let mut reached: BTreeMap<State, Option<(State, Reply)>> = BTreeMap::from([(start, None)]);
    let mut todo = BTreeSet::from([start]);
    let mut furthest = (0, String::from("no response"));
    while let Some(state) = todo.pop_first() {
        if state.at == out.len() {
            return Ok(path(&reached, state));
        }
        let next = match step(out, state, methods) {
            Ok(next) => next,
            Err(e) => {
                if state.at >= furthest.0 {
                    furthest = (state.at, e);
                }
                continue;
            }
        };
        for (to, reply) in next {
            reached.entry(to).or_insert_with(|| {
                todo.insert(to);
                Some((state, reply))
            });
        }
    }
    let (at, e) = furthest;
    Err(format!("at byte {at} of {}: {e}", out.len()))
}

/// A point of the search: an offset, and what the responses before it allow next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct State {
    at: usize,
    after_continue: bool,
    /// Final responses before `at`, under [`Methods::Known`] (always 0 otherwise, so that
    /// readings that differ only in which responses answered a HEAD meet).
    finals: usize,
}

/// The replies on the way to `end`.
fn path(reached: &BTreeMap<State, Option<(State, Reply)>>, mut end: State) -> Vec<Reply> {
    let mut replies = Vec::new();
    while let Some(Some((from, reply))) = reached.get(&end) {
        replies.push(reply.clone());
        end = *from;
    }
    replies.reverse();
    replies
}

/// The readings of the response at `state.at`: the states after it, with the reply.
fn step(out: &[u8], state: State, methods: Methods<'_>) -> Result<Vec<(State, Reply)>, String> {
    let head = head(&out[state.at..])?;
    let after = state.at + head.len;
    if head.status == 100 {
        if state.after_continue {
            return Err("a second 100 Continue".into());
        }
        if head.fields > 0 {
            return Err("a 100 Continue with fields".into());
        }
        let to = State { at: after, after_continue: true, ..state };
        return Ok(vec![(to, Reply { status: 100, body: Vec::new(), close: false })]);
    }
    if head.status >= 400 && !head.close {
        return Err(format!("status {} without connection: close", head.status));
    }
    let is_head = match methods {
        Methods::Known(heads) => Some(
            *heads
                .get(state.finals)
                .ok_or_else(|| format!("response {} is one too many", state.finals))?,
        ),
        Methods::Unknown => None,
    };
    let rest = &out[after..];
    let body = match (is_head, head.framing) {
        (Some(true), _) => Ok(None),
        (_, Framing::Length(n)) => rest
            .get(..n)
            .map(|body| Some((body.to_vec(), n)))
            .ok_or_else(|| format!("{} of {n} body bytes", rest.len())),
        (_, Framing::Chunked) => chunked(rest).map(Some),
        (_, Framing::None) if head.close => Ok(Some((rest.to_vec(), rest.len()))),
        (Some(false), Framing::None) => {
            Err("no framing on a response that keeps the connection".into())
        }
        (None, Framing::None) => Ok(None),
    };
    let mut readings = Vec::new();
    let mut error = None;
    match body {
        Ok(Some(reading)) => readings.push(reading),
        Ok(None) => {}
        Err(e) => error = Some(e),
    }
    // An answer to HEAD: no body, whatever the framing says.
    if is_head != Some(false) {
        readings.push((Vec::new(), 0));
    }
    let finals = if is_head.is_some() { state.finals + 1 } else { 0 };
    let mut next = Vec::new();
    for (body, used) in readings {
        let at = after + used;
        if head.close && at != out.len() {
            continue;
        }
        let to = State { at, after_continue: false, finals };
        next.push((to, Reply { status: head.status, body, close: head.close }));
    }
    if next.is_empty() {
        return Err(
            error.unwrap_or_else(|| format!("{} bytes after connection: close", out.len() - after))
        );
    }
    Ok(next)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    None,
    Length(usize),
    Chunked,
}

/// What a response head says, checked.
struct Head {
    len: usize,
    status: u16,
    fields: usize,
    framing: Framing,
    close: bool,
}

fn head(out: &[u8]) -> Result<Head, String> {
    let mut fields = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut fields);
    let len = match resp.parse(out) {
        Ok(httparse::Status::Complete(len)) => len,
        other => return Err(format!("not a complete response head ({other:?}): {}", show(out))),
    };
    if resp.version != Some(1) {
        return Err(format!("not HTTP/1.1: {}", show(out)));
    }
    let status = resp.code.unwrap_or(0);
    if !KNOWN.contains(&status) {
        return Err(format!("status {status}: {}", show(out)));
    }
    let all =
        |name: &'static str| resp.headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name));
    let lengths: Vec<&[u8]> = all("content-length").map(|h| h.value).collect();
    let codings: Vec<&[u8]> = all("transfer-encoding").map(|h| h.value).collect();
    let framing = match (&lengths[..], &codings[..]) {
        ([], []) => Framing::None,
        ([n], []) if !n.is_empty() && n.iter().all(u8::is_ascii_digit) => Framing::Length(
            std::str::from_utf8(n).ok().and_then(|n| n.parse().ok()).ok_or("huge length")?,
        ),
        ([], [b"chunked"]) => Framing::Chunked,
        _ => return Err(format!("bad framing fields: {}", show(&out[..len]))),
    };
    let connection: Vec<&[u8]> = all("connection").map(|h| h.value).collect();
    let close = match &connection[..] {
        [] | [b"keep-alive"] => false,
        [b"close"] => true,
        _ => return Err(format!("bad connection field: {}", show(&out[..len]))),
    };
    if status != 100 && all("date").count() != 1 {
        return Err(format!("not one date field: {}", show(&out[..len])));
    }
    Ok(Head { len, status, fields: resp.headers.len(), framing, close })
}

/// A chunked body at the start of `rest`, as the server writes it (no extensions, no
/// trailers): the body and the bytes it took.
fn chunked(rest: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_len = rest[at..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| format!("no chunk-size line: {}", show(&rest[at..])))?;
        let line = &rest[at..at + line_len];
        let size = std::str::from_utf8(line)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or_else(|| format!("bad chunk-size line: {}", show(line)))?;
        at += line_len + 2;
        let data = rest.get(at..at + size).ok_or("a short chunk")?;
        body.extend_from_slice(data);
        at += size;
        if rest.get(at..at + 2) != Some(b"\r\n") {
            return Err("a chunk not ended by CRLF".into());
        }
        at += 2;
        if size == 0 {
            return Ok((body, at));
        }
    }
}

/// A short, printable excerpt of `bytes` for a message.
fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]);
    format!("{text:?}{}", if bytes.len() > 200 { "…" } else { "" })
}
