//! A handler that calls three backend services one after another through weft's HTTP client,
//! within one deadline, written as plain sequential code.
//!
//! ```text
//! cargo run --release --example http_fanout -- [--addr 127.0.0.1:8081] [--deadline SECS] [--once]
//! curl http://127.0.0.1:8081/profile/42
//! ```
//!
//! The example starts its own three backends on free ports, each a weft HTTP server that
//! answers after a short simulated delay:
//!
//! | backend | delay | answer |
//! |---|---|---|
//! | `/user/<id>` | 20 ms | `{"id":42,"name":"user-42"}` |
//! | `/orders/<id>` | 30 ms | `[{"order":1},{"order":2}]` |
//! | `/recommendations/<id>` | 40 ms | `["weft","coroutines"]` |
//!
//! `GET /profile/<id>` on the front server calls them in turn with a shared [`Client`] (its
//! pooled keep-alive connections are reused across requests) and answers the three bodies
//! combined into one JSON object. Each call gets what is left of the request's deadline
//! (`--deadline`, default 0.5 s) as its timeout; when the deadline passes, the answer is
//! `504 Gateway Timeout`, and `/profile/<id>?slow=1` asks the last backend to be slow enough
//! for that to happen.
//!
//! `--once` makes one request to itself, prints the answer, shuts everything down and exits:
//! a smoke test.

#[path = "common/cli.rs"]
mod cli;

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use weft::net::http::{
    header, Client, HeaderValue, Request, Response, Server, ShutdownHandle, StatusCode,
};

const USAGE: &str = "\
usage: http_fanout [--addr ADDR] [--deadline SECS] [--once]

  --addr ADDR       address of the front server (default 127.0.0.1:8081)
  --deadline SECS   the deadline of one front request, all three calls included (default 0.5)
  --once            make one request to /profile/42, print the answer and exit
  -h, --help        show this help

Prints `listening on <addr>` once it accepts.";

struct Options {
    addr: String,
    deadline: Duration,
    once: bool,
}

fn parse_args(args: &mut cli::Args) -> Result<Options, cli::Stop> {
    let mut opts = Options {
        addr: "127.0.0.1:8081".into(),
        deadline: Duration::from_millis(500),
        once: false,
    };
    while let Some(mut flag) = args.next()? {
        match flag.name() {
            "--addr" => opts.addr = flag.value()?,
            "--deadline" => opts.deadline = flag.seconds(false)?,
            "--once" => opts.once = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let opts = match cli::parse("http_fanout", USAGE, parse_args) {
        Ok(opts) => opts,
        Err(code) => return code,
    };
    match weft::block_on(move || run(&opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http_fanout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A running server: its address, its stop handle, and the coroutine serving it.
struct Running {
    addr: SocketAddr,
    stop: ShutdownHandle,
    serving: weft::JoinHandle<io::Result<()>>,
}

fn run_server<F>(server: Server, handler: F) -> io::Result<Running>
where
    F: Fn(Request<'_>) -> Response + Send + Sync + 'static,
{
    let addr = server.local_addr()?;
    let stop = server.shutdown_handle();
    let serving = weft::spawn(move || server.serve(handler));
    Ok(Running { addr, stop, serving })
}

fn run(opts: &Options) -> io::Result<()> {
    let backends = [
        run_server(Server::bind("127.0.0.1:0")?, |req| {
            backend(&req, 20, r#"{"id":ID,"name":"user-ID"}"#)
        })?,
        run_server(Server::bind("127.0.0.1:0")?, |req| {
            backend(&req, 30, r#"[{"order":1},{"order":2}]"#)
        })?,
        run_server(Server::bind("127.0.0.1:0")?, |req| {
            backend(&req, 40, r#"["weft","coroutines"]"#)
        })?,
    ];
    let bases = backends.each_ref().map(|b| format!("http://{}", b.addr));
    let client = Client::new();
    let deadline = opts.deadline;
    let front = run_server(Server::bind(opts.addr.as_str())?, move |req| {
        profile(&req, &client, &bases, deadline)
    })?;
    println!("listening on {}", front.addr);

    if opts.once {
        let resp = Client::new().get(&format!("http://{}/profile/42", front.addr))?;
        println!("{} {}", resp.status(), String::from_utf8_lossy(resp.body()));
        for server in backends.into_iter().chain([front]) {
            server.stop.shutdown(Duration::from_secs(1));
            server.serving.join().map_err(|_| io::Error::other("a server panicked"))??;
        }
        return Ok(());
    }
    front.serving.join().map_err(|_| io::Error::other("the front server panicked"))?
}

/// A backend: waits `delay_ms` (ten times that for `?slow=1`), then answers `body` with the
/// id from the path in place of `ID`.
fn backend(req: &Request<'_>, delay_ms: u64, body: &str) -> Response {
    let slow = req.uri().query() == Some("slow=1");
    weft::sleep(Duration::from_millis(if slow { delay_ms * 20 } else { delay_ms }));
    let id = req.uri().path().rsplit('/').next().unwrap_or("0");
    json(StatusCode::OK, body.replace("ID", id))
}

/// The front handler: the three calls in order, each with what is left of the deadline.
fn profile(req: &Request<'_>, client: &Client, bases: &[String; 3], budget: Duration) -> Response {
    let Some(id) = req.uri().path().strip_prefix("/profile/") else {
        return json(StatusCode::NOT_FOUND, r#"{"error":"try /profile/<id>"}"#.into());
    };
    let slow = req.uri().query() == Some("slow=1");
    let deadline = Instant::now() + budget;
    let mut parts = Vec::new();
    for (i, (base, name)) in bases.iter().zip(["user", "orders", "recommendations"]).enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return json(
                StatusCode::GATEWAY_TIMEOUT,
                format!(r#"{{"error":"deadline passed before {name}"}}"#),
            );
        }
        let query = if slow && i == 2 { "?slow=1" } else { "" };
        let url = format!("{base}/{name}/{id}{query}");
        match client.clone().timeout(left).get(&url) {
            Ok(resp) if resp.status() == StatusCode::OK => {
                parts.push(format!(r#""{name}":{}"#, String::from_utf8_lossy(resp.body())));
            }
            Ok(resp) => {
                return json(
                    StatusCode::BAD_GATEWAY,
                    format!(r#"{{"error":"{name} answered {}"}}"#, resp.status()),
                )
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return json(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(r#"{{"error":"{name} timed out"}}"#),
                );
            }
            Err(e) => {
                return json(StatusCode::BAD_GATEWAY, format!(r#"{{"error":"{name}: {e}"}}"#))
            }
        }
    }
    json(StatusCode::OK, format!("{{{}}}", parts.join(",")))
}

fn json(status: StatusCode, body: String) -> Response {
    let mut rsp = Response::new(body.into());
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    rsp
}
