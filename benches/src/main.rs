//! weft-bench: the blocking-style coroutine against the callback style, threads and async, in
//! one command.
//!
//! ```text
//! cargo run --release -p weft-bench -- <echo|http|micro|memory|all> [--quick] [--check]
//! ```
//!
//! [`USAGE`] lists every flag. The suites:
//!
//! - `echo`: the echo server of each style under the suite's load generator. Closed loop over
//!   1, 100, 1,000 and 10,000 connections and 64 B and 4 KiB messages; then a fixed rate at 50 %
//!   and 90 % of each style's peak, with latency corrected for coordinated omission.
//! - `http`: the plaintext server of each style under wrk, with and without pipelining; then
//!   the suite's own client (weft's HTTP client) at 50 % and 90 % of each style's peak under it.
//! - `memory`: each echo server's resident memory holding 10,000 idle connections.
//! - `micro`: criterion's yield, spawn+join and channel ping-pong benchmarks (`benches/`), run
//!   through `cargo bench`, which inherits the runner's CPU: every case runs on CPU 1 alone.
//!
//! Each server runs in a process of its own (`weft-bench serve STYLE PROTO`), pinned to CPU 0
//! with one worker; the runner and its load (its own coroutines, or wrk) are pinned to CPU 1.
//! Every server passes a correctness check before it is timed. The report goes to stdout and,
//! with the charts and the raw results, to `target/weft-bench/`.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use weft_bench::load::{self, Phase, Plan, Work};
use weft_bench::process::Server;
use weft_bench::results::{Cell, MemoryCell, MemoryRep, MicroRow, Rep, Results};
use weft_bench::servers::{self, Proto, Style};
use weft_bench::targets::{self, Targets};
use weft_bench::{chart, report, sys, verify};

const USAGE: &str = "\
usage: weft-bench <echo|http|micro|memory|all> [options]
       weft-bench verify [--styles LIST]
       weft-bench report [--out DIR] [--check]
       weft-bench serve STYLE PROTO --addr ADDR [--workers N] [--cpu N]
       weft-bench load PROTO --addr ADDR [--conns N] [--size B] [--secs S] [--warmup S]
                       [--rate R] [--cpu N]

  --quick          about a minute per suite: one repetition, short windows
  --check          judge weft against benches/targets.toml; exit 1 on a missed target
  --targets FILE   another targets file
  --reps N         repetitions of each cell (default 3, quick 1)
  --secs S         seconds each echo cell is measured (default 3, quick 0.5)
  --styles LIST    comma-separated styles (default: all):
                   callback, weft, may, tokio-mt, tokio-ct, threads, pool
  --out DIR        where report.md, results.json and the charts go (default target/weft-bench)
  --publish        also copy them to docs/bench/, which README embeds

verify starts every server and runs its correctness check. load runs the suite's load
generator once against a server that is already listening (closed loop, or --rate messages/s
in all) and prints what it measured. report makes report.md and the charts again from
DIR/results.json. serve runs one server (the runner starts them).";

/// Connections of the echo grid.
const CONNS: [usize; 4] = [1, 100, 1_000, 10_000];
/// Message sizes of the echo grid.
const SIZES: [usize; 2] = [64, 4096];
/// Fixed rates, as percentages of each style's peak.
const LOADS: [u32; 2] = [50, 90];
/// The fixed-rate runs use this many connections (and, for echo, 64-byte messages).
const LATENCY_CONNS: usize = 100;
/// wrk's connections.
const WRK_CONNS: usize = 256;
/// HTTP requests per write: none, and 16 as TechEmpower's plaintext test pipelines.
const PIPELINES: [usize; 2] = [1, 16];
/// Idle connections held for the memory suite.
const IDLE_CONNS: usize = 10_000;
/// The CPU of the servers, and of the load.
const SERVER_CPU: usize = 0;
const LOAD_CPU: usize = 1;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("load") => load_once(&args[1..]),
        Some("verify") => Options::parse(&args[1..]).and_then(|o| verify_all(&o)),
        Some("report") => Options::parse(&args[1..]).and_then(|o| report_again(&o)),
        Some(suite @ ("echo" | "http" | "micro" | "memory" | "all")) => {
            Options::parse(&args[1..]).and_then(|o| run(suite, &o))
        }
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("weft-bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// The command line of the suites.
struct Options {
    quick: bool,
    check: bool,
    targets: PathBuf,
    reps: Option<usize>,
    secs: Option<f64>,
    styles: Vec<Style>,
    out: PathBuf,
    publish: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut opts = Options {
            quick: false,
            check: false,
            targets: PathBuf::from(targets::DEFAULT_PATH),
            reps: None,
            secs: None,
            styles: Style::ALL.to_vec(),
            out: target_dir().join("weft-bench"),
            publish: false,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--quick" => opts.quick = true,
                "--check" => opts.check = true,
                "--publish" => opts.publish = true,
                "--targets" => opts.targets = PathBuf::from(value()?),
                "--out" => opts.out = PathBuf::from(value()?),
                "--reps" => {
                    let v = value()?;
                    opts.reps =
                        Some(v.parse().ok().filter(|&n| n > 0).ok_or(format!("bad --reps {v}"))?);
                }
                "--secs" => {
                    let v = value()?;
                    let secs = v.parse().ok().filter(|s: &f64| s.is_finite() && *s > 0.0);
                    opts.secs = Some(secs.ok_or(format!("bad --secs {v}"))?);
                }
                "--styles" => {
                    opts.styles =
                        value()?.split(',').map(str::parse).collect::<Result<Vec<Style>, _>>()?;
                    if !opts.styles.contains(&Style::Callback) {
                        eprintln!("note: without callback, the report has no ratios");
                    }
                }
                _ => return Err(format!("unknown argument {flag:?}\n{USAGE}")),
            }
        }
        Ok(opts)
    }
}

/// How long and how often: the full run or `--quick`.
struct Settings {
    reps: usize,
    warmup: Duration,
    secs: Duration,
    http_warmup: Duration,
    http_secs: Duration,
}

impl Settings {
    fn new(opts: &Options) -> Settings {
        let (reps, warmup, secs, http_warmup, http_secs): (usize, f64, f64, f64, f64) =
            if opts.quick { (1, 0.2, 0.5, 1.0, 1.0) } else { (3, 1.0, 3.0, 1.0, 5.0) };
        let secs = opts.secs.unwrap_or(secs);
        Settings {
            reps: opts.reps.unwrap_or(reps),
            warmup: Duration::from_secs_f64(warmup),
            secs: Duration::from_secs_f64(secs),
            http_warmup: Duration::from_secs_f64(http_warmup),
            http_secs: Duration::from_secs_f64(http_secs.max(secs)),
        }
    }
}

/// The workspace's target directory: `CARGO_TARGET_DIR`, else `target` beside the workspace's
/// Cargo.toml.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// `weft-bench serve STYLE PROTO --addr ADDR [--workers N] [--cpu N]`.
fn serve(args: &[String]) -> Result<bool, String> {
    let [style, proto, rest @ ..] = args else {
        return Err(format!("serve needs a style and a protocol\n{USAGE}"));
    };
    let (style, proto): (Style, Proto) = (style.parse()?, proto.parse()?);
    let (mut addr, mut workers, mut cpu) = (None, 1, None);
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--addr" => {
                addr = Some(value.parse::<SocketAddr>().map_err(|e| format!("--addr: {e}"))?)
            }
            "--workers" => workers = value.parse().map_err(|e| format!("--workers: {e}"))?,
            "--cpu" => cpu = Some(value.parse().map_err(|e| format!("--cpu: {e}"))?),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    let addr = addr.ok_or("serve needs --addr")?;
    sys::exit_with_parent().map_err(|e| format!("PR_SET_PDEATHSIG: {e}"))?;
    if let Some(cpu) = cpu {
        sys::pin_to_cpu(cpu).map_err(|e| format!("pin to CPU {cpu}: {e}"))?;
    }
    sys::raise_open_files().map_err(|e| format!("open-file limit: {e}"))?;
    servers::serve(style, proto, addr, workers)
        .map_err(|e| format!("{style} {}: {e}", proto.name()))?;
    Ok(true)
}

/// `weft-bench load PROTO --addr ADDR ...`: one run of the load generator, printed.
fn load_once(args: &[String]) -> Result<bool, String> {
    let [proto, rest @ ..] = args else {
        return Err(format!("load needs a protocol\n{USAGE}"));
    };
    let proto: Proto = proto.parse()?;
    let (mut addr, mut conns, mut size, mut secs, mut warmup, mut rate, mut cpu) =
        (None, 100, 64, 5.0, 1.0, None, None);
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--addr" => addr = Some(value.parse::<SocketAddr>().map_err(|e| bad(&e))?),
            "--conns" => conns = value.parse().map_err(|e| bad(&e))?,
            "--size" => size = value.parse().map_err(|e| bad(&e))?,
            "--secs" => secs = value.parse().map_err(|e| bad(&e))?,
            "--warmup" => warmup = value.parse().map_err(|e| bad(&e))?,
            "--rate" => rate = Some(value.parse().map_err(|e| bad(&e))?),
            "--cpu" => cpu = Some(value.parse::<usize>().map_err(|e| bad(&e))?),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    if let Some(cpu) = cpu {
        sys::pin_to_cpu(cpu).map_err(|e| format!("pin to CPU {cpu}: {e}"))?;
    }
    sys::raise_open_files().map_err(|e| format!("open-file limit: {e}"))?;
    let work = match proto {
        Proto::Echo => Work::Echo { size },
        Proto::Http => Work::Http,
    };
    let plan = Plan {
        addr: addr.ok_or("load needs --addr")?,
        conns,
        work,
        warmup: Duration::from_secs_f64(warmup),
        duration: Duration::from_secs_f64(secs),
        rate,
    };
    let rt = weft::Runtime::builder().workers(1).build().map_err(|e| format!("runtime: {e}"))?;
    let out = load::run(&rt, &plan, Arc::new(|_| {}));
    let l = out.latency;
    println!(
        "{:.0} msgs/s; latency µs p50 {} p90 {} p99 {} p99.9 {} max {}; {} errors, {} wrong, {} unsent",
        out.per_sec(),
        l.p50,
        l.p90,
        l.p99,
        l.p999,
        l.max,
        out.errors,
        out.mismatches,
        out.unsent
    );
    Ok(out.trouble().is_none())
}

/// Everything a suite needs.
struct Ctx {
    exe: PathBuf,
    /// Whether servers and load are pinned to CPUs of their own.
    pinned: bool,
    rt: weft::Runtime,
    settings: Settings,
    styles: Vec<Style>,
    results: Results,
    /// Whether some server failed its correctness check.
    failed_check: bool,
}

impl Ctx {
    fn new(opts: &Options) -> Result<Ctx, String> {
        sys::raise_open_files().map_err(|e| format!("open-file limit: {e}"))?;
        // Read before pinning: once pinned, the process sees only its own CPU.
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pinned = cpus > LOAD_CPU;
        let mut notes = Vec::new();
        if pinned {
            sys::pin_to_cpu(LOAD_CPU).map_err(|e| format!("pin to CPU {LOAD_CPU}: {e}"))?;
        } else {
            notes.push("one CPU only: the servers and the load share it".to_string());
        }
        let rt =
            weft::Runtime::builder().workers(1).build().map_err(|e| format!("runtime: {e}"))?;
        let settings = Settings::new(opts);
        let results = Results {
            machine: sys::machine(cpus),
            command: std::iter::once("weft-bench".to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" "),
            date: httpdate::fmt_http_date(SystemTime::now()),
            reps: settings.reps,
            notes,
            ..Results::default()
        };
        Ok(Ctx {
            exe: std::env::current_exe().map_err(|e| format!("this binary's path: {e}"))?,
            pinned,
            rt,
            settings,
            styles: opts.styles.clone(),
            results,
            failed_check: false,
        })
    }

    fn start(&self, style: Style, proto: Proto) -> io::Result<Server> {
        Server::start(&self.exe, style, proto, 1, self.pinned.then_some(SERVER_CPU))
    }

    fn note(&mut self, note: String) {
        eprintln!("note: {note}");
        self.results.notes.push(note);
    }

    /// Starts each style's server and checks it; keeps the styles that pass.
    fn verified(&mut self, proto: Proto) -> Vec<Style> {
        let mut passed = Vec::new();
        for style in self.styles.clone() {
            let checked = self
                .start(style, proto)
                .map_err(|e| e.to_string())
                .and_then(|server| verify::check(proto, server.addr));
            match checked {
                Ok(()) => passed.push(style),
                Err(e) => {
                    self.failed_check = true;
                    self.note(format!(
                        "{style} {} failed its correctness check: {e}",
                        proto.name()
                    ));
                }
            }
        }
        eprintln!("{} servers checked: {}", proto.name(), names(&passed));
        passed
    }
}

fn names(styles: &[Style]) -> String {
    styles.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
}

/// Runs `suite`, then writes and prints the report. Returns false if a server failed its
/// check or, with `--check`, a target was missed.
fn run(suite: &str, opts: &Options) -> Result<bool, String> {
    if opts.check {
        // A targets file that does not parse fails now, not after the run.
        load_targets(&opts.targets)?;
    }
    let mut ctx = Ctx::new(opts)?;
    let all = suite == "all";
    if all || suite == "echo" {
        echo_suite(&mut ctx).map_err(|e| format!("echo: {e}"))?;
    }
    if all || suite == "http" {
        http_suite(&mut ctx).map_err(|e| format!("http: {e}"))?;
    }
    if all || suite == "memory" {
        memory_suite(&mut ctx).map_err(|e| format!("memory: {e}"))?;
    }
    if all || suite == "micro" {
        micro_suite(&mut ctx, opts.quick).map_err(|e| format!("micro: {e}"))?;
    }
    let failed_check = ctx.failed_check;
    let met = publish(&ctx.results, opts)?;
    Ok(met && !failed_check)
}

/// Writes results.json, the charts and report.md to `--out` (and docs/bench/ with
/// `--publish`), prints the report, and judges the targets with `--check`. Returns false if a
/// target was missed.
fn publish(results: &Results, opts: &Options) -> Result<bool, String> {
    let mut dirs = vec![opts.out.clone()];
    if opts.publish {
        dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/bench"));
    }
    // The measurements first: nothing after this can lose them.
    let json = serde_json::to_string_pretty(results).map_err(|e| e.to_string())?;
    for dir in &dirs {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        write(&dir.join("results.json"), &json)?;
    }
    let verdicts = if opts.check {
        Some(targets::check(results, &load_targets(&opts.targets)?))
    } else {
        None
    };
    let mut md = String::new();
    for dir in &dirs {
        let charts = chart::write_all(results, dir).map_err(|e| e.to_string())?;
        md = report::markdown(results, &charts, verdicts.as_deref());
        write(&dir.join("report.md"), &md)?;
    }
    println!("{md}");
    eprintln!("report: {}", opts.out.join("report.md").display());
    let met = verdicts.as_ref().is_none_or(|v| v.iter().all(|v| v.pass));
    if let Some(verdicts) = &verdicts {
        let missed = verdicts.iter().filter(|v| !v.pass).count();
        eprintln!("check: {} targets, {missed} missed", verdicts.len());
        if verdicts.is_empty() {
            eprintln!("check: this suite has no targets");
        }
    }
    Ok(met)
}

/// The targets file at `path`, parsed.
fn load_targets(path: &Path) -> Result<Targets, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Targets::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// `weft-bench report`: the report and charts again, from `--out`'s results.json.
fn report_again(opts: &Options) -> Result<bool, String> {
    let path = opts.out.join("results.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let results: Results =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    publish(&results, opts)
}

/// `weft-bench verify`: every server's correctness check, nothing timed.
fn verify_all(opts: &Options) -> Result<bool, String> {
    let mut ctx = Ctx::new(opts)?;
    for proto in [Proto::Echo, Proto::Http] {
        ctx.verified(proto);
    }
    Ok(!ctx.failed_check)
}

/// CPU-time readings at the edges of a measured window.
#[derive(Clone, Copy)]
struct Snapshot {
    at: Instant,
    server: u64,
    own: u64,
    busy: u64,
}

impl Snapshot {
    fn take(server_pid: u32) -> io::Result<Snapshot> {
        Ok(Snapshot {
            at: Instant::now(),
            server: sys::cpu_ticks(server_pid)?,
            own: sys::own_ticks()?,
            busy: sys::busy_ticks()?,
        })
    }

    /// From `self` to `end`: server CPU µs per message, and the CPUs' worth used by other
    /// processes, by the server, and by the runner (the load).
    fn usage(&self, end: &Snapshot, msgs: u64) -> Usage {
        let hz = sys::ticks_per_sec() as f64;
        let server = end.server.saturating_sub(self.server) as f64 / hz;
        let own = end.own.saturating_sub(self.own) as f64 / hz;
        let busy = end.busy.saturating_sub(self.busy) as f64 / hz;
        let secs = end.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let cpu_us = if msgs > 0 { server * 1e6 / msgs as f64 } else { 0.0 };
        Usage {
            cpu_us,
            other: ((busy - server - own) / secs).max(0.0),
            server: server / secs,
            load: own / secs,
        }
    }
}

/// What [`Snapshot::usage`] works out.
struct Usage {
    cpu_us: f64,
    other: f64,
    server: f64,
    load: f64,
}

/// One run of the load generator against a fresh server; the server's CPU is read over
/// exactly the measured window.
fn measure(
    ctx: &mut Ctx,
    style: Style,
    proto: Proto,
    plan_of: impl Fn(SocketAddr) -> Plan,
) -> Result<Rep, String> {
    let server = ctx.start(style, proto).map_err(|e| e.to_string())?;
    let plan = plan_of(server.addr);
    let pid = server.pid();
    let snaps: Arc<Mutex<Vec<io::Result<Snapshot>>>> = Arc::default();
    let probe: load::Probe = {
        let snaps = Arc::clone(&snaps);
        Arc::new(move |_: Phase| {
            snaps.lock().unwrap_or_else(PoisonError::into_inner).push(Snapshot::take(pid))
        })
    };
    let outcome = load::run(&ctx.rt, &plan, probe);
    let snaps = std::mem::take(&mut *snaps.lock().unwrap_or_else(PoisonError::into_inner));
    let [Ok(start), Ok(end)] = &snaps[..] else {
        return Err(format!("{style}: reading /proc failed: {snaps:?}", snaps = snaps.len()));
    };
    let usage = start.usage(end, outcome.msgs);
    if let Some(trouble) = outcome.trouble() {
        ctx.note(format!("{style} {} with {} conns: {trouble}", proto.name(), plan.conns));
    }
    if outcome.unsent > 0 {
        ctx.note(format!(
            "{style} {} at {:.0}/s: {} messages not sent in time",
            proto.name(),
            plan.rate.unwrap_or(0.0),
            outcome.unsent
        ));
    }
    Ok(Rep {
        per_sec: outcome.per_sec(),
        cpu_us_per_msg: usage.cpu_us,
        latency: outcome.latency,
        errors: outcome.errors as u64 + outcome.mismatches,
        unsent: outcome.unsent,
        other_cpu: usage.other,
        server_cpu: usage.server,
        load_cpu: usage.load,
    })
}

/// One cell per style, each measured `reps` times, the styles interleaved.
fn interleaved(
    ctx: &mut Ctx,
    styles: &[Style],
    template: &Cell,
    rate_of: impl Fn(Style) -> f64,
    mut rep_of: impl FnMut(&mut Ctx, Style, Option<f64>) -> Result<Rep, String>,
) -> Result<Vec<Cell>, String> {
    let mut cells: Vec<Cell> = styles
        .iter()
        .map(|&style| Cell { style: Some(style), rate: rate_of(style), ..template.clone() })
        .collect();
    for _ in 0..ctx.settings.reps {
        for cell in &mut cells {
            let rate = (cell.rate > 0.0).then_some(cell.rate);
            let rep = rep_of(ctx, cell.style(), rate)?;
            cell.reps.push(rep);
        }
    }
    Ok(cells)
}

/// Prints a cell row's medians, for following a run.
fn progress(label: &str, cells: &[Cell]) {
    let base = cells.iter().find(|c| c.style() == Style::Callback).map(|c| c.per_sec().median);
    let parts: Vec<String> = cells
        .iter()
        .map(|c| {
            let m = c.per_sec().median;
            let vs = base.map_or(String::new(), |b| format!(" {}", report::ratio(m, b)));
            format!("{} {}/s{vs}", c.style(), report::si(m))
        })
        .collect();
    eprintln!("{label}: {}", parts.join(", "));
}

fn echo_suite(ctx: &mut Ctx) -> Result<(), String> {
    let styles = ctx.verified(Proto::Echo);
    let (warmup, duration) = (ctx.settings.warmup, ctx.settings.secs);
    for conns in CONNS {
        for size in SIZES {
            let here: Vec<Style> = styles.iter().copied().filter(|s| s.serves(conns)).collect();
            let template = Cell { conns, size, pipeline: 1, ..Cell::default() };
            let cells = interleaved(
                ctx,
                &here,
                &template,
                |_| 0.0,
                |ctx, style, _| {
                    measure(ctx, style, Proto::Echo, |addr| Plan {
                        addr,
                        conns,
                        work: Work::Echo { size },
                        warmup,
                        duration,
                        rate: None,
                    })
                },
            )?;
            progress(&format!("echo {conns} conns {size} B"), &cells);
            ctx.results.echo.extend(cells);
        }
    }
    let size = SIZES[0];
    let peaks: Vec<Cell> = ctx
        .results
        .echo
        .iter()
        .filter(|c| c.conns == LATENCY_CONNS && c.size == size)
        .cloned()
        .collect();
    let cells = fixed_rates(ctx, &peaks, Proto::Echo, |addr, rate| Plan {
        addr,
        conns: LATENCY_CONNS,
        work: Work::Echo { size },
        warmup,
        duration,
        rate,
    })?;
    ctx.results.echo_latency.extend(cells);
    Ok(())
}

/// Each style of `peaks` (closed-loop cells) again at each of [`LOADS`] of its peak, with the
/// load generator pacing a fixed rate; `plan` makes a run's plan from the server's address
/// and the rate.
fn fixed_rates(
    ctx: &mut Ctx,
    peaks: &[Cell],
    proto: Proto,
    plan: impl Fn(SocketAddr, Option<f64>) -> Plan,
) -> Result<Vec<Cell>, String> {
    let Some(first) = peaks.first() else { return Ok(Vec::new()) };
    let here: Vec<Style> =
        peaks.iter().filter(|c| c.per_sec().median > 0.0).map(Cell::style).collect();
    let mut all = Vec::new();
    for load_pct in LOADS {
        let rate_of = |style: Style| {
            let peak =
                peaks.iter().find(|c| c.style() == style).map_or(0.0, |c| c.per_sec().median);
            peak * f64::from(load_pct) / 100.0
        };
        let template = Cell { reps: Vec::new(), load_pct, ..first.clone() };
        let cells = interleaved(ctx, &here, &template, rate_of, |ctx, style, rate| {
            measure(ctx, style, proto, |addr| plan(addr, rate))
        })?;
        progress(&format!("{} at {load_pct} % of peak", proto.name()), &cells);
        all.extend(cells);
    }
    Ok(all)
}

fn http_suite(ctx: &mut Ctx) -> Result<(), String> {
    let styles = ctx.verified(Proto::Http);
    match which_wrk() {
        Some(wrk) => {
            let script = wrk_script()?;
            for pipeline in PIPELINES {
                let template = Cell { conns: WRK_CONNS, pipeline, ..Cell::default() };
                let cells = interleaved(
                    ctx,
                    &styles,
                    &template,
                    |_| 0.0,
                    |ctx, style, _| measure_wrk(ctx, &wrk, &script, style, pipeline),
                )?;
                progress(&format!("http under wrk, {pipeline} per write"), &cells);
                ctx.results.http.extend(cells);
            }
        }
        None => {
            ctx.note("wrk is not installed (bash benches/setup.sh installs it): no wrk runs".into())
        }
    }
    let (warmup, duration) = (ctx.settings.http_warmup, ctx.settings.secs);
    let plan = move |addr, rate| Plan {
        addr,
        conns: LATENCY_CONNS,
        work: Work::Http,
        warmup,
        duration,
        rate,
    };
    let template = Cell { conns: LATENCY_CONNS, pipeline: 1, ..Cell::default() };
    let peaks = interleaved(
        ctx,
        &styles,
        &template,
        |_| 0.0,
        |ctx, style, _| measure(ctx, style, Proto::Http, |addr| plan(addr, None)),
    )?;
    progress("http under the suite's client, closed loop", &peaks);
    let cells = fixed_rates(ctx, &peaks, Proto::Http, plan)?;
    ctx.results.http_latency.extend(peaks);
    ctx.results.http_latency.extend(cells);
    Ok(())
}

fn which_wrk() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("wrk")).find(|p| p.is_file())
}

/// wrk's pipelining script, written where wrk can read it.
fn wrk_script() -> Result<PathBuf, String> {
    let dir = target_dir().join("weft-bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("pipeline.lua");
    write(&path, include_str!("../wrk/pipeline.lua"))?;
    Ok(path)
}

/// What wrk printed that the suite uses.
struct WrkOutcome {
    requests: u64,
    secs: f64,
    errors: u64,
}

/// Runs wrk for `dur` against `addr`, `pipeline` requests per write.
fn wrk(
    wrk: &Path,
    script: &Path,
    addr: SocketAddr,
    pipeline: usize,
    dur: Duration,
) -> Result<WrkOutcome, String> {
    let mut cmd = Command::new(wrk);
    // wrk takes whole seconds.
    let secs = dur.as_secs_f64().round().max(1.0);
    cmd.args(["-t1", &format!("-c{WRK_CONNS}"), &format!("-d{secs}s"), "--timeout", "10s"]);
    if pipeline > 1 {
        cmd.arg("-s").arg(script);
    }
    cmd.arg(format!("http://{addr}{}", load::PLAINTEXT_PATH));
    if pipeline > 1 {
        cmd.args(["--", &pipeline.to_string()]);
    }
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_wrk(&text).ok_or_else(|| format!("unexpected wrk output: {text}"))
}

/// Total requests, seconds and errors (socket errors plus non-2xx/3xx answers) of wrk's output.
fn parse_wrk(text: &str) -> Option<WrkOutcome> {
    let line = text.lines().find(|l| l.contains(" requests in "))?;
    let mut words = line.split_whitespace();
    let requests = words.next()?.parse().ok()?;
    let secs_word = line.split(" requests in ").nth(1)?.split(',').next()?.trim();
    let secs = if let Some(ms) = secs_word.strip_suffix("ms") {
        ms.parse::<f64>().ok()? / 1e3
    } else if let Some(m) = secs_word.strip_suffix('m') {
        m.parse::<f64>().ok()? * 60.0
    } else {
        secs_word.strip_suffix('s')?.parse().ok()?
    };
    let mut errors = 0;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Socket errors:") {
            errors += rest
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += rest.trim().parse::<u64>().ok()?;
        }
    }
    Some(WrkOutcome { requests, secs, errors })
}

fn measure_wrk(
    ctx: &mut Ctx,
    wrk_path: &Path,
    script: &Path,
    style: Style,
    pipeline: usize,
) -> Result<Rep, String> {
    let server = ctx.start(style, Proto::Http).map_err(|e| e.to_string())?;
    if !ctx.settings.http_warmup.is_zero() {
        wrk(wrk_path, script, server.addr, pipeline, ctx.settings.http_warmup)?;
    }
    let start = Snapshot::take(server.pid()).map_err(|e| e.to_string())?;
    let outcome = wrk(wrk_path, script, server.addr, pipeline, ctx.settings.http_secs)?;
    let end = Snapshot::take(server.pid()).map_err(|e| e.to_string())?;
    drop(server);
    let usage = start.usage(&end, outcome.requests);
    if outcome.errors > 0 {
        ctx.note(format!(
            "{style} http under wrk, {pipeline} per write: {} errors",
            outcome.errors
        ));
    }
    Ok(Rep {
        per_sec: outcome.requests as f64 / outcome.secs.max(1e-3),
        cpu_us_per_msg: usage.cpu_us,
        errors: outcome.errors,
        other_cpu: usage.other,
        server_cpu: usage.server,
        load_cpu: usage.load,
        ..Rep::default()
    })
}

fn memory_suite(ctx: &mut Ctx) -> Result<(), String> {
    let styles: Vec<Style> =
        ctx.verified(Proto::Echo).into_iter().filter(|s| s.serves(IDLE_CONNS)).collect();
    let mut cells: Vec<MemoryCell> = styles
        .iter()
        .map(|&s| MemoryCell { style: Some(s), conns: IDLE_CONNS, reps: Vec::new() })
        .collect();
    for _ in 0..ctx.settings.reps {
        for cell in &mut cells {
            let style = cell.style.expect("set above");
            let server = ctx.start(style, Proto::Echo).map_err(|e| e.to_string())?;
            let before_kib = server.rss_kib().map_err(|e| e.to_string())?;
            let (addr, pid) = (server.addr, server.pid());
            let after = ctx.rt.block_on(move || hold_idle(addr, IDLE_CONNS, pid));
            let after_kib = after.map_err(|e| format!("{style}: {e}"))?;
            cell.reps.push(MemoryRep { before_kib, after_kib });
        }
    }
    let parts: Vec<String> = cells
        .iter()
        .map(|c| format!("{} {} B", c.style.expect("set"), report::thousands(c.per_conn().median)))
        .collect();
    eprintln!("memory per idle connection: {}", parts.join(", "));
    if !Style::Pool.serves(IDLE_CONNS) && ctx.styles.contains(&Style::Pool) {
        ctx.note(format!(
            "memory: the pool ({} threads) cannot hold {IDLE_CONNS} connections, so it is not measured",
            servers::POOL_THREADS
        ));
    }
    ctx.results.memory = cells;
    Ok(())
}

/// Opens `n` connections to the echo server at `addr`, one after another, and has each echo 64
/// bytes, so that the server has served every one (its coroutine, thread, task or buffers
/// exist); then reads the server's RSS while all are open and idle, and closes them.
fn hold_idle(addr: SocketAddr, n: usize, pid: u32) -> io::Result<u64> {
    use std::io::{Read, Write};
    let mut held = Vec::with_capacity(n);
    let mut msg = [0u8; 64];
    let mut back = [0u8; 64];
    for id in 0..n {
        let mut stream = weft::net::TcpStream::connect_timeout(&addr, load::IO_TIMEOUT)?;
        stream.set_read_timeout(Some(load::IO_TIMEOUT))?;
        load::fill(&mut msg, id, 0);
        stream.write_all(&msg)?;
        stream.read_exact(&mut back)?;
        if back != msg {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "wrong echo"));
        }
        held.push(stream);
    }
    sys::rss_kib(pid)
}

/// The criterion benchmarks of the micro table: (what, peer, bench target, criterion id).
const MICRO: [(&str, &str, &str, &str); 12] = [
    ("yield round trip", "weft", "runtime", "yield_round_trip/weft_1_worker"),
    ("yield round trip", "may", "runtime", "yield_round_trip/may_1_worker"),
    ("yield round trip", "tokio", "runtime", "yield_round_trip/tokio_current_thread"),
    ("yield round trip", "threads", "runtime", "yield_round_trip/std_threads_1_cpu"),
    ("spawn + join, per task", "weft", "runtime", "spawn_join/weft_1_worker"),
    ("spawn + join, per task", "may", "runtime", "spawn_join/may_1_worker"),
    ("spawn + join, per task", "tokio", "runtime", "spawn_join/tokio_current_thread"),
    ("spawn + join, per task", "threads", "runtime", "spawn_join/std_thread"),
    ("channel ping-pong round trip", "weft", "sync", "pingpong_one_worker/weft_1_worker"),
    ("channel ping-pong round trip", "may", "sync", "pingpong_one_worker/may_1_worker"),
    ("channel ping-pong round trip", "tokio", "sync", "pingpong_one_worker/tokio_current_thread"),
    ("channel ping-pong round trip", "threads", "sync", "pingpong_one_worker/std_threads_std_mpsc"),
];

/// Runs the criterion benchmarks of [`MICRO`] through cargo, then reads their medians from
/// criterion's estimates (per element where a benchmark reports a batch).
fn micro_suite(ctx: &mut Ctx, quick: bool) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let filter = "^(yield_round_trip|spawn_join|pingpong_one_worker)/";
    for bench in ["runtime", "sync"] {
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
        cmd.args(["bench", "-p", "weft-bench", "--bench", bench, "--", filter]);
        if quick {
            cmd.args(["--warm-up-time", "0.5", "--measurement-time", "1"]);
        }
        eprintln!("micro: cargo bench --bench {bench} -- {filter}");
        let status = cmd.status().map_err(|e| format!("cargo bench: {e}"))?;
        if !status.success() {
            return Err(format!("cargo bench --bench {bench} failed: {status}"));
        }
    }
    let criterion = target_dir().join("criterion");
    for (what, peer, _, id) in MICRO {
        match criterion_median(&criterion, id) {
            Ok(ns) => ctx.results.micro.push(MicroRow {
                bench: what.into(),
                peer: peer.into(),
                id: id.into(),
                ns,
            }),
            Err(e) => ctx.note(format!("micro {id}: {e}")),
        }
    }
    Ok(())
}

/// The median time per element of criterion benchmark `id`, in ns.
fn criterion_median(criterion: &Path, id: &str) -> Result<f64, String> {
    let dir = criterion.join(id);
    let read = |name: &str| -> Result<serde_json::Value, String> {
        let path = dir.join(name);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    };
    let estimates = read("new/estimates.json")?;
    let median =
        estimates["median"]["point_estimate"].as_f64().ok_or("no median in estimates.json")?;
    let elements = read("new/benchmark.json")?["throughput"]["Elements"].as_f64().unwrap_or(1.0);
    Ok(median / elements.max(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let text = "Running 5s test @ http://127.0.0.1:1/plaintext
  1 threads and 256 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  300.00us   9.00ms   90.00%
  566325 requests in 5.00s, 71.29MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec: 113265.00
Transfer/sec:     14.26MB
";
        let out = parse_wrk(text).unwrap();
        assert_eq!((out.requests, out.secs, out.errors), (566_325, 5.0, 7));
        let ms = parse_wrk("  10 requests in 500.00ms, 1KB read\n").unwrap();
        assert_eq!((ms.requests, ms.secs, ms.errors), (10, 0.5, 0));
        assert!(parse_wrk("nothing").is_none());
    }

    #[test]
    fn usage_subtracts_server_and_own_time_from_the_machine_busy_time() {
        let t = Instant::now();
        let hz = sys::ticks_per_sec();
        let start = Snapshot { at: t, server: 0, own: 0, busy: 0 };
        // One second: the server used half a CPU, the runner a quarter, the machine one CPU.
        let end =
            Snapshot { at: t + Duration::from_secs(1), server: hz / 2, own: hz / 4, busy: hz };
        let u = start.usage(&end, 1000);
        assert!((u.cpu_us - 500.0).abs() < 1e-6, "{}", u.cpu_us);
        assert!((u.server - 0.5).abs() < 1e-6, "{}", u.server);
        assert!((u.load - 0.25).abs() < 1e-6, "{}", u.load);
        assert!((u.other - 0.25).abs() < 1e-6, "{}", u.other);
    }
}
