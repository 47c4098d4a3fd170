//! [`RequestReplyHandler`]: one request body in, one reply body out.

use std::any::Any as PanicPayload;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use log::{debug, log_enabled, Level};

use crate::address::Address;
use crate::context::Context;
use crate::error::Error;
use crate::protocol::{Batch, Limits, Protocol, ProtocolVersion, Refused, V2, V3};
use crate::registry::{BoundFunction, StatefulFunctions};
use crate::state_spec::StateSpec;
use crate::text::Shown;

/// Answers the runtime's requests with the bound functions: request bytes in, reply bytes
/// out. It does no I/O and needs no async runtime; share it between threads (it is `Sync`)
/// behind an `Arc`, and put it behind any HTTP server (the guide's
/// [serving](crate::guide::serving) chapter, an async one included). [`v2`](Self::v2)
/// speaks 2.2 and [`v3`](Self::v3) 3.x: see [2.2 or 3.x](crate::guide::protocols).
///
/// ```
/// use statefun_sync::testing::v2::{Reply, Request};
/// use statefun_sync::{Address, RequestReplyHandler, StatefulFunctions};
///
/// let mut functions = StatefulFunctions::new();
/// functions.bind("example/echo", |ctx, message| Ok(ctx.reply(message)?))?;
/// let handler = RequestReplyHandler::v2(functions);
///
/// let request = Request::to("example/echo", "1")
///     .invoke_from(Address::new("example", "caller", "c").unwrap(), prost_types::Any::default())
///     .to_bytes();
/// let reply = Reply::decode(&handler.handle(&request)?)?;
/// assert_eq!(reply.messages().len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RequestReplyHandler {
    functions: StatefulFunctions,
    limits: Limits,
    protocol: &'static dyn Protocol,
    /// The series of the requests not attributed to a bound function (`unknown`); the
    /// bound functions keep theirs in their registry entry.
    #[cfg(feature = "metrics")]
    unknown: Option<crate::metrics::FunctionMetrics>,
}

impl RequestReplyHandler {
    /// The default of [`max_invocations`](Self::max_invocations): a hundred times the
    /// runtime's default batch size (`maxNumBatchRequests`, 1000).
    pub const DEFAULT_MAX_INVOCATIONS: usize = 100_000;

    /// The default of [`max_states`](Self::max_states). The runtime sends the states
    /// `module.yaml` declares, a handful per function.
    pub const DEFAULT_MAX_STATES: usize = 100_000;

    /// A handler for `functions` that speaks the Stateful Functions 2.2 protocol.
    pub fn v2(functions: StatefulFunctions) -> Self {
        Self::speaking(&V2, functions)
    }

    /// A handler for `functions` that speaks the Stateful Functions 3.x protocol (the
    /// runtimes 3.0 to 3.3): values travel as typed values, and the functions declare
    /// their states to the runtime through the handshake (see the guide's
    /// [2.2 or 3.x](crate::guide::protocols)).
    ///
    /// ```
    /// use statefun_sync::{Context, Message, RequestReplyHandler, StatefulFunctions, ValueSpec};
    ///
    /// const SEEN: ValueSpec<i32> = ValueSpec::named("seen");
    ///
    /// let mut functions = StatefulFunctions::new();
    /// functions
    ///     .bind_message("example/counter", |ctx: &mut Context, _: Message| {
    ///         let seen = ctx.get(&SEEN)?.unwrap_or(0);
    ///         Ok(ctx.set(&SEEN, &(seen + 1))?)
    ///     })?
    ///     .state(&SEEN);
    /// let handler = RequestReplyHandler::v3(functions)?;
    /// # Ok::<(), statefun_sync::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::UntypedState`] if a function declares a state by name only: 3.x tells
    /// the runtime each state's type, so its states are [`ValueSpec`](crate::ValueSpec)s.
    /// [`Error::DuplicateState`] if a function declares two states with one name.
    /// [`Error::InvalidArgument`] if a state's name is not what Python's
    /// `str.isidentifier()` accepts (see [`ValueSpec::named`](crate::ValueSpec::named):
    /// const evaluation checks only its ASCII characters).
    pub fn v3(functions: StatefulFunctions) -> Result<Self, Error> {
        for function in functions.bindings() {
            let states = function.declared_states();
            for (i, state) in states.iter().enumerate() {
                let function_type = || Box::new(function.function_type().clone());
                let state_name = state.name().to_owned();
                if state.typename().is_none() {
                    return Err(Error::UntypedState {
                        function_type: function_type(),
                        state: state_name,
                    });
                }
                if let Err(rule) = crate::value_spec::check_name(state.name()) {
                    return Err(Error::InvalidArgument {
                        operation: "RequestReplyHandler::v3",
                        reason: format!(
                            "function {} declares state {}: {rule}",
                            Shown(function.function_type().as_str()),
                            Shown(state.name())
                        ),
                    });
                }
                if states[..i].iter().any(|s| s.name() == state.name()) {
                    return Err(Error::DuplicateState {
                        function_type: function_type(),
                        state: state_name,
                    });
                }
            }
        }
        Ok(Self::speaking(&V3, functions))
    }

    fn speaking(protocol: &'static dyn Protocol, functions: StatefulFunctions) -> Self {
        RequestReplyHandler {
            functions,
            limits: Limits {
                max_invocations: Self::DEFAULT_MAX_INVOCATIONS,
                max_states: Self::DEFAULT_MAX_STATES,
            },
            protocol,
            #[cfg(feature = "metrics")]
            unknown: None,
        }
    }

    /// Counts what the handler does in `metrics` (feature `metrics`): batches,
    /// invocations, batch sizes, times, handshakes, errors and panics, per function type
    /// (see [`metrics`](crate::metrics) for the names). Each bound function type gets its
    /// series now, at zero; requests for any other type, and bodies that are not a batch,
    /// count under `function_type="unknown"`.
    #[cfg(feature = "metrics")]
    pub fn with_metrics(mut self, metrics: &crate::metrics::Metrics) -> Self {
        self.functions.measure(metrics);
        self.unknown = Some(metrics.function(crate::metrics::UNKNOWN_FUNCTION_TYPE));
        self
    }

    /// The protocol version the handler speaks.
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.protocol.version()
    }

    /// Refuses batches of more than `max` invocations with [`Error::TooManyInvocations`]
    /// (413), before any function runs. The default,
    /// [`DEFAULT_MAX_INVOCATIONS`](Self::DEFAULT_MAX_INVOCATIONS), is far above what the
    /// runtime sends unless `module.yaml` raises `maxNumBatchRequests`; it bounds the
    /// memory one request can make the handler use beyond its body.
    pub fn max_invocations(mut self, max: usize) -> Self {
        self.limits.max_invocations = max;
        self
    }

    /// Refuses batches carrying more than `max` distinct states with
    /// [`Error::TooManyStates`] (413), before any function runs. Like
    /// [`max_invocations`](Self::max_invocations), it bounds the memory one request can
    /// make the handler use: each state costs some 60 bytes of bookkeeping beyond its
    /// bytes in the body, which a request of tiny states could multiply.
    pub fn max_states(mut self, max: usize) -> Self {
        self.limits.max_states = max;
        self
    }

    /// The functions this handler serves.
    pub fn functions(&self) -> &StatefulFunctions {
        &self.functions
    }

    /// Runs one batch: decodes `request` (a serialized `ToFunction`), calls the target's
    /// function once per invocation, in order, and returns the serialized `FromFunction`.
    ///
    /// Semantics are those of the Python SDK of the handler's protocol, 2.2.2 or 3.3.0: a
    /// state change is visible to later invocations of the batch; the reply carries one
    /// mutation per changed state (`MODIFY` with the final value, or `DELETE`) in the
    /// request's state order, nothing for unchanged states, and the messages, delayed
    /// messages (and, on 3.x, cancellations) and egress messages in the order they were
    /// sent. On 3.x, a request that lacks a declared state gets the handshake reply
    /// (`incomplete_invocation_context`, listing the missing specs) and nothing runs.
    ///
    /// # Errors
    ///
    /// A batch that fails anywhere returns an error and no reply: the runtime applies a
    /// reply as a whole, so a partial one would lose or duplicate effects.
    ///
    /// - [`Error::MalformedRequest`], [`Error::NoInvocation`]: the bytes are not a batch
    ///   (on 3.x, also a batch without a target, or with invocations for an empty id)
    ///   (400). Nothing runs.
    /// - [`Error::TooManyInvocations`], [`Error::TooManyStates`]: the batch is over
    ///   [`max_invocations`](Self::max_invocations) or [`max_states`](Self::max_states)
    ///   (413). Nothing runs.
    /// - [`Error::UnknownFunctionType`]: no function is bound to the target's type (404).
    /// - [`Error::MissingDeclaredState`]: on 2.2, the request lacks a state the binding
    ///   declares (400). Nothing runs.
    /// - [`Error::UnknownState`], [`Error::UnreadableState`],
    ///   [`Error::UnexpectedMessageType`], [`Error::MalformedArgument`]: an invocation used
    ///   a state the request did not carry or whose value it cannot read, or its argument
    ///   is not what the function accepts (400).
    /// - [`Error::FunctionFailed`], [`Error::FunctionPanicked`]: a function returned an
    ///   error or panicked (500; 400 when the error a function passed up with its own
    ///   context is one of the above). The panic is caught; the handler stays usable.
    pub fn handle(&self, request: &[u8]) -> Result<Vec<u8>, Error> {
        let answered = self.run(request).map_err(|failure| failure.error)?;
        if let Some(summary) = &answered.summary {
            debug!(
                "{summary}, {} bytes in, {} bytes out, {:?}",
                request.len(),
                answered.reply.len(),
                summary.started.elapsed()
            );
        }
        Ok(answered.reply)
    }

    /// As [`handle`](Self::handle), keeping the target of a request that did not decode
    /// when it was read before the problem, for the HTTP fronts' log lines (every other
    /// error names its address itself: [`Error::address`]), and returning what the batch
    /// was instead of logging it, so that a front logs one line per request.
    pub(crate) fn run(&self, request: &[u8]) -> Result<Answered, Refused> {
        // Timed for the metrics and for the debug line: without either, no clock is read.
        let started = (self.measured() || log_enabled!(Level::Debug)).then(Instant::now);
        let outcome = match self.protocol.decode_request(request, self.limits) {
            Ok(batch) => self.run_batch(batch, started).map_err(|error| Refused {
                error,
                target: None,
            }),
            Err(refused) => Err(refused),
        };
        #[cfg(feature = "metrics")]
        if let Err(refused) = &outcome {
            self.count_refused(refused);
        }
        outcome
    }

    /// Whether the handler counts in a registry ([`with_metrics`](Self::with_metrics)).
    #[inline]
    fn measured(&self) -> bool {
        #[cfg(feature = "metrics")]
        return self.unknown.is_some();
        #[cfg(not(feature = "metrics"))]
        false
    }

    /// Counts a refused request in the series of its target's function type, when the
    /// error names the target or the protocol read it before the problem, and a function
    /// is bound to that type; in `unknown`'s otherwise.
    #[cfg(feature = "metrics")]
    #[cold]
    fn count_refused(&self, refused: &Refused) {
        let Some(unknown) = &self.unknown else {
            return;
        };
        let series = refused
            .error
            .address()
            .or(refused.target.as_deref())
            .and_then(|target| self.functions.get(target.function_type()))
            .and_then(BoundFunction::metrics)
            .unwrap_or(unknown);
        series.refused(&refused.error);
    }

    /// Runs a decoded batch; `started` (the debug level is on, or the handler is measured)
    /// asks for a [`Summary`] (when the debug level is on) and times the batch.
    fn run_batch(&self, batch: Batch<'_>, started: Option<Instant>) -> Result<Answered, Error> {
        let Some(function) = self.functions.get(batch.target.function_type()) else {
            return Err(Error::UnknownFunctionType {
                address: Box::new(batch.target),
            });
        };
        self.run_bound(batch, function, started)
    }

    /// Runs a decoded batch with the function bound to its target, and counts it in the
    /// function's series when the handler is measured (`started` is then set).
    #[inline]
    fn run_bound(
        &self,
        batch: Batch<'_>,
        function: &BoundFunction,
        started: Option<Instant>,
    ) -> Result<Answered, Error> {
        let carried = |state: &&StateSpec| batch.states.position(state.name()).is_some();
        if !function
            .declared_states()
            .iter()
            .all(|state| carried(&state))
        {
            let summary = self.summarized(started).map(|started| {
                let missing = function.declared_states().iter().filter(|s| !carried(s));
                Summary::new(started, &batch.target, Work::Handshake(missing.count()))
            });
            let mut missing = function.declared_states().iter().filter(|s| !carried(s));
            let reply = self.protocol.missing_states(batch.target, &mut missing)?;
            #[cfg(feature = "metrics")]
            if let Some(series) = function.metrics() {
                series.handshake();
            }
            return Ok(Answered {
                reply,
                summary,
                invocations: None,
            });
        }

        let invocations = batch.invocations.len();
        let target = batch.target;
        let mut ctx = Context::new(
            self.protocol,
            &target,
            function.declared_states(),
            batch.states,
            &batch.invocations,
        );
        for (index, invocation) in batch.invocations.iter().enumerate() {
            ctx.begin_invocation(index);
            // AssertUnwindSafe: after a panic the Context is dropped unread, so no
            // half-updated state can reach a reply.
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                function.call(&mut ctx, &invocation.argument)
            }));
            let failure = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => function_error(&ctx, index, error),
                Err(payload) => Error::FunctionPanicked {
                    address: Box::new(target.clone()),
                    invocation: index,
                    message: panic_message(payload.as_ref()),
                },
            };
            return Err(failure);
        }
        let reply = ctx.encode_reply();
        #[cfg(feature = "metrics")]
        if let (Some(series), Some(started)) = (function.metrics(), started) {
            let states = crate::metrics::StateBytes {
                read: ctx.read_bytes(),
                written: ctx.written_bytes(),
            };
            series.answered(invocations, states, started.elapsed());
        }
        let summary = self.summarized(started).map(|started| {
            let work = Work::Batch {
                invocations,
                states_changed: ctx.changed_states(),
            };
            Summary::new(started, ctx.address(), work)
        });
        Ok(Answered {
            reply,
            summary,
            invocations: Some(invocations),
        })
    }

    /// `started`, when the batch is to be summed up for the debug line: a measured
    /// handler reads the clock whatever the level.
    #[inline]
    fn summarized(&self, started: Option<Instant>) -> Option<Instant> {
        started.filter(|_| !self.measured() || log_enabled!(Level::Debug))
    }
}

/// A batch answered: the reply, and what the batch was when it is to be logged.
pub(crate) struct Answered {
    pub(crate) reply: Vec<u8>,
    /// Only when the debug level is on.
    pub(crate) summary: Option<Summary>,
    /// The invocations the batch ran; `None` for a 3.x handshake reply (nothing ran).
    /// The crate's server paces replies by it ([`ServerBuilder::grow_batches`]).
    ///
    /// [`ServerBuilder::grow_batches`]: crate::http::ServerBuilder::grow_batches
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) invocations: Option<usize>,
}

/// What one answered batch was, for its one debug line (by `handle()`, or by the HTTP
/// front that adds the status): `function type example/count, id joe: 2 invocations, 1
/// states changed`.
pub(crate) struct Summary {
    /// When the handler started on the batch.
    pub(crate) started: Instant,
    function_type: String,
    id: String,
    work: Work,
}

/// What the handler did with a batch.
enum Work {
    /// Ran its invocations.
    Batch {
        invocations: usize,
        states_changed: usize,
    },
    /// Answered with the 3.x handshake: this many declared states were missing.
    Handshake(usize),
}

impl Summary {
    fn new(started: Instant, address: &Address, work: Work) -> Self {
        Summary {
            started,
            function_type: address.function_type().to_string(),
            id: address.id().to_owned(),
            work,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "function type {}, id {}: ",
            Shown(&self.function_type),
            Shown(&self.id)
        )?;
        match self.work {
            Work::Batch {
                invocations,
                states_changed,
            } => write!(
                f,
                "{invocations} invocations, {states_changed} states changed"
            ),
            Work::Handshake(missing) => write!(
                f,
                "the handshake reply, the request lacks {missing} declared states"
            ),
        }
    }
}

/// The error a function's failure becomes. The request-caused errors a function passes up
/// with `?` keep their own variant (and so their 400 status); everything else is a
/// [`Error::FunctionFailed`] around the function's error.
fn function_error(ctx: &Context<'_>, index: usize, error: anyhow::Error) -> Error {
    // Only an error passed up as it is keeps its variant: under a function's own
    // `.context(...)` it stays inside `FunctionFailed`, context and all (whose status
    // still says 400: see `Error::status`).
    let passed_up_as_it_is = error
        .chain()
        .next()
        .and_then(|top| top.downcast_ref::<Error>())
        .is_some_and(Error::is_caused_by_request_data);
    let source = if passed_up_as_it_is {
        match error.downcast::<Error>() {
            Ok(error) => return error,
            Err(error) => error,
        }
    } else {
        error
    };
    Error::FunctionFailed {
        address: Box::new(ctx.address().clone()),
        invocation: index,
        source,
    }
}

fn panic_message(payload: &(dyn PanicPayload + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "the panic carried no message".to_owned()
    }
}
