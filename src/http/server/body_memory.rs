//! The memory request bodies hold at once, across connections
//! ([`max_body_memory`](super::ServerBuilder::max_body_memory)): charged as a body's
//! buffer grows, not at its declared length, and waited for no longer than the request's
//! read deadline.
//!
//! # Why a body can always finish
//!
//! Charging as bytes arrive means a body holds part of the budget while it asks for
//! more, and bodies that each hold part and all wait for more would wait for each other
//! until their deadlines: a wedge, broken only by 503s to every one of them. So a body
//! charges in two ways:
//!
//! - step by step, as its buffer grows, while that leaves at least one largest body
//!   ([`max_body_size`](super::ServerBuilder::max_body_size)) of the budget free;
//! - once a step does not fit, all it may still need at once (the rest of its
//!   `Content-Length`, or of the largest body when chunked), waiting for it if it must.
//!   After that it never waits again.
//!
//! Only step-by-step charges are held by bodies that wait, and those leave a largest
//! body free: when every body that holds memory is waiting, at least that much is free,
//! which is more than any of them needs, so one proceeds. The others wait for it to be
//! answered, each no longer than its read deadline (then 503, which the runtime
//! retries). A slow client holds what it has sent (and at most as much again, the
//! buffer's growth), not what it declared; only once the step-by-step part of the budget
//! is used up, by bytes that did arrive, does a body take its whole declared rest.
//!
//! Bodies that wait for their rest are admitted in arrival order, strictly: a large one
//! ahead holds back a small one behind it, and no step is taken past them (see the
//! `semaphore` module for why). That costs nothing above: while a body waits, less than
//! one largest body is free, so no step would fit anyway, and the head of the queue, which
//! needs at most one largest body, fits once the bodies that do not wait give back theirs.

use std::time::Instant;

use super::semaphore::{NoPermit, Permit, Semaphore};
use crate::http::codec::BodyBudget;
use crate::http::endpoint::Refusal;

/// The bytes of request bodies held at once, across connections.
pub(super) struct BodyMemory {
    bytes: Semaphore,
    /// The largest body (`max_body_size`): what step-by-step charges leave free.
    largest: usize,
}

impl BodyMemory {
    /// A budget of `budget` bytes for bodies of at most `largest` bytes each; never less
    /// than one largest body, so that every body that may be read can be.
    pub(super) fn new(budget: usize, largest: usize) -> Self {
        BodyMemory {
            bytes: Semaphore::new(budget.max(largest)),
            largest,
        }
    }

    /// What a body of at most `most` bytes (its `Content-Length`, or the largest body
    /// when chunked) charges as it is read; nothing until its buffer grows. A wait for
    /// room ends at `deadline`.
    pub(super) fn charge(&self, most: usize, deadline: Instant) -> Charge<'_> {
        Charge {
            memory: self,
            held: self.bytes.none(),
            most,
            deadline,
        }
    }

    /// Gives back the bytes of a charge taken apart by [`Charge::into_bytes`].
    pub(super) fn give_back(&self, bytes: usize) {
        self.bytes.give_back(bytes);
    }

    /// Ends every wait for room, now and later, with 503 (the server is stopping): a body
    /// that fits is still read, one that would wait is not.
    pub(super) fn stop_waits(&self) {
        self.bytes.stop_waits();
    }
}

/// What one body holds of the budget, given back when dropped (with the body).
pub(super) struct Charge<'a> {
    memory: &'a BodyMemory,
    held: Permit<'a>,
    most: usize,
    deadline: Instant,
}

impl Charge<'_> {
    /// The bytes held, no longer given back by a drop: for a body that outlives its
    /// connection thread's exchange (a queued batch), which gives them back with
    /// [`BodyMemory::give_back`].
    pub(super) fn into_bytes(self) -> usize {
        self.held.into_units()
    }
}

impl BodyBudget for Charge<'_> {
    fn grow_to(&mut self, bytes: usize) -> Result<(), Refusal> {
        let held = self.held.units();
        if bytes <= held {
            return Ok(());
        }
        let memory = self.memory;
        if let Some(step) = memory
            .bytes
            .try_acquire_leaving(bytes - held, memory.largest)
        {
            self.held.absorb(step);
            return Ok(());
        }
        // All it may still need, at once: it never waits again (see the module's docs).
        let rest = self.most.max(bytes) - held;
        match memory.bytes.acquire_until(rest, Some(self.deadline)) {
            Ok(rest) => {
                self.held.absorb(rest);
                Ok(())
            }
            Err(NoPermit::TimedOut) => Err(Refusal::NoBodyMemory {
                budget: memory.bytes.capacity(),
            }),
            Err(NoPermit::Stopped) => Err(Refusal::ShuttingDown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};
    use std::thread;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[test]
    fn a_slow_body_holds_what_it_grew_to_not_what_it_declared() {
        let memory = BodyMemory::new(100, 40);
        let mut slow = memory.charge(40, soon());
        slow.grow_to(10).unwrap();

        // Five more bodies of 10 bytes fit beside it step by step: 60 of the 100 bytes,
        // which leaves one largest body free.
        let mut others: Vec<_> = (0..5).map(|_| memory.charge(10, soon())).collect();
        for other in &mut others {
            other.grow_to(10).unwrap();
        }
        assert_eq!(slow.held.units(), 10);
    }

    #[test]
    fn bodies_that_each_hold_part_of_the_budget_all_finish() {
        // Four bodies of 40 bytes under a budget of 100, growing 10 bytes at a time, in
        // lockstep: step by step they can take 60 at most, so some run out of steps
        // while holding part; one at a time takes its whole rest and finishes.
        let memory = Arc::new(BodyMemory::new(100, 40));
        let start = Arc::new(Barrier::new(4));
        let bodies: Vec<_> = (0..4)
            .map(|_| {
                let (memory, start) = (Arc::clone(&memory), Arc::clone(&start));
                thread::spawn(move || {
                    let mut charge = memory.charge(40, soon());
                    start.wait();
                    for size in [10, 20, 30, 40] {
                        charge.grow_to(size).map_err(|r| r.to_string())?;
                        thread::sleep(Duration::from_millis(5));
                    }
                    Ok::<usize, String>(charge.held.units())
                })
            })
            .collect();
        for body in bodies {
            assert_eq!(body.join().unwrap(), Ok(40));
        }
    }

    #[test]
    fn a_body_that_finds_no_room_by_its_deadline_is_a_503_naming_the_budget() {
        let memory = BodyMemory::new(100, 100);
        let mut first = memory.charge(100, soon());
        first.grow_to(100).unwrap();

        let mut late = memory.charge(10, Instant::now() + Duration::from_millis(20));
        let refusal = late.grow_to(10).unwrap_err();

        assert_eq!(refusal.status(), 503);
        assert!(refusal.to_string().contains("100 bytes"), "{refusal}");
        memory.stop_waits();
        let refusal = memory.charge(10, soon()).grow_to(10).unwrap_err();
        assert_eq!(refusal.status(), 503);
        assert!(matches!(refusal, Refusal::ShuttingDown), "{refusal}");
        drop(first);
        // Stopped, but there is room: the body is read.
        memory.charge(10, soon()).grow_to(10).unwrap();
    }
}
