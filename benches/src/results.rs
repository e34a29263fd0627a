//! What a run measured: the cells of each suite, each with its repetitions. The runner fills
//! it, writes it to `results.json`, and the report and the charts are made from it alone, so
//! `weft-bench report` can make them again without a run.

use serde::{Deserialize, Serialize};

use crate::load::Latency;
use crate::servers::Style;

/// Everything one run measured, and how.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Results {
    /// CPU model, cores, memory, kernel.
    pub machine: String,
    /// The command line that made the run.
    pub command: String,
    /// When the run started (an HTTP date).
    pub date: String,
    /// Repetitions of each cell; each style's are interleaved with the others'.
    pub reps: usize,
    /// Echo: closed loop over the grid.
    pub echo: Vec<Cell>,
    /// Echo: fixed rate at shares of each style's peak.
    pub echo_latency: Vec<Cell>,
    /// HTTP plaintext under wrk.
    pub http: Vec<Cell>,
    /// HTTP plaintext under the suite's own client: closed loop (`load_pct` 0), then fixed
    /// rates at shares of that peak.
    pub http_latency: Vec<Cell>,
    /// Resident memory per idle connection.
    pub memory: Vec<MemoryCell>,
    /// criterion medians.
    pub micro: Vec<MicroRow>,
    /// Things that went wrong or that a reader should know, in the order they happened.
    pub notes: Vec<String>,
}

/// One configuration of one style, with its repetitions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// The server's style.
    pub style: Option<Style>,
    /// Connections.
    pub conns: usize,
    /// Echo message bytes; 0 for HTTP.
    pub size: usize,
    /// HTTP requests per write (1: no pipelining).
    pub pipeline: usize,
    /// Fixed rate as a percentage of the style's peak; 0 for closed loop.
    pub load_pct: u32,
    /// Fixed rate, messages per second in all; 0 for closed loop.
    pub rate: f64,
    /// The measurements.
    pub reps: Vec<Rep>,
}

impl Cell {
    /// The style; every cell the runner makes has one.
    pub fn style(&self) -> Style {
        self.style.expect("a measured cell names its style")
    }

    /// Messages per second: median and range.
    pub fn per_sec(&self) -> Spread {
        Spread::of(self.reps.iter().map(|r| r.per_sec))
    }

    /// Server CPU microseconds per message: median and range.
    pub fn cpu_us(&self) -> Spread {
        Spread::of(self.reps.iter().map(|r| r.cpu_us_per_msg))
    }

    /// Each latency percentile's median over the repetitions.
    pub fn latency(&self) -> Latency {
        let med =
            |f: fn(&Latency) -> f64| Spread::of(self.reps.iter().map(|r| f(&r.latency))).median;
        Latency {
            p50: med(|l| l.p50),
            p90: med(|l| l.p90),
            p99: med(|l| l.p99),
            p999: med(|l| l.p999),
            max: med(|l| l.max),
        }
    }

    /// The server's CPU use (CPUs' worth): median and range.
    pub fn server_cpu(&self) -> Spread {
        Spread::of(self.reps.iter().map(|r| r.server_cpu))
    }

    /// The load's CPU use (CPUs' worth): median and range.
    pub fn load_cpu(&self) -> Spread {
        Spread::of(self.reps.iter().map(|r| r.load_cpu))
    }

    /// Whether some repetition ran while other processes used a tenth of a CPU or more.
    pub fn busy(&self) -> bool {
        self.reps.iter().any(|r| r.other_cpu >= BUSY)
    }

    /// Whether some repetition had connection errors, wrong answers, or unsent slots.
    pub fn troubled(&self) -> bool {
        self.reps.iter().any(|r| r.errors > 0 || r.unsent > 0)
    }
}

/// The styles that have cells among `cells`, in the report's order.
pub fn styles_in<'a>(cells: impl IntoIterator<Item = &'a Cell>) -> Vec<Style> {
    let mut present: Vec<Style> = cells.into_iter().map(Cell::style).collect();
    present.sort_unstable();
    present.dedup();
    Style::ALL.into_iter().filter(|s| present.contains(s)).collect()
}

/// The share of a CPU that other processes may use during a measurement before its cell is
/// marked as measured on a busy machine.
pub const BUSY: f64 = 0.1;

/// One measurement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rep {
    /// Messages (echo round trips, HTTP responses) per second.
    pub per_sec: f64,
    /// Server CPU time (user + system, all threads) per message, in microseconds.
    pub cpu_us_per_msg: f64,
    /// Latency; all zero when the load generator does not measure it (wrk's own is not used).
    pub latency: Latency,
    /// Connection errors plus wrong answers.
    pub errors: u64,
    /// Fixed rate: slots time ran out for.
    pub unsent: u64,
    /// CPUs' worth of time used by processes other than the server and the load during the
    /// window (e.g. 0.05: 5 % of one CPU).
    pub other_cpu: f64,
    /// CPUs' worth of time the server used during the window: near 1 for a one-worker server
    /// that set the pace, well below 1 when the load did.
    #[serde(default)]
    pub server_cpu: f64,
    /// CPUs' worth of time the runner (the load generator, or wrk) used during the window:
    /// near 1, the load itself was saturated, and latency includes its own queueing.
    #[serde(default)]
    pub load_cpu: f64,
}

/// Resident memory of a server holding idle connections.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryCell {
    /// The server's style.
    pub style: Option<Style>,
    /// Connections held.
    pub conns: usize,
    /// The measurements.
    pub reps: Vec<MemoryRep>,
}

impl MemoryCell {
    /// Bytes per connection: median and range.
    pub fn per_conn(&self) -> Spread {
        Spread::of(self.reps.iter().map(|r| r.per_conn(self.conns)))
    }
}

/// One measurement of memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryRep {
    /// RSS once listening, in KiB.
    pub before_kib: u64,
    /// RSS holding the connections, in KiB.
    pub after_kib: u64,
}

impl MemoryRep {
    /// Bytes of growth per connection.
    pub fn per_conn(&self, conns: usize) -> f64 {
        self.after_kib.saturating_sub(self.before_kib) as f64 * 1024.0 / conns.max(1) as f64
    }
}

/// One criterion benchmark.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MicroRow {
    /// What is measured, e.g. `yield round trip`.
    pub bench: String,
    /// Whose: `weft`, `may`, `tokio`, `threads`.
    pub peer: String,
    /// criterion's id, `group/function`.
    pub id: String,
    /// Median time per iteration, in nanoseconds.
    pub ns: f64,
}

/// A median with the least and the largest value it was taken from.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spread {
    /// The middle value (the mean of the two middle ones for an even count).
    pub median: f64,
    /// The least.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; all zero for none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return Spread::default();
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Spread { median, min: v[0], max: v[n - 1] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts_and_range() {
        let s = Spread::of([5.0, 1.0, 3.0]);
        assert_eq!(s, Spread { median: 3.0, min: 1.0, max: 5.0 });
        let s = Spread::of([4.0, 1.0, 3.0, 10.0]);
        assert_eq!(s, Spread { median: 3.5, min: 1.0, max: 10.0 });
        assert_eq!(Spread::of([]), Spread::default());
    }

    #[test]
    fn memory_per_connection_is_growth_over_connections() {
        let rep = MemoryRep { before_kib: 1000, after_kib: 1000 + 10_000 * 8 };
        assert_eq!(rep.per_conn(10_000), 8.0 * 1024.0);
        // Shrinking (pages given back) counts as no growth, not as negative memory.
        assert_eq!(MemoryRep { before_kib: 10, after_kib: 5 }.per_conn(1), 0.0);
    }

    #[test]
    fn results_survive_a_json_round_trip() {
        let mut results = Results { machine: "m".into(), reps: 3, ..Results::default() };
        results.echo.push(Cell {
            style: Some(Style::TokioCt),
            conns: 100,
            size: 64,
            pipeline: 1,
            reps: vec![Rep { per_sec: 1.5, other_cpu: 0.2, ..Rep::default() }],
            ..Cell::default()
        });
        let text = serde_json::to_string(&results).unwrap();
        assert!(text.contains("\"tokio-ct\""), "{text}");
        let back: Results = serde_json::from_str(&text).unwrap();
        assert_eq!(back.echo, results.echo);
        assert!(back.echo[0].busy());
    }
}
