//! The async style: tokio for echo, hyper on tokio for HTTP, on either of tokio's runtimes.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The echo buffer, one per task.
const BUF_SIZE: usize = 4096;

/// Which of tokio's runtimes.
#[derive(Clone, Copy, Debug)]
pub enum Flavor {
    /// `new_multi_thread` with `workers` worker threads.
    MultiThread,
    /// `new_current_thread`: one thread, whatever `workers` says.
    CurrentThread,
}

fn block_on<F: Future>(flavor: Flavor, workers: usize, fut: F) -> io::Result<F::Output> {
    let rt = match flavor {
        Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_io()
            .build()?,
        Flavor::CurrentThread => {
            tokio::runtime::Builder::new_current_thread().enable_io().build()?
        }
    };
    Ok(rt.block_on(fut))
}

/// Serves `proto` on `addr`.
///
/// # Errors
///
/// Building the runtime, or the bind.
pub fn serve(
    proto: super::Proto,
    flavor: Flavor,
    addr: SocketAddr,
    workers: usize,
) -> io::Result<()> {
    match proto {
        super::Proto::Echo => serve_echo(flavor, addr, workers),
        super::Proto::Http => serve_http(flavor, addr, workers),
    }
}

/// Serves echo on `addr`, a task per connection.
///
/// # Errors
///
/// Building the runtime, or the bind.
pub fn serve_echo(flavor: Flavor, addr: SocketAddr, workers: usize) -> io::Result<()> {
    block_on(
        flavor,
        workers,
        serve_each(addr, |stream| async move {
            // A reset or closed peer ends its own connection only.
            let _ = echo(stream).await;
        }),
    )?
}

/// Binds `addr`, says so, and spawns `handle` for each connection, forever.
async fn serve_each<F, Fut>(addr: SocketAddr, handle: F) -> io::Result<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(addr).await?;
    super::ready(addr);
    loop {
        // An accept error (EMFILE among them) ends that accept only; tokio does not back off
        // on its own, as may and weft do, so this yields before the next try.
        let Ok((stream, _)) = listener.accept().await else {
            tokio::task::yield_now().await;
            continue;
        };
        tokio::spawn(handle(stream));
    }
}

async fn echo(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = [0u8; BUF_SIZE];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

/// Serves HTTP plaintext on `addr` with hyper's HTTP/1 server: keep-alive on, and
/// `pipeline_flush` so that the responses to pipelined requests leave in one write, as weft's
/// do.
///
/// # Errors
///
/// Building the runtime, or the bind.
pub fn serve_http(flavor: Flavor, addr: SocketAddr, workers: usize) -> io::Result<()> {
    block_on(
        flavor,
        workers,
        serve_each(addr, |stream| async move {
            let _ = stream.set_nodelay(true);
            // A reset or closed peer ends its own connection only.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .pipeline_flush(true)
                .serve_connection(TokioIo::new(stream), service_fn(plaintext))
                .await;
        }),
    )?
}

async fn plaintext(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/plaintext" {
        let mut rsp = Response::new(Full::default());
        *rsp.status_mut() = StatusCode::NOT_FOUND;
        return Ok(rsp);
    }
    let mut rsp = Response::new(Full::new(Bytes::from_static(b"Hello, World!")));
    rsp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(rsp)
}
