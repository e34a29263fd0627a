//! The monitor thread: notices a worker that has not switched coroutines for
//! [`STALL_THRESHOLD`], says which coroutine holds it, and makes sure the work queued behind
//! it is not stranded.
//!
//! A coroutine that blocks its thread in a call weft cannot see (a std lock, a file read, a
//! long computation) keeps its worker from everything else queued there. The monitor logs a
//! warning naming the coroutine, once per stall, and for as long as the stall lasts wakes a
//! sleeping worker whenever unstarted coroutines wait (in the stalled worker's deque or the
//! global queue), so they are stolen and run elsewhere.
//!
//! It also serves the epoll of a worker that is busy but has not looked at it for
//! [`STALL_THRESHOLD`] (a stall, or coroutines that run long slices), so fds that became ready
//! wake their coroutines.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::runtime::Shared;

/// A worker that has not switched for this long is stalled.
const STALL_THRESHOLD: Duration = Duration::from_millis(10);
/// How often the monitor looks: half the threshold, so a stall is seen within 1.5× of it.
const PERIOD: Duration = Duration::from_millis(5);

#[derive(Clone, Copy)]
struct Seen {
    switches: u64,
    coroutine: u64,
    since: Instant,
    reported: bool,
}

pub(crate) fn run(shared: &Shared) {
    let now = Instant::now();
    let mut seen =
        vec![Seen { switches: 0, coroutine: 0, since: now, reported: false }; shared.remotes.len()];
    let mut events = vec![crate::sys::Event { events: 0, u64: 0 }; 64];
    // Per worker: its `polls` counter when last seen changing (or idle), and when.
    let mut polled = vec![(0u64, now); shared.remotes.len()];
    loop {
        {
            let mut stop = shared.monitor_stop.0.lock();
            if !*stop {
                shared.monitor_stop.1.wait_for(&mut stop, PERIOD);
            }
            if *stop {
                return;
            }
        }
        let now = Instant::now();
        for (remote, polled) in shared.remotes.iter().zip(polled.iter_mut()) {
            // A busy worker looks at its epoll every few dozen switches; one whose coroutines
            // run long slices, or that is stalled, may not for a long time. Its ready fds
            // should still wake their coroutines (those homed on other workers run there; in
            // migration mode, any of them), so the monitor takes its events.
            let polls = remote.counters.polls.load(Relaxed);
            let busy = remote.current_id.load(Relaxed) != 0;
            if polls != polled.0 || !busy {
                *polled = (polls, now);
            } else if now - polled.1 >= STALL_THRESHOLD && remote.registered.load(Relaxed) > 0 {
                remote.serve_epoll_from_outside(&mut events);
            }
        }
        for (index, (remote, seen)) in shared.remotes.iter().zip(seen.iter_mut()).enumerate() {
            let switches = remote.switches.load(Relaxed);
            let coroutine = remote.current_id.load(Relaxed);
            if coroutine == 0 || switches != seen.switches || coroutine != seen.coroutine {
                *seen = Seen { switches, coroutine, since: now, reported: false };
                continue;
            }
            let stalled = now - seen.since;
            if stalled < STALL_THRESHOLD {
                continue;
            }
            // Every period of a stall: a sleeping worker should take what is stealable.
            if !remote.stealer.is_empty() || !shared.injector.is_empty() {
                shared.notify_stealable();
            }
            if seen.reported {
                continue;
            }
            seen.reported = true;
            let key = remote.current_key.load(Relaxed);
            let name =
                shared.registry.name_of(key, coroutine).unwrap_or_else(|| "<finished>".into());
            log::warn!(
                "weft: worker {index} has run coroutine '{name}' (id {coroutine}) for {} ms without \
                 switching; calls that block the thread belong in weft::spawn_blocking",
                stalled.as_millis()
            );
        }
    }
}
