//! Growing the runtime's batches ([`ServerBuilder::grow_batches`](super::ServerBuilder::grow_batches)):
//! replies leave at a pace, so that while the runtime waits for them its messages queue
//! per address, and go out as fewer, larger batches.
//!
//! The runtime keeps one request in flight per address and sends what arrived meanwhile
//! as the next batch, and each request costs it a fixed amount of CPU (about 150 µs on
//! StateFun 3.3, see `BENCHMARKS.md`). A function that answers in microseconds gets
//! batches of one or two, and the runtime spends its CPU on requests. The pace puts the
//! wait back where the runtime can use it, and only when the runtime sends many small
//! batches:
//!
//! - Replies leave at most `max(min_pace, invocations per second / target_batch)` per
//!   second: one per `target_batch` invocations served, never fewer than `min_pace` per
//!   second. Below that rate (a second's worth of replies may come at once), no reply
//!   waits at all.
//! - Beyond it, a reply waits for its turn, in the order the replies were made, but never
//!   longer than `max_hold`; one that would wait longer leaves at `max_hold`, outside
//!   the pace.
//! - The invocation rate is the invocations of the batches run to a reply over the last
//!   second, counted in windows of 100 ms, and the pace is set again after each window; handshakes, errors and the server's own routes are never held nor counted.
//!
//! With many addresses busy, the pace makes each one's turn come around less often, so
//! the batch of each grows to about `target_batch`: the wait adapts to the number of
//! addresses without knowing it. A held reply takes no worker and no body memory: it is
//! held after the handler ran and the permit was released, on its connection's thread.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{lock, Shared};

/// The invocation rate is counted over the last `WINDOWS` windows of `WINDOW` each (one
/// second), and the pace set again at the end of each window.
const WINDOW: Duration = Duration::from_millis(100);
const WINDOWS: usize = 10;

/// How far ahead of the pace replies may run before any is held: a second's worth of
/// replies at the pace pass at once, so a burst at low load waits for nothing.
const BURST: Duration = Duration::from_secs(1);

/// How the crate's server grows the runtime's batches: the most a reply may be held, the
/// batch size it aims at, and the rate below which it holds nothing. For
/// [`ServerBuilder::grow_batches`](super::ServerBuilder::grow_batches), which explains the
/// mechanism; a [`Duration`] converts into the defaults with that `max_hold`.
///
/// ```
/// use std::time::Duration;
/// use statefun_sync::http::BatchGrowth;
///
/// let growth = BatchGrowth::new(Duration::from_millis(500)).with_target_batch(32);
/// assert_eq!(growth.max_hold(), Duration::from_millis(500));
/// assert_eq!(growth.target_batch(), 32);
/// assert_eq!(growth.min_pace(), BatchGrowth::DEFAULT_MIN_PACE);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchGrowth {
    max_hold: Duration,
    target_batch: u32,
    min_pace: u32,
}

impl BatchGrowth {
    /// The default [`with_target_batch`](Self::with_target_batch): 16 invocations per request.
    pub const DEFAULT_TARGET_BATCH: u32 = 16;
    /// The default [`with_min_pace`](Self::with_min_pace): 200 replies per second.
    pub const DEFAULT_MIN_PACE: u32 = 200;

    /// Holds a reply at most `max_hold`, with the default target batch and minimum pace.
    pub fn new(max_hold: Duration) -> Self {
        BatchGrowth {
            max_hold,
            target_batch: Self::DEFAULT_TARGET_BATCH,
            min_pace: Self::DEFAULT_MIN_PACE,
        }
    }

    /// The invocations per request the pace aims at (default 16; at least 1): replies
    /// leave at most one per `target` invocations served. A larger target saves the
    /// runtime more requests and holds replies longer.
    pub fn with_target_batch(mut self, target: u32) -> Self {
        self.target_batch = target.max(1);
        self
    }

    /// The replies per second below which nothing is held (default 200; at least 1): the
    /// pace never falls under it, so a server that answers fewer requests holds none.
    /// At 200 requests per second the runtime spends about 3 % of a core on them.
    pub fn with_min_pace(mut self, per_second: u32) -> Self {
        self.min_pace = per_second.max(1);
        self
    }

    /// The most a reply is held.
    pub fn max_hold(&self) -> Duration {
        self.max_hold
    }

    /// The invocations per request the pace aims at.
    pub fn target_batch(&self) -> u32 {
        self.target_batch
    }

    /// The replies per second below which nothing is held.
    pub fn min_pace(&self) -> u32 {
        self.min_pace
    }
}

impl From<Duration> for BatchGrowth {
    fn from(max_hold: Duration) -> Self {
        BatchGrowth::new(max_hold)
    }
}

/// The pace of a running server: when each reply may leave.
pub(super) struct Pacer {
    growth: BatchGrowth,
    state: Mutex<State>,
    /// Signalled when the server stops: every held reply leaves at once.
    stopped: Condvar,
}

struct State {
    schedule: Schedule,
    stopped: bool,
}

/// The pace's bookkeeping, apart from the clock and the waits, so that tests can run it
/// on instants of their own.
#[derive(Debug)]
struct Schedule {
    /// When the next reply is due at the pace: a reply may leave once this, less
    /// [`BURST`], has passed (the generic cell rate algorithm's theoretical arrival time).
    due: Instant,
    /// The start of the current window, and the invocations counted in it.
    window_start: Instant,
    window_invocations: u64,
    /// The invocations of the last [`WINDOWS`] windows, the oldest at `oldest`.
    windows: [u64; WINDOWS],
    oldest: usize,
    /// Replies per second let through.
    pace: f64,
}

impl Schedule {
    fn new(now: Instant, growth: &BatchGrowth) -> Self {
        Schedule {
            due: now,
            window_start: now,
            window_invocations: 0,
            windows: [0; WINDOWS],
            oldest: 0,
            pace: f64::from(growth.min_pace),
        }
    }

    /// When the reply of a batch of `invocations`, made at `now`, may leave: `None` at
    /// once. Replies are given instants in the order of the calls, never decreasing.
    fn release(
        &mut self,
        now: Instant,
        invocations: usize,
        growth: &BatchGrowth,
    ) -> Option<Instant> {
        if now.saturating_duration_since(self.window_start) >= WINDOW {
            self.next_windows(now, growth);
        }
        self.window_invocations += invocations as u64;
        let interval = Duration::from_secs_f64(1.0 / self.pace);
        let due = self.due.max(now);
        let at = due.checked_sub(BURST).unwrap_or(now);
        if at <= now {
            self.due = due + interval;
            return None;
        }
        if at - now > growth.max_hold {
            // Beyond the ceiling: it leaves at `max_hold`, outside the pace, and takes no
            // turn from the replies behind it. Every reply in the schedule leaves before
            // `due - BURST`, which is later than `now + max_hold`: the order holds.
            return Some(now + growth.max_hold);
        }
        self.due = due + interval;
        Some(at)
    }

    /// Closes the current window (and any that passed without a reply), and sets the
    /// pace from the invocations of the last second.
    #[cold]
    fn next_windows(&mut self, now: Instant, growth: &BatchGrowth) {
        let mut closing = self.window_invocations;
        while now.saturating_duration_since(self.window_start) >= WINDOW {
            self.windows[self.oldest] = closing;
            self.oldest = (self.oldest + 1) % WINDOWS;
            closing = 0;
            self.window_start += WINDOW;
            if self.windows.iter().all(|&n| n == 0) {
                // A quiet second: the windows between start again from now.
                self.window_start = now;
                break;
            }
        }
        self.window_invocations = 0;
        let per_second =
            self.windows.iter().sum::<u64>() as f64 / (WINDOW * WINDOWS as u32).as_secs_f64();
        let pace = (per_second / f64::from(growth.target_batch)).max(f64::from(growth.min_pace));
        // The replies already scheduled ahead of now keep their number, at the new pace:
        // when it rises, the queue drains faster at once, instead of at the old pace. It
        // never runs further ahead than a reply may wait, and the burst.
        if let Some(ahead) = self.due.checked_duration_since(now) {
            let ahead = ahead.mul_f64(self.pace / pace).min(growth.max_hold + BURST);
            self.due = now + ahead;
        }
        log::trace!(
            "batching: {per_second:.0} invocations/s over the last second, pace {pace:.0} \
             replies/s, next due in {:?}",
            self.due.saturating_duration_since(now)
        );
        self.pace = pace;
    }
}

impl Pacer {
    pub(super) fn new(growth: BatchGrowth) -> Self {
        Pacer {
            state: Mutex::new(State {
                schedule: Schedule::new(Instant::now(), &growth),
                stopped: false,
            }),
            growth,
            stopped: Condvar::new(),
        }
    }

    /// Holds the reply of a batch of `invocations` until the pace lets it leave, or the
    /// server stops; returns how long it was held (`None`: not at all).
    pub(super) fn hold(&self, invocations: usize) -> Option<Duration> {
        let now = Instant::now();
        let mut state = lock(&self.state);
        if state.stopped {
            return None;
        }
        let until = state.schedule.release(now, invocations, &self.growth)?;
        while !state.stopped {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .stopped
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Some(now.elapsed())
    }

    /// The replies per second let through at the moment.
    #[cfg(feature = "metrics")]
    pub(super) fn pace(&self) -> f64 {
        lock(&self.state).schedule.pace
    }

    /// Lets every held reply leave at once, and holds none from now on: the server stops.
    pub(super) fn stop(&self) {
        lock(&self.state).stopped = true;
        // Every held reply must leave, each waiting for its own instant.
        self.stopped.notify_all();
    }
}

/// Holds the reply of a batch of `invocations` as `pacer` says, and counts it in the
/// server's metrics.
pub(super) fn hold(shared: &Shared, pacer: &Pacer, invocations: usize) {
    let held = pacer.hold(invocations);
    #[cfg(feature = "metrics")]
    if let Some(metrics) = shared.metrics() {
        // Whole replies per second: the gauge is an integer.
        metrics.pace.set(pacer.pace().round() as i64);
        if let Some(time) = held {
            metrics.held(invocations, time);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (shared, held);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn growth(max_hold_ms: u64) -> BatchGrowth {
        BatchGrowth::new(Duration::from_millis(max_hold_ms))
            .with_target_batch(10)
            .with_min_pace(100)
    }

    /// Runs `replies` replies of `invocations` each, `gap` apart, from `start`; returns
    /// each one's hold.
    fn run(
        schedule: &mut Schedule,
        growth: &BatchGrowth,
        start: Instant,
        replies: u32,
        gap: Duration,
        invocations: usize,
    ) -> Vec<Duration> {
        (0..replies)
            .map(|i| {
                let now = start + gap * i;
                schedule
                    .release(now, invocations, growth)
                    .map_or(Duration::ZERO, |at| at - now)
            })
            .collect()
    }

    #[test]
    fn below_the_minimum_pace_nothing_is_held() {
        let growth = growth(1000);
        let start = Instant::now();
        let mut schedule = Schedule::new(start, &growth);
        // 90 replies per second, for a minute: under the minimum pace of 100.
        let holds = run(
            &mut schedule,
            &growth,
            start,
            5400,
            Duration::from_micros(11_111),
            1,
        );
        assert!(
            holds.iter().all(Duration::is_zero),
            "{:?}",
            holds.iter().max()
        );
    }

    #[test]
    fn a_burst_of_a_seconds_worth_passes_at_once() {
        let growth = growth(1000);
        let start = Instant::now();
        let mut schedule = Schedule::new(start, &growth);
        // 101 replies at the same instant: a second's worth at the minimum pace of 100,
        // and the one due now.
        let holds = run(&mut schedule, &growth, start, 101, Duration::ZERO, 1);
        assert!(holds.iter().all(Duration::is_zero), "{holds:?}");
        // The 102nd is held for one interval of the pace.
        let next = schedule.release(start, 1, &growth).map(|at| at - start);
        assert_eq!(next, Some(Duration::from_millis(10)));
    }

    #[test]
    fn beyond_the_pace_replies_wait_their_turn_in_order_and_never_past_the_ceiling() {
        let growth = growth(200);
        let start = Instant::now();
        let mut schedule = Schedule::new(start, &growth);
        // 1,000 replies per second of one invocation each, for 5 s: ten times the pace.
        let mut last = start;
        for i in 0..5000u32 {
            let now = start + Duration::from_millis(u64::from(i));
            let at = schedule.release(now, 1, &growth).unwrap_or(now);
            assert!(
                at >= last,
                "reply {i} leaves at {at:?}, before the one before it"
            );
            assert!(at - now <= growth.max_hold, "reply {i} held {:?}", at - now);
            last = at;
        }
        // After the burst allowance, the queue reaches the ceiling: held about 200 ms.
        let now = start + Duration::from_secs(5);
        let held = schedule.release(now, 1, &growth).map(|at| at - now);
        assert_eq!(held, Some(Duration::from_millis(200)));
    }

    #[test]
    fn the_pace_follows_the_invocations_over_the_target() {
        let growth = growth(1000);
        let start = Instant::now();
        let mut schedule = Schedule::new(start, &growth);
        // 50,000 invocations per second (batches of 50 every ms) for 2 s: a pace of 5,000
        // once the last second is all at that rate.
        run(
            &mut schedule,
            &growth,
            start,
            2000,
            Duration::from_millis(1),
            50,
        );
        assert!((schedule.pace - 5000.0).abs() < 100.0, "{}", schedule.pace);
        // Quiet for a while: the next window reads a low rate, and the pace falls back
        // to its minimum.
        let later = start + Duration::from_secs(10);
        schedule.release(later, 1, &growth);
        assert_eq!(schedule.pace, 100.0);
    }

    #[test]
    fn after_a_load_a_quiet_server_holds_nothing() {
        let growth = growth(300);
        let start = Instant::now();
        let mut schedule = Schedule::new(start, &growth);
        run(
            &mut schedule,
            &growth,
            start,
            10_000,
            Duration::from_micros(100),
            1,
        );
        // The due time ran ahead by at most the ceiling and the burst: after that long,
        // a reply leaves at once.
        let later = start + Duration::from_secs(1) + Duration::from_millis(1400);
        assert_eq!(schedule.release(later, 1, &growth), None);
    }

    #[test]
    fn a_stop_releases_a_held_reply_at_once() {
        let pacer = std::sync::Arc::new(Pacer::new(
            BatchGrowth::new(Duration::from_secs(60)).with_min_pace(1),
        ));
        // Two replies pass (a second's worth at one per second, and the one due now); the
        // third waits.
        assert_eq!(pacer.hold(1), None);
        assert_eq!(pacer.hold(1), None);
        let held = {
            let pacer = std::sync::Arc::clone(&pacer);
            std::thread::spawn(move || pacer.hold(1))
        };
        std::thread::sleep(Duration::from_millis(100));
        pacer.stop();
        let held = held.join().unwrap().expect("the third reply was held");
        // Its turn was a second away: the stop let it go before.
        assert!(held < Duration::from_millis(900), "{held:?}");
        assert_eq!(pacer.hold(1), None, "after the stop, nothing is held");
    }
}
