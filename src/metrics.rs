//! Prometheus metrics (feature `metrics`, on by default): what the handler did per function
//! type, and what the crate's server answered, in one registry that your own metrics can
//! join. The guide's [operations](crate::guide::operations#metrics-for-prometheus) chapter
//! shows a scrape of the main example and a Prometheus configuration.
//!
//! ```
//! use statefun_sync::metrics::Metrics;
//! use statefun_sync::testing::v2::Request;
//! use statefun_sync::{Address, RequestReplyHandler, StatefulFunctions};
//!
//! let metrics = Metrics::new();
//! let mut functions = StatefulFunctions::new();
//! functions.bind("example/echo", |ctx, message| Ok(ctx.reply(message)?))?;
//! let handler = RequestReplyHandler::v2(functions).with_metrics(&metrics);
//!
//! let request = Request::to("example/echo", "1")
//!     .invoke_from(Address::new("example", "caller", "c").unwrap(), prost_types::Any::default())
//!     .to_bytes();
//! handler.handle(&request)?;
//!
//! let text = metrics.render();
//! assert!(text.contains(r#"statefun_function_batches_total{function_type="example/echo"} 1"#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! On the crate's server, [`ServerBuilder::metrics`]
//! serves the text at `GET /metrics` and counts the server's requests and connections;
//! any other server answers its own route with [`Metrics::render`] and
//! [`Metrics::CONTENT_TYPE`].
//!
//! # The metrics
//!
//! Per function type, label `function_type` (`namespace/name`); a request whose type no
//! function is bound to, or whose body is not a batch, counts under
//! `function_type="unknown"`, so a stranger's typenames make no new series:
//!
//! | name | type | what |
//! |---|---|---|
//! | `statefun_function_batches_total` | counter | batches run to a reply |
//! | `statefun_function_invocations_total` | counter | invocations of those batches |
//! | `statefun_function_batch_size` | histogram | invocations per batch run; `le` 1, 2, 4, ... 8192 (powers of two) |
//! | `statefun_function_handle_seconds` | histogram | time in the handler per batch run, decoding and encoding included; `le` 10 µs times 1, 2, 4, ... 2^20 (`0.00001`, `0.00002`, `0.00004`, ... `10.48576`) |
//! | `statefun_function_state_read_bytes_total` | counter | bytes of the state values the requests of those batches carried |
//! | `statefun_function_state_written_bytes_total` | counter | bytes of the state values their replies set (`MODIFY`; a `DELETE` counts 0) |
//! | `statefun_function_handshakes_total` | counter | 3.x handshake replies (nothing ran) |
//! | `statefun_function_errors_total` | counter | batches refused, labels `kind` (the [`Error`] variant, e.g. `FunctionFailed`) and `status` (its HTTP status) |
//! | `statefun_function_panics_total` | counter | functions that panicked (also in the errors, `kind="FunctionPanicked"`) |
//!
//! Of the crate's server:
//!
//! | name | type | what |
//! |---|---|---|
//! | `statefun_http_requests_total` | counter | responses sent, label `status` |
//! | `statefun_http_connections` | gauge | connections open |
//! | `statefun_http_requests_in_flight` | gauge | requests between their head and the end of their reply |
//! | `statefun_http_requests_waiting` | gauge | batches waiting for a worker ([`workers`][`ServerBuilder::workers`]) |
//! | `statefun_http_received_bytes_total` | counter | request bytes read (heads and bodies) |
//! | `statefun_http_sent_bytes_total` | counter | response bytes written |
//! | `statefun_http_batching_hold_seconds` | histogram | time each reply was held to grow the runtime's batches ([`grow_batches`][`ServerBuilder::grow_batches`]); only replies that were held; `le` 100 µs times 1, 2, 4, ... 2^16 (`0.0001`, ... `6.5536`) |
//! | `statefun_http_batching_held_batch_size` | histogram | invocations of the batches whose replies were held: the batches the pacing produced; `le` 1, 2, 4, ... 8192 |
//! | `statefun_http_batching_pace` | gauge | the replies per second the pacing lets through at the moment (0 without [`grow_batches`][`ServerBuilder::grow_batches`]) |
//!
//! A state value's bytes are counted as the wire carries it: the serialized `Any` on 2.2,
//! the serialized `TypedValue` on 3.x (type name included); a state without a value
//! counts 0, a state a request names twice its last value, a state a batch sets twice
//! its final value (the one the reply carries). The bytes, like the invocations, are
//! counted for the batches run to a reply only, not for handshakes or refused batches.
//!
//! Counting takes the handler two clock reads and eight atomic additions per batch, no
//! lock and no allocation (the histograms are the crate's own, rendered by
//! `prometheus-client`'s encoder); without the feature none of it is compiled. Its cost
//! in instructions is in `BENCHMARKS.md`.
#![doc = feature_links!()]

use std::fmt;
use std::iter::once;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::{text, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Metric, Registry};

use crate::Error;

/// The `function_type` of the requests not attributed to a bound function.
pub const UNKNOWN_FUNCTION_TYPE: &str = "unknown";

/// The buckets of `statefun_function_batch_size`: 1, 2, 4, ... 8192 invocations (the
/// runtime's default `maxNumBatchRequests` is 1000).
#[derive(Debug)]
enum BatchSize {}

impl Buckets for BatchSize {
    const FIRST: u64 = 1;
    const COUNT: u32 = 14;
    const PER_UNIT: f64 = 1.0;
}

/// The buckets of `statefun_function_handle_seconds`, observed in nanoseconds: 10 µs,
/// 20 µs, 40 µs, ... 10.48576 s.
#[derive(Debug)]
enum HandleNanos {}

impl Buckets for HandleNanos {
    const FIRST: u64 = 10_000;
    const COUNT: u32 = 21;
    const PER_UNIT: f64 = 1e9;
}

/// The buckets of `statefun_http_batching_hold_seconds`, observed in nanoseconds: 100 µs,
/// 200 µs, 400 µs, ... 6.5536 s.
#[derive(Debug)]
enum HoldNanos {}

impl Buckets for HoldNanos {
    const FIRST: u64 = 100_000;
    const COUNT: u32 = 17;
    const PER_UNIT: f64 = 1e9;
}

/// A registry of Prometheus metrics: the crate's, and any of your own; cheap to clone
/// (clones share the registry).
///
/// Hand it to [`RequestReplyHandler::with_metrics`](crate::RequestReplyHandler::with_metrics)
/// and [`ServerBuilder::metrics`]; render it with
/// [`render`](Self::render) or [`encode`](Self::encode). The metric types are
/// `prometheus-client`'s, re-exported as [`prometheus_client`]:
///
/// ```
/// use statefun_sync::metrics::prometheus_client::metrics::counter::Counter;
/// use statefun_sync::metrics::Metrics;
///
/// let metrics = Metrics::new();
/// let greetings: Counter = Counter::default();
/// metrics.register("myapp_greetings", "Greetings sent", greetings.clone());
/// greetings.inc();
/// assert!(metrics.render().contains("myapp_greetings_total 1\n"));
/// ```
#[doc = feature_links!()]
#[derive(Clone)]
pub struct Metrics {
    shared: Arc<Shared>,
}

struct Shared {
    registry: Mutex<Registry>,
    functions: FunctionFamilies,
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    server: ServerMetrics,
}

/// Labels of the per-function-type series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    function_type: String,
}

/// Labels of the errors counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    function_type: String,
    kind: &'static str,
    status: u16,
}

/// Labels of the server's requests counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

type HistogramFamily<B> = Family<FunctionLabels, Histogram<B>, fn() -> Histogram<B>>;

/// The per-function-type families, registered once.
struct FunctionFamilies {
    batches: Family<FunctionLabels, Counter>,
    invocations: Family<FunctionLabels, Counter>,
    batch_size: HistogramFamily<BatchSize>,
    handle_seconds: HistogramFamily<HandleNanos>,
    state_read_bytes: Family<FunctionLabels, Counter>,
    state_written_bytes: Family<FunctionLabels, Counter>,
    handshakes: Family<FunctionLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    panics: Family<FunctionLabels, Counter>,
}

impl Metrics {
    /// The content type of [`render`](Self::render)'s text, for a `Content-Type` header:
    /// the OpenMetrics text format, which Prometheus reads.
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// A registry with the crate's metrics in it, at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let functions = FunctionFamilies {
            batches: Family::default(),
            invocations: Family::default(),
            batch_size: Family::new_with_constructor(Histogram::new),
            handle_seconds: Family::new_with_constructor(Histogram::new),
            state_read_bytes: Family::default(),
            state_written_bytes: Family::default(),
            handshakes: Family::default(),
            errors: Family::default(),
            panics: Family::default(),
        };
        let f = &functions;
        registry.register(
            "statefun_function_batches",
            "Batches run to a reply, per function type",
            f.batches.clone(),
        );
        registry.register(
            "statefun_function_invocations",
            "Invocations of the batches run to a reply, per function type",
            f.invocations.clone(),
        );
        registry.register(
            "statefun_function_batch_size",
            "Invocations per batch run to a reply, per function type",
            f.batch_size.clone(),
        );
        registry.register(
            "statefun_function_handle_seconds",
            "Time the handler took per batch run to a reply, per function type",
            f.handle_seconds.clone(),
        );
        registry.register(
            "statefun_function_state_read_bytes",
            "Bytes of the state values carried by the requests of the batches run to a reply, per function type",
            f.state_read_bytes.clone(),
        );
        registry.register(
            "statefun_function_state_written_bytes",
            "Bytes of the state values set by the replies of the batches run to a reply, per function type",
            f.state_written_bytes.clone(),
        );
        registry.register(
            "statefun_function_handshakes",
            "3.x handshake replies (the request lacked declared states), per function type",
            f.handshakes.clone(),
        );
        registry.register(
            "statefun_function_errors",
            "Batches refused, per function type, error kind and HTTP status",
            f.errors.clone(),
        );
        registry.register(
            "statefun_function_panics",
            "Functions that panicked, per function type",
            f.panics.clone(),
        );
        let server = ServerMetrics::default();
        registry.register(
            "statefun_http_requests",
            "Responses the server sent, per HTTP status",
            server.requests.clone(),
        );
        registry.register(
            "statefun_http_connections",
            "Connections open",
            server.connections.clone(),
        );
        registry.register(
            "statefun_http_requests_in_flight",
            "Requests read and not yet answered",
            server.in_flight.clone(),
        );
        registry.register(
            "statefun_http_requests_waiting",
            "Batches waiting for a worker",
            server.waiting.clone(),
        );
        registry.register(
            "statefun_http_received_bytes",
            "Request bytes read, heads and bodies",
            server.received_bytes.clone(),
        );
        registry.register(
            "statefun_http_sent_bytes",
            "Response bytes written",
            server.sent_bytes.clone(),
        );
        registry.register(
            "statefun_http_batching_hold_seconds",
            "Time each reply was held to grow the runtime's batches (held replies only)",
            server.hold_seconds.clone(),
        );
        registry.register(
            "statefun_http_batching_held_batch_size",
            "Invocations of the batches whose replies were held",
            server.held_batch_size.clone(),
        );
        registry.register(
            "statefun_http_batching_pace",
            "Replies per second the batching pace lets through now",
            server.pace.clone(),
        );
        Metrics {
            shared: Arc::new(Shared {
                registry: Mutex::new(registry),
                functions,
                server,
            }),
        }
    }

    /// Adds a metric of your own, rendered with the crate's: `name` as Prometheus spells
    /// it (a counter gains `_total`), `help` its one-line description. Keep the handle
    /// (a clone of `metric`) to update it.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.with_registry(|registry| registry.register(name, help, metric));
    }

    /// Runs `f` on the underlying `prometheus-client` registry, to register what
    /// [`register`](Self::register) does not (a unit, a collector, a sub-registry with a
    /// prefix). Rendering waits for it: do not render from inside `f`.
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(&mut self
            .shared
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }

    /// Appends every metric, in the text format of [`CONTENT_TYPE`](Self::CONTENT_TYPE),
    /// to `out`.
    ///
    /// # Errors
    ///
    /// Only the error of `out` itself (a `String` never fails).
    pub fn encode(&self, out: &mut impl fmt::Write) -> fmt::Result {
        let registry = self
            .shared
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        text::encode(out, &registry)
    }

    /// Every metric, in the text format of [`CONTENT_TYPE`](Self::CONTENT_TYPE): what
    /// `GET /metrics` answers.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.encode(&mut out)
            .expect("writing to a String does not fail");
        out
    }

    /// The handles of one function type's series (`unknown` included).
    pub(crate) fn function(&self, function_type: &str) -> FunctionMetrics {
        let f = &self.shared.functions;
        let labels = FunctionLabels {
            function_type: function_type.to_owned(),
        };
        FunctionMetrics {
            batches: f.batches.get_or_create(&labels).clone(),
            invocations: f.invocations.get_or_create(&labels).clone(),
            batch_size: f.batch_size.get_or_create(&labels).clone(),
            handle_seconds: f.handle_seconds.get_or_create(&labels).clone(),
            state_read_bytes: f.state_read_bytes.get_or_create(&labels).clone(),
            state_written_bytes: f.state_written_bytes.get_or_create(&labels).clone(),
            handshakes: f.handshakes.get_or_create(&labels).clone(),
            panics: f.panics.get_or_create(&labels).clone(),
            errors: f.errors.clone(),
            function_type: labels.function_type,
        }
    }

    /// The server's metrics.
    #[cfg(feature = "server")]
    pub(crate) fn server(&self) -> &ServerMetrics {
        &self.shared.server
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// One function type's series, resolved once (by
/// [`RequestReplyHandler::with_metrics`](crate::RequestReplyHandler::with_metrics)) so
/// that a batch updates them without a label lookup.
#[derive(Clone)]
pub(crate) struct FunctionMetrics {
    batches: Counter,
    invocations: Counter,
    batch_size: Histogram<BatchSize>,
    handle_seconds: Histogram<HandleNanos>,
    state_read_bytes: Counter,
    state_written_bytes: Counter,
    handshakes: Counter,
    panics: Counter,
    /// Looked up by label on the (rare) refusals.
    errors: Family<ErrorLabels, Counter>,
    function_type: String,
}

impl FunctionMetrics {
    /// A batch of `invocations` run to a reply in `time`, with the state bytes of its
    /// request and its reply.
    #[inline]
    pub(crate) fn answered(&self, invocations: usize, states: StateBytes, time: Duration) {
        self.batches.inc();
        self.invocations.inc_by(invocations as u64);
        self.batch_size.observe(invocations as u64);
        self.handle_seconds
            .observe(u64::try_from(time.as_nanos()).unwrap_or(u64::MAX));
        self.state_read_bytes.inc_by(states.read as u64);
        self.state_written_bytes.inc_by(states.written as u64);
    }

    /// A handshake reply.
    pub(crate) fn handshake(&self) {
        self.handshakes.inc();
    }

    /// A batch refused with `error`.
    #[cold]
    pub(crate) fn refused(&self, error: &Error) {
        if matches!(error, Error::FunctionPanicked { .. }) {
            self.panics.inc();
        }
        self.errors
            .get_or_create(&ErrorLabels {
                function_type: self.function_type.clone(),
                kind: error.kind(),
                status: error.status(),
            })
            .inc();
    }
}

impl fmt::Debug for FunctionMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionMetrics")
            .field("function_type", &self.function_type)
            .finish_non_exhaustive()
    }
}

/// The server's series.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) struct ServerMetrics {
    requests: Family<StatusLabels, Counter>,
    pub(crate) connections: Gauge,
    pub(crate) in_flight: Gauge,
    pub(crate) waiting: Gauge,
    pub(crate) received_bytes: Counter,
    pub(crate) sent_bytes: Counter,
    hold_seconds: Histogram<HoldNanos>,
    held_batch_size: Histogram<BatchSize>,
    pub(crate) pace: Gauge,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics {
            requests: Family::default(),
            connections: Gauge::default(),
            in_flight: Gauge::default(),
            waiting: Gauge::default(),
            received_bytes: Counter::default(),
            sent_bytes: Counter::default(),
            hold_seconds: Histogram::new(),
            held_batch_size: Histogram::new(),
            pace: Gauge::default(),
        }
    }
}

impl ServerMetrics {
    /// A reply of a batch of `invocations` held for `time` to grow the runtime's batches.
    #[cfg(feature = "server")]
    pub(crate) fn held(&self, invocations: usize, time: Duration) {
        self.hold_seconds
            .observe(u64::try_from(time.as_nanos()).unwrap_or(u64::MAX));
        self.held_batch_size.observe(invocations as u64);
    }

    /// A response with `status` of `bytes` bytes sent.
    #[cfg(feature = "server")]
    pub(crate) fn sent(&self, status: u16, bytes: usize) {
        self.requests.get_or_create(&StatusLabels { status }).inc();
        self.sent_bytes.inc_by(bytes as u64);
    }
}

/// The bytes of state values a batch run to a reply read (its request carried them) and
/// wrote (its reply sets them), as the wire stores them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StateBytes {
    pub(crate) read: usize,
    pub(crate) written: usize,
}

/// The buckets of a [`Histogram`], exponential: the upper bounds `FIRST`, `2 · FIRST`,
/// `4 · FIRST`, ... (`COUNT` of them), in the unit of the observations, each inclusive
/// (Prometheus' `le`), and above them `+Inf`. A power of two finds an observation's
/// bucket in a division by a constant and a count of leading zeros, without comparing
/// it with each bound.
trait Buckets: 'static {
    /// The first bound, in the unit of the observations.
    const FIRST: u64;
    /// How many bounds.
    const COUNT: u32;
    /// How many of the observations' unit make one of the rendered unit (a billion
    /// nanoseconds make a second).
    const PER_UNIT: f64;

    /// The bucket of `value`: the first whose bound is at least `value`, `COUNT` (the
    /// `+Inf` bucket) above them all.
    #[inline]
    fn bucket(value: u64) -> usize {
        // The smallest k with FIRST · 2^k >= value is the smallest with 2^k >= m, where
        // m = ceil(value / FIRST): the bit length of m - 1.
        let multiples = value.div_ceil(Self::FIRST);
        let k = u64::BITS - multiples.saturating_sub(1).leading_zeros();
        k.min(Self::COUNT) as usize
    }

    /// The `le` of bucket `k`, in the rendered unit.
    fn bound(k: u32) -> f64 {
        // Divided, not multiplied by the inverse: 10_000 / 1e9 is the double nearest
        // 0.00001, so the label reads `le="0.00001"`.
        (Self::FIRST << k) as f64 / Self::PER_UNIT
    }
}

/// A histogram of whole-number observations (invocations, nanoseconds) that takes no
/// lock: an atomic count per bucket and an atomic sum, rendered by `prometheus-client`'s
/// encoder like any of its histograms. Its own `Histogram` takes a mutex and compares
/// floats with each bound per observation, which cost the handler more than all its
/// other counting.
///
/// The count is the sum of the buckets' counts, read when rendered; a scrape concurrent
/// with an observation may see its bucket and not yet its sum (or the reverse), as with
/// any lock-free histogram. The sum wraps after 2^64 units (584 years of nanoseconds).
/// Clones share the observations.
struct Histogram<B> {
    shared: Arc<Observations<B>>,
}

struct Observations<B> {
    /// One per bound, and one more for the observations above every bound (`+Inf`);
    /// not cumulative.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
    // `fn() -> B`: the buckets are a type, never a value, so `B` need not be `Send`.
    buckets: PhantomData<fn() -> B>,
}

impl<B: Buckets> Histogram<B> {
    fn new() -> Self {
        Histogram {
            shared: Arc::new(Observations {
                counts: (0..=B::COUNT).map(|_| AtomicU64::new(0)).collect(),
                sum: AtomicU64::new(0),
                buckets: PhantomData,
            }),
        }
    }

    /// Counts `value` in its bucket, and in the sum.
    #[inline]
    fn observe(&self, value: u64) {
        self.shared.counts[B::bucket(value)].fetch_add(1, Relaxed);
        self.shared.sum.fetch_add(value, Relaxed);
    }
}

impl<B> Clone for Histogram<B> {
    fn clone(&self) -> Self {
        Histogram {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<B: Buckets> EncodeMetric for Histogram<B> {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        let shared = &*self.shared;
        let bounds = (0..B::COUNT).map(B::bound).chain(once(f64::INFINITY));
        let buckets: Vec<(f64, u64)> = bounds
            .zip(shared.counts.iter().map(|count| count.load(Relaxed)))
            .collect();
        let count = buckets.iter().map(|&(_, count)| count).sum();
        let sum = shared.sum.load(Relaxed) as f64 / B::PER_UNIT;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

impl<B> TypedMetric for Histogram<B> {
    const TYPE: MetricType = MetricType::Histogram;
}

impl<B: Buckets> fmt::Debug for Histogram<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("first", &B::FIRST)
            .field("count", &B::COUNT)
            .finish_non_exhaustive()
    }
}

/// The `prometheus-client` version whose metric types [`Metrics::register`] takes.
pub use prometheus_client;

#[cfg(test)]
mod tests {
    use super::*;

    /// The bounds 1, 2 and 4.
    #[derive(Debug)]
    enum Small {}

    impl Buckets for Small {
        const FIRST: u64 = 1;
        const COUNT: u32 = 3;
        const PER_UNIT: f64 = 1.0;
    }

    /// The bounds 10, 20 and 40.
    #[derive(Debug)]
    enum Tens {}

    impl Buckets for Tens {
        const FIRST: u64 = 10;
        const COUNT: u32 = 3;
        const PER_UNIT: f64 = 1.0;
    }

    /// `histogram` alone in a registry, rendered.
    fn rendered<B: Buckets>(histogram: &Histogram<B>) -> String {
        let mut registry = Registry::default();
        registry.register("h", "A histogram", histogram.clone());
        let mut out = String::new();
        text::encode(&mut out, &registry).unwrap();
        out
    }

    /// The cumulative count of the bucket `le` in `text`.
    fn bucket(text: &str, le: &str) -> u64 {
        let series = format!("h_bucket{{le=\"{le}\"}} ");
        let line = text
            .lines()
            .find(|line| line.starts_with(&series))
            .unwrap_or_else(|| panic!("no bucket {le} in\n{text}"));
        line[series.len()..].parse().unwrap()
    }

    /// The `le` labels of `text`, in order.
    fn les(text: &str) -> Vec<&str> {
        text.lines()
            .filter_map(|line| line.strip_prefix("h_bucket{le=\""))
            .map(|rest| &rest[..rest.find('"').unwrap()])
            .collect()
    }

    #[test]
    fn a_bound_is_inclusive_and_the_next_value_is_in_the_next_bucket() {
        let table: [(u64, usize); 8] = [
            (0, 0),
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (1 << 40, 3),
            (u64::MAX, 3),
        ];
        for (value, bucket) in table {
            assert_eq!(Small::bucket(value), bucket, "1, 2, 4: observed {value}");
        }
        let table: [(u64, usize); 9] = [
            (0, 0),
            (10, 0),
            (11, 1),
            (20, 1),
            (21, 2),
            (40, 2),
            (41, 3),
            (80, 3),
            (u64::MAX, 3),
        ];
        for (value, bucket) in table {
            assert_eq!(Tens::bucket(value), bucket, "10, 20, 40: observed {value}");
        }
    }

    #[test]
    fn each_bound_is_in_its_bucket_and_one_more_in_the_next() {
        for k in 0..HandleNanos::COUNT {
            let bound = HandleNanos::FIRST << k;
            assert_eq!(HandleNanos::bucket(bound), k as usize, "{bound} ns");
            assert_eq!(
                HandleNanos::bucket(bound + 1),
                k as usize + 1,
                "{bound} ns + 1"
            );
        }
        for k in 0..BatchSize::COUNT {
            let bound = BatchSize::FIRST << k;
            assert_eq!(BatchSize::bucket(bound), k as usize, "{bound} invocations");
            assert_eq!(BatchSize::bucket(bound + 1), k as usize + 1, "{bound} + 1");
        }
    }

    #[test]
    fn the_text_is_prometheus_clients_with_cumulative_buckets() {
        let histogram = Histogram::<Small>::new();
        for value in [1, 1, 2, 4, 7] {
            histogram.observe(value);
        }

        assert_eq!(
            rendered(&histogram),
            "# HELP h A histogram.\n\
             # TYPE h histogram\n\
             h_sum 15.0\n\
             h_count 5\n\
             h_bucket{le=\"1.0\"} 2\n\
             h_bucket{le=\"2.0\"} 3\n\
             h_bucket{le=\"4.0\"} 4\n\
             h_bucket{le=\"+Inf\"} 5\n\
             # EOF\n"
        );
    }

    #[test]
    fn an_empty_histogram_renders_zeros() {
        let text = rendered(&Histogram::<Small>::new());

        assert!(text.contains("h_sum 0.0\nh_count 0\n"), "{text}");
        assert_eq!(bucket(&text, "+Inf"), 0);
    }

    #[test]
    fn nanoseconds_render_as_seconds_with_the_documented_bounds() {
        let histogram = Histogram::<HandleNanos>::new();
        histogram.observe(20_000); // on the bound 0.00002: in it
        histogram.observe(20_001); // just above: in 0.00004
        histogram.observe(20_000_000_000); // above every bound

        let text = rendered(&histogram);

        assert_eq!(
            les(&text),
            [
                "0.00001", "0.00002", "0.00004", "0.00008", "0.00016", "0.00032", "0.00064",
                "0.00128", "0.00256", "0.00512", "0.01024", "0.02048", "0.04096", "0.08192",
                "0.16384", "0.32768", "0.65536", "1.31072", "2.62144", "5.24288", "10.48576",
                "+Inf"
            ]
        );
        assert_eq!(bucket(&text, "0.00001"), 0);
        assert_eq!(bucket(&text, "0.00002"), 1);
        assert_eq!(bucket(&text, "0.00004"), 2);
        assert_eq!(bucket(&text, "10.48576"), 2);
        assert_eq!(bucket(&text, "+Inf"), 3);
        assert!(text.contains("h_sum 20.000040001\n"), "{text}");
        assert!(text.contains("h_count 3\n"), "{text}");
    }

    #[test]
    fn batch_sizes_render_with_the_documented_bounds() {
        let histogram = Histogram::<BatchSize>::new();
        histogram.observe(1000);
        histogram.observe(1025);

        let text = rendered(&histogram);

        assert_eq!(
            les(&text),
            [
                "1.0", "2.0", "4.0", "8.0", "16.0", "32.0", "64.0", "128.0", "256.0", "512.0",
                "1024.0", "2048.0", "4096.0", "8192.0", "+Inf"
            ]
        );
        assert_eq!(bucket(&text, "512.0"), 0);
        assert_eq!(bucket(&text, "1024.0"), 1);
        assert_eq!(bucket(&text, "2048.0"), 2);
        assert!(text.contains("h_sum 2025.0\n"), "{text}");
    }
}
