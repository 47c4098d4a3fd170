//! Prometheus metrics (feature `metrics`): what the handler did per function type, and
//! what the crate's server answered, in one registry that your own metrics can join.
//!
//! ```
//! use statefun_sync::metrics::Metrics;
//! use statefun_sync::testing::Request;
//! use statefun_sync::{Address, RequestReplyHandler, StatefulFunctions};
//!
//! let metrics = Metrics::new();
//! let mut functions = StatefulFunctions::new();
//! functions.bind("example/echo", |ctx, message| Ok(ctx.reply(message)?))?;
//! let handler = RequestReplyHandler::new(functions).with_metrics(&metrics);
//!
//! let request = Request::to("example/echo", "1")
//!     .invoke_from(Address::new("example", "caller", "c"), prost_types::Any::default())
//!     .to_bytes();
//! handler.handle(&request)?;
//!
//! let text = metrics.render();
//! assert!(text.contains(r#"statefun_function_batches_total{function_type="example/echo"} 1"#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! On the crate's server, [`ServerBuilder::metrics`](crate::http::ServerBuilder::metrics)
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
//! | `statefun_function_batch_size` | histogram | invocations per batch run |
//! | `statefun_function_handle_seconds` | histogram | time in the handler per batch run |
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
//! | `statefun_http_requests_waiting` | gauge | batches waiting for a worker ([`workers`](crate::http::ServerBuilder::workers)) |
//! | `statefun_http_received_bytes_total` | counter | request bytes read (heads and bodies) |
//! | `statefun_http_sent_bytes_total` | counter | response bytes written |
//!
//! The counting costs the handler a few atomic additions, two histogram observations and
//! two clock reads per batch; without the feature none of it is compiled.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::{text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

use crate::Error;

/// The `function_type` of the requests not attributed to a bound function.
pub const UNKNOWN_FUNCTION_TYPE: &str = "unknown";

/// The upper bounds of `statefun_function_batch_size`, in invocations (the runtime's
/// default `maxNumBatchRequests` is 1000).
const BATCH_SIZE_BUCKETS: [f64; 12] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];

/// The upper bounds of `statefun_function_handle_seconds`.
const HANDLE_SECONDS_BUCKETS: [f64; 14] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05,
    0.1, 1.0, 10.0,
];

/// A registry of Prometheus metrics: the crate's, and any of your own; cheap to clone
/// (clones share the registry).
///
/// Hand it to [`RequestReplyHandler::with_metrics`](crate::RequestReplyHandler::with_metrics)
/// and [`ServerBuilder::metrics`](crate::http::ServerBuilder::metrics); render it with
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

fn batch_size_histogram() -> Histogram {
    Histogram::new(BATCH_SIZE_BUCKETS)
}

fn handle_seconds_histogram() -> Histogram {
    Histogram::new(HANDLE_SECONDS_BUCKETS)
}

type HistogramFamily = Family<FunctionLabels, Histogram, fn() -> Histogram>;

/// The per-function-type families, registered once.
struct FunctionFamilies {
    batches: Family<FunctionLabels, Counter>,
    invocations: Family<FunctionLabels, Counter>,
    batch_size: HistogramFamily,
    handle_seconds: HistogramFamily,
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
            batch_size: Family::new_with_constructor(batch_size_histogram),
            handle_seconds: Family::new_with_constructor(handle_seconds_histogram),
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
    batch_size: Histogram,
    handle_seconds: Histogram,
    handshakes: Counter,
    panics: Counter,
    /// Looked up by label on the (rare) refusals.
    errors: Family<ErrorLabels, Counter>,
    function_type: String,
}

impl FunctionMetrics {
    /// A batch of `invocations` run to a reply in `seconds`.
    #[inline]
    pub(crate) fn answered(&self, invocations: usize, seconds: f64) {
        self.batches.inc();
        self.invocations.inc_by(invocations as u64);
        self.batch_size.observe(invocations as f64);
        self.handle_seconds.observe(seconds);
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
#[derive(Default)]
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) struct ServerMetrics {
    requests: Family<StatusLabels, Counter>,
    pub(crate) connections: Gauge,
    pub(crate) in_flight: Gauge,
    pub(crate) waiting: Gauge,
    pub(crate) received_bytes: Counter,
    pub(crate) sent_bytes: Counter,
}

impl ServerMetrics {
    /// A response with `status` of `bytes` bytes sent.
    #[cfg(feature = "server")]
    pub(crate) fn sent(&self, status: u16, bytes: usize) {
        self.requests.get_or_create(&StatusLabels { status }).inc();
        self.sent_bytes.inc_by(bytes as u64);
    }
}

/// The `prometheus-client` version whose metric types [`Metrics::register`] takes.
pub use prometheus_client;
