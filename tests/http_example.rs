//! The HTTP examples as users run them: `http_hello` serves its routes and stops cleanly on
//! SIGTERM, even with a keep-alive connection open; `http_fanout --once` answers its request
//! through three backends.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::http::{request, Conn};

/// Builds example `name` (a no-op when it is fresh) and returns its path.
fn example(name: &str) -> PathBuf {
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "--example", name]);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    assert!(build.status().expect("run cargo").success(), "cargo build --example {name}");
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    deps.parent().unwrap().join("examples").join(name)
}

/// Starts `cmd` and reads its stdout up to the `listening on` line: the child and the address.
fn launch(mut cmd: Command) -> (Child, String, BufReader<std::process::ChildStdout>) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start the example");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line {line:?}"))
        .to_owned();
    (child, addr, out)
}

#[test]
fn http_hello_serves_its_routes_and_stops_on_sigterm() {
    let _wd = support::watchdog(
        "http_hello_serves_its_routes_and_stops_on_sigterm",
        Duration::from_secs(300),
    );
    let mut cmd = Command::new(example("http_hello"));
    cmd.args(["--addr", "127.0.0.1:0", "--workers", "2", "--grace", "60"]);
    let (mut child, addr, mut out) = launch(cmd);

    let mut conn = Conn::new(std::net::TcpStream::connect(&addr).unwrap());
    let get = |path: &str| request(&format!("GET {path} HTTP/1.1"), &["Host: t"], b"");
    let cases = [
        ("/plaintext", 200, Some("text/plain"), Some("Hello, World!")),
        ("/json", 200, Some("application/json"), Some(r#"{"message":"Hello, World!"}"#)),
        ("/healthz", 200, Some("text/plain"), Some("ok\n")),
        ("/nowhere", 404, None, None),
    ];
    for (path, status, content_type, body) in cases {
        conn.send(&get(path)).unwrap();
        let reply = conn.reply(false).unwrap().unwrap();
        assert_eq!(reply.status, status, "{path}");
        assert_eq!(reply.header("content-type"), content_type, "{path}");
        if let Some(body) = body {
            assert_eq!(reply.body_str(), body, "{path}");
        }
    }
    conn.send(&request("POST /json HTTP/1.1", &["Host: t", "Content-Length: 0"], b"")).unwrap();
    let reply = conn.reply(false).unwrap().unwrap();
    assert_eq!((reply.status, reply.header("allow")), (405, Some("GET, HEAD")));
    conn.send(&get("/metrics")).unwrap();
    let metrics = conn.reply(false).unwrap().unwrap().body_str();
    assert!(metrics.contains("weft_worker_switches_total{worker=\"1\"} "), "{metrics}");

    // SIGTERM with this keep-alive connection idle: the process still ends at once, cleanly.
    let start = Instant::now();
    // SAFETY: kill(2) on the pid of a child this test started and has not waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert!(conn.closed(), "the idle connection is closed by the shutdown");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    // An idle connection holding the shutdown would hold it for the whole 60 s grace period.
    assert!(start.elapsed() < Duration::from_secs(30), "shutdown took {:?}", start.elapsed());
    let mut rest = String::new();
    out.read_line(&mut rest).unwrap();
    assert_eq!(rest.trim(), "shut down cleanly");
}

#[test]
fn http_fanout_once_answers_through_three_backends() {
    let _wd = support::watchdog(
        "http_fanout_once_answers_through_three_backends",
        Duration::from_secs(300),
    );
    let output = Command::new(example("http_fanout"))
        .args(["--addr", "127.0.0.1:0", "--once"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(r#"200 OK {"user":{"id":42,"name":"user-42"},"orders":[{"order":1},{"order":2}],"recommendations":["weft","coroutines"]}"#),
        "{stdout}"
    );
}
