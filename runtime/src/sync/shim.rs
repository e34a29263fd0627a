//! The lock and atomics the primitives are built from: `parking_lot` and `std` normally, and
//! loom's under `--cfg loom`, so that the models in [`super::loom_models`] explore the same
//! code. loom's types have no `const fn new`, so constructors that are `const` in a normal
//! build are declared through [`maybe_const_fn!`].

#[cfg(not(loom))]
pub(crate) use parking_lot::{Mutex as Lock, MutexGuard as LockGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicUsize};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicUsize};

/// loom's mutex behind `parking_lot`'s interface (`lock` returns the guard itself).
#[cfg(loom)]
pub(crate) struct Lock<T>(loom::sync::Mutex<T>);

#[cfg(loom)]
pub(crate) type LockGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

#[cfg(loom)]
impl<T> Lock<T> {
    pub(crate) fn new(value: T) -> Lock<T> {
        Lock(loom::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> LockGuard<'_, T> {
        self.0.lock().unwrap()
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.0.get_mut().unwrap()
    }

    pub(crate) fn into_inner(self) -> T {
        self.0.into_inner().unwrap()
    }
}

/// Declares a function `const` except under loom.
macro_rules! maybe_const_fn {
    ($(#[$attr:meta])* $vis:vis fn $($rest:tt)*) => {
        #[cfg(not(loom))]
        $(#[$attr])* $vis const fn $($rest)*
        #[cfg(loom)]
        $(#[$attr])* $vis fn $($rest)*
    };
}
pub(crate) use maybe_const_fn;
