//! Every server of the suite, in every style, started as the runner starts it (`weft-bench
//! serve`, a process of its own), passes the correctness check the runner makes before timing
//! it; and the load generator measures real round trips against it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use weft_bench::load::{self, Plan, Work};
use weft_bench::process::Server;
use weft_bench::servers::{Proto, Style};
use weft_bench::verify;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_weft-bench"))
}

fn check_every_style(proto: Proto) {
    let mut failed = Vec::new();
    for style in Style::ALL {
        let server = Server::start(exe(), style, proto, 1, None)
            .unwrap_or_else(|e| panic!("{style} {}: {e}", proto.name()));
        if let Err(e) = verify::check(proto, server.addr) {
            failed.push(format!("{style}: {e}"));
        }
    }
    assert!(failed.is_empty(), "{} servers failed their check: {failed:#?}", proto.name());
}

#[test]
fn every_echo_server_echoes_exactly() {
    check_every_style(Proto::Echo);
}

#[test]
fn every_http_server_answers_plaintext_in_order() {
    check_every_style(Proto::Http);
}

/// A short closed-loop run and a fixed-rate run against two styles: messages are counted,
/// their latency recorded, and nothing goes wrong.
#[test]
fn the_load_generator_measures_round_trips() {
    let rt = weft::Runtime::builder().workers(1).build().unwrap();
    for (style, proto, work) in [
        (Style::Weft, Proto::Echo, Work::Echo { size: 4096 }),
        (Style::Threads, Proto::Http, Work::Http),
    ] {
        let server = Server::start(exe(), style, proto, 1, None).unwrap();
        for rate in [None, Some(2000.0)] {
            let plan = Plan {
                addr: server.addr,
                conns: 8,
                work,
                warmup: Duration::from_millis(50),
                duration: Duration::from_millis(300),
                rate,
            };
            let phases = Arc::new(std::sync::Mutex::new(Vec::new()));
            let seen = Arc::clone(&phases);
            let out = load::run(&rt, &plan, Arc::new(move |p| seen.lock().unwrap().push(p)));
            assert_eq!(out.trouble(), None, "{style} {rate:?}");
            assert!(out.msgs > 0, "{style} {rate:?}: no messages");
            assert!(out.latency.p50 > 0.0 && out.latency.p50 <= out.latency.max, "{out:?}");
            assert_eq!(*phases.lock().unwrap(), [load::Phase::Start, load::Phase::End]);
            if let Some(rate) = rate {
                // 2,000/s for 0.3 s is 600 messages; a fixed rate sends no more than that.
                assert!(out.msgs <= (rate * 0.3) as u64 + 8, "{style}: {} messages", out.msgs);
                assert_eq!(out.unsent, 0, "{style}: the server kept up with 2,000/s");
            }
        }
    }
}
