//! [`Client`]: a small blocking HTTP/1.1 client.

/// A blocking HTTP/1.1 client.
#[derive(Debug, Default)]
pub struct Client {}

impl Client {
    /// A client with default settings.
    pub fn new() -> Client {
        Client {}
    }

    /// `GET`s `url`.
    ///
    /// # Errors
    ///
    /// Not yet.
    pub fn get(&self, _url: &str) -> std::io::Result<http::Response<Vec<u8>>> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
}
