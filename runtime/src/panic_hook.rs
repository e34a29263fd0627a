//! Runs the panic hook on the worker's own stack, not the coroutine's.
//!
//! The default hook formats the message and, with `RUST_BACKTRACE` set, captures and
//! symbolises a backtrace: tens of kilobytes of stack, more than a 16 KiB coroutine has. weft
//! wraps whatever hook is installed when the first runtime starts: on a coroutine, the wrapped
//! hook runs through corosensei's `on_parent_stack`, below the worker's frames on the worker
//! thread's stack (which is large); everywhere else it runs as before. A hook set after the
//! runtime started replaces this wrapper.

use std::panic::{self, PanicHookInfo};

use crate::context;

/// Carries a reference across `on_parent_stack`, which asks for `Send` to keep the yielder
/// from escaping to another thread. The parent stack belongs to the same thread.
struct SameThread<T>(T);

// SAFETY: `on_parent_stack` runs its closure on the calling thread, only on another stack, so
// nothing carried in it is ever used by a different thread.
unsafe impl<T> Send for SameThread<T> {}

impl<T> SameThread<T> {
    /// Taking it by value makes a closure capture the whole wrapper, not its field.
    fn into_inner(self) -> T {
        self.0
    }
}

pub(crate) fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            let task = context::current_task_ptr();
            // SAFETY: a non-null current task is the running coroutine, alive while it runs.
            match unsafe { task.as_ref() } {
                None => previous(info),
                Some(task) => {
                    // SAFETY: we are that task's coroutine, running, so its yielder is live.
                    let yielder = unsafe { task.yielder() };
                    let carried = SameThread((&previous, info));
                    // On the worker's stack the hook is not in the coroutine: a weft call in it
                    // must act as on a plain thread, not suspend a coroutine from the wrong
                    // stack.
                    context::set_current_task(std::ptr::null());
                    yielder.on_parent_stack(move || {
                        let (hook, info) = carried.into_inner();
                        hook(info);
                    });
                    context::set_current_task(task);
                }
            }
        }));
    });
}
