//! The weft style: blocking-style code, one coroutine per connection, one acceptor per worker.

use std::io;
use std::net::SocketAddr;

use weft::net::http::{header, HeaderValue, Response, Server, StatusCode};
use weft::net::{TcpListener, TcpStream};
use weft::sync::mpsc;

/// Serves echo on `addr`: acceptor `i` binds its own SO_REUSEPORT listener on worker `i`, so
/// each worker's connections are accepted and served on that worker.
///
/// # Errors
///
/// Building the runtime, or the first failed bind.
pub fn serve_echo(addr: SocketAddr, workers: usize) -> io::Result<()> {
    let rt = weft::Runtime::builder().workers(workers).build()?;
    rt.block_on(move || {
        let (bound_tx, bound_rx) = mpsc::channel();
        let mut acceptors = Vec::with_capacity(workers);
        for worker in 0..workers {
            let bound_tx = bound_tx.clone();
            let acceptor = move || match TcpListener::bind_reuse_port(addr) {
                Ok(listener) => {
                    // The main coroutine waits for every acceptor's answer before it returns.
                    let _ = bound_tx.send(Ok(()));
                    accept_loop(&listener);
                }
                Err(e) => {
                    let _ = bound_tx.send(Err(e));
                }
            };
            acceptors.push(weft::Builder::new().worker(worker).spawn(acceptor)?);
        }
        drop(bound_tx);
        for _ in 0..workers {
            bound_rx.recv().map_err(|_| io::Error::other("an acceptor died before binding"))??;
        }
        super::ready(addr);
        for acceptor in acceptors {
            acceptor.join().map_err(|_| io::Error::other("an acceptor panicked"))?;
        }
        Ok(())
    })
}

fn accept_loop(listener: &TcpListener) {
    loop {
        // weft's accept waits out EMFILE by itself; any other error ends one accept only.
        let Ok((stream, _)) = listener.accept() else { continue };
        // A failed spawn drops the stream: that connection closes, the server goes on.
        let _ = weft::Builder::new().spawn(move || {
            // A reset or closed peer ends its own connection only.
            let _ = echo(stream);
        });
    }
}

fn echo(stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    super::echo_blocking(stream)
}

/// Serves HTTP plaintext on `addr` with `weft::net::http`, one acceptor per worker.
///
/// # Errors
///
/// Building the runtime, or binding.
pub fn serve_http(addr: SocketAddr, workers: usize) -> io::Result<()> {
    let rt = weft::Runtime::builder().workers(workers).build()?;
    rt.block_on(move || {
        let server = Server::bind(addr)?;
        super::ready(addr);
        server.serve(|req| {
            if req.uri().path() == "/plaintext" {
                let mut rsp = Response::new("Hello, World!".into());
                let text = HeaderValue::from_static("text/plain");
                rsp.headers_mut().insert(header::CONTENT_TYPE, text);
                rsp
            } else {
                let mut rsp = Response::new(weft::net::http::Body::empty());
                *rsp.status_mut() = StatusCode::NOT_FOUND;
                rsp
            }
        })
    })
}
