//! [`LocalRuntime`]: the Flink runtime's side of the protocol, in process, on a virtual
//! clock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use prost::bytes::Bytes;
use prost::{Message, Name};
use prost_types::Any;

use super::http_client::{self, Endpoint};
use super::{
    invocation_result, read_kafka_record, read_kinesis_record, KafkaRecord, KinesisRecord,
    RemoteError,
};
use crate::address::{Address, FunctionType};
use crate::error::Error;
use crate::handler::RequestReplyHandler;
use crate::message::pack;
use crate::message::{unpack, UnpackError};
use crate::proto::polyglot::{self as proto, from_function, to_function};
use crate::registry::StatefulFunctions;
use crate::text::Shown;

/// An in-process stand-in for the Flink Stateful Functions runtime, to run a whole app
/// in a test or on a laptop: no cluster, no Kafka, no waiting.
///
/// It drives the functions of a [`StatefulFunctions`] registry through the same bytes as
/// production: for every batch it builds a `ToFunction`, calls
/// [`RequestReplyHandler::handle`] (or POSTs it to a [remote
/// endpoint](Self::route_to_endpoint)), decodes the `FromFunction` and applies it as the
/// runtime does:
///
/// - **State.** Each address has the states its function type declares: those its
///   [`Binding`](crate::Binding) declares, plus those given to
///   [`declare_states`](Self::declare_states). Every request carries all of them (empty
///   when without a value); a reply's `MODIFY` and `DELETE` mutations are applied; a
///   mutation of a state that is not declared fails the batch.
/// - **Batching.** One request is in flight per address: the messages that arrive for an
///   address before its turn go together in its next batch, up to the binding's
///   `max_num_batch_requests`, else [`max_batch_size`](Self::max_batch_size)
///   (default [`DEFAULT_MAX_BATCH_SIZE`](Self::DEFAULT_MAX_BATCH_SIZE), as the runtime).
/// - **Order.** Deterministic: addresses with pending messages take turns first come,
///   first served (an address joins the back of the queue when its first pending message
///   arrives, and again after a turn that left messages behind); a batch holds the
///   address's oldest messages in arrival order; the messages a reply sends arrive in
///   the reply's order, after the batch.
/// - **Time.** A virtual clock, starting at zero, that only [`advance`](Self::advance)
///   moves: delayed messages arrive when it reaches their due time, in due-time order,
///   ties in the order they were sent, and each due time's work runs to completion
///   before the clock moves on. A 30-minute timer takes no real time.
/// - **Ingress and egress.** [`send`](Self::send) delivers a message without a caller,
///   as from an ingress; messages to an egress are recorded per egress
///   ([`egress`](Self::egress)).
/// - **Failure.** A batch that fails (the function returned an error or panicked, the
///   handler refused the request, a remote endpoint did not answer with a reply) is not
///   applied: no state changes, no messages, no egress. The error names the address and
///   the message, and the runtime stops, as a Flink job fails: later
///   [`send`](Self::send), [`run`](Self::run) and [`advance`](Self::advance) return
///   [`RuntimeError::Stopped`]. The states stay readable.
///
/// Not simulated: retries (the runtime retries a failed call until the function's
/// timeout; here the first failure counts), checkpoints and restarts, and state
/// expiration (`expireAfter`).
///
/// ```
/// use statefun_sync::testing::LocalRuntime;
/// use statefun_sync::StatefulFunctions;
///
/// let mut functions = StatefulFunctions::new();
/// functions.bind("example/ping", |ctx, message| Ok(ctx.send("example/pong", "p", message)?))?;
/// functions.bind("example/pong", |ctx, message| Ok(ctx.send_egress("example/out", message)?))?;
///
/// let mut runtime = LocalRuntime::new(functions);
/// runtime.pack_and_send("example/ping", "1", &prost_types::Duration::default())?;
/// let batches = runtime.run()?;
/// assert_eq!(batches, 2);
/// assert_eq!(runtime.egress("example/out").len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LocalRuntime {
    handler: RequestReplyHandler,
    /// Per function type: states declared with `declare_states`, beyond the binding's.
    extra_states: HashMap<FunctionType, Vec<String>>,
    remotes: HashMap<FunctionType, Endpoint>,
    max_batch_size: usize,
    max_batches_per_run: usize,
    remote_timeout: Duration,
    /// Per address: the states that have a value, as serialized `Any`s.
    states: BTreeMap<Address, BTreeMap<String, Bytes>>,
    mailboxes: HashMap<Address, VecDeque<Envelope>>,
    /// The addresses with pending messages, each once, in the order they take turns.
    ready: VecDeque<Address>,
    /// Delayed messages by due time, then by the order they were sent.
    timers: BTreeMap<(Duration, u64), (Address, Envelope)>,
    timers_sent: u64,
    now: Duration,
    egresses: BTreeMap<String, Vec<Any>>,
    history: Vec<BatchRecord>,
    /// Why the runtime stopped, once a batch failed.
    stopped: Option<String>,
}

/// A message on its way to a function: who sent it (`None` from an ingress) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The sending function, or `None` when the message came from an ingress.
    pub caller: Option<Address>,
    /// The message.
    pub argument: Any,
}

impl Envelope {
    /// The message unpacked into `M`.
    ///
    /// # Errors
    ///
    /// [`UnpackError`] if it holds another message type, or does not decode.
    pub fn unpack<M: Message + Name + Default>(&self) -> Result<M, UnpackError> {
        unpack(&self.argument)
    }
}

/// One batch that [`LocalRuntime`] sent: when, to whom, how many messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    /// The virtual time, since the runtime was created.
    pub at: Duration,
    /// The address invoked.
    pub target: Address,
    /// How many invocations the batch carried.
    pub size: usize,
}

/// What went wrong in a [`LocalRuntime`].
#[derive(Debug)]
#[non_exhaustive]
pub enum RuntimeError {
    /// A batch for a function in the registry failed: the handler returned `source`
    /// (a function error or panic, an unknown function type, a missing state...). The
    /// batch was not applied and the runtime stopped.
    FunctionFailed {
        /// The address invoked (boxed to keep `Result<_, RuntimeError>` small).
        address: Box<Address>,
        /// The message that caused it: the invocation `source` names, or the batch's
        /// first message when the error is about the whole batch.
        message: Box<Envelope>,
        /// What the handler returned.
        source: Error,
    },
    /// A batch for a function routed to a remote endpoint did not get a reply. The batch
    /// was not applied and the runtime stopped.
    RemoteFailed {
        /// The address invoked (boxed to keep `Result<_, RuntimeError>` small).
        address: Box<Address>,
        /// The batch's first message (a remote error does not say which one failed).
        message: Box<Envelope>,
        /// The endpoint's URL.
        endpoint: String,
        /// Why there is no reply.
        source: RemoteError,
    },
    /// A reply changed a state that its function type does not declare; the runtime
    /// fails the job on this. The batch was not applied and the runtime stopped.
    UndeclaredStateMutation {
        /// The address invoked (boxed to keep `Result<_, RuntimeError>` small).
        address: Box<Address>,
        /// The state's name.
        state: String,
    },
    /// The runtime stopped at an earlier failure, and runs nothing more.
    Stopped {
        /// The earlier failure, with its causes.
        cause: String,
    },
    /// One call to [`run`](LocalRuntime::run) or [`advance`](LocalRuntime::advance) ran
    /// its maximum number of batches and messages were still pending: most likely
    /// functions that message each other forever. The runtime did not stop; the pending
    /// messages stay queued.
    BatchLimitReached {
        /// The limit ([`LocalRuntime::max_batches_per_run`]).
        limit: usize,
        /// How many messages were pending, delayed ones due by then included.
        pending: usize,
    },
    /// A function type, id or endpoint given to the runtime is malformed.
    InvalidArgument {
        /// What is wrong: [`Error::InvalidTypename`] or [`Error::InvalidArgument`].
        source: Error,
    },
    /// A state was read or set that the function type does not declare.
    UnknownState {
        /// The function type.
        function_type: FunctionType,
        /// The state's name.
        state: String,
    },
    /// A state's value is not a serialized `Any`, or not the message type asked for.
    UnreadableState {
        /// The address (boxed to keep `Result<_, RuntimeError>` small).
        address: Box<Address>,
        /// The state's name.
        state: String,
        /// Why it cannot be read.
        source: UnpackError,
    },
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::FunctionFailed {
                address,
                message,
                source,
            } => {
                write!(
                    f,
                    "the batch for {} failed at the message {}",
                    Shown(&address.to_string()),
                    Described(message)
                )?;
                // The handler's text speaks of module.yaml; here the states come from the
                // bindings and `declare_states`.
                if let Some(state) = undeclared_state(source) {
                    write!(
                        f,
                        " (locally, declare state {} with `.state(...)` on the binding, or \
                         with `LocalRuntime::declare_states`)",
                        Shown(state)
                    )?;
                }
                Ok(())
            }
            RuntimeError::RemoteFailed {
                address,
                message,
                endpoint,
                ..
            } => write!(
                f,
                "the batch for {} (first message {}) got no reply from {}",
                Shown(&address.to_string()),
                Described(message),
                Shown(endpoint)
            ),
            RuntimeError::UndeclaredStateMutation { address, state } => write!(
                f,
                "the reply for {} changes state {}, which {} does not declare",
                Shown(&address.to_string()),
                Shown(state),
                Shown(&address.function_type().to_string())
            ),
            RuntimeError::Stopped { cause } => {
                write!(
                    f,
                    "the local runtime stopped at an earlier failure: {cause}"
                )
            }
            RuntimeError::BatchLimitReached { limit, pending } => write!(
                f,
                "ran {limit} batches and {pending} messages are still pending (do functions \
                 message each other forever? raise the limit with max_batches_per_run)"
            ),
            RuntimeError::InvalidArgument { .. } => f.write_str("invalid argument"),
            RuntimeError::UnknownState {
                function_type,
                state,
            } => write!(
                f,
                "{} does not declare state {} (declare it on the binding or with \
                 declare_states)",
                Shown(&function_type.to_string()),
                Shown(state)
            ),
            RuntimeError::UnreadableState { address, state, .. } => {
                write!(
                    f,
                    "cannot read state {} of {}",
                    Shown(state),
                    Shown(&address.to_string())
                )
            }
        }
    }
}

impl StdError for RuntimeError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            RuntimeError::FunctionFailed { source, .. }
            | RuntimeError::InvalidArgument { source } => Some(source),
            RuntimeError::RemoteFailed { source, .. } => Some(source),
            RuntimeError::UnreadableState { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl RuntimeError {
    /// The error and its causes, joined with `: `, escaped and bounded as
    /// [`Error::report`] is.
    pub fn report(&self) -> String {
        crate::error::report_of(self)
    }
}

/// A message for an error text: its type URL and caller.
struct Described<'a>(&'a Envelope);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Shown: a type URL from a remote function may hold anything.
        write!(f, "{}", Shown(&self.0.argument.type_url))?;
        match &self.0.caller {
            Some(caller) => write!(f, " from {}", Shown(&caller.to_string())),
            None => f.write_str(" from an ingress"),
        }
    }
}

impl LocalRuntime {
    /// The most messages one batch carries unless configured: the runtime's default
    /// `maxNumBatchRequests`.
    pub const DEFAULT_MAX_BATCH_SIZE: usize = 1000;

    /// The most batches one [`run`](Self::run) or [`advance`](Self::advance) runs unless
    /// configured.
    pub const DEFAULT_MAX_BATCHES_PER_RUN: usize = 100_000;

    /// The default bound on connecting to a remote endpoint and on each read and write:
    /// the runtime's default connect, read and write timeouts.
    pub const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(10);

    /// A runtime for the functions in `functions`, at virtual time zero, with no state
    /// and no pending messages.
    pub fn new(functions: StatefulFunctions) -> Self {
        LocalRuntime {
            handler: RequestReplyHandler::new(functions),
            extra_states: HashMap::new(),
            remotes: HashMap::new(),
            max_batch_size: Self::DEFAULT_MAX_BATCH_SIZE,
            max_batches_per_run: Self::DEFAULT_MAX_BATCHES_PER_RUN,
            remote_timeout: Self::DEFAULT_REMOTE_TIMEOUT,
            states: BTreeMap::new(),
            mailboxes: HashMap::new(),
            ready: VecDeque::new(),
            timers: BTreeMap::new(),
            timers_sent: 0,
            now: Duration::ZERO,
            egresses: BTreeMap::new(),
            history: Vec::new(),
            stopped: None,
        }
    }

    /// Declares states for the function type `typename`, beyond those its binding
    /// declares: what `module.yaml` would list. Needed for a function
    /// [routed to an endpoint](Self::route_to_endpoint), and for a bound function that
    /// uses states without declaring them on its binding. Declaring a state twice is
    /// harmless.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::InvalidArgument`] if `typename` is not `namespace/name`.
    pub fn declare_states<S: Into<String>>(
        mut self,
        typename: &str,
        states: impl IntoIterator<Item = S>,
    ) -> Result<Self, RuntimeError> {
        let function_type = typename.parse::<FunctionType>().map_err(invalid)?;
        let declared = self.extra_states.entry(function_type).or_default();
        for state in states {
            let state = state.into();
            if !declared.contains(&state) {
                declared.push(state);
            }
        }
        Ok(self)
    }

    /// Sends the batches for function type `typename` to the remote function at `url`
    /// (`http://host:port/path`) instead of the registry, as a `POST` of the
    /// `ToFunction` bytes; the answer must be a 2xx with content type
    /// `application/octet-stream` and a `FromFunction` body, as the runtime requires.
    /// The remote function's states must be declared with
    /// [`declare_states`](Self::declare_states).
    ///
    /// The client is blocking, one connection per batch, bounded by
    /// [`remote_timeout`](Self::remote_timeout). Use a loopback address in tests.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::InvalidArgument`] if `typename` is not `namespace/name`, or `url`
    /// is not an `http://` URL with a host.
    pub fn route_to_endpoint(mut self, typename: &str, url: &str) -> Result<Self, RuntimeError> {
        let function_type = typename.parse::<FunctionType>().map_err(invalid)?;
        let endpoint = Endpoint::parse(url).map_err(|reason| {
            invalid(Error::InvalidArgument {
                operation: "LocalRuntime::route_to_endpoint",
                reason: format!("endpoint {url:?}: {reason}"),
            })
        })?;
        self.remotes.insert(function_type, endpoint);
        Ok(self)
    }

    /// Sets the most messages one batch carries for function types whose binding does
    /// not set `max_num_batch_requests` (remote ones included); 0 counts as 1.
    pub fn max_batch_size(mut self, max: usize) -> Self {
        self.max_batch_size = max.max(1);
        self
    }

    /// Sets the most batches one [`run`](Self::run) or [`advance`](Self::advance) runs
    /// before it returns [`RuntimeError::BatchLimitReached`]; 0 counts as 1.
    pub fn max_batches_per_run(mut self, max: usize) -> Self {
        self.max_batches_per_run = max.max(1);
        self
    }

    /// Sets the bound on connecting to a remote endpoint and on each read and write.
    pub fn remote_timeout(mut self, timeout: Duration) -> Self {
        self.remote_timeout = timeout;
        self
    }

    /// Queues `message` for the instance `id` of `typename`, without a caller, as an
    /// ingress would. Nothing runs until [`run`](Self::run) or [`advance`](Self::advance):
    /// messages sent meanwhile to one address go in one batch.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::InvalidArgument`] if `typename` is not `namespace/name` or `id`
    /// is empty; [`RuntimeError::Stopped`] after a failure.
    pub fn send(&mut self, typename: &str, id: &str, message: Any) -> Result<(), RuntimeError> {
        self.check_running()?;
        let address = Address::from_typename(typename, id).map_err(invalid)?;
        if id.is_empty() {
            return Err(invalid(Error::InvalidArgument {
                operation: "LocalRuntime::send",
                reason: format!("the id of the target of type `{typename}` is empty"),
            }));
        }
        self.deliver(
            address,
            Envelope {
                caller: None,
                argument: message,
            },
        );
        Ok(())
    }

    /// Packs `message` into an `Any` and [sends](Self::send) it.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn pack_and_send<M: Message + Name>(
        &mut self,
        typename: &str,
        id: &str,
        message: &M,
    ) -> Result<(), RuntimeError> {
        self.send(typename, id, pack(message))
    }

    /// Runs batches until no message is pending, delayed messages due by now included,
    /// and returns how many batches ran. The clock does not move.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::FunctionFailed`], [`RuntimeError::RemoteFailed`] or
    /// [`RuntimeError::UndeclaredStateMutation`] for a batch that failed (it is not
    /// applied, and the runtime stops); [`RuntimeError::BatchLimitReached`] if
    /// messages are still pending after the maximum number of batches;
    /// [`RuntimeError::Stopped`] after an earlier failure.
    pub fn run(&mut self) -> Result<usize, RuntimeError> {
        self.run_until(self.now)
    }

    /// Moves the virtual clock forward by `by`, running everything that happens
    /// meanwhile: first the pending messages, then, in due-time order, each delayed
    /// message that falls due (ties in the order they were sent) with all it causes.
    /// Returns how many batches ran.
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run). After an error the clock stays at the time of the failure
    /// or the limit.
    pub fn advance(&mut self, by: Duration) -> Result<usize, RuntimeError> {
        let until = self.now.saturating_add(by);
        let batches = self.run_until(until)?;
        self.now = until;
        Ok(batches)
    }

    /// The virtual time since the runtime was created.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// How many messages wait for their address's turn (delayed ones not included).
    pub fn pending_messages(&self) -> usize {
        self.mailboxes.values().map(VecDeque::len).sum()
    }

    /// The delayed messages not delivered yet: due time and target, in delivery order.
    pub fn pending_delayed(&self) -> impl Iterator<Item = (Duration, &Address)> + '_ {
        self.timers
            .iter()
            .map(|((due, _), (target, _))| (*due, target))
    }

    /// Every batch sent so far, in order.
    pub fn history(&self) -> &[BatchRecord] {
        &self.history
    }

    /// The messages sent to the egress `typename` (`namespace/name`) so far, in order;
    /// empty if none.
    pub fn egress(&self, typename: &str) -> &[Any] {
        self.egresses.get(typename).map_or(&[], Vec::as_slice)
    }

    /// The messages sent to the egress `typename` so far, each unpacked into `M`.
    ///
    /// # Errors
    ///
    /// The first [`UnpackError`]: a message of another type, or one that does not
    /// decode.
    pub fn egress_as<M: Message + Name + Default>(
        &self,
        typename: &str,
    ) -> Result<Vec<M>, UnpackError> {
        self.egress(typename).iter().map(unpack).collect()
    }

    /// The Kafka records sent to the egress `typename` so far, their values decoded as
    /// `M` (see [`read_kafka_record`](super::read_kafka_record)).
    ///
    /// ```
    /// use statefun_sync::testing::LocalRuntime;
    /// use statefun_sync::{kafka_egress_record, StatefulFunctions};
    ///
    /// let mut functions = StatefulFunctions::new();
    /// functions.bind_typed("example/f", |ctx, seen: prost_types::Duration| {
    ///     let id = ctx.address().id().to_owned();
    ///     let record = kafka_egress_record("seen", &id, &seen)?;
    ///     Ok(ctx.pack_and_send_egress("example/out", &record)?)
    /// })?;
    /// let mut runtime = LocalRuntime::new(functions);
    /// let seen = prost_types::Duration { seconds: 4, nanos: 0 };
    /// runtime.pack_and_send("example/f", "alice", &seen)?;
    /// runtime.run()?;
    ///
    /// let records = runtime.kafka_records::<prost_types::Duration>("example/out")?;
    /// assert_eq!((records[0].topic.as_str(), records[0].key.as_str()), ("seen", "alice"));
    /// assert_eq!(records[0].value, seen);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The first [`UnpackError`]: a message that is no Kafka record, or whose value does
    /// not decode.
    pub fn kafka_records<M: Message + Name + Default>(
        &self,
        typename: &str,
    ) -> Result<Vec<KafkaRecord<M>>, UnpackError> {
        self.egress(typename)
            .iter()
            .map(read_kafka_record)
            .collect()
    }

    /// The Kinesis records sent to the egress `typename` so far, their values decoded
    /// as `M` (see [`read_kinesis_record`](super::read_kinesis_record)).
    ///
    /// # Errors
    ///
    /// The first [`UnpackError`]: a message that is no Kinesis record, or whose value
    /// does not decode.
    pub fn kinesis_records<M: Message + Name + Default>(
        &self,
        typename: &str,
    ) -> Result<Vec<KinesisRecord<M>>, UnpackError> {
        self.egress(typename)
            .iter()
            .map(read_kinesis_record)
            .collect()
    }

    /// Takes the messages sent to the egress `typename` so far, leaving it empty.
    pub fn take_egress(&mut self, typename: &str) -> Vec<Any> {
        self.egresses.remove(typename).unwrap_or_default()
    }

    /// The egresses that received messages, in name order.
    pub fn egress_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.egresses.keys().map(String::as_str)
    }

    /// The current value of the state `name` of the instance `id` of `typename`, or
    /// `None` when it has no value.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::InvalidArgument`] if `typename` is not `namespace/name`;
    /// [`RuntimeError::UnknownState`] if the function type does not declare `name`;
    /// [`RuntimeError::UnreadableState`] if the value is not a serialized `Any` (a
    /// remote function can store any bytes).
    pub fn state(&self, typename: &str, id: &str, name: &str) -> Result<Option<Any>, RuntimeError> {
        let address = Address::from_typename(typename, id).map_err(invalid)?;
        self.check_declared(&address, name)?;
        let Some(bytes) = self.states.get(&address).and_then(|s| s.get(name)) else {
            return Ok(None);
        };
        if bytes.is_empty() {
            return Ok(None);
        }
        Any::decode(bytes.as_ref())
            .map(Some)
            .map_err(|source| RuntimeError::UnreadableState {
                address: Box::new(address),
                state: name.to_owned(),
                source: UnpackError::Malformed {
                    type_url: "google.protobuf.Any".to_owned(),
                    source,
                },
            })
    }

    /// The current value of the state `name` of the instance `id` of `typename`,
    /// unpacked into `M`, or `None` when it has no value.
    ///
    /// # Errors
    ///
    /// As [`state`](Self::state), and [`RuntimeError::UnreadableState`] if the value
    /// holds another message type or does not decode.
    pub fn unpack_state<M: Message + Name + Default>(
        &self,
        typename: &str,
        id: &str,
        name: &str,
    ) -> Result<Option<M>, RuntimeError> {
        let Some(any) = self.state(typename, id, name)? else {
            return Ok(None);
        };
        unpack(&any)
            .map(Some)
            .map_err(|source| RuntimeError::UnreadableState {
                // `state` succeeded, so the typename parses.
                address: Box::new(Address::from_typename(typename, id).unwrap_or_default()),
                state: name.to_owned(),
                source,
            })
    }

    /// Sets the state `name` of the instance `id` of `typename` to `value` (`None`
    /// clears it), as if a reply had: to start a test from a given state.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::InvalidArgument`] if `typename` is not `namespace/name`;
    /// [`RuntimeError::UnknownState`] if the function type does not declare `name`.
    pub fn set_state(
        &mut self,
        typename: &str,
        id: &str,
        name: &str,
        value: Option<Any>,
    ) -> Result<(), RuntimeError> {
        let address = Address::from_typename(typename, id).map_err(invalid)?;
        self.check_declared(&address, name)?;
        let states = self.states.entry(address).or_default();
        match value {
            Some(any) => {
                states.insert(name.to_owned(), Bytes::from(any.encode_to_vec()));
            }
            None => {
                states.remove(name);
            }
        }
        Ok(())
    }

    fn check_running(&self) -> Result<(), RuntimeError> {
        match &self.stopped {
            Some(cause) => Err(RuntimeError::Stopped {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn check_declared(&self, address: &Address, name: &str) -> Result<(), RuntimeError> {
        if self.declared_states(address).contains(&name) {
            Ok(())
        } else {
            Err(RuntimeError::UnknownState {
                function_type: address.function_type().clone(),
                state: name.to_owned(),
            })
        }
    }

    /// The states the runtime sends to `address`: the binding's (unless the type is
    /// routed to an endpoint), then those given to `declare_states`.
    fn declared_states(&self, address: &Address) -> Vec<&str> {
        let function_type = address.function_type();
        let mut names: Vec<&str> = Vec::new();
        if !self.remotes.contains_key(function_type) {
            if let Some(function) = self.handler.functions().get(function_type) {
                names.extend(function.declared_states().iter().map(|s| s.name()));
            }
        }
        if let Some(extra) = self.extra_states.get(function_type) {
            for name in extra {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        names
    }

    fn max_batch_for(&self, address: &Address) -> usize {
        if self.remotes.contains_key(address.function_type()) {
            return self.max_batch_size;
        }
        self.handler
            .functions()
            .get(address.function_type())
            .and_then(|function| function.max_num_batch_requests())
            .map_or(self.max_batch_size, |max| (max as usize).max(1))
    }

    /// Puts `envelope` in `address`'s mailbox; the address queues for a turn if it had
    /// nothing pending.
    fn deliver(&mut self, address: Address, envelope: Envelope) {
        let mailbox = self.mailboxes.entry(address.clone()).or_default();
        if mailbox.is_empty() {
            self.ready.push_back(address);
        }
        mailbox.push_back(envelope);
    }

    /// Moves the delayed messages due by `self.now` into the mailboxes, in order.
    fn deliver_due(&mut self) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let (target, envelope) = entry.remove();
            self.deliver(target, envelope);
        }
    }

    fn run_until(&mut self, until: Duration) -> Result<usize, RuntimeError> {
        self.check_running()?;
        let mut batches = 0;
        loop {
            self.deliver_due();
            if let Some(address) = self.ready.pop_front() {
                if batches == self.max_batches_per_run {
                    self.ready.push_front(address);
                    let due = self.timers.range(..=(until, u64::MAX)).count();
                    return Err(RuntimeError::BatchLimitReached {
                        limit: self.max_batches_per_run,
                        pending: self.pending_messages() + due,
                    });
                }
                batches += 1;
                self.run_batch(address)?;
                continue;
            }
            match self.timers.first_key_value() {
                Some((&(due, _), _)) if due <= until => self.now = due,
                _ => return Ok(batches),
            }
        }
    }

    /// Sends `address` its next batch and applies the reply; on failure, puts the batch
    /// back, unapplied, and stops.
    fn run_batch(&mut self, address: Address) -> Result<(), RuntimeError> {
        let size = self.max_batch_for(&address);
        let Some(mailbox) = self.mailboxes.get_mut(&address) else {
            return Ok(()); // Cannot happen: an address is ready only while it has mail.
        };
        let batch: Vec<Envelope> = mailbox.drain(..size.min(mailbox.len())).collect();
        if mailbox.is_empty() {
            self.mailboxes.remove(&address);
        } else {
            self.ready.push_back(address.clone());
        }
        self.history.push(BatchRecord {
            at: self.now,
            target: address.clone(),
            size: batch.len(),
        });

        match self.call(&address, &batch) {
            Ok(response) => {
                self.apply(address, response);
                Ok(())
            }
            Err(error) => {
                self.stopped = Some(error.report());
                // Not applied: the messages are still pending, as in a failed job.
                let mailbox = self.mailboxes.entry(address).or_default();
                for envelope in batch.into_iter().rev() {
                    mailbox.push_front(envelope);
                }
                Err(error)
            }
        }
    }

    /// One request-reply round trip for `batch`, checked but not applied.
    fn call(
        &self,
        address: &Address,
        batch: &[Envelope],
    ) -> Result<from_function::InvocationResponse, RuntimeError> {
        let declared = self.declared_states(address);
        let values = self.states.get(address);
        let request = proto::ToFunction {
            request: Some(to_function::Request::Invocation(
                to_function::InvocationBatchRequest {
                    target: Some(address.into()),
                    state: declared
                        .iter()
                        .map(|name| to_function::PersistedValue {
                            state_name: (*name).to_owned(),
                            state_value: values
                                .and_then(|v| v.get(*name))
                                .cloned()
                                .unwrap_or_default(),
                        })
                        .collect(),
                    invocations: batch
                        .iter()
                        .map(|envelope| to_function::Invocation {
                            caller: envelope.caller.as_ref().map(Into::into),
                            argument: Some(envelope.argument.clone()),
                        })
                        .collect(),
                },
            )),
        }
        .encode_to_vec();

        let response = match self.remotes.get(address.function_type()) {
            Some(endpoint) => self.call_remote(endpoint, &request).map_err(|source| {
                RuntimeError::RemoteFailed {
                    address: Box::new(address.clone()),
                    message: Box::new(batch[0].clone()),
                    endpoint: endpoint.url().to_owned(),
                    source,
                }
            })?,
            None => {
                let reply = self.handler.handle(&request).map_err(|source| {
                    let index = failed_invocation(&source).filter(|&i| i < batch.len());
                    RuntimeError::FunctionFailed {
                        address: Box::new(address.clone()),
                        message: Box::new(batch[index.unwrap_or(0)].clone()),
                        source,
                    }
                })?;
                // The handler's own reply always decodes; a default would apply nothing.
                decode_reply(&reply).unwrap_or_default()
            }
        };

        if let Some(mutation) = response
            .state_mutations
            .iter()
            .find(|m| !declared.contains(&m.state_name.as_str()))
        {
            return Err(RuntimeError::UndeclaredStateMutation {
                address: Box::new(address.clone()),
                state: mutation.state_name.clone(),
            });
        }
        Ok(response)
    }

    fn call_remote(
        &self,
        endpoint: &Endpoint,
        request: &[u8],
    ) -> Result<from_function::InvocationResponse, RemoteError> {
        let body = http_client::post_batch(endpoint, request, self.remote_timeout)?;
        decode_reply(&body).map_err(|reason| RemoteError::MalformedReply { reason })
    }

    /// Applies a checked reply of `address`, as the runtime does: state mutations, then
    /// messages, delayed messages and egress messages, each in the reply's order.
    fn apply(&mut self, address: Address, response: from_function::InvocationResponse) {
        let states = self.states.entry(address.clone()).or_default();
        for mutation in response.state_mutations {
            let modify = mutation.mutation_type
                == from_function::persisted_value_mutation::MutationType::Modify as i32;
            if modify && !mutation.state_value.is_empty() {
                states.insert(mutation.state_name, mutation.state_value);
            } else {
                states.remove(&mutation.state_name);
            }
        }
        if states.is_empty() {
            self.states.remove(&address);
        }
        for message in response.outgoing_messages {
            let envelope = Envelope {
                caller: Some(address.clone()),
                argument: message.argument.unwrap_or_default(),
            };
            self.deliver(message.target.unwrap_or_default().into(), envelope);
        }
        for delayed in response.delayed_invocations {
            let delay = Duration::from_millis(delayed.delay_in_ms.max(0) as u64);
            let envelope = Envelope {
                caller: Some(address.clone()),
                argument: delayed.argument.unwrap_or_default(),
            };
            let key = (self.now.saturating_add(delay), self.timers_sent);
            self.timers_sent += 1;
            self.timers
                .insert(key, (delayed.target.unwrap_or_default().into(), envelope));
        }
        for egress in response.outgoing_egresses {
            self.egresses
                .entry(FunctionType::new(egress.egress_namespace, egress.egress_type).to_string())
                .or_default()
                .push(egress.argument.unwrap_or_default());
        }
    }
}

impl fmt::Debug for LocalRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRuntime")
            .field("functions", self.handler.functions())
            .field("extra_states", &self.extra_states)
            .field(
                "remotes",
                &self
                    .remotes
                    .iter()
                    .map(|(t, e)| (t, e.url()))
                    .collect::<Vec<_>>(),
            )
            .field("max_batch_size", &self.max_batch_size)
            .field("max_batches_per_run", &self.max_batches_per_run)
            .field("remote_timeout", &self.remote_timeout)
            .field("now", &self.now)
            .field("pending_messages", &self.pending_messages())
            .field("pending_delayed", &self.timers.len())
            .field("batches", &self.history.len())
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

fn invalid(source: impl Into<Error>) -> RuntimeError {
    RuntimeError::InvalidArgument {
        source: source.into(),
    }
}

/// The state a handler error says the request lacked, if that is what it says.
fn undeclared_state(error: &Error) -> Option<&str> {
    match error {
        Error::UnknownState { state, .. } | Error::MissingDeclaredState { state, .. } => {
            Some(state)
        }
        Error::FunctionFailed { source, .. } => source
            .chain()
            .find_map(|cause| cause.downcast_ref::<Error>())
            .and_then(undeclared_state),
        _ => None,
    }
}

/// The index of the invocation a handler error names, if it names one.
fn failed_invocation(error: &Error) -> Option<usize> {
    match error {
        Error::UnknownState { invocation, .. }
        | Error::UnexpectedMessageType { invocation, .. }
        | Error::MalformedArgument { invocation, .. }
        | Error::NoCaller { invocation, .. }
        | Error::FunctionFailed { invocation, .. }
        | Error::FunctionPanicked { invocation, .. } => Some(*invocation),
        _ => None,
    }
}

/// Decodes a `FromFunction` that must carry an invocation result, as the runtime requires.
fn decode_reply(bytes: &[u8]) -> Result<from_function::InvocationResponse, String> {
    invocation_result(bytes)
        .map_err(|e| format!("it does not decode as a FromFunction: {e}"))?
        .ok_or_else(|| "the FromFunction has no invocation_result (field 100)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_used_but_not_declared_is_explained_for_the_local_runtime() {
        let mut functions = StatefulFunctions::new();
        functions
            .bind("test/f", |ctx, _| {
                ctx.get_state("count")?;
                Ok(())
            })
            .unwrap();
        let mut runtime = LocalRuntime::new(functions);
        runtime.send("test/f", "a", Any::default()).unwrap();
        let report = runtime.run().unwrap_err().report();
        assert!(
            report.contains(
                "declare state `count` with `.state(...)` on the binding, or with \
                 `LocalRuntime::declare_states`"
            ),
            "{report}"
        );
    }
}
