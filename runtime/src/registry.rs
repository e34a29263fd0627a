//! The runtime's registry of live tasks: how shutdown reaches a coroutine that nothing else
//! would ever wake, and how the monitor names a coroutine that holds a worker too long.
//!
//! Sharded by worker, so spawns on different workers take different locks; a task remembers
//! its key and removes itself when it finishes, from whichever worker that happens on.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::task::Task;

/// Keeps a value on its own cache line, so counters of different workers do not share one.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

#[derive(Default)]
struct Shard {
    slots: Vec<Option<Arc<Task>>>,
    free: Vec<usize>,
    live: usize,
}

const SHARD_BITS: u32 = 16;

/// The live tasks of one runtime. Each shard counts its own tasks under its lock, so spawns
/// on different workers share no counter.
pub(crate) struct Registry {
    shards: Box<[Padded<Mutex<Shard>>]>,
}

impl Registry {
    pub(crate) fn new(shards: usize) -> Registry {
        Registry {
            shards: (0..shards.clamp(1, 1 << SHARD_BITS))
                .map(|_| Padded(Mutex::new(Shard::default())))
                .collect(),
        }
    }

    /// Adds a task, into shard `hint` (the spawning worker).
    pub(crate) fn insert(&self, hint: usize, task: &Arc<Task>) {
        let shard_index = hint % self.shards.len();
        let mut shard = self.shards[shard_index].lock();
        let slot = match shard.free.pop() {
            Some(slot) => {
                shard.slots[slot] = Some(task.clone());
                slot
            }
            None => {
                shard.slots.push(Some(task.clone()));
                shard.slots.len() - 1
            }
        };
        shard.live += 1;
        drop(shard);
        task.registry_key.store((slot << SHARD_BITS) | shard_index, Relaxed);
    }

    /// Removes a finished task.
    pub(crate) fn remove(&self, task: &Task) {
        let key = task.registry_key.load(Relaxed);
        let (slot, shard_index) = (key >> SHARD_BITS, key & ((1 << SHARD_BITS) - 1));
        let mut shard = self.shards[shard_index].lock();
        let removed = shard.slots[slot].take();
        shard.free.push(slot);
        shard.live -= 1;
        drop(shard);
        debug_assert!(removed.is_some_and(|t| std::ptr::eq(&*t, task)));
    }

    /// Live tasks now (each shard as of the moment it is read).
    pub(crate) fn alive(&self) -> u64 {
        self.shards.iter().map(|s| s.lock().live as u64).sum()
    }

    /// Every live task, as of some moment during the call.
    pub(crate) fn snapshot(&self) -> Vec<Arc<Task>> {
        let mut all = Vec::new();
        for shard in self.shards.iter() {
            all.extend(shard.lock().slots.iter().flatten().cloned());
        }
        all
    }

    /// The live task with this id, if it sits at `key`.
    pub(crate) fn name_of(&self, key: usize, id: u64) -> Option<String> {
        let (slot, shard_index) = (key >> SHARD_BITS, key & ((1 << SHARD_BITS) - 1));
        let shard = self.shards.get(shard_index)?.lock();
        let task = shard.slots.get(slot)?.as_ref()?;
        (task.id.as_u64().get() == id).then(|| task.name_or_unnamed().to_owned())
    }
}
