//! The monitor thread: notices a worker that has not switched coroutines for
//! [`STALL_THRESHOLD`], says which coroutine holds it, and makes sure the work queued behind
//! it is not stranded.
//!
//! A coroutine that blocks its thread in a call weft cannot see (a std lock, a file read, a
//! long computation) keeps its worker from everything else queued there. The monitor logs a
//! warning naming the coroutine, once per stall, and for as long as the stall lasts wakes a
//! sleeping worker whenever unstarted coroutines wait (in the stalled worker's deque or the
//! global queue), so they are stolen and run elsewhere, and serves the stalled worker's epoll,
//! so fds that became ready wake their coroutines.

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
            // Every period of a stall: a sleeping worker should take what is stealable, and the
            // stalled worker's ready fds should still wake their coroutines (those homed on
            // other workers run there; in migration mode, any of them).
            if !remote.stealer.is_empty() || !shared.injector.is_empty() {
                shared.notify_stealable();
            }
            if remote.registered.load(Relaxed) > 0 {
                if let Ok(n) = remote.epoll.wait(&mut events, Some(Duration::ZERO)) {
                    crate::reactor::dispatch(&events[..n], crate::worker::WAKE_TOKEN);
                }
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
