//! Runtime counters. They stay on because they are cheap: each worker bumps its own, on its own
//! cache line, with plain relaxed load-and-store where it is the only writer.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a runtime's counters, from [`Runtime::metrics`](crate::Runtime::metrics).
///
/// ```
/// let rt = weft::Runtime::builder().workers(2).build()?;
/// rt.block_on(|| weft::spawn(|| ()).join().unwrap());
/// assert_eq!(rt.metrics().workers.len(), 2);
/// // A worker counts a coroutine as finished when it cleans it up, just after the coroutine's
/// // result reaches its `join`: the count catches up a moment later.
/// let finished = || rt.metrics().workers.iter().map(|w| w.finished).sum::<u64>();
/// while finished() < 2 {
///     std::thread::yield_now();
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RuntimeMetrics {
    /// One entry per worker, in worker order.
    pub workers: Vec<WorkerMetrics>,
    /// Coroutines spawned and not yet finished, runtime-wide.
    pub alive: u64,
    /// Coroutines spawned from threads outside the runtime (through the global queue).
    pub spawned_outside: u64,
    /// Coroutine stacks mapped now, in use or pooled.
    pub stacks_mapped: usize,
    /// Coroutine stacks held by coroutines now.
    pub stacks_in_use: usize,
}

/// One worker's counters; see [`RuntimeMetrics`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Coroutines spawned by coroutines running on this worker.
    pub spawned: u64,
    /// Coroutines that finished on this worker.
    pub finished: u64,
    /// Coroutines started on this worker and not finished yet.
    pub alive: u64,
    /// Coroutine resumes.
    pub switches: u64,
    /// Coroutines this worker stole from other workers' queues.
    pub steals: u64,
    /// Times this worker went to sleep for lack of work.
    pub parks: u64,
    /// `epoll_wait` calls.
    pub polls: u64,
    /// Events `epoll_wait` returned.
    pub events: u64,
    /// Parks of coroutines on this worker waiting for fd readiness.
    pub io_waits: u64,
    /// Those parks that a readiness edge ended, after which the call would still block: wakes
    /// for readiness that was already used up, or would be, for a closed and reused fd, stale.
    pub io_spurious: u64,
}

/// The live counters behind [`WorkerMetrics`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) spawned: AtomicU64,
    pub(crate) finished: AtomicU64,
    pub(crate) alive: AtomicU64,
    pub(crate) steals: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) polls: AtomicU64,
    pub(crate) events: AtomicU64,
    pub(crate) io_waits: AtomicU64,
    pub(crate) io_spurious: AtomicU64,
}

/// Adds `n` to a counter that only the calling worker writes.
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

impl Counters {
    /// The counters, with the switch count kept apart on the monitor's line.
    pub(crate) fn snapshot(&self, switches: &AtomicU64) -> WorkerMetrics {
        WorkerMetrics {
            spawned: self.spawned.load(Relaxed),
            finished: self.finished.load(Relaxed),
            alive: self.alive.load(Relaxed),
            switches: switches.load(Relaxed),
            steals: self.steals.load(Relaxed),
            parks: self.parks.load(Relaxed),
            polls: self.polls.load(Relaxed),
            events: self.events.load(Relaxed),
            io_waits: self.io_waits.load(Relaxed),
            io_spurious: self.io_spurious.load(Relaxed),
        }
    }
}

impl RuntimeMetrics {
    /// Writes the snapshot in the Prometheus text exposition format (version 0.0.4), as a
    /// `/metrics` endpoint serves it: runtime-wide gauges, then per-worker series labelled
    /// `worker="N"`. Counters end in `_total`.
    ///
    /// It writes into any [`fmt::Write`](std::fmt::Write), so an endpoint can render into the
    /// buffer it sends.
    ///
    /// ```
    /// let rt = weft::Runtime::builder().workers(2).build()?;
    /// rt.block_on(|| weft::spawn(|| ()).join().unwrap());
    /// let mut text = String::new();
    /// rt.metrics().write_prometheus(&mut text).unwrap();
    /// assert!(text.contains("# TYPE weft_worker_switches_total counter\n"));
    /// assert!(text.contains("weft_worker_switches_total{worker=\"1\"} "));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// What `out` returns.
    pub fn write_prometheus(&self, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        let gauges: [(&str, &str, u64); 4] = [
            ("weft_coroutines_alive", "Coroutines spawned and not yet finished.", self.alive),
            (
                "weft_stacks_mapped",
                "Coroutine stacks mapped, in use or pooled.",
                self.stacks_mapped as u64,
            ),
            (
                "weft_stacks_in_use",
                "Coroutine stacks held by coroutines.",
                self.stacks_in_use as u64,
            ),
            ("weft_workers", "Worker threads.", self.workers.len() as u64),
        ];
        for (name, help, value) in gauges {
            writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}")?;
        }
        let name = "weft_coroutines_spawned_outside_total";
        writeln!(out, "# HELP {name} Coroutines spawned from threads outside the runtime.")?;
        writeln!(out, "# TYPE {name} counter\n{name} {}", self.spawned_outside)?;
        type Field = fn(&WorkerMetrics) -> u64;
        let per_worker: [(&str, &str, &str, Field); 10] = [
            (
                "weft_worker_coroutines_alive",
                "gauge",
                "Coroutines started on the worker and not finished.",
                |w| w.alive,
            ),
            (
                "weft_worker_spawned_total",
                "counter",
                "Coroutines spawned by coroutines on the worker.",
                |w| w.spawned,
            ),
            (
                "weft_worker_finished_total",
                "counter",
                "Coroutines that finished on the worker.",
                |w| w.finished,
            ),
            ("weft_worker_switches_total", "counter", "Coroutine resumes.", |w| w.switches),
            ("weft_worker_steals_total", "counter", "Coroutines stolen from other workers.", |w| {
                w.steals
            }),
            (
                "weft_worker_parks_total",
                "counter",
                "Times the worker slept for lack of work.",
                |w| w.parks,
            ),
            ("weft_worker_polls_total", "counter", "epoll_wait calls.", |w| w.polls),
            ("weft_worker_events_total", "counter", "Events epoll_wait returned.", |w| w.events),
            (
                "weft_worker_io_waits_total",
                "counter",
                "Coroutine parks waiting for fd readiness.",
                |w| w.io_waits,
            ),
            (
                "weft_worker_io_spurious_total",
                "counter",
                "Readiness wakes after which the call still blocked.",
                |w| w.io_spurious,
            ),
        ];
        for (name, kind, help, field) in per_worker {
            writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}")?;
            for (i, w) in self.workers.iter().enumerate() {
                writeln!(out, "{name}{{worker=\"{i}\"}} {}", field(w))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod prometheus_tests {
    use super::*;

    /// Every family has one HELP and one TYPE line before its samples, and every sample is
    /// `name{labels} value` with a metric name of `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[test]
    fn prometheus_text_is_well_formed() {
        let snapshot = RuntimeMetrics {
            workers: vec![
                WorkerMetrics { switches: 7, ..Default::default() },
                WorkerMetrics::default(),
            ],
            alive: 3,
            ..Default::default()
        };
        let mut text = String::new();
        snapshot.write_prometheus(&mut text).unwrap();
        let mut families = std::collections::HashMap::new();
        let mut current = "";
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                current = rest.split(' ').next().unwrap();
                assert!(families.insert(current, 0).is_none(), "{current} described twice");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert_eq!(name, current);
                assert!(kind == "counter" || kind == "gauge");
                assert_eq!(name.ends_with("_total"), kind == "counter", "{name}");
            } else {
                let (series, value) = line.rsplit_once(' ').unwrap();
                value.parse::<u64>().unwrap();
                let name = series.split('{').next().unwrap();
                assert_eq!(name, current, "{line}");
                assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'));
                *families.get_mut(name).unwrap() += 1;
            }
        }
        assert!(families.values().all(|&n| n > 0));
        assert!(text.contains("weft_worker_switches_total{worker=\"0\"} 7\n"));
        assert!(text.contains("weft_coroutines_alive 3\n"));
    }
}
