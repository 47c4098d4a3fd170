//! A counting semaphore on std's `Mutex` and `Condvar`: handler calls running, bytes of
//! request bodies held.

use std::sync::{Condvar, Mutex, PoisonError};

use super::lock;

/// Counts units of something bounded (handler calls running, bytes of bodies held) and
/// makes callers wait beyond the capacity.
pub(super) struct Semaphore {
    capacity: usize,
    available: Mutex<usize>,
    freed: Condvar,
}

/// Units taken from a [`Semaphore`], given back when dropped.
pub(super) struct Permit<'a> {
    semaphore: &'a Semaphore,
    units: usize,
}

impl Semaphore {
    pub(super) fn new(capacity: usize) -> Self {
        Semaphore {
            capacity,
            available: Mutex::new(capacity),
            freed: Condvar::new(),
        }
    }

    /// Waits until `units` are free and takes them; more than the capacity counts as
    /// all of it, so no request waits forever.
    pub(super) fn acquire(&self, units: usize) -> Permit<'_> {
        let units = units.min(self.capacity);
        let mut available = lock(&self.available);
        while *available < units {
            available = self
                .freed
                .wait(available)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *available -= units;
        Permit {
            semaphore: self,
            units,
        }
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.units == 0 {
            return;
        }
        *lock(&self.semaphore.available) += self.units;
        // Waiters may want different amounts: each checks whether its own fits now.
        self.semaphore.freed.notify_all();
    }
}
