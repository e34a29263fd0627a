//! Coroutine stacks: carved from slabs, guarded without new mappings, and pooled per worker.
//!
//! ```text
//!   one slab: a single mapping (MAP_NORESERVE | MAP_STACK) of `count` slots
//!
//!   low addresses                                                        high addresses
//!   +-------+------------------+-------+------------------+-------+------------------+
//!   | guard |  usable stack 0  | guard |  usable stack 1  | guard |  usable stack 2  | ...
//!   +-------+------------------+-------+------------------+-------+------------------+
//!   ^limit                     ^base (stack 0 grows down from here towards its guard)
//! ```
//!
//! Guards are installed with `MADV_GUARD_INSTALL`, which marks page-table entries and makes no
//! new mapping, so a process holds as many stacks as it has address space for: 100k coroutines
//! cost about 2,000 mappings, well under the default `vm.max_map_count` of 65530. On kernels
//! before 6.13 the guard is an `mprotect(PROT_NONE)` range, which splits the mapping: two
//! mappings per stack, about 32k stacks in all. Running into that limit is reported as an
//! `io::Error` that names `vm.max_map_count`.
//!
//! Each worker keeps its own [`StackPool`] of free stacks, so a pooled spawn takes no lock and
//! no syscall. A stack is reused as it is, touched pages and all, unless it went deep
//! ([`PooledStack::note_depth`]): then its pages are given back with `MADV_DONTNEED` before
//! reuse, which costs microseconds. After a burst, a pool may hold many free stacks with
//! resident pages; when its worker goes idle, it trims all but [`HOT_LIMIT`] of them
//! ([`StackPool::trim_idle`]), oldest first. Trimming on every return instead would put a
//! syscall and a page fault on each spawn of a burst: measured here, it made spawn+join of a
//! 10k batch ten times slower.

use std::io;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::Relaxed};

use corosensei::stack::{Stack, StackPointer};
use parking_lot::Mutex;

use crate::registry::Padded;
use crate::sys;

/// The smallest stack a coroutine may ask for.
pub(crate) const MIN_STACK_SIZE: usize = 16 * 1024;
/// The stack size when nobody says otherwise.
pub(crate) const DEFAULT_STACK_SIZE: usize = 64 * 1024;
/// Guard bytes below each stack: Rust probes every page of a large frame, so one page would
/// do; four cost only address space and catch C frames up to 16 KiB as well.
const GUARD_SIZE: usize = 16 * 1024;
/// Address space per slab. Big enough that mappings stay few, small enough that a runtime with
/// a handful of coroutines does not reserve much.
const SLAB_BYTES: usize = 4 * 1024 * 1024;
/// Free stacks a pool keeps with their pages resident once its worker is idle, so a burst of
/// 100k coroutines does not pin their memory after they finish.
const HOT_LIMIT: usize = 256;
/// Free stacks of one size a worker's pool holds before it moves the oldest
/// [`SPILL_BATCH`] of them to the shared pool.
const SPILL_LIMIT: usize = 1024;
/// Stacks moved between a worker's pool and the shared pool at once.
const SPILL_BATCH: usize = 512;
/// Stacks trimmed per idle pass at most, so a worker that goes idle after a huge burst is not
/// busy with `madvise` for long when new work comes.
const TRIM_BATCH: usize = 4096;
/// A stack whose deepest observed use lies further than this below its base is trimmed before
/// reuse: a shallow one keeps its pages, which is the common case and costs nothing.
const TRIM_DEPTH: usize = 16 * 1024;

/// Rounds a requested stack size to the pool's size class: at least [`MIN_STACK_SIZE`], a power
/// of two, so a few classes serve every request.
pub(crate) fn size_class(requested: usize) -> usize {
    requested.max(MIN_STACK_SIZE).checked_next_power_of_two().unwrap_or(usize::MAX / 2 + 1)
}

/// One coroutine stack inside a slab. Plain data: the slab owns the memory.
#[derive(Debug)]
pub(crate) struct PooledStack {
    /// Lowest address, the start of the guard.
    limit: usize,
    /// Highest address, where the stack starts.
    base: usize,
    /// Lowest stack address seen in use, for the trim decision.
    low_water: usize,
}

impl PooledStack {
    /// Usable bytes between the guard and the base.
    pub(crate) fn size(&self) -> usize {
        self.base - self.limit - GUARD_SIZE
    }

    /// The guard's address range.
    pub(crate) fn guard(&self) -> (usize, usize) {
        (self.limit, self.limit + GUARD_SIZE)
    }

    /// Records that the stack was in use down to `addr`.
    pub(crate) fn note_depth(&mut self, addr: usize) {
        self.low_water = self.low_water.min(addr);
    }

    fn trim(&mut self) {
        let start = self.limit + GUARD_SIZE;
        // SAFETY: the usable range belongs to this stack, which no coroutine runs on now.
        unsafe { sys::discard(start as *mut u8, self.base - start) };
        self.low_water = self.base;
    }
}

// SAFETY: base and limit describe a live, 16-byte-aligned range of one slab (page-aligned by
// construction), with the guard included below the usable part, as corosensei requires. The
// slab outlives every stack carved from it: slabs are unmapped only when the runtime that owns
// them is dropped, after every coroutine has finished and returned its stack.
unsafe impl Stack for PooledStack {
    fn base(&self) -> StackPointer {
        StackPointer::new(self.base).expect("stack base is not null")
    }

    fn limit(&self) -> StackPointer {
        StackPointer::new(self.limit).expect("stack limit is not null")
    }
}

/// Every slab a runtime mapped, for unmapping when it drops, and the stack counters.
///
/// Stacks in use are counted per pool, each count on its own cache line and written only by
/// its pool's owner: a stack taken on one worker and returned on another would make one shared
/// counter bounce between cores on every spawn. A pool's count may go negative; the sum is
/// right.
#[derive(Debug)]
pub(crate) struct Slabs {
    regions: Mutex<Vec<(usize, usize)>>,
    mapped: AtomicUsize,
    taken: Box<[Padded<AtomicIsize>]>,
}

impl Slabs {
    /// Slabs for `pools` stack pools, numbered from 0.
    pub(crate) fn new(pools: usize) -> Slabs {
        Slabs {
            regions: Mutex::new(Vec::new()),
            mapped: AtomicUsize::new(0),
            taken: (0..pools).map(|_| Padded::default()).collect(),
        }
    }

    fn count(&self, pool: usize, delta: isize) {
        let slot = &self.taken[pool];
        slot.store(slot.load(Relaxed) + delta, Relaxed);
    }

    /// Stacks carved so far (in use plus pooled).
    pub(crate) fn mapped(&self) -> usize {
        self.mapped.load(Relaxed)
    }

    /// Stacks held by coroutines now.
    pub(crate) fn in_use(&self) -> usize {
        self.taken.iter().map(|t| t.load(Relaxed)).sum::<isize>().max(0) as usize
    }

    /// Maps a slab of stacks of `size` usable bytes and carves it into `out`.
    fn map_slab(&self, size: usize, out: &mut Vec<PooledStack>) -> io::Result<()> {
        let stride = size + GUARD_SIZE;
        let count = (SLAB_BYTES / stride).clamp(1, 64);
        let len = stride * count;
        let kind = sys::guard_kind();
        let base = sys::map_stack_region(len).map_err(map_count_error)?;
        for i in 0..count {
            // SAFETY: the guard range is the start of slot i of the slab just mapped.
            let guarded = unsafe { sys::install_guard(base.add(i * stride), GUARD_SIZE, kind) };
            if let Err(e) = guarded {
                // SAFETY: no stack of this slab was handed out yet.
                unsafe { sys::unmap(base, len) };
                return Err(map_count_error(e));
            }
        }
        self.regions.lock().push((base as usize, len));
        self.mapped.fetch_add(count, Relaxed);
        let base = base as usize;
        out.extend((0..count).rev().map(|i| {
            let limit = base + i * stride;
            PooledStack { limit, base: limit + stride, low_water: limit + stride }
        }));
        Ok(())
    }
}

impl Slabs {
    /// Unmaps every slab, once the runtime's coroutines are all gone. Stacks still held by a
    /// pool become dangling descriptors, so this runs only after the workers (and their pools)
    /// have ended; the outside pool is emptied here. If a stack is somehow still in use, the
    /// memory is left mapped rather than pulled from under it.
    pub(crate) fn release(&self, outside: &mut StackPool) {
        outside.classes.clear();
        if self.in_use() != 0 {
            log::error!(
                "weft: {} coroutine stacks still in use at shutdown; not unmapping",
                self.in_use()
            );
            return;
        }
        let regions = std::mem::take(&mut *self.regions.lock());
        for (base, len) in regions {
            // SAFETY: no coroutine holds a stack (in_use is 0) and the pools that held free
            // ones are gone, so nothing refers to this memory any more.
            unsafe { sys::unmap(base as *mut u8, len) };
        }
        self.mapped.store(0, Relaxed);
    }
}

impl Drop for Slabs {
    fn drop(&mut self) {
        self.release(&mut StackPool::new(0));
    }
}

fn map_count_error(e: io::Error) -> io::Error {
    let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    let guard = match sys::guard_kind() {
        sys::GuardKind::Madvise => "one mapping per slab of stacks",
        sys::GuardKind::Mprotect => {
            "two mappings per stack, as this kernel lacks MADV_GUARD_INSTALL"
        }
    };
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!(
            "cannot map a coroutine stack ({e}); stacks cost {guard}, and the process may hold \
             at most vm.max_map_count = {limit} mappings"
        ),
    )
}

/// Free stacks, grouped by size class. One per worker, plus one shared pool behind a lock for
/// spawns from threads outside the runtime.
#[derive(Debug)]
pub(crate) struct StackPool {
    classes: Vec<Class>,
    /// This pool's slot in [`Slabs`]' counts.
    slot: usize,
}

/// The free stacks of one size, used as a stack (LIFO): the most recently returned, whose
/// pages are most likely resident and cached, go out first. `free[..cold]` are trimmed.
#[derive(Debug)]
struct Class {
    size: usize,
    free: Vec<PooledStack>,
    cold: usize,
}

impl StackPool {
    /// An empty pool counting its stacks in slot `slot` of the runtime's [`Slabs`]. Only
    /// one thread at a time uses a pool (a worker, or whoever holds the outside pool's lock).
    pub(crate) fn new(slot: usize) -> StackPool {
        StackPool { classes: Vec::new(), slot }
    }

    /// A stack of at least `size` usable bytes (already a size class).
    pub(crate) fn get(&mut self, slabs: &Slabs, size: usize) -> io::Result<PooledStack> {
        let class = self.class(size);
        if class.free.is_empty() {
            slabs.map_slab(size, &mut class.free)?;
            class.cold = class.free.len();
        }
        let mut stack = class.free.pop().expect("a fresh slab has stacks");
        class.cold = class.cold.min(class.free.len());
        if stack.base - stack.low_water > TRIM_DEPTH {
            stack.trim();
        }
        slabs.count(self.slot, 1);
        Ok(stack)
    }

    /// A stack for a worker: from its own pool, else a batch from the shared pool, else a new
    /// slab.
    pub(crate) fn get_or_refill(
        &mut self,
        slabs: &Slabs,
        size: usize,
        shared: &Mutex<StackPool>,
    ) -> io::Result<PooledStack> {
        if self.class(size).free.is_empty() {
            let mut shared = shared.lock();
            let from = shared.class(size);
            let take = from.free.len().min(SPILL_BATCH);
            let at = from.free.len() - take;
            let batch: Vec<_> = from.free.drain(at..).collect();
            from.cold = from.cold.min(at);
            drop(shared);
            self.class(size).free.extend(batch);
        }
        self.get(slabs, size)
    }

    /// Returns a stack no coroutine runs on any more. Past [`SPILL_LIMIT`] free stacks of its
    /// size, the oldest [`SPILL_BATCH`] move to `shared`, so pools that mostly spawn can take
    /// them back.
    pub(crate) fn put(
        &mut self,
        slabs: &Slabs,
        stack: PooledStack,
        shared: Option<&Mutex<StackPool>>,
    ) {
        slabs.count(self.slot, -1);
        let class = self.class(stack.size());
        class.free.push(stack);
        let Some(shared) = shared else { return };
        if class.free.len() <= SPILL_LIMIT {
            return;
        }
        let size = class.size;
        let spilled: Vec<_> = class.free.drain(..SPILL_BATCH).collect();
        class.cold = class.cold.saturating_sub(SPILL_BATCH);
        shared.lock().class(size).free.extend(spilled);
    }

    /// Trims free stacks beyond [`HOT_LIMIT`] per class, oldest first, at most [`TRIM_BATCH`]
    /// per call. Returns how many it trimmed. Called by an idle worker.
    pub(crate) fn trim_idle(&mut self) -> usize {
        let mut budget = TRIM_BATCH;
        for class in &mut self.classes {
            let keep_from = class.free.len().saturating_sub(HOT_LIMIT);
            let end = keep_from.min(class.cold + budget);
            for stack in &mut class.free[class.cold..end.max(class.cold)] {
                stack.trim();
            }
            let trimmed = end.saturating_sub(class.cold);
            class.cold = class.cold.max(end);
            budget -= trimmed;
        }
        TRIM_BATCH - budget
    }

    fn class(&mut self, size: usize) -> &mut Class {
        let at = match self.classes.iter().position(|c| c.size == size) {
            Some(at) => at,
            None => {
                self.classes.push(Class { size, free: Vec::new(), cold: 0 });
                self.classes.len() - 1
            }
        };
        &mut self.classes[at]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_round_up_to_powers_of_two() {
        assert_eq!(size_class(0), MIN_STACK_SIZE);
        assert_eq!(size_class(64 * 1024), 64 * 1024);
        assert_eq!(size_class(64 * 1024 + 1), 128 * 1024);
        assert_eq!(size_class(100_000), 128 * 1024);
    }

    #[test]
    fn pool_reuses_and_counts() {
        let slabs = Slabs::new(1);
        let mut pool = StackPool::new(0);
        let a = pool.get(&slabs, DEFAULT_STACK_SIZE).unwrap();
        assert_eq!(a.size(), DEFAULT_STACK_SIZE);
        assert_eq!(a.base % 16, 0);
        let mapped = slabs.mapped();
        assert!(mapped >= 1);
        assert_eq!(slabs.in_use(), 1);
        let base = a.base;
        pool.put(&slabs, a, None);
        assert_eq!(slabs.in_use(), 0);
        let b = pool.get(&slabs, DEFAULT_STACK_SIZE).unwrap();
        assert_eq!(b.base, base, "the last stack returned is reused first");
        assert_eq!(slabs.mapped(), mapped);
        pool.put(&slabs, b, None);
    }

    #[test]
    fn idle_trim_keeps_the_hot_limit() {
        let slabs = Slabs::new(1);
        let mut pool = StackPool::new(0);
        let stacks: Vec<_> =
            (0..HOT_LIMIT + 100).map(|_| pool.get(&slabs, MIN_STACK_SIZE).unwrap()).collect();
        for s in stacks {
            pool.put(&slabs, s, None);
        }
        // Of the stacks used and returned, all but HOT_LIMIT are trimmed; never-used ones from
        // the last slab need no trimming.
        assert_eq!(pool.trim_idle(), 100);
        assert_eq!(pool.classes[0].free.len() - pool.classes[0].cold, HOT_LIMIT);
        assert_eq!(pool.trim_idle(), 0, "already trimmed");
        let _ = pool.get(&slabs, MIN_STACK_SIZE).unwrap();
        assert_eq!(pool.trim_idle(), 0, "a pop from the hot end trims nothing more");
    }

    #[test]
    fn pools_spill_to_and_refill_from_the_shared_pool() {
        let slabs = Slabs::new(3);
        let shared = Mutex::new(StackPool::new(2));
        let (mut spawner, mut finisher) = (StackPool::new(0), StackPool::new(1));
        // Stacks taken on one worker and returned on another, over and over, as when an
        // acceptor spawns and others steal: the number mapped stays bounded.
        for _ in 0..8 {
            let taken: Vec<_> = (0..SPILL_LIMIT)
                .map(|_| spawner.get_or_refill(&slabs, MIN_STACK_SIZE, &shared).unwrap())
                .collect();
            for s in taken {
                finisher.put(&slabs, s, Some(&shared));
            }
        }
        assert_eq!(slabs.in_use(), 0);
        assert!(slabs.mapped() <= 3 * SPILL_LIMIT, "{} stacks mapped", slabs.mapped());
    }

    #[test]
    fn stack_memory_is_writable_down_to_the_guard() {
        let slabs = Slabs::new(1);
        let mut pool = StackPool::new(0);
        let s = pool.get(&slabs, MIN_STACK_SIZE).unwrap();
        let (_, guard_end) = s.guard();
        // SAFETY: both bytes are inside the usable range of a stack nobody runs on.
        unsafe {
            *((s.base - 1) as *mut u8) = 1;
            *(guard_end as *mut u8) = 1;
        }
        pool.put(&slabs, s, None);
    }
}
