//! [`RequestBody`]: a handler's view of the body of the request it serves.

use std::fmt;
use std::io::{self, Read};

/// What a [`RequestBody`] reads through: the connection serving the request.
pub(crate) trait BodySource {
    fn read_body(&mut self, out: &mut [u8]) -> io::Result<usize>;
    /// The `Content-Length`, if the body has one.
    fn content_length(&self) -> Option<u64>;
    /// The body went over a handler's own limit: the server answers 413.
    fn too_large(&mut self, limit: usize);
}

/// The body of a [`Request`](super::Request), read from the connection as it is needed.
///
/// It implements [`Read`]; [`read_all`](RequestBody::read_all) reads it whole under a limit.
/// `Content-Length` and chunked bodies read the same. A body the handler leaves unread is
/// drained by the server after the response (up to a bound), so it never corrupts the next
/// request on the connection.
///
/// When the body turns out malformed or longer than the server's limit, a read fails with
/// `InvalidData`, and the server answers 400 or 413 in place of the handler's response.
///
/// ```
/// use std::io::Read;
/// use weft::net::http::{Request, Response};
///
/// fn upload(mut req: Request) -> Response {
///     match req.body_mut().read_all(1 << 20) {
///         Ok(data) => Response::new(format!("{} bytes\n", data.len()).into()),
///         // The server answers this request itself: the status depends on the error.
///         Err(_) => Response::default(),
///     }
/// }
/// # let _ = upload;
/// ```
#[derive(Default)]
pub struct RequestBody<'a> {
    source: Option<&'a mut dyn BodySource>,
}

impl<'a> RequestBody<'a> {
    pub(crate) fn new(source: &'a mut dyn BodySource) -> RequestBody<'a> {
        RequestBody { source: Some(source) }
    }

    /// A body with nothing in it, for building requests by hand (in tests, say).
    pub fn empty() -> RequestBody<'static> {
        RequestBody { source: None }
    }

    /// How many bytes of a `Content-Length` body are still to be read (all of them before the
    /// first read); `None` for a chunked body, whose length is known only at its end.
    pub fn content_length(&self) -> Option<u64> {
        self.source.as_ref().map_or(Some(0), |s| s.content_length())
    }

    /// Reads the whole body, refusing one longer than `limit` bytes.
    ///
    /// # Errors
    ///
    /// - `InvalidData` if the body is longer than `limit` (the server then answers 413), or
    ///   malformed (400);
    /// - `TimedOut` if the client stalls for longer than the server's read timeout;
    /// - `UnexpectedEof` if the client closes before the body ends.
    pub fn read_all(&mut self, limit: usize) -> io::Result<Vec<u8>> {
        if let Some(n) = self.content_length().filter(|&n| n > limit as u64) {
            return Err(self.refuse(limit, n));
        }
        let mut data = Vec::with_capacity(self.content_length().map_or(0, |n| n as usize));
        let mut chunk = [0u8; 8192];
        loop {
            let n = self.read(&mut chunk)?;
            if n == 0 {
                return Ok(data);
            }
            if data.len() + n > limit {
                return Err(self.refuse(limit, (data.len() + n) as u64));
            }
            data.extend_from_slice(&chunk[..n]);
        }
    }

    fn refuse(&mut self, limit: usize, seen: u64) -> io::Error {
        if let Some(s) = self.source.as_mut() {
            s.too_large(limit);
        }
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("body of {seen}+ bytes is over the limit of {limit}"),
        )
    }
}

impl Read for RequestBody<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.source.as_mut() {
            Some(s) => s.read_body(buf),
            None => Ok(0),
        }
    }
}

impl fmt::Debug for RequestBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBody").field("content_length", &self.content_length()).finish()
    }
}
