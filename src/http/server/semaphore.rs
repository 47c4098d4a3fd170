//! A counting semaphore on std's `Mutex` and `Condvar`: handler calls running, bytes of
//! request bodies held.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::lock;

/// Counts units of something bounded (handler calls running, bytes of bodies held) and
/// makes callers wait beyond the capacity, until a deadline or until the waits are
/// stopped (the server's shutdown).
pub(super) struct Semaphore {
    capacity: usize,
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    available: usize,
    /// Set by [`Semaphore::stop_waits`]: nobody waits any more.
    stopped: bool,
}

/// Units taken from a [`Semaphore`], given back when dropped.
pub(super) struct Permit<'a> {
    semaphore: &'a Semaphore,
    units: usize,
}

/// Why [`Semaphore::acquire_until`] gave no permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoPermit {
    /// The deadline passed first.
    TimedOut,
    /// The waits were stopped ([`Semaphore::stop_waits`]).
    Stopped,
}

impl Semaphore {
    pub(super) fn new(capacity: usize) -> Self {
        Semaphore {
            capacity,
            state: Mutex::new(State {
                available: capacity,
                stopped: false,
            }),
            freed: Condvar::new(),
        }
    }

    /// How many units there are in all.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// An empty permit, to grow with [`Permit::absorb`].
    pub(super) fn none(&self) -> Permit<'_> {
        Permit {
            semaphore: self,
            units: 0,
        }
    }

    /// Takes `units` if that leaves at least `keep` free; never waits.
    pub(super) fn try_acquire_leaving(&self, units: usize, keep: usize) -> Option<Permit<'_>> {
        let mut state = self.lock();
        if state.available.checked_sub(units)? < keep {
            return None;
        }
        state.available -= units;
        Some(Permit {
            semaphore: self,
            units,
        })
    }

    /// Waits until `units` are free and takes them; more than the capacity counts as
    /// all of it, so no request waits forever for units that do not exist. Gives up at
    /// `deadline` (`None`: never), and at once, without waiting, once the waits are
    /// stopped: units that are free are still taken then.
    pub(super) fn acquire_until(
        &self,
        units: usize,
        deadline: Option<Instant>,
    ) -> Result<Permit<'_>, NoPermit> {
        let units = units.min(self.capacity);
        let mut state = self.lock();
        while state.available < units {
            if state.stopped {
                return Err(NoPermit::Stopped);
            }
            state = match deadline {
                None => self
                    .freed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(NoPermit::TimedOut);
                    }
                    self.freed
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        state.available -= units;
        Ok(Permit {
            semaphore: self,
            units,
        })
    }

    /// Ends every wait, now and later, with [`NoPermit::Stopped`]: the server is stopping,
    /// and a request that waits would only delay it.
    pub(super) fn stop_waits(&self) {
        self.lock().stopped = true;
        // Every waiter must see the flag, whatever it waits for.
        self.freed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Permit<'_> {
    /// How many units this permit holds.
    pub(super) fn units(&self) -> usize {
        self.units
    }

    /// Adds the units of `other`, a permit of the same semaphore, to this one.
    pub(super) fn absorb(&mut self, mut other: Permit<'_>) {
        debug_assert!(std::ptr::eq(self.semaphore, other.semaphore));
        self.units += std::mem::take(&mut other.units);
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.units == 0 {
            return;
        }
        self.semaphore.lock().available += self.units;
        // Waiters may want different amounts: each checks whether its own fits now.
        self.semaphore.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn a_wait_ends_at_its_deadline_or_when_the_waits_stop() {
        let semaphore = Arc::new(Semaphore::new(2));
        let held = semaphore.acquire_until(2, None).unwrap();

        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(
            semaphore.acquire_until(1, Some(soon)).err(),
            Some(NoPermit::TimedOut)
        );

        let waiter = {
            let semaphore = Arc::clone(&semaphore);
            thread::spawn(move || semaphore.acquire_until(1, None).map(|p| p.units()))
        };
        semaphore.stop_waits();
        assert_eq!(waiter.join().unwrap(), Err(NoPermit::Stopped));
        // Stopped: no wait, but what is free is still given.
        drop(held);
        assert_eq!(semaphore.acquire_until(2, None).unwrap().units(), 2);
    }

    #[test]
    fn try_acquire_leaving_keeps_the_units_asked_for_free() {
        let semaphore = Semaphore::new(10);
        let mut permit = semaphore.try_acquire_leaving(6, 4).unwrap();
        assert!(semaphore.try_acquire_leaving(1, 4).is_none());
        assert!(semaphore.try_acquire_leaving(11, 0).is_none());
        permit.absorb(semaphore.try_acquire_leaving(4, 0).unwrap());
        assert_eq!(permit.units(), 10);
        drop(permit);
        assert_eq!(semaphore.acquire_until(10, None).unwrap().units(), 10);
    }
}
