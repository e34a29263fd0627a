//! The markdown report of a run: one table per question, every figure a median with its range
//! over the repetitions, and every style's figure also as a ratio to the callback style's.

use std::fmt::Write;

use crate::results::{styles_in, Cell, Results, Spread, BUSY};
use crate::servers::{Proto, Style};
use crate::targets::Verdict;

/// The report of `results`, with the charts (file names beside the report) and, if `--check`
/// ran, its verdicts.
pub fn markdown(
    results: &Results,
    charts: &[(&str, &str)],
    verdicts: Option<&[Verdict]>,
) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# weft-bench\n");
    let _ = writeln!(w, "- machine: {}", results.machine);
    let _ = writeln!(w, "- command: `{}`", results.command);
    let _ = writeln!(w, "- date: {}", results.date);
    let _ = writeln!(
        w,
        "- method: each server in a process of its own, pinned to CPU 0 with 1 worker; the load \
         on CPU 1; {} repetition(s) of each cell, interleaved across styles; a cell is the \
         median (min–max); `×` is the ratio to the callback style's median from the same run",
        results.reps
    );
    let _ = writeln!(
        w,
        "- marks: `~` other processes used {:.0} % of a CPU or more during a repetition; `!` \
         connection errors, wrong answers or unsent messages in a repetition",
        BUSY * 100.0
    );
    for (title, file) in charts {
        let _ = writeln!(w, "\n![{title}]({file})");
    }

    if !results.echo.is_empty() {
        let _ = writeln!(w, "\n## Echo throughput, messages/s (closed loop)\n");
        grid(w, &results.echo, Proto::Echo, Cell::per_sec, Extra::None);
        let _ = writeln!(w, "\n## Echo: server CPU per message, µs\n");
        grid(w, &results.echo, Proto::Echo, Cell::cpu_us, Extra::ServerCpu);
    }
    if !results.echo_latency.is_empty() {
        let _ =
            writeln!(w, "\n## Echo latency at a fixed rate, µs (coordinated omission corrected)\n");
        latency(w, &results.echo_latency);
    }
    if !results.http.is_empty() {
        let _ = writeln!(w, "\n## HTTP plaintext under wrk, responses/s\n");
        grid(w, &results.http, Proto::Http, Cell::per_sec, Extra::None);
        let _ = writeln!(w, "\n## HTTP: server CPU per response, µs\n");
        grid(w, &results.http, Proto::Http, Cell::cpu_us, Extra::ServerCpu);
    }
    if !results.http_latency.is_empty() {
        let _ = writeln!(w, "\n## HTTP latency under the suite's own client, µs\n");
        latency(w, &results.http_latency);
    }
    if !results.memory.is_empty() {
        memory(w, results);
    }
    if !results.micro.is_empty() {
        micro(w, results);
    }
    if let Some(verdicts) = verdicts {
        check(w, verdicts);
    }
    if !results.notes.is_empty() {
        let _ = writeln!(w, "\n## Notes\n");
        for note in &results.notes {
            let _ = writeln!(w, "- {note}");
        }
    }
    out
}

/// What a grid shows besides each cell's figure.
#[derive(Clone, Copy, PartialEq)]
enum Extra {
    None,
    /// The server's CPU use, which says whether the server or the load set the pace.
    ServerCpu,
}

/// A table with one row per configuration and one column per style.
fn grid(w: &mut String, cells: &[Cell], proto: Proto, value: fn(&Cell) -> Spread, extra: Extra) {
    // A row is a configuration: echo cells differ in size, HTTP cells in pipelining.
    let key = |c: &Cell| (c.conns, c.size, c.pipeline);
    let styles = styles_in(cells);
    let mut keys: Vec<_> = cells.iter().map(key).collect();
    keys.sort_unstable();
    keys.dedup();
    let head: Vec<&str> = styles.iter().map(|s| s.name()).collect();
    let first = match proto {
        Proto::Echo => "| conns | size |",
        Proto::Http => "| conns | pipelining |",
    };
    let _ = writeln!(w, "{first} {} |", head.join(" | "));
    let _ = writeln!(w, "|---:|---:|{}", "---:|".repeat(styles.len()));
    for k in keys {
        let row: Vec<&Cell> = cells.iter().filter(|c| key(c) == k).collect();
        let base = row.iter().find(|c| c.style() == Style::Callback).map(|c| value(c).median);
        let second = match proto {
            Proto::Echo => bytes(k.1),
            Proto::Http if k.2 <= 1 => "none".to_string(),
            Proto::Http => format!("{} per write", k.2),
        };
        let mut line = format!("| {} | {second} |", thousands(k.0 as f64));
        for style in &styles {
            let Some(cell) = row.iter().find(|c| c.style() == *style) else {
                line.push_str(" — |");
                continue;
            };
            let spread = value(cell);
            let _ = write!(line, " {}{}", spread_text(spread), marks(cell));
            if extra == Extra::ServerCpu {
                let _ = write!(line, " at {:.0} %", cell.server_cpu().median * 100.0);
            }
            if let (Some(base), true) = (base, *style != Style::Callback) {
                let _ = write!(line, ", {}", ratio(spread.median, base));
            }
            line.push_str(" |");
        }
        let _ = writeln!(w, "{line}");
    }
    legend(w, &styles, proto);
    if extra == Extra::ServerCpu {
        let _ = writeln!(
            w,
            "\n`at N %`: the share of its CPU the server used. Near 100 % the server set the \
             pace; well below, the load did, and the throughput table compares load \
             generators more than servers: CPU per message is the fair comparison then."
        );
    }
    if cells.iter().any(|c| c.style() == Style::Pool)
        && cells.iter().any(|c| !Style::Pool.serves(c.conns))
    {
        let _ = writeln!(
            w,
            "\n— : the pool serves {} connections at a time, so it cannot run this cell.",
            crate::servers::POOL_THREADS
        );
    }
}

/// What each style's server is, under its table.
fn legend(w: &mut String, styles: &[Style], proto: Proto) {
    let parts: Vec<String> = styles.iter().map(|s| format!("{s}: {}", s.describe(proto))).collect();
    let _ = writeln!(w, "\n{}.", parts.join("; "));
}

/// A fixed-rate latency table: one row per style and load.
fn latency(w: &mut String, cells: &[Cell]) {
    let _ = writeln!(
        w,
        "`server / load CPU`: the share of its CPU each side used. Both weft runtimes (the \
         load generator is one) spin up to 20 µs before their worker sleeps, so they read near \
         100 % whenever messages come closer together than that; the load was saturated only \
         where `achieved/s` falls short of `rate/s` or messages went unsent (`!`).\n"
    );
    let _ = writeln!(
        w,
        "| style | conns | size | load | rate/s | achieved/s | p50 | p90 | p99 | p99.9 | max | \
         p99 × callback | server / load CPU |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut loads: Vec<u32> = cells.iter().map(|c| c.load_pct).collect();
    loads.sort_unstable();
    loads.dedup();
    for load in loads {
        let row: Vec<&Cell> = cells.iter().filter(|c| c.load_pct == load).collect();
        let base = row.iter().find(|c| c.style() == Style::Callback).map(|c| c.latency().p99);
        for style in styles_in(row.iter().copied()) {
            for cell in row.iter().filter(|c| c.style() == style) {
                let lat = cell.latency();
                let load_text = if load == 0 { "peak".to_string() } else { format!("{load} %") };
                let rate = if cell.rate > 0.0 { si(cell.rate) } else { "closed loop".into() };
                let size = if cell.size > 0 { bytes(cell.size) } else { "GET".into() };
                let vs = match base {
                    Some(b) if style != Style::Callback => ratio(lat.p99, b),
                    _ => String::new(),
                };
                let cpu = format!(
                    "{:.0} % / {:.0} %",
                    cell.server_cpu().median * 100.0,
                    cell.load_cpu().median * 100.0
                );
                let _ = writeln!(
                    w,
                    "| {style}{} | {} | {size} | {load_text} | {rate} | {} | {} | {} | {} | {} | {} | {vs} | {cpu} |",
                    marks(cell),
                    thousands(cell.conns as f64),
                    si(cell.per_sec().median),
                    micros(lat.p50),
                    micros(lat.p90),
                    micros(lat.p99),
                    micros(lat.p999),
                    micros(lat.max),
                );
            }
        }
    }
}

fn memory(w: &mut String, results: &Results) {
    let conns = results.memory.first().map_or(0, |c| c.conns);
    let _ =
        writeln!(w, "\n## Memory per idle connection ({} connections)\n", thousands(conns as f64));
    let _ = writeln!(
        w,
        "| style | RSS listening, KiB | RSS holding them, KiB | bytes per connection | × callback |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|");
    let base = results
        .memory
        .iter()
        .find(|c| c.style == Some(Style::Callback))
        .map(|c| c.per_conn().median);
    for style in Style::ALL {
        let Some(cell) = results.memory.iter().find(|c| c.style == Some(style)) else { continue };
        let before = Spread::of(cell.reps.iter().map(|r| r.before_kib as f64)).median;
        let after = Spread::of(cell.reps.iter().map(|r| r.after_kib as f64)).median;
        let per = cell.per_conn();
        let vs = match base {
            Some(b) if style != Style::Callback => ratio(per.median, b),
            _ => String::new(),
        };
        let _ = writeln!(
            w,
            "| {style} | {} | {} | {} ({}–{}) | {vs} |",
            thousands(before),
            thousands(after),
            thousands(per.median),
            thousands(per.min),
            thousands(per.max),
        );
    }
}

fn micro(w: &mut String, results: &Results) {
    const PEERS: [&str; 4] = ["weft", "may", "tokio", "threads"];
    let _ = writeln!(w, "\n## Micro-benchmarks (criterion), median time per iteration\n");
    let _ = writeln!(
        w,
        "`cargo bench` started by the runner, so every case runs on the runner's one CPU: \
         weft, may and tokio on one worker, the two threads on one CPU.\n"
    );
    let _ = writeln!(w, "| benchmark | {} |", PEERS.join(" | "));
    let _ = writeln!(w, "|---|{}", "---:|".repeat(PEERS.len()));
    let mut benches: Vec<&str> = Vec::new();
    for row in &results.micro {
        if !benches.contains(&row.bench.as_str()) {
            benches.push(&row.bench);
        }
    }
    for bench in benches {
        let mut line = format!("| {bench} |");
        for peer in PEERS {
            match results.micro.iter().find(|r| r.bench == bench && r.peer == peer) {
                Some(row) => {
                    let _ = write!(line, " {} |", nanos(row.ns));
                }
                None => line.push_str(" — |"),
            }
        }
        let _ = writeln!(w, "{line}");
    }
    let _ = writeln!(w, "\nThe criterion ids behind each figure:\n");
    for row in &results.micro {
        let _ = writeln!(w, "- {} / {}: `{}`", row.bench, row.peer, row.id);
    }
}

fn check(w: &mut String, verdicts: &[Verdict]) {
    let _ = writeln!(w, "\n## Targets (`--check`)\n");
    let _ = writeln!(w, "| target | measured | limit | |");
    let _ = writeln!(w, "|---|---:|---:|---|");
    for v in verdicts {
        let measured = v.measured.map_or("not measured".to_string(), |m| format!("{m:.2}×"));
        let verdict = if v.pass { "met" } else { "**missed**" };
        let _ = writeln!(w, "| {} | {measured} | {} {:.2}× | {verdict} |", v.what, v.op, v.limit);
    }
}

/// `~` for a busy machine, `!` for errors.
fn marks(cell: &Cell) -> String {
    let mut m = String::new();
    if cell.busy() {
        m.push('~');
    }
    if cell.troubled() {
        m.push('!');
    }
    m
}

fn spread_text(s: Spread) -> String {
    format!("{} ({}–{})", si(s.median), si(s.min), si(s.max))
}

/// `a / b` as `0.95×`.
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "—".to_string()
    }
}

/// A figure in three significant digits with k or M: `950`, `9.50k`, `95.0k`, `950k`, `9.50M`.
pub fn si(x: f64) -> String {
    let (v, unit) = if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$}{unit}")
}

/// A whole number with thousands separators.
pub fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

fn bytes(n: usize) -> String {
    if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} B")
    }
}

fn micros(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{} ms", si(us / 1000.0))
    } else {
        thousands(us)
    }
}

fn nanos(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Latency;
    use crate::results::{MemoryCell, MemoryRep, MicroRow, Rep};

    fn cell(style: Style, conns: usize, size: usize, per_sec: &[f64]) -> Cell {
        Cell {
            style: Some(style),
            conns,
            size,
            pipeline: 1,
            reps: per_sec
                .iter()
                .map(|&p| Rep { per_sec: p, cpu_us_per_msg: 1e6 / p, ..Rep::default() })
                .collect(),
            ..Cell::default()
        }
    }

    #[test]
    fn numbers_read_at_a_glance() {
        assert_eq!(si(950.0), "950");
        assert_eq!(si(9_500.0), "9.50k");
        assert_eq!(si(95_040.0), "95.0k");
        assert_eq!(si(950_400.0), "950k");
        assert_eq!(si(1_234_567.0), "1.23M");
        assert_eq!(si(7.25), "7.25");
        assert_eq!(si(10.0), "10.0");
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(ratio(95.0, 100.0), "0.95×");
        assert_eq!(ratio(1.0, 0.0), "—");
        assert_eq!(bytes(4096), "4 KiB");
        assert_eq!(bytes(64), "64 B");
    }

    #[test]
    fn echo_grid_has_medians_ranges_and_ratios_to_callback() {
        let results = Results {
            reps: 3,
            echo: vec![
                cell(Style::Callback, 100, 64, &[100_000.0, 90_000.0, 110_000.0]),
                cell(Style::Weft, 100, 64, &[95_000.0, 99_000.0, 80_000.0]),
                cell(Style::Callback, 10_000, 4096, &[50_000.0]),
            ],
            ..Results::default()
        };
        let md = markdown(&results, &[], None);
        assert!(
            md.contains("| 100 | 64 B | 100k (90.0k–110k) | 95.0k (80.0k–99.0k), 0.95× |"),
            "{md}"
        );
        // No weft cell at 10,000 connections: a dash, not a made-up figure.
        assert!(md.contains("| 10,000 | 4 KiB | 50.0k (50.0k–50.0k) | — |"), "{md}");
        // CPU per message: lower is better, and the ratio is still weft over callback.
        assert!(md.contains("server CPU per message"));
        assert!(md.contains("10.0 (9.09–11.1) at 0 % | 10.5 (10.1–12.5) at 0 %, 1.05×"), "{md}");
    }

    #[test]
    fn busy_and_troubled_cells_are_marked() {
        let mut busy = cell(Style::Callback, 1, 64, &[10.0]);
        busy.reps[0].other_cpu = 0.5;
        let mut failed = cell(Style::Weft, 1, 64, &[10.0]);
        failed.reps[0].errors = 2;
        let results = Results { echo: vec![busy, failed], ..Results::default() };
        let md = markdown(&results, &[], None);
        assert!(md.contains("| 1 | 64 B | 10.0 (10.0–10.0)~ | 10.0 (10.0–10.0)!, 1.00× |"), "{md}");
    }

    #[test]
    fn latency_memory_micro_and_check_sections() {
        let mut fixed = cell(Style::Weft, 100, 64, &[45_000.0]);
        fixed.load_pct = 50;
        fixed.rate = 45_000.0;
        fixed.reps[0].latency =
            Latency { p50: 40.0, p90: 60.0, p99: 120.0, p999: 900.0, max: 25_000.0 };
        let results = Results {
            echo_latency: vec![fixed],
            memory: vec![
                MemoryCell {
                    style: Some(Style::Callback),
                    conns: 10_000,
                    reps: vec![MemoryRep { before_kib: 2_000, after_kib: 12_000 }],
                },
                MemoryCell {
                    style: Some(Style::Weft),
                    conns: 10_000,
                    reps: vec![MemoryRep { before_kib: 3_000, after_kib: 23_000 }],
                },
            ],
            micro: vec![MicroRow {
                bench: "yield round trip".into(),
                peer: "weft".into(),
                id: "yield_round_trip/weft_1_worker".into(),
                ns: 48.31,
            }],
            ..Results::default()
        };
        let verdicts = [Verdict {
            what: "echo 100 conns 64 B: weft ÷ callback".into(),
            measured: Some(0.8),
            op: "≥",
            limit: 0.9,
            pass: false,
        }];
        let md = markdown(&results, &[("Throughput", "throughput.svg")], Some(&verdicts));
        assert!(md.contains("![Throughput](throughput.svg)"));
        assert!(
            md.contains(
                "| weft | 100 | 64 B | 50 % | 45.0k | 45.0k | 40 | 60 | 120 | 900 | 25.0 ms |  | 0 % / 0 % |"
            ),
            "{md}"
        );
        assert!(md.contains("| 2,000 | 12,000 | 1,024 (1,024–1,024) |  |"), "{md}");
        assert!(md.contains("| 3,000 | 23,000 | 2,048 (2,048–2,048) | 2.00× |"), "{md}");
        assert!(md.contains("| yield round trip | 48.3 ns | — | — | — |"), "{md}");
        assert!(md.contains("| 0.80× | ≥ 0.90× | **missed** |"), "{md}");
    }
}
