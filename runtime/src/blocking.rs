//! The bounded thread pool behind [`spawn_blocking`](crate::spawn_blocking).
//!
//! Threads are started on demand, up to the runtime's limit; beyond it jobs queue. A thread
//! that has had nothing to do for [`IDLE_TIMEOUT`] exits. Shutdown lets queued jobs run, then
//! joins every thread.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::context;
use crate::join::Job;
use crate::runtime::Shared;

/// How long an idle pool thread waits for a job before it exits.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
    shutdown: bool,
    handles: Vec<thread::JoinHandle<()>>,
}

/// A runtime's blocking pool.
pub(crate) struct BlockingPool {
    state: Mutex<PoolState>,
    work: Condvar,
    max_threads: usize,
}

impl BlockingPool {
    pub(crate) fn new(max_threads: usize) -> BlockingPool {
        BlockingPool { state: Mutex::new(PoolState::default()), work: Condvar::new(), max_threads }
    }

    /// Queues a job, starting a thread for it if none is idle and the limit allows. After
    /// shutdown the job runs on the calling thread, so its handle still completes.
    pub(crate) fn submit(&self, shared: &Arc<Shared>, job: Job) {
        let mut state = self.state.lock();
        if state.shutdown {
            drop(state);
            job();
            return;
        }
        state.queue.push_back(job);
        if state.idle > 0 {
            self.work.notify_one();
        }
        // An idle thread counts itself idle until it takes the lock again, so several quick
        // submits may all have notified the same one: start a thread whenever queued jobs
        // outnumber the idle threads.
        if state.queue.len() <= state.idle || state.threads >= self.max_threads {
            return;
        }
        let index = state.handles.len();
        let shared = shared.clone();
        let spawned = thread::Builder::new()
            .name(format!("weft-blocking-{index}"))
            .spawn(move || shared.blocking.run_thread(&shared));
        match spawned {
            Ok(handle) => {
                state.threads += 1;
                state.handles.retain(|h| !h.is_finished());
                state.handles.push(handle);
            }
            // With at least one thread running, the job waits for it; with none, run it here
            // rather than strand it.
            Err(e) if state.threads == 0 => {
                log::warn!("weft: cannot start a blocking thread ({e}); running the job inline");
                let job = state.queue.pop_back().expect("the job just queued");
                drop(state);
                job();
            }
            Err(e) => log::warn!("weft: cannot start another blocking thread: {e}"),
        }
    }

    fn run_thread(&self, shared: &Arc<Shared>) {
        context::set_blocking_runtime(Some(shared.clone()));
        let mut state = self.state.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                job();
                state = self.state.lock();
                continue;
            }
            if state.shutdown {
                break;
            }
            state.idle += 1;
            let timed_out = self.work.wait_for(&mut state, IDLE_TIMEOUT).timed_out();
            state.idle -= 1;
            if timed_out && state.queue.is_empty() && !state.shutdown {
                break;
            }
        }
        state.threads -= 1;
        drop(state);
        context::set_blocking_runtime(None);
    }

    /// Lets queued jobs finish, then joins every pool thread.
    pub(crate) fn shutdown(&self) {
        let handles = {
            let mut state = self.state.lock();
            state.shutdown = true;
            std::mem::take(&mut state.handles)
        };
        self.work.notify_all();
        for handle in handles {
            if handle.join().is_err() {
                log::error!("weft: a blocking pool thread panicked");
            }
        }
    }
}
