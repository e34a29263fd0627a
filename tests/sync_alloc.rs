//! The uncontended paths of `weft::sync` do not allocate: lock and unlock, send and receive
//! with the other side not waiting, a notify with no waiter, a completed `Once`.
//!
//! A counting global allocator counts the allocations made *by the calling thread* (a
//! `const` thread-local, so counting itself never allocates). Each case warms up first (a
//! channel's buffer grows to its working size once), then runs a loop and asserts that the
//! count did not move. Cases run on a plain thread and in a coroutine on a one-worker runtime,
//! where nothing else runs on that worker while the loop does.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use weft::sync::{mpmc, mpsc, Condvar, Mutex, Once, OnceLock, RwLock, Semaphore};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the thread-local is a
// `const`-initialised `Cell` without a destructor, so touching it never allocates or recurses.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The allocations `body` makes on the calling thread.
fn allocations(body: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    body();
    ALLOCATIONS.with(Cell::get) - before
}

const ROUNDS: usize = 1_000;

fn uncontended_paths_do_not_allocate() {
    assert_eq!(allocations(|| drop(std::hint::black_box(Box::new(1u8)))), 1, "the counter counts");
    let m = Mutex::new(0u64);
    let rw = RwLock::new(0u64);
    let sem = Semaphore::new(1);
    let cv = Condvar::new();
    let once = Once::new();
    once.call_once(|| {});
    let cell = OnceLock::new();
    cell.get_or_init(|| 1u64);
    let (tx, rx) = mpsc::channel::<u64>();
    let (stx, srx) = mpsc::sync_channel::<u64>(1);
    let (mtx, mrx) = mpmc::channel::<u64>();
    // Warm-up: each channel's buffer reaches its working size.
    for i in 0..4 {
        tx.send(i).unwrap();
        rx.recv().unwrap();
        stx.send(i).unwrap();
        srx.recv().unwrap();
        mtx.send(i).unwrap();
        mrx.recv().unwrap();
    }
    let cases: [(&str, &dyn Fn()); 9] = [
        ("Mutex lock/unlock", &|| *m.lock().unwrap() += 1),
        ("RwLock read then write", &|| {
            let r = *rw.read().unwrap();
            *rw.write().unwrap() = r + 1;
        }),
        ("Semaphore acquire/release", &|| drop(sem.acquire())),
        ("Condvar notify with no waiter", &|| {
            cv.notify_one();
            cv.notify_all();
        }),
        ("completed Once and OnceLock", &|| {
            once.call_once(|| unreachable!());
            assert_eq!(cell.get(), Some(&1));
        }),
        ("mpsc send/recv", &|| {
            tx.send(1).unwrap();
            rx.recv().unwrap();
        }),
        ("mpsc try_recv and recv_timeout with a message waiting", &|| {
            tx.send(1).unwrap();
            tx.send(2).unwrap();
            rx.try_recv().unwrap();
            rx.recv_timeout(Duration::from_secs(1)).unwrap();
        }),
        ("sync_channel(1) send/recv", &|| {
            stx.send(1).unwrap();
            srx.recv().unwrap();
        }),
        ("mpmc send/recv", &|| {
            mtx.send(1).unwrap();
            mrx.recv().unwrap();
        }),
    ];
    for (name, case) in cases {
        let n = allocations(|| {
            for _ in 0..ROUNDS {
                case();
            }
        });
        assert_eq!(n, 0, "{name}: {n} allocations in {ROUNDS} rounds");
    }
}

#[test]
fn uncontended_paths_do_not_allocate_on_a_thread() {
    let _wd = support::watchdog(
        "uncontended_paths_do_not_allocate_on_a_thread",
        support::budget(Duration::from_secs(60)),
    );
    uncontended_paths_do_not_allocate();
}

#[test]
fn uncontended_paths_do_not_allocate_in_a_coroutine() {
    let _wd = support::watchdog(
        "uncontended_paths_do_not_allocate_in_a_coroutine",
        support::budget(Duration::from_secs(60)),
    );
    let rt = support::runtime(1, support::Mode::Pinned);
    rt.block_on(uncontended_paths_do_not_allocate);
}
