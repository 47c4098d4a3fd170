//! A counting semaphore that admits its waiters in arrival order and wakes only those it
//! admits: handler calls running ([`workers`](super::ServerBuilder::workers)), bytes of
//! request bodies held ([`max_body_memory`](super::ServerBuilder::max_body_memory)).
//!
//! # How it admits
//!
//! The units that are free and a queue of waiters, in arrival order, live under one
//! `Mutex`. A caller takes units at once when nobody waits and enough are free; otherwise
//! it joins the queue's tail and parks its thread. A release does not leave freed units for
//! the waiters to race for: it hands them to the queue's head, and to those behind it while
//! they fit, marks each granted and unparks exactly those threads. A waiter wakes with its
//! units already taken and never touches the lock again; nobody else is woken.
//!
//! So, with nobody waiting, a take and a release are an uncontended lock and unlock, which
//! on Linux make no system call (std's `Mutex` is a futex that calls the kernel only under
//! contention); and with waiters, each release makes one wake-up system call per waiter it
//! admits. A `Condvar` would do worse at both: std's `notify_one` and `notify_all` make a
//! system call even when nobody waits, and waiters of different sizes on one condvar must
//! all be woken (`notify_all`) for each to see whether it fits now, while only one of them
//! can go on: with many waiters, most of the server's CPU went into those wake-ups
//! (BENCHMARKS.md, "Worker permits").
//!
//! # Units of different sizes: strictly first come, first served
//!
//! The body budget's waiters ask for different amounts. The queue is strict: a waiter
//! that does not fit yet holds back those behind it, even smaller ones that would fit,
//! and units asked for without waiting ([`Semaphore::try_acquire_leaving`]) are refused
//! while anyone waits. The other choice, letting a small waiter pass a large one, lets a
//! stream of small bodies keep a large one waiting until its deadline, every time the
//! runtime retries it. Strict order starves nobody: the head waits only for units that are
//! held by callers that are not waiting (bodies being read in full, batches running),
//! which give them back, and every body's wait ends at its read deadline anyway. It
//! cannot wedge the budget either (see `body_memory`: when every holder waits, at least
//! one largest body is free, so the head fits).
//!
//! A waiter that leaves the queue, at its deadline or at [`Semaphore::stop_waits`], was
//! granted nothing (a waiter granted units before it could leave takes them and
//! succeeds), so it has nothing to pass on; but if it was the head, those behind it may
//! fit now, and its leaving admits them as a release would.

use std::collections::VecDeque;
use std::mem;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::Instant;

use super::lock;

/// Counts units of something bounded (handler calls running, bytes of bodies held) and
/// makes callers wait beyond the capacity, in arrival order, until a deadline or until the
/// waits are stopped (the server's shutdown).
pub(super) struct Semaphore {
    capacity: usize,
    state: Mutex<State>,
    /// Waiters unparked, for the tests that count wake-ups.
    #[cfg(test)]
    woken: std::sync::atomic::AtomicUsize,
}

struct State {
    available: usize,
    /// Those waiting, in arrival order; only the head may be admitted next.
    queue: VecDeque<Queued>,
    /// Set by [`Semaphore::stop_waits`]: nobody waits any more.
    stopped: bool,
}

/// A caller waiting in [`Semaphore::acquire_until`], and how many units it waits for.
struct Queued {
    units: usize,
    waiter: Arc<Waiter>,
}

/// A thread that waits: one per thread, made at its first wait and used for each later
/// one (a thread waits for one thing at a time), so that a wait allocates nothing.
struct Waiter {
    /// Unparked when its wait ends.
    thread: Thread,
    /// [`WAITING`], [`GRANTED`] or [`STOPPED`]: written under the lock of the semaphore
    /// the thread waits on, read by the thread without it. Once it is `GRANTED` or
    /// `STOPPED`, nothing writes it until the thread waits again.
    outcome: AtomicU8,
}

thread_local! {
    static WAITER: Arc<Waiter> = Arc::new(Waiter {
        thread: thread::current(),
        outcome: AtomicU8::new(WAITING),
    });
}

/// The waiter is in the queue.
const WAITING: u8 = 0;
/// Its units were taken for it, and it left the queue: it succeeds.
const GRANTED: u8 = 1;
/// The waits were stopped, and it left the queue: it fails.
const STOPPED: u8 = 2;

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
                queue: VecDeque::new(),
                stopped: false,
            }),
            #[cfg(test)]
            woken: Default::default(),
        }
    }

    /// How many units there are in all.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// An empty permit, to grow with [`Permit::absorb`].
    pub(super) fn none(&self) -> Permit<'_> {
        self.permit(0)
    }

    /// Takes `units` if nobody waits and that leaves at least `keep` free; never waits.
    pub(super) fn try_acquire_leaving(&self, units: usize, keep: usize) -> Option<Permit<'_>> {
        let mut state = self.lock();
        // Waiters come first: units taken past them would make them wait longer.
        if !state.queue.is_empty() || state.available.checked_sub(units)? < keep {
            return None;
        }
        state.available -= units;
        Some(self.permit(units))
    }

    /// Waits until `units` are free and every earlier waiter has been admitted, and takes
    /// them; more than the capacity counts as all of it, so no request waits forever for
    /// units that do not exist. Gives up at `deadline` (`None`: never), and at once,
    /// without waiting, once the waits are stopped: units that are free, with nobody
    /// waiting before, are still taken then.
    pub(super) fn acquire_until(
        &self,
        units: usize,
        deadline: Option<Instant>,
    ) -> Result<Permit<'_>, NoPermit> {
        let units = units.min(self.capacity);
        let mut state = self.lock();
        if state.queue.is_empty() && state.available >= units {
            state.available -= units;
            return Ok(self.permit(units));
        }
        if state.stopped {
            return Err(NoPermit::Stopped);
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(NoPermit::TimedOut);
        }
        let waiter = WAITER.with(Arc::clone);
        // Relaxed: the lock orders it before any grant or stop of this wait.
        waiter.outcome.store(WAITING, Ordering::Relaxed);
        state.queue.push_back(Queued {
            units,
            waiter: Arc::clone(&waiter),
        });
        drop(state);

        loop {
            // Acquire: pairs with the release that granted the units.
            match waiter.outcome.load(Ordering::Acquire) {
                GRANTED => return Ok(self.permit(units)),
                STOPPED => return Err(NoPermit::Stopped),
                _ => {}
            }
            // An unpark that came before the park is not lost: the park returns at once.
            // A park may also return for no reason; the loop looks again.
            match deadline {
                None => thread::park(),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    thread::park_timeout(left);
                }
            }
        }
        self.leave(&waiter, units)
    }

    /// Ends every wait, now and later, with [`NoPermit::Stopped`]: the server is stopping,
    /// and a request that waits would only delay it. Waiters already granted their units
    /// keep them.
    pub(super) fn stop_waits(&self) {
        let mut state = self.lock();
        state.stopped = true;
        let queue = mem::take(&mut state.queue);
        for queued in &queue {
            queued.waiter.outcome.store(STOPPED, Ordering::Release);
        }
        drop(state);
        // Every waiter must run, to fail: the stop is the one wake-up of them all.
        for queued in &queue {
            self.wake(&queued.waiter);
        }
    }

    /// Gives back the units of a permit taken apart by [`Permit::into_units`].
    pub(super) fn give_back(&self, units: usize) {
        if units != 0 {
            self.release(units);
        }
    }

    /// Gives `units` back, and admits the waiters they let in.
    fn release(&self, units: usize) {
        let mut state = self.lock();
        state.available += units;
        if state.queue.is_empty() {
            // The common case: no system call, no one to wake.
            return;
        }
        let admitted = admit(&mut state);
        drop(state);
        self.wake_all(admitted);
    }

    /// The end of a wait that found neither a grant nor a stop by its deadline: leaves the
    /// queue, timed out, unless a grant or a stop came meanwhile.
    fn leave(&self, waiter: &Arc<Waiter>, units: usize) -> Result<Permit<'_>, NoPermit> {
        let mut state = self.lock();
        // The lock orders this with every grant and stop: what it reads is final.
        match waiter.outcome.load(Ordering::Acquire) {
            GRANTED => return Ok(self.permit(units)),
            STOPPED => return Err(NoPermit::Stopped),
            _ => {}
        }
        let was_head = state
            .queue
            .front()
            .is_some_and(|head| Arc::ptr_eq(&head.waiter, waiter));
        state
            .queue
            .retain(|queued| !Arc::ptr_eq(&queued.waiter, waiter));
        // Only the head holds back the others: those behind it may fit now.
        let admitted = if was_head {
            admit(&mut state)
        } else {
            Admitted::default()
        };
        drop(state);
        self.wake_all(admitted);
        Err(NoPermit::TimedOut)
    }

    fn wake_all(&self, admitted: Admitted) {
        if let Some(first) = admitted.first {
            self.wake(&first);
        }
        for waiter in &admitted.rest {
            self.wake(waiter);
        }
    }

    /// Unparks `waiter`'s thread, outside the lock, so that nobody waits for the lock
    /// while the wake-up's system call runs.
    fn wake(&self, waiter: &Waiter) {
        #[cfg(test)]
        self.woken.fetch_add(1, Ordering::Relaxed);
        waiter.thread.unpark();
    }

    fn permit(&self, units: usize) -> Permit<'_> {
        Permit {
            semaphore: self,
            units,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// The waiters admitted by one release: one, in the common case, without allocating.
#[derive(Default)]
struct Admitted {
    first: Option<Arc<Waiter>>,
    rest: Vec<Arc<Waiter>>,
}

/// Hands free units to the queue's head, and to the next ones while they fit, in order.
fn admit(state: &mut State) -> Admitted {
    let mut admitted = Admitted::default();
    while let Some(head) = state.queue.front() {
        if head.units > state.available {
            break;
        }
        state.available -= head.units;
        let head = state
            .queue
            .pop_front()
            .expect("the head just looked at")
            .waiter;
        // Release: the waiter's Acquire load sees the units taken for it.
        head.outcome.store(GRANTED, Ordering::Release);
        match admitted.first {
            None => admitted.first = Some(head),
            Some(_) => admitted.rest.push(head),
        }
    }
    admitted
}

impl Permit<'_> {
    /// The units, no longer given back by a drop: [`Semaphore::give_back`] them.
    pub(super) fn into_units(mut self) -> usize {
        mem::take(&mut self.units)
    }

    /// How many units this permit holds.
    pub(super) fn units(&self) -> usize {
        self.units
    }

    /// Adds the units of `other`, a permit of the same semaphore, to this one.
    pub(super) fn absorb(&mut self, mut other: Permit<'_>) {
        debug_assert!(std::ptr::eq(self.semaphore, other.semaphore));
        self.units += mem::take(&mut other.units);
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.units != 0 {
            self.semaphore.release(self.units);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;
    use std::time::Duration;

    impl Semaphore {
        /// How many callers wait.
        fn waiting(&self) -> usize {
            self.lock().queue.len()
        }

        fn available(&self) -> usize {
            self.lock().available
        }

        fn woken(&self) -> usize {
            self.woken.load(Ordering::Relaxed)
        }

        /// Spins until `n` callers wait, so that a test knows their arrival order.
        fn until_waiting(&self, n: usize) {
            let give_up = Instant::now() + Duration::from_secs(10);
            while self.waiting() != n {
                assert!(
                    Instant::now() < give_up,
                    "{} waiting, not {n}",
                    self.waiting()
                );
                thread::yield_now();
            }
        }
    }

    fn soon() -> Option<Instant> {
        Some(Instant::now() + Duration::from_secs(10))
    }

    #[test]
    fn a_wait_ends_at_its_deadline_or_when_the_waits_stop() {
        let semaphore = Arc::new(Semaphore::new(2));
        let held = semaphore.acquire_until(2, None).unwrap();

        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(
            semaphore.acquire_until(1, Some(soon)).err(),
            Some(NoPermit::TimedOut)
        );
        assert_eq!(semaphore.waiting(), 0, "a waiter that timed out left");

        let waiter = {
            let semaphore = Arc::clone(&semaphore);
            thread::spawn(move || semaphore.acquire_until(1, None).map(|p| p.units()))
        };
        semaphore.until_waiting(1);
        semaphore.stop_waits();
        assert_eq!(waiter.join().unwrap(), Err(NoPermit::Stopped));
        // Stopped: no wait, but what is free is still given.
        drop(held);
        assert_eq!(semaphore.acquire_until(2, None).unwrap().units(), 2);
        assert_eq!(
            semaphore.acquire_until(3, None).unwrap().units(),
            2,
            "more than the capacity counts as all of it"
        );
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

    #[test]
    fn with_nobody_waiting_a_take_and_a_release_wake_no_one() {
        let semaphore = Semaphore::new(2);
        for _ in 0..1000 {
            let one = semaphore.acquire_until(1, None).unwrap();
            let two = semaphore.try_acquire_leaving(1, 0).unwrap();
            drop((one, two));
        }
        assert_eq!(semaphore.woken(), 0);
        assert_eq!(semaphore.available(), 2);
    }

    // The old semaphore woke all 16 at each release (notify_all), in no order.
    #[test]
    fn a_release_wakes_one_waiter_and_waiters_are_admitted_in_arrival_order() {
        let semaphore = Arc::new(Semaphore::new(1));
        let held = semaphore.acquire_until(1, None).unwrap();
        let (admitted, order) = mpsc::channel();
        let (go_on, next) = mpsc::channel::<()>();
        let next = Arc::new(Mutex::new(next));
        let waiters: Vec<_> = (0..16)
            .map(|i| {
                let (shared, admitted, next) =
                    (Arc::clone(&semaphore), admitted.clone(), Arc::clone(&next));
                let waiter = thread::spawn(move || {
                    let permit = shared.acquire_until(1, None).unwrap();
                    admitted.send(i).unwrap();
                    // Holds its permit until the test lets it go.
                    next.lock().unwrap().recv().unwrap();
                    drop(permit);
                });
                semaphore.until_waiting(i + 1);
                waiter
            })
            .collect();

        drop(held);
        for i in 0..16 {
            assert_eq!(order.recv().unwrap(), i, "admitted in arrival order");
            assert_eq!(semaphore.woken(), i + 1, "one wake-up per release");
            assert_eq!(semaphore.waiting(), 15 - i, "the others still wait");
            go_on.send(()).unwrap();
        }
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert_eq!(semaphore.woken(), 16);
        assert_eq!(semaphore.available(), 1);
    }

    // The order is strict: a small waiter behind a large one waits for it, however much
    // is free, and so does a caller that does not wait.
    #[test]
    fn a_large_waiter_at_the_head_is_admitted_before_a_small_one_behind_it() {
        let semaphore = Arc::new(Semaphore::new(10));
        let three = semaphore.acquire_until(3, None).unwrap();
        let five = semaphore.acquire_until(5, None).unwrap();
        let (admitted, order) = mpsc::channel();
        // Each holds its permit until told to let go.
        let spawn = |name: &'static str, units: usize| {
            let (semaphore, admitted) = (Arc::clone(&semaphore), admitted.clone());
            let (let_go, hold) = mpsc::channel::<()>();
            let thread = thread::spawn(move || {
                let permit = semaphore.acquire_until(units, soon()).unwrap();
                admitted.send((name, permit.units())).unwrap();
                hold.recv().unwrap();
            });
            (thread, let_go)
        };
        let (large, let_large_go) = spawn("large", 5);
        semaphore.until_waiting(1);
        let (small, let_small_go) = spawn("small", 1);
        semaphore.until_waiting(2);

        thread::sleep(Duration::from_millis(20));
        assert!(
            order.try_recv().is_err(),
            "2 units free, but the head needs 5"
        );
        assert!(
            semaphore.try_acquire_leaving(1, 0).is_none(),
            "no taking past waiters"
        );

        // 3 more free: 5, the head's; the small one still waits behind it.
        drop(three);
        assert_eq!(order.recv().unwrap(), ("large", 5));
        assert_eq!(semaphore.waiting(), 1);
        assert_eq!(semaphore.available(), 0);

        drop(five);
        assert_eq!(order.recv().unwrap(), ("small", 1));
        assert_eq!(semaphore.available(), 4);
        for (thread, let_go) in [(large, let_large_go), (small, let_small_go)] {
            let_go.send(()).unwrap();
            thread.join().unwrap();
        }
        assert_eq!(semaphore.woken(), 2);
        assert_eq!(semaphore.available(), 10);
    }

    // Without the second admission at a head's leaving, the small waiter would wait
    // until its own deadline though its units are free.
    #[test]
    fn a_head_that_times_out_admits_those_behind_it_that_fit() {
        let semaphore = Arc::new(Semaphore::new(10));
        let held = semaphore.acquire_until(8, None).unwrap();
        let large = {
            let semaphore = Arc::clone(&semaphore);
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_millis(50);
                semaphore
                    .acquire_until(5, Some(deadline))
                    .map(|p| p.units())
            })
        };
        semaphore.until_waiting(1);
        let small = {
            let semaphore = Arc::clone(&semaphore);
            thread::spawn(move || {
                let started = Instant::now();
                let units = semaphore.acquire_until(2, soon()).map(|p| p.units());
                (units, started.elapsed())
            })
        };
        semaphore.until_waiting(2);

        assert_eq!(large.join().unwrap(), Err(NoPermit::TimedOut));
        let (units, waited) = small.join().unwrap();
        assert_eq!(units, Ok(2));
        assert!(waited < Duration::from_secs(5), "waited {waited:?}");
        drop(held);
        assert_eq!(semaphore.available(), 10);
    }

    // A grant the stop comes too late to take back is kept; the rest fail, and the
    // units stay with their holders.
    #[test]
    fn a_stop_fails_the_waiters_but_not_one_already_granted() {
        let semaphore = Arc::new(Semaphore::new(1));
        let held = semaphore.acquire_until(1, None).unwrap();
        // Each holds what it got until the stop is over.
        let (stopped, was_stopped) = mpsc::channel::<()>();
        let was_stopped = Arc::new(Mutex::new(was_stopped));
        let spawn = || {
            let (semaphore, was_stopped) = (Arc::clone(&semaphore), Arc::clone(&was_stopped));
            thread::spawn(move || {
                let got = semaphore.acquire_until(1, soon());
                let units = got.as_ref().map(Permit::units).map_err(|e| *e);
                was_stopped.lock().unwrap().recv().unwrap();
                units
            })
        };
        let first = spawn();
        semaphore.until_waiting(1);
        let second = spawn();
        semaphore.until_waiting(2);

        drop(held); // granted to `first`, whether or not its thread has run yet
        semaphore.stop_waits();
        stopped.send(()).unwrap();
        stopped.send(()).unwrap();

        assert_eq!(first.join().unwrap(), Ok(1));
        assert_eq!(second.join().unwrap(), Err(NoPermit::Stopped));
        assert_eq!(semaphore.woken(), 2);
        assert_eq!(semaphore.available(), 1);
    }

    // Many threads taking and giving back units of every size, some with short deadlines:
    // none is left waiting (a lost wake-up would hang it until the test's timeout), the
    // units held never exceed the capacity, and all come back.
    #[test]
    fn many_threads_of_mixed_sizes_all_finish_and_never_hold_more_than_the_capacity() {
        const CAPACITY: usize = 7;
        let semaphore = Arc::new(Semaphore::new(CAPACITY));
        let held = Arc::new(AtomicUsize::new(0));
        let (done, finished) = mpsc::channel();
        for t in 0..32usize {
            let (semaphore, held, done) = (Arc::clone(&semaphore), Arc::clone(&held), done.clone());
            thread::spawn(move || {
                let (mut granted, mut timed_out) = (0, 0);
                for i in 0..300usize {
                    let units = 1 + (t * 7 + i * 13) % CAPACITY;
                    let deadline = (i % 5 == 0).then(|| Instant::now() + Duration::from_micros(50));
                    match semaphore.acquire_until(units, deadline) {
                        Ok(permit) => {
                            let now = held.fetch_add(units, Ordering::SeqCst) + units;
                            assert!(now <= CAPACITY, "{now} units held");
                            if i % 3 == 0 {
                                thread::yield_now();
                            }
                            held.fetch_sub(units, Ordering::SeqCst);
                            drop(permit);
                            granted += 1;
                        }
                        Err(NoPermit::TimedOut) => timed_out += 1,
                        Err(NoPermit::Stopped) => unreachable!("never stopped"),
                    }
                }
                done.send((granted, timed_out)).unwrap();
            });
        }
        for _ in 0..32 {
            let (granted, timed_out) = finished
                .recv_timeout(Duration::from_secs(60))
                .expect("a thread still waits: a lost wake-up");
            assert_eq!(granted + timed_out, 300);
            assert!(
                granted >= 240,
                "only the 60 waits with a deadline may time out"
            );
        }
        assert_eq!(semaphore.waiting(), 0);
        assert_eq!(semaphore.available(), CAPACITY);
    }
}
