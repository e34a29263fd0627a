//! The hyper peer of `benches/http.sh`: hyper's HTTP/1 server on tokio, `GET /plaintext`
//! answering `Hello, World!`; any other path gets 404.
//!
//! ```text
//! http_hyper [--addr 127.0.0.1:8080] [--workers N]
//! ```
//!
//! `--workers 1` (the default) runs tokio's current_thread runtime: on one core it is what a
//! tokio user would deploy, and it skips the cross-thread wake-ups a one-thread multi_thread
//! runtime still pays for. More workers run the multi_thread runtime with that many threads.
//! Keep-alive is on, and `pipeline_flush` lets the responses to pipelined requests leave in one
//! write, as weft's do. Prints `listening on <addr>` once bound.

use std::convert::Infallible;
use std::io::{self, Write};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

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

async fn serve(addr: String) -> io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr.as_str()).await?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            // A client that resets its connection ends only that connection.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .pipeline_flush(true)
                .serve_connection(TokioIo::new(stream), service_fn(plaintext))
                .await;
        });
    }
}

fn main() -> io::Result<()> {
    let (addr, workers) = weft_bench::peer_args();
    let rt = match workers.unwrap_or(1) {
        1 => tokio::runtime::Builder::new_current_thread().enable_io().build()?,
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_io().build()?,
    };
    rt.block_on(serve(addr))
}
