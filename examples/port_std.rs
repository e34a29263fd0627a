//! The porting test of weft as a program: one thread-per-connection server, compiled twice.
//!
//! ```text
//! cargo run --release --example port_std -- std  [--addr 127.0.0.1:9001] [--idle SECS]
//! cargo run --release --example port_std -- weft [--addr 127.0.0.1:9001] [--idle SECS]
//! ```
//!
//! The server lives in `examples/port_std/server.rs`, written against `std::net` and
//! `std::thread`. This file pastes it into two modules that differ only in their `use` lines:
//! `with_std` runs a thread per connection, `with_weft` a coroutine per connection, from the
//! same text. `tests/net_port.rs` drives both with one client and expects the same answers.
//!
//! Try it with `nc 127.0.0.1 9001`: type `PING`, `ECHO hello`, `QUIT`. A connection that sends
//! no complete line for `--idle` seconds (default 30) is told `BYE idle` and closed.

#[path = "common/cli.rs"]
mod cli;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// The server on OS threads: `std::net` and `std::thread`.
mod with_std {
    use std::net::{TcpListener, TcpStream};
    use std::thread;

    include!("port_std/server.rs");
}

/// The same server on weft coroutines: `weft::net`, and `weft` in place of `std::thread`.
mod with_weft {
    use weft as thread;
    use weft::net::{TcpListener, TcpStream};

    include!("port_std/server.rs");
}

/// The `--help` text.
const USAGE: &str = "\
usage: port_std std|weft [--addr ADDR] [--idle SECS]

  std|weft       serve with std threads or with weft coroutines
  --addr ADDR    address to listen on (default 127.0.0.1:9001)
  --idle SECS    close a connection after this long without a complete line (default 30)
  -h, --help     show this help

Prints `listening on <addr> (<flavour>)` once bound.";

/// Which of the two compilations of the server to run.
#[derive(Clone, Copy, Debug)]
enum Flavour {
    Std,
    Weft,
}

impl Flavour {
    /// The name used on the command line.
    fn name(self) -> &'static str {
        match self {
            Flavour::Std => "std",
            Flavour::Weft => "weft",
        }
    }
}

/// The command line.
struct Options {
    flavour: Flavour,
    addr: String,
    idle: Duration,
}

fn main() -> ExitCode {
    let opts = match cli::parse("port_std", USAGE, parse_args) {
        Ok(opts) => opts,
        Err(code) => return code,
    };
    // Without a connection limit the server runs until the process ends; `join` returns only
    // if it failed.
    let served = match opts.flavour {
        Flavour::Std => with_std::start(&opts.addr, opts.idle, None)
            .and_then(|(addr, server)| announce(addr, opts.flavour).map(|()| server.join())),
        Flavour::Weft => with_weft::start(&opts.addr, opts.idle, None)
            .and_then(|(addr, server)| announce(addr, opts.flavour).map(|()| server.join())),
    };
    match served {
        Ok(Ok(Ok(()))) => ExitCode::SUCCESS,
        Ok(Ok(Err(e))) | Err(e) => {
            eprintln!("port_std: {e}");
            ExitCode::FAILURE
        }
        Ok(Err(_)) => {
            eprintln!("port_std: the server panicked");
            ExitCode::FAILURE
        }
    }
}

/// Prints the `listening on` line that scripts wait for.
///
/// # Errors
///
/// A failed write to stdout.
fn announce(addr: SocketAddr, flavour: Flavour) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on {addr} ({})", flavour.name())?;
    stdout.flush()
}

/// Parses the command line.
///
/// # Errors
///
/// `--help`, or a message naming the bad or missing argument.
fn parse_args(args: &mut cli::Args) -> Result<Options, cli::Stop> {
    let mut flavour = None;
    let mut addr = "127.0.0.1:9001".to_owned();
    let mut idle = Duration::from_secs(30);
    while let Some(mut flag) = args.next()? {
        match flag.name() {
            "std" => flavour = Some(Flavour::Std),
            "weft" => flavour = Some(Flavour::Weft),
            "--addr" => addr = flag.value()?,
            "--idle" => idle = flag.seconds(false)?,
            _ => return Err(flag.unknown()),
        }
    }
    let flavour = flavour.ok_or("say which server to run: std or weft")?;
    Ok(Options { flavour, addr, idle })
}
