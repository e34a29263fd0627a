//! The request head: request line and header fields, parsed with `httparse` and then checked
//! against what RFC 9112 requires of a server before it trusts the framing.
//!
//! The order of the checks:
//!
//! 1. the request line fits [`Limits::max_request_line`] (else 414), found before parsing so a
//!    long line never waits for the rest of the head;
//! 2. `httparse` takes the line and the fields; too many fields or too many bytes is 431, an
//!    unsupported version 505, anything else malformed 400;
//! 3. the request target matches its method (`*` only for OPTIONS, authority form only for
//!    CONNECT);
//! 4. the framing: `Transfer-Encoding` with `Content-Length` is 400, as is any coding list
//!    but a lone `chunked` (501 for a well-formed list of codings weft does not decode), and
//!    a `Content-Length` that is not exactly one run of digits; a length over the body limit
//!    is 413;
//! 5. HTTP/1.1 needs exactly one `Host`; `Expect` may only be `100-continue` (else 417).

use std::mem::MaybeUninit;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

use super::body::Framing;
use super::wire::{self, Coding};
use super::Limits;

/// A parsed, checked request head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) framing: Framing,
    /// The connection may carry another request after this one.
    pub(crate) keep_alive: bool,
    /// The client waits for `100 Continue` before it sends the body.
    pub(crate) expect_continue: bool,
}

/// The most header fields parsed without a heap array.
const STACK_FIELDS: usize = 128;

/// Parses the head at the start of `buf`: `Ok(None)` if it is not all there yet, else the
/// head and its length in bytes, or the status that refuses it.
pub(crate) fn parse(buf: &[u8], limits: &Limits) -> Result<Option<(Head, usize)>, StatusCode> {
    check_request_line(buf, limits.max_request_line)?;
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_FIELDS];
    let mut heap = Vec::new();
    let fields = if limits.max_headers <= STACK_FIELDS {
        &mut stack[..limits.max_headers]
    } else {
        heap.resize_with(limits.max_headers, MaybeUninit::uninit);
        &mut heap[..]
    };
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, fields) {
        Ok(httparse::Status::Complete(len)) if len <= limits.max_head => len,
        Ok(httparse::Status::Partial) if buf.len() <= limits.max_head => return Ok(None),
        Ok(_) | Err(httparse::Error::TooManyHeaders) => {
            return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        }
        // The version is judged on the whole line: `HTTP/2` may yet be `HTTP/2.0`.
        Err(httparse::Error::Version) if !request_line_complete(buf) => return Ok(None),
        Err(httparse::Error::Version) => return Err(version_error(buf)),
        Err(_) => return Err(StatusCode::BAD_REQUEST),
    };
    let bad = StatusCode::BAD_REQUEST;
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(StatusCode::HTTP_VERSION_NOT_SUPPORTED),
    };
    let method = Method::from_bytes(req.method.ok_or(bad)?.as_bytes()).map_err(|_| bad)?;
    let target = req.path.ok_or(bad)?;
    // One copy of the head; the target and every field value are slices of it, so a request
    // costs one allocation for them all, however many fields it has.
    let shared = Bytes::copy_from_slice(&buf[..len]);
    let slice = |part: &[u8]| {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        shared.slice(start..start + part.len())
    };
    let uri = target_uri(&method, target, slice(target.as_bytes())).ok_or(bad)?;

    let mut headers = HeaderMap::with_capacity(req.headers.len());
    let mut lengths = 0;
    let mut length = None;
    let mut codings = false;
    let mut hosts = 0;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut expect_continue = false;
    for field in req.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| bad)?;
        let value = HeaderValue::from_maybe_shared(slice(field.value)).map_err(|_| bad)?;
        if name == http::header::CONTENT_LENGTH {
            lengths += 1;
            length = wire::parse_length(field.value);
        } else if name == http::header::TRANSFER_ENCODING {
            codings = true;
        } else if name == http::header::HOST {
            hosts += 1;
        } else if name == http::header::CONNECTION {
            connection_close |= wire::has_token(field.value, "close");
            connection_keep_alive |= wire::has_token(field.value, "keep-alive");
        } else if name == http::header::EXPECT {
            if !field.value.eq_ignore_ascii_case(b"100-continue") {
                return Err(StatusCode::EXPECTATION_FAILED);
            }
            expect_continue = version == Version::HTTP_11;
        }
        headers.append(name, value);
    }

    let framing = if codings {
        if lengths > 0 || version == Version::HTTP_10 {
            return Err(bad);
        }
        let fields =
            headers.get_all(http::header::TRANSFER_ENCODING).iter().map(HeaderValue::as_bytes);
        match wire::transfer_coding(fields) {
            Coding::Chunked => Framing::Chunked,
            Coding::Unsupported => return Err(StatusCode::NOT_IMPLEMENTED),
            Coding::Invalid => return Err(bad),
        }
    } else if lengths > 0 {
        match (lengths, length) {
            (1, Some(n)) if n > limits.max_body => return Err(StatusCode::PAYLOAD_TOO_LARGE),
            (1, Some(n)) => Framing::Length(n),
            _ => return Err(bad),
        }
    } else {
        Framing::Empty
    };
    if hosts > 1 || (hosts == 0 && version == Version::HTTP_11) {
        return Err(bad);
    }
    let keep_alive = match version {
        Version::HTTP_11 => !connection_close,
        _ => connection_keep_alive && !connection_close,
    };
    let expect_continue = expect_continue && framing != Framing::Empty;
    let head = Head { method, uri, version, headers, framing, keep_alive, expect_continue };
    Ok(Some((head, len)))
}

/// The status for a request line whose version `httparse` refused: 505 for a well-formed
/// `HTTP/x.y` that is not 1.0 or 1.1, 400 for anything else (`http/1.1`, `HTTP/1`).
fn version_error(buf: &[u8]) -> StatusCode {
    let line = buf.split(|&b| b == b'\n').find(|l| !l.is_empty() && *l != b"\r").unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let version = match parts[..] {
        [_method, _target, version] => version,
        _ => return StatusCode::BAD_REQUEST,
    };
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            StatusCode::HTTP_VERSION_NOT_SUPPORTED
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Whether the request line (after any empty lines) has ended in `buf`.
fn request_line_complete(buf: &[u8]) -> bool {
    let start = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    buf[start..].contains(&b'\n')
}

/// 414 if the request line is longer than `max` bytes, or is not ended within them.
fn check_request_line(buf: &[u8], max: usize) -> Result<(), StatusCode> {
    // Empty lines before a request line are allowed (RFC 9112 §2.2) and do not count.
    let start = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    let line = &buf[start..];
    let window = &line[..line.len().min(max + 2)];
    let end = window.iter().position(|&b| b == b'\n');
    let len = match end {
        Some(i) if i > 0 && window[i - 1] == b'\r' => i - 1,
        Some(i) => i,
        None => window.len().saturating_sub(1),
    };
    if len > max {
        return Err(StatusCode::URI_TOO_LONG);
    }
    Ok(())
}

/// The request target (`bytes`, the same text as `target`) as a `Uri`, if its form suits the
/// method: origin form (`/path?q`),
/// absolute form (`http://host/path`), `*` for OPTIONS, authority form (`host:port`) for
/// CONNECT and for it alone.
fn target_uri(method: &Method, target: &str, bytes: Bytes) -> Option<Uri> {
    let asterisk = target == "*";
    let origin = target.starts_with('/');
    let uri = Uri::from_maybe_shared(bytes).ok()?;
    let absolute = uri.scheme().is_some();
    let form_ok = if *method == Method::CONNECT {
        !origin && !asterisk && !absolute && uri.authority().is_some()
    } else if asterisk {
        *method == Method::OPTIONS
    } else {
        origin || (absolute && uri.authority().is_some())
    };
    form_ok.then_some(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(raw: &str) -> Result<Option<Framing>, u16> {
        parse(raw.as_bytes(), &Limits::default())
            .map(|h| h.map(|(h, _)| h.framing))
            .map_err(|s| s.as_u16())
    }

    #[test]
    fn framing_rules() {
        let get = "GET / HTTP/1.1\r\nHost: a\r\n";
        assert_eq!(status(&format!("{get}\r\n")), Ok(Some(Framing::Empty)));
        assert_eq!(
            status(&format!("{get}Content-Length: 3\r\n\r\n")),
            Ok(Some(Framing::Length(3)))
        );
        assert_eq!(
            status(&format!("{get}Transfer-Encoding: chunked\r\n\r\n")),
            Ok(Some(Framing::Chunked))
        );
        assert_eq!(status(&format!("{get}Content-Length: +3\r\n\r\n")), Err(400));
        assert_eq!(
            status(&format!("{get}Content-Length: 3\r\nContent-Length: 3\r\n\r\n")),
            Err(400)
        );
        assert_eq!(
            status(&format!("{get}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")),
            Err(400)
        );
        assert_eq!(status(&format!("{get}Transfer-Encoding: gzip, chunked\r\n\r\n")), Err(501));
        assert_eq!(status(&format!("{get}Content-Length: 99999999999\r\n\r\n")), Err(413));
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), Err(400));
        assert_eq!(status(&format!("{get}Host: b\r\n\r\n")), Err(400));
        assert_eq!(status("GET / HTTP/1.0\r\n\r\n"), Ok(Some(Framing::Empty)));
        assert_eq!(status(&format!("{get}Expect: later\r\n\r\n")), Err(417));
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
    }

    #[test]
    fn request_line_limit_comes_before_the_rest() {
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(9000));
        assert_eq!(status(&long), Err(414));
        assert_eq!(status(&long[..8300]), Err(414));
        assert_eq!(
            status(&format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(8000))),
            Ok(Some(Framing::Empty))
        );
    }

    #[test]
    fn targets_match_methods() {
        assert_eq!(status("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(Some(Framing::Empty)));
        assert_eq!(status("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), Err(400));
        assert_eq!(status("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(Some(Framing::Empty)));
        assert_eq!(status("GET a:443 HTTP/1.1\r\nHost: a\r\n\r\n"), Err(400));
        assert_eq!(status("GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(Some(Framing::Empty)));
        assert_eq!(status("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), Err(505));
        assert_eq!(status("GET / http/1.1\r\nHost: a\r\n\r\n"), Err(400));
        assert_eq!(status("GET / HTTP/1\r\nHost: a\r\n\r\n"), Err(400));
    }
}
