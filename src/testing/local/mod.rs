//! [`LocalRuntime`]: the Flink runtime's side of the protocol, in process, on a virtual
//! clock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use prost::bytes::Bytes;
use prost::{Message, Name};
use prost_types::Any;

use super::http_client::{self, Endpoint, RemoteOptions};
use super::v3::{self, StateDeclaration};
use super::{
    read, read_kafka_record_v2, read_kinesis_record_v2, to_any, KafkaRecord, KinesisRecord,
    ReadError, RemoteError,
};
use crate::address::{Address, FunctionType};
use crate::error::Error;
use crate::handler::RequestReplyHandler;
use crate::message::{UnpackError, Value};
use crate::proto::polyglot::{self as proto, to_function};
use crate::proto::reqreply as proto3;
use crate::protocol::ProtocolVersion;
use crate::registry::StatefulFunctions;
use crate::state_spec::Expiration;
use crate::text::Shown;
use crate::types::Type;
use crate::value_spec::ValueSpec;

mod answer;
mod error;

use answer::{check_declaration, decode_answer, Answer, DelayedCommand, Outcome};
pub use error::RuntimeError;

/// The type the 3.x runtime gives a state declared with an empty typename.
const UNSET_TYPENAME: &str = "io.statefun.types/unset";

/// The most handshakes one batch may answer before the runtime gives up on it: each must
/// ask for a new state, so only a function that invents states forever reaches it.
const MAX_HANDSHAKES_PER_BATCH: usize = 100;

/// An in-process stand-in for the Flink Stateful Functions runtime, to run a whole app
/// in a test or on a laptop: no cluster, no Kafka, no waiting.
///
/// It drives the functions of a [`StatefulFunctions`] registry through the same bytes as
/// production: for every batch it builds a `ToFunction`, calls
/// [`RequestReplyHandler::handle`] (or POSTs it to a [remote
/// endpoint](Self::route_to_endpoint)), decodes the `FromFunction` and applies it as the
/// runtime does. [`v2`](Self::v2) speaks the 2.2 protocol, [`v3`](Self::v3) the 3.x
/// protocol, and [`from_handler`](Self::from_handler) the protocol of a handler built
/// beforehand; remote endpoints are spoken to in the same version.
///
/// - **State (2.2).** Each address has the states its function type declares: those its
///   [`Binding`](crate::Binding) declares, plus those given to
///   [`declare_states`](Self::declare_states). Every request carries all of them (empty
///   when without a value); a reply's `MODIFY` and `DELETE` mutations are applied; a
///   mutation of a state that is not declared fails the batch.
/// - **State (3.x).** As the 3.x runtime: it knows no state of a function type until the
///   function asks for it, so the first request for a type carries none. A reply with
///   the handshake (`incomplete_invocation_context`) registers the states it lists (name,
///   typename, expiration) for the whole function type, and the same batch is sent again
///   with every registered state attached, those without a value as no value. A later
///   handshake that gives a registered state another typename, a `MODIFY` whose typename
///   is not the registered one, and a mutation of an unregistered state fail the batch,
///   as they fail the job. States expire on the virtual clock: `AFTER_INVOKE` (the
///   SDKs' `expire_after_call`) when no request reached the address for the duration,
///   `AFTER_WRITE` when the state was not written for the duration.
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
/// - **Cancellation (3.x).** A delayed message sent with a cancellation token is removed
///   by a later cancellation with that token, as the runtime keys it: by the token and
///   the id of the address that sends or cancels (the runtime's state key is the id
///   alone, so functions of different types with one id share their tokens). A
///   cancellation of a message already delivered, or never sent, does nothing; a second
///   message with a token still pending, a cancellation with an empty token and a
///   negative delay fail the batch, as they fail the job.
/// - **Ingress and egress.** [`send`](Self::send) delivers a message without a caller,
///   as from an ingress; messages to an egress are recorded per egress
///   ([`egress`](Self::egress)).
/// - **Failure.** A batch that fails (the function returned an error or panicked, the
///   handler refused the request, a remote endpoint did not answer with a reply, the
///   reply asks for what the runtime refuses) is not applied: no state changes, no
///   messages, no egress. The error names the address and the message, and the runtime
///   stops, as a Flink job fails: later [`send`](Self::send), [`run`](Self::run) and
///   [`advance`](Self::advance) return [`RuntimeError::Stopped`]. The states stay
///   readable.
///
/// Not simulated: retries (the runtime retries a failed call until the function's
/// timeout; here the first failure counts), checkpoints and restarts, and, on 2.2, state
/// expiration (`expireAfter` in `module.yaml`).
///
/// ```
/// use statefun_sync::testing::LocalRuntime;
/// use statefun_sync::StatefulFunctions;
///
/// let mut functions = StatefulFunctions::new();
/// functions.bind("example/ping", |ctx, message| Ok(ctx.send("example/pong", "p", message)?))?;
/// functions.bind("example/pong", |ctx, message| Ok(ctx.send_egress("example/out", message)?))?;
///
/// let mut runtime = LocalRuntime::v2(functions);
/// runtime.send("example/ping", "1", &prost_types::Duration::default())?;
/// let batches = runtime.run()?;
/// assert_eq!(batches, 2);
/// assert_eq!(runtime.egress("example/out").len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// On 3.x, the handshake happens once per function type:
///
/// ```
/// use statefun_sync::testing::LocalRuntime;
/// use statefun_sync::{Context, Message, StatefulFunctions, ValueSpec};
///
/// const TOTAL: ValueSpec<i64> = ValueSpec::named("total");
///
/// let mut functions = StatefulFunctions::new();
/// functions
///     .bind_message("example/adder", |ctx: &mut Context, message: Message| {
///         let total = ctx.get(&TOTAL)?.unwrap_or(0) + message.get::<i64>()?.unwrap_or(0);
///         Ok(ctx.set(&TOTAL, &total)?)
///     })?
///     .state(&TOTAL);
///
/// let mut runtime = LocalRuntime::v3(functions)?;
/// runtime.send("example/adder", "a", &2i64)?;
/// runtime.run()?;
/// runtime.send("example/adder", "a", &3i64)?;
/// runtime.run()?;
/// assert_eq!(runtime.get("example/adder", "a", &TOTAL)?, Some(5));
/// // The first batch was sent twice: without states, then with them.
/// assert_eq!(runtime.history().len(), 3);
/// assert_eq!(runtime.registered_states("example/adder")[0].name, "total");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The guide's [Running an app locally](crate::guide::local_runtime) walks through an app
/// on it, with delayed messages, remote endpoints and the 3.x handshake.
pub struct LocalRuntime {
    handler: RequestReplyHandler,
    /// Per function type (2.2): states declared with `declare_states`, beyond the binding's.
    extra_states: HashMap<FunctionType, Vec<String>>,
    /// Per function type (3.x): the states registered through the handshake, in
    /// registration order.
    registered: HashMap<FunctionType, Vec<StateDeclaration>>,
    remotes: HashMap<FunctionType, Endpoint>,
    max_batch_size: usize,
    max_batches_per_run: usize,
    /// The timeout and TLS settings of the calls to remote endpoints.
    remote: RemoteOptions,
    /// Per address: the states that have a value.
    states: BTreeMap<Address, BTreeMap<String, Stored>>,
    mailboxes: HashMap<Address, VecDeque<Envelope>>,
    /// The addresses with pending messages, each once, in the order they take turns.
    ready: VecDeque<Address>,
    /// Delayed messages by due time, then by the order they were sent.
    timers: BTreeMap<TimerKey, Timer>,
    /// The pending delayed messages sent with a cancellation token (3.x), by the sender's
    /// id and the token.
    tokens: HashMap<(String, String), TimerKey>,
    timers_sent: u64,
    now: Duration,
    egresses: BTreeMap<String, Vec<Any>>,
    history: Vec<BatchRecord>,
    /// Why the runtime stopped, once a batch failed.
    stopped: Option<String>,
}

/// A delayed message's due time and the order it was sent in.
type TimerKey = (Duration, u64);

/// A delayed message waiting for its due time.
#[derive(Debug)]
struct Timer {
    target: Address,
    envelope: Envelope,
    /// The sender's id and the cancellation token, when it can be cancelled.
    token: Option<(String, String)>,
}

/// A state's value: on 2.2 the serialized `Any`, on 3.x the bytes of the `TypedValue`
/// (whose typename is the registered one); and when it was last written and last sent
/// or written, for expiration.
#[derive(Debug, Clone)]
struct Stored {
    bytes: Bytes,
    written: Duration,
    touched: Duration,
}

impl Stored {
    fn new(bytes: Bytes, now: Duration) -> Self {
        Stored {
            bytes,
            written: now,
            touched: now,
        }
    }

    /// Whether `expiration` has dropped the value by `now` (Flink's TTL: expired once
    /// `last update + TTL <= now`).
    fn expired(&self, expiration: Option<Expiration>, now: Duration) -> bool {
        match expiration {
            Some(Expiration::AfterCall(ttl)) => self.touched.saturating_add(ttl) <= now,
            Some(Expiration::AfterWrite(ttl)) => self.written.saturating_add(ttl) <= now,
            None => false,
        }
    }
}

/// A message on its way to a function: who sent it (`None` from an ingress) and what.
///
/// Its typed accessors (`typename`, `bytes`, `get`, `unpack`) are those of
/// [`Sent`](super::Sent).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The sending function, or `None` when the message came from an ingress.
    pub caller: Option<Address>,
    /// The message (on 3.x, its typename as the type URL).
    pub argument: Any,
    /// Whether the message has a value: a 3.x message can carry a typename alone, and
    /// arrives that way; always `true` on 2.2.
    pub has_value: bool,
}

/// One request that [`LocalRuntime`] sent: when, to whom, how many messages. On 3.x a
/// batch that needed the handshake is sent twice, and recorded twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    /// The virtual time, since the runtime was created.
    pub at: Duration,
    /// The address invoked.
    pub target: Address,
    /// How many invocations the batch carried.
    pub size: usize,
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

    /// A runtime for the functions in `functions` that speaks the 2.2 protocol, at
    /// virtual time zero, with no state and no pending messages.
    pub fn v2(functions: StatefulFunctions) -> Self {
        Self::from_handler(RequestReplyHandler::v2(functions))
    }

    /// A runtime for the functions in `functions` that speaks the 3.x protocol, as the
    /// Stateful Functions 3.0 to 3.3 runtimes do: the state handshake, typed values,
    /// cancellable delayed messages and state expiration, at virtual time zero, with no
    /// registered state and no pending messages.
    ///
    /// # Errors
    ///
    /// As [`RequestReplyHandler::v3`]: [`Error::UntypedState`] if a function declares a
    /// state by name only.
    pub fn v3(functions: StatefulFunctions) -> Result<Self, Error> {
        Ok(Self::from_handler(RequestReplyHandler::v3(functions)?))
    }

    /// A runtime for the functions of `handler`, speaking the handler's protocol version
    /// (to remote endpoints too), with the handler's limits.
    pub fn from_handler(handler: RequestReplyHandler) -> Self {
        LocalRuntime {
            handler,
            extra_states: HashMap::new(),
            registered: HashMap::new(),
            remotes: HashMap::new(),
            max_batch_size: Self::DEFAULT_MAX_BATCH_SIZE,
            max_batches_per_run: Self::DEFAULT_MAX_BATCHES_PER_RUN,
            remote: RemoteOptions::new(Self::DEFAULT_REMOTE_TIMEOUT),
            states: BTreeMap::new(),
            mailboxes: HashMap::new(),
            ready: VecDeque::new(),
            timers: BTreeMap::new(),
            tokens: HashMap::new(),
            timers_sent: 0,
            now: Duration::ZERO,
            egresses: BTreeMap::new(),
            history: Vec::new(),
            stopped: None,
        }
    }

    /// The protocol version the runtime speaks.
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.handler.protocol_version()
    }

    fn is_v3(&self) -> bool {
        self.protocol_version() == ProtocolVersion::V3
    }

    /// Declares states for the function type `typename`, beyond those its binding
    /// declares: what `module.yaml` would list (2.2). Needed for a function
    /// [routed to an endpoint](Self::route_to_endpoint), and for a bound function that
    /// uses states without declaring them on its binding. Declaring a state twice is
    /// harmless.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::InvalidArgument`] if `typename` is not `namespace/name`, or if the
    /// runtime speaks 3.x, where functions declare their states through the handshake.
    pub fn declare_states<S: Into<String>>(
        mut self,
        typename: &str,
        states: impl IntoIterator<Item = S>,
    ) -> Result<Self, RuntimeError> {
        let function_type = typename.parse::<FunctionType>().map_err(invalid)?;
        if self.is_v3() {
            return Err(invalid(Error::InvalidArgument {
                operation: "LocalRuntime::declare_states",
                reason: format!(
                    "a 3.x function declares its states through the handshake; {} needs no \
                     declaration here",
                    Shown(typename)
                ),
            }));
        }
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
    /// instead of the registry, as a `POST` of the `ToFunction` bytes, in the runtime's
    /// protocol version; the answer must be a 2xx with content type
    /// `application/octet-stream` and a `FromFunction` body, as the runtime requires (on
    /// 3.x an empty body is an empty reply, as there). On 2.2 the remote function's states
    /// must be declared with [`declare_states`](Self::declare_states); on 3.x the remote
    /// function asks for them through the handshake.
    ///
    /// `url` takes the forms the runtime's endpoints take: `http://host:port/path`;
    /// `https://host:port/path` with feature `tls`, for which the TLS settings must be
    /// given first (`remote_tls`); and on Unix a socket's
    /// `http+unix:///dir/fn.sock/path` or `https+unix://…`, whose socket path ends with
    /// the first component whose name ends in `.sock`, as the runtime reads it.
    ///
    /// The client is blocking, one connection per batch, bounded by
    /// [`remote_timeout`](Self::remote_timeout). Use a loopback address or a socket in
    /// tests.
    ///
    /// ```no_run
    /// # #[cfg(feature = "tls")] {
    /// use statefun_sync::testing::{ClientTls, LocalRuntime};
    /// use statefun_sync::StatefulFunctions;
    ///
    /// let tls = ClientTls::new("tls/ca.crt")?.identity("tls/client.crt", "tls/client.key")?;
    /// let runtime = LocalRuntime::v3(StatefulFunctions::new())?
    ///     .remote_tls(tls)
    ///     // Over mutual TLS, as from a Flink cluster.
    ///     .route_to_endpoint("example/greeter", "https://localhost:8443/statefun")?
    ///     // Over a Unix socket, as to a sidecar.
    ///     .route_to_endpoint("example/counter", "http+unix:///run/statefun/fn.sock/statefun")?;
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`RuntimeError::InvalidArgument`] if `typename` is not `namespace/name`, `url` is
    /// not one of the forms above, or it is an `https` URL and no TLS settings were given.
    pub fn route_to_endpoint(mut self, typename: &str, url: &str) -> Result<Self, RuntimeError> {
        let function_type = typename.parse::<FunctionType>().map_err(invalid)?;
        let refused = |reason: &str| {
            invalid(Error::InvalidArgument {
                operation: "LocalRuntime::route_to_endpoint",
                reason: format!("endpoint {url:?}: {reason}"),
            })
        };
        let endpoint = Endpoint::parse(url).map_err(refused)?;
        // Refused here rather than at the first batch, which would stop the runtime.
        #[cfg(feature = "tls")]
        if endpoint.is_tls() && self.remote.tls.is_none() {
            return Err(refused(http_client::NO_TLS_SETTINGS));
        }
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

    /// Sets the bound on connecting to a remote endpoint, on the TLS handshake, and on
    /// each read and write.
    pub fn remote_timeout(mut self, timeout: Duration) -> Self {
        self.remote.timeout = timeout;
        self
    }

    /// The TLS settings for the `https` and `https+unix` endpoints (feature `tls`): the CA
    /// whose server certificates to trust and, for mutual TLS, the client certificate,
    /// used for every such endpoint (see [`route_to_endpoint`](Self::route_to_endpoint),
    /// which needs them first). Plain `http` and `http+unix` endpoints need none.
    #[cfg(feature = "tls")]
    pub fn remote_tls(mut self, tls: super::ClientTls) -> Self {
        self.remote.tls = Some(tls);
        self
    }

    /// Queues `message` for the instance `id` of `typename`, without a caller, as an
    /// ingress would: an `Any` (on 3.x its type URL is the typename), or `&T` for any
    /// [`Type`] (`&5i32`, `&"x".to_string()`, `&my_message`). Nothing runs until
    /// [`run`](Self::run) or [`advance`](Self::advance): messages sent meanwhile to one
    /// address go in one batch.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::InvalidArgument`] if `typename` is not `namespace/name` or `id`
    /// is empty; [`RuntimeError::Stopped`] after a failure.
    pub fn send<V: Value>(
        &mut self,
        typename: &str,
        id: &str,
        message: V,
    ) -> Result<(), RuntimeError> {
        self.check_running()?;
        let address = Address::from_typename(typename, id).map_err(invalid)?;
        if id.is_empty() {
            return Err(invalid(Error::InvalidArgument {
                operation: "LocalRuntime::send",
                reason: format!("the id of the target of type `{typename}` is empty"),
            }));
        }
        let (argument, has_value) = to_any(message, || {
            format!("a message to {}", Shown(&address.to_string()))
        })
        .map_err(invalid)?;
        if !has_value && !self.is_v3() {
            return Err(invalid(Error::InvalidArgument {
                operation: "LocalRuntime::send",
                reason: "a message without a value needs the Stateful Functions 3.x protocol"
                    .to_owned(),
            }));
        }
        self.deliver(
            address,
            Envelope {
                caller: None,
                argument,
                has_value,
            },
        );
        Ok(())
    }

    /// Runs batches until no message is pending, delayed messages due by now included,
    /// and returns how many batches ran (a 3.x batch sent again after the handshake
    /// counts once). The clock does not move.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::FunctionFailed`], [`RuntimeError::RemoteFailed`],
    /// [`RuntimeError::UndeclaredStateMutation`] and, on 3.x,
    /// [`RuntimeError::StateTypeChanged`], [`RuntimeError::StateTypeMismatch`] or
    /// [`RuntimeError::RejectedReply`] for a batch that failed (it is not applied, and
    /// the runtime stops); [`RuntimeError::BatchLimitReached`] if messages are still
    /// pending after the maximum number of batches; [`RuntimeError::Stopped`] after an
    /// earlier failure.
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

    /// The delayed messages not delivered (nor cancelled) yet: due time and target, in
    /// delivery order.
    pub fn pending_delayed(&self) -> impl Iterator<Item = (Duration, &Address)> + '_ {
        self.timers
            .iter()
            .map(|((due, _), timer)| (*due, &timer.target))
    }

    /// Every request sent so far, in order.
    pub fn history(&self) -> &[BatchRecord] {
        &self.history
    }

    /// The states the runtime registered for the function type `typename` through the
    /// 3.x handshake (or [`set`](Self::set)), in registration order; empty when it has
    /// none, and always on 2.2.
    pub fn registered_states(&self, typename: &str) -> &[StateDeclaration] {
        typename
            .parse::<FunctionType>()
            .ok()
            .and_then(|function_type| self.registered.get(&function_type))
            .map_or(&[], Vec::as_slice)
    }

    /// The messages sent to the egress `typename` (`namespace/name`) so far, in order;
    /// empty if none. On 3.x each one's type URL is its typename.
    pub fn egress(&self, typename: &str) -> &[Any] {
        self.egresses.get(typename).map_or(&[], Vec::as_slice)
    }

    /// The messages sent to the egress `typename` so far, each read as a `T`: a built-in
    /// type, a [`protobuf_type!`](crate::protobuf_type) (3.x Kafka and Kinesis records
    /// among them: [`proto::egress::KafkaProducerRecord`](crate::proto::egress::KafkaProducerRecord)),
    /// a JSON type (`json_type!`, feature `json`), any other [`Type`].
    ///
    /// # Errors
    ///
    /// The first [`ReadError`]: a message of another typename, or one that does not
    /// decode.
    pub fn egress_values<T: Type>(&self, typename: &str) -> Result<Vec<T>, ReadError> {
        self.egress(typename).iter().map(read).collect()
    }

    /// The 2.2 Kafka records sent to the egress `typename` so far, their values decoded
    /// as `M` (see [`read_kafka_record_v2`](super::read_kafka_record_v2)). On 3.x, read the
    /// records with [`egress_values`](Self::egress_values).
    ///
    /// ```
    /// use statefun_sync::testing::LocalRuntime;
    /// use statefun_sync::{kafka_record_v2, StatefulFunctions};
    ///
    /// let mut functions = StatefulFunctions::new();
    /// functions.bind_typed("example/f", |ctx, seen: prost_types::Duration| {
    ///     let id = ctx.address().id().to_owned();
    ///     let record = kafka_record_v2("seen", &id, &seen)?;
    ///     Ok(ctx.send_egress("example/out", &record)?)
    /// })?;
    /// let mut runtime = LocalRuntime::v2(functions);
    /// let seen = prost_types::Duration { seconds: 4, nanos: 0 };
    /// runtime.send("example/f", "alice", &seen)?;
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
            .map(read_kafka_record_v2)
            .collect()
    }

    /// The 2.2 Kinesis records sent to the egress `typename` so far, their values decoded
    /// as `M` (see [`read_kinesis_record_v2`](super::read_kinesis_record_v2)). On 3.x, read the
    /// records with [`egress_values`](Self::egress_values).
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
            .map(read_kinesis_record_v2)
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
    /// `None` when it has no value (on 3.x: or it expired by now). On 3.x the type URL
    /// is the state's registered typename.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::InvalidArgument`] if `typename` is not `namespace/name`;
    /// [`RuntimeError::UnknownState`] if the function type does not declare `name` (on
    /// 3.x: the runtime has not registered it and the binding does not declare it);
    /// [`RuntimeError::UnreadableState`] if a 2.2 value is not a serialized `Any` (a
    /// remote function can store any bytes).
    pub fn state(&self, typename: &str, id: &str, name: &str) -> Result<Option<Any>, RuntimeError> {
        let address = Address::from_typename(typename, id).map_err(invalid)?;
        if self.is_v3() {
            let declaration = self.known_state(&address, name)?;
            return Ok(self.live_value(&address, &declaration).map(|stored| Any {
                type_url: declaration.typename.clone(),
                value: stored.bytes.to_vec(),
            }));
        }
        self.check_declared(&address, name)?;
        let Some(stored) = self.states.get(&address).and_then(|s| s.get(name)) else {
            return Ok(None);
        };
        if stored.bytes.is_empty() {
            return Ok(None);
        }
        Any::decode(stored.bytes.as_ref())
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

    /// The current value of the state of `spec` of the instance `id` of `typename`, read
    /// as the spec's type, or `None` when it has no value (on 3.x: or it expired by now).
    /// Reading does not count as a call for `expire_after_call`.
    ///
    /// # Errors
    ///
    /// As [`state`](Self::state), and [`RuntimeError::UnreadableTypedState`] if the value
    /// has another typename than the spec's, or does not decode.
    pub fn get<T: Type>(
        &self,
        typename: &str,
        id: &str,
        spec: &ValueSpec<T>,
    ) -> Result<Option<T>, RuntimeError> {
        let Some(any) = self.state(typename, id, spec.name())? else {
            return Ok(None);
        };
        read(&any)
            .map(Some)
            .map_err(|source| RuntimeError::UnreadableTypedState {
                // `state` succeeded, so the typename parses.
                address: Box::new(Address::from_typename(typename, id).unwrap_or_default()),
                state: spec.name().to_owned(),
                source,
            })
    }

    /// Sets the state of `spec` of the instance `id` of `typename` to `value`, as if a
    /// reply had: to start a test from a given state. On 3.x a state the runtime has not
    /// registered yet is registered as the handshake would: as the binding declares it,
    /// or, for a remote function, as `spec` says.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::InvalidArgument`] if `typename` is not `namespace/name`;
    /// [`RuntimeError::UnknownState`] if a 2.2 function type does not declare the state;
    /// [`RuntimeError::StateTypeMismatch`] if a 3.x state is registered (or declared)
    /// with another type than the spec's.
    pub fn set<T: Type>(
        &mut self,
        typename: &str,
        id: &str,
        spec: &ValueSpec<T>,
        value: &T,
    ) -> Result<(), RuntimeError> {
        if self.is_v3() {
            let address = Address::from_typename(typename, id).map_err(invalid)?;
            let fallback = StateDeclaration::from(spec);
            let declaration = self.known_state_or(&address, spec.name(), Some(fallback))?;
            self.register_for_set(&address, declaration);
        }
        let (value, _) =
            to_any(value, || format!("state {}", Shown(spec.name()))).map_err(invalid)?;
        self.set_state(typename, id, spec.name(), Some(value))
    }

    /// Sets the state `name` of the instance `id` of `typename` to `value` (`None`
    /// clears it), as if a reply had: to start a test from a given state. On 3.x the
    /// value's type URL is its typename, and a state the runtime has not registered yet
    /// is registered as its binding declares it.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::InvalidArgument`] if `typename` is not `namespace/name`;
    /// [`RuntimeError::UnknownState`] if the function type does not declare `name` (on
    /// 3.x: the runtime has not registered it and the binding does not declare it);
    /// [`RuntimeError::StateTypeMismatch`] if a 3.x value has another typename than the
    /// state's.
    pub fn set_state(
        &mut self,
        typename: &str,
        id: &str,
        name: &str,
        value: Option<Any>,
    ) -> Result<(), RuntimeError> {
        let address = Address::from_typename(typename, id).map_err(invalid)?;
        let bytes = if self.is_v3() {
            let declaration = self.known_state(&address, name)?;
            if let Some(any) = &value {
                if any.type_url != declaration.typename {
                    return Err(RuntimeError::StateTypeMismatch {
                        address: Box::new(address),
                        state: name.to_owned(),
                        registered: declaration.typename,
                        found: any.type_url.clone(),
                    });
                }
            }
            self.register_for_set(&address, declaration);
            value.map(|any| Bytes::from(any.value))
        } else {
            self.check_declared(&address, name)?;
            value.map(|any| Bytes::from(any.encode_to_vec()))
        };
        let now = self.now;
        let states = self.states.entry(address.clone()).or_default();
        match bytes {
            Some(bytes) => {
                states.insert(name.to_owned(), Stored::new(bytes, now));
            }
            None => {
                states.remove(name);
            }
        }
        if states.is_empty() {
            self.states.remove(&address);
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

    /// The 3.x state `name` of `address`'s function type: as registered, else as its
    /// (local) binding declares it.
    fn known_state(&self, address: &Address, name: &str) -> Result<StateDeclaration, RuntimeError> {
        self.known_state_or(address, name, None)
    }

    /// As [`known_state`](Self::known_state), with `fallback` for a state neither
    /// registered nor declared.
    fn known_state_or(
        &self,
        address: &Address,
        name: &str,
        fallback: Option<StateDeclaration>,
    ) -> Result<StateDeclaration, RuntimeError> {
        let function_type = address.function_type();
        let registered = self
            .registered
            .get(function_type)
            .and_then(|states| states.iter().find(|s| s.name == name));
        if let Some(registered) = registered {
            return Ok(registered.clone());
        }
        let declared = self
            .local_function(function_type)
            .and_then(|function| function.declared_states().iter().find(|s| s.name() == name))
            .map(StateDeclaration::from);
        declared
            .or(fallback)
            .map(|mut declaration| {
                if declaration.typename.is_empty() {
                    declaration.typename = UNSET_TYPENAME.to_owned();
                }
                declaration
            })
            .ok_or_else(|| RuntimeError::UnknownState {
                function_type: function_type.clone(),
                state: name.to_owned(),
            })
    }

    /// Registers `declaration` for `address`'s function type unless a state of that
    /// name is registered already.
    fn register_for_set(&mut self, address: &Address, declaration: StateDeclaration) {
        let registered = self
            .registered
            .entry(address.function_type().clone())
            .or_default();
        if !registered.iter().any(|s| s.name == declaration.name) {
            registered.push(declaration);
        }
    }

    /// The function bound in the registry for `function_type`, unless the type is routed
    /// to an endpoint.
    fn local_function(
        &self,
        function_type: &FunctionType,
    ) -> Option<&crate::registry::BoundFunction> {
        if self.remotes.contains_key(function_type) {
            return None;
        }
        self.handler.functions().get(function_type)
    }

    /// The value of a 3.x state, unless it has none or expired by now.
    fn live_value(&self, address: &Address, declaration: &StateDeclaration) -> Option<&Stored> {
        self.states
            .get(address)
            .and_then(|states| states.get(&declaration.name))
            .filter(|stored| !stored.expired(declaration.expiration, self.now))
    }

    /// The states the runtime sends to `address` on 2.2: the binding's (unless the type
    /// is routed to an endpoint), then those given to `declare_states`.
    fn declared_states(&self, address: &Address) -> Vec<&str> {
        let function_type = address.function_type();
        let mut names: Vec<&str> = Vec::new();
        if let Some(function) = self.local_function(function_type) {
            names.extend(function.declared_states().iter().map(|s| s.name()));
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
        self.local_function(address.function_type())
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
            let timer = entry.remove();
            if let Some(token) = timer.token {
                self.tokens.remove(&token);
            }
            self.deliver(timer.target, timer.envelope);
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

        match self.exchange(&address, &batch) {
            Ok(outcome) => {
                self.apply(address, outcome);
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

    /// Sends `batch` to `address` until it ran (on 3.x, registering the states each
    /// handshake asks for, and sending the batch again), and checks the reply; does not
    /// apply it.
    fn exchange(&mut self, address: &Address, batch: &[Envelope]) -> Result<Outcome, RuntimeError> {
        for _ in 0..=MAX_HANDSHAKES_PER_BATCH {
            let request = self.request(address, batch);
            self.history.push(BatchRecord {
                at: self.now,
                target: address.clone(),
                size: batch.len(),
            });
            match self.call(address, batch, &request)? {
                Answer::Ran(outcome) => {
                    self.check(address, &outcome)?;
                    return Ok(outcome);
                }
                Answer::Handshake(declarations) => self.register(address, declarations)?,
            }
        }
        Err(rejected(
            address,
            format!(
                "the function answered {MAX_HANDSHAKES_PER_BATCH} handshakes in a row, each \
                 asking for states it had not asked for before"
            ),
        ))
    }

    /// The request for `batch`, with the states of `address` attached. On 3.x, expired
    /// values are dropped first, and attaching counts as a call for `AFTER_INVOKE`.
    fn request(&mut self, address: &Address, batch: &[Envelope]) -> Vec<u8> {
        if self.is_v3() {
            return self.request_v3(address, batch);
        }
        let declared = self.declared_states(address);
        let values = self.states.get(address);
        proto::ToFunction {
            request: Some(to_function::Request::Invocation(
                to_function::InvocationBatchRequest {
                    target: Some(address.into()),
                    state: declared
                        .iter()
                        .map(|name| to_function::PersistedValue {
                            state_name: (*name).to_owned(),
                            state_value: values
                                .and_then(|v| v.get(*name))
                                .map(|stored| stored.bytes.clone())
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
        .encode_to_vec()
    }

    fn request_v3(&mut self, address: &Address, batch: &[Envelope]) -> Vec<u8> {
        let now = self.now;
        let declarations = self
            .registered
            .get(address.function_type())
            .map_or(&[][..], Vec::as_slice);
        let mut values = self.states.get_mut(address);
        let mut state = Vec::with_capacity(declarations.len());
        for declaration in declarations {
            let stored = values.as_mut().and_then(|values| {
                let expired = values
                    .get(&declaration.name)
                    .is_some_and(|stored| stored.expired(declaration.expiration, now));
                if expired {
                    values.remove(&declaration.name);
                }
                values.get_mut(&declaration.name)
            });
            let state_value = stored.map(|stored| {
                // Flink's TTL `OnReadAndWrite`: the runtime reads each state to attach it.
                if matches!(declaration.expiration, Some(Expiration::AfterCall(_))) {
                    stored.touched = now;
                }
                proto3::TypedValue {
                    typename: declaration.typename.clone(),
                    has_value: true,
                    value: stored.bytes.clone(),
                }
            });
            state.push(proto3::to_function::PersistedValue {
                state_name: declaration.name.clone(),
                state_value,
            });
        }
        if self.states.get(address).is_some_and(BTreeMap::is_empty) {
            self.states.remove(address);
        }
        proto3::ToFunction {
            request: Some(proto3::to_function::Request::Invocation(
                proto3::to_function::InvocationBatchRequest {
                    target: Some(v3::address_to_proto(address)),
                    state,
                    invocations: batch
                        .iter()
                        .map(|envelope| proto3::to_function::Invocation {
                            caller: envelope.caller.as_ref().map(v3::address_to_proto),
                            argument: Some(v3::typed_value((
                                envelope.argument.clone(),
                                envelope.has_value,
                            ))),
                        })
                        .collect(),
                },
            )),
        }
        .encode_to_vec()
    }

    /// One request-reply round trip, decoded but neither checked nor applied.
    fn call(
        &self,
        address: &Address,
        batch: &[Envelope],
        request: &[u8],
    ) -> Result<Answer, RuntimeError> {
        let version = self.protocol_version();
        match self.remotes.get(address.function_type()) {
            Some(endpoint) => {
                let answer = http_client::post_batch(endpoint, request, &self.remote, version)
                    .and_then(|body| {
                        decode_answer(version, &body)
                            .map_err(|reason| RemoteError::MalformedReply { reason })
                    });
                answer.map_err(|source| RuntimeError::RemoteFailed {
                    address: Box::new(address.clone()),
                    message: Box::new(batch[0].clone()),
                    endpoint: endpoint.url().to_owned(),
                    source,
                })
            }
            None => {
                let reply = self.handler.handle(request).map_err(|source| {
                    let index = failed_invocation(&source).filter(|&i| i < batch.len());
                    RuntimeError::FunctionFailed {
                        address: Box::new(address.clone()),
                        message: Box::new(batch[index.unwrap_or(0)].clone()),
                        source,
                    }
                })?;
                // The handler's own reply always decodes; an empty one would apply nothing.
                Ok(decode_answer(version, &reply).unwrap_or(Answer::Ran(Outcome::default())))
            }
        }
    }

    /// Registers the states a 3.x handshake asks for, as the runtime does: a new name is
    /// registered with its typename and expiration; a known one must keep its typename.
    fn register(
        &mut self,
        address: &Address,
        declarations: Vec<StateDeclaration>,
    ) -> Result<(), RuntimeError> {
        let function_type = address.function_type();
        let registered = self
            .registered
            .get(function_type)
            .map_or(&[][..], Vec::as_slice);
        let mut new = Vec::new();
        for mut declaration in declarations {
            if declaration.typename.is_empty() {
                declaration.typename = UNSET_TYPENAME.to_owned();
            }
            let known = registered
                .iter()
                .chain(&new)
                .find(|s: &&StateDeclaration| s.name == declaration.name);
            match known {
                Some(known) if known.typename != declaration.typename => {
                    return Err(RuntimeError::StateTypeChanged {
                        address: Box::new(address.clone()),
                        state: declaration.name,
                        registered: known.typename.clone(),
                        declared: declaration.typename,
                    });
                }
                Some(_) => {}
                None => {
                    if let Err(reason) = check_declaration(&declaration) {
                        return Err(rejected(address, reason));
                    }
                    new.push(declaration);
                }
            }
        }
        if new.is_empty() {
            return Err(rejected(
                address,
                "its handshake asks for no state that the request lacked (the runtime would \
                 send the batch again forever)"
                    .to_owned(),
            ));
        }
        self.registered
            .entry(function_type.clone())
            .or_default()
            .extend(new);
        Ok(())
    }

    /// Checks a reply as the runtime does before it applies it: every mutated state is
    /// declared (2.2) or registered (3.x) and, on 3.x, of the registered type; on 3.x,
    /// delays are not negative and cancellation tokens are not empty or still pending.
    fn check(&self, address: &Address, outcome: &Outcome) -> Result<(), RuntimeError> {
        if self.is_v3() {
            return self.check_v3(address, outcome);
        }
        let declared = self.declared_states(address);
        match outcome
            .mutations
            .iter()
            .find(|m| !declared.contains(&m.name.as_str()))
        {
            Some(mutation) => Err(RuntimeError::UndeclaredStateMutation {
                address: Box::new(address.clone()),
                state: mutation.name.clone(),
            }),
            None => Ok(()),
        }
    }

    fn check_v3(&self, address: &Address, outcome: &Outcome) -> Result<(), RuntimeError> {
        let registered = self
            .registered
            .get(address.function_type())
            .map_or(&[][..], Vec::as_slice);
        for mutation in &outcome.mutations {
            let Some(declaration) = registered.iter().find(|s| s.name == mutation.name) else {
                return Err(RuntimeError::UndeclaredStateMutation {
                    address: Box::new(address.clone()),
                    state: mutation.name.clone(),
                });
            };
            if let Some(typename) = &mutation.typename {
                let found = if typename.is_empty() {
                    UNSET_TYPENAME
                } else {
                    typename
                };
                if found != declaration.typename {
                    return Err(RuntimeError::StateTypeMismatch {
                        address: Box::new(address.clone()),
                        state: mutation.name.clone(),
                        registered: declaration.typename.clone(),
                        found: found.to_owned(),
                    });
                }
            }
        }
        // Which tokens are pending as the reply is applied in order: what the reply
        // changed, else what was pending before it.
        let mut changed: HashMap<&str, bool> = HashMap::new();
        let id = address.id();
        for delayed in &outcome.delayed {
            match delayed {
                DelayedCommand::Send { delay_ms, .. } if *delay_ms < 0 => {
                    return Err(rejected(
                        address,
                        format!("a delayed message has the negative delay {delay_ms} ms"),
                    ));
                }
                DelayedCommand::Send {
                    token: Some(token), ..
                } => {
                    let pending = changed.get(token.as_str()).copied().unwrap_or_else(|| {
                        self.tokens.contains_key(&(id.to_owned(), token.clone()))
                    });
                    if pending {
                        return Err(rejected(
                            address,
                            format!(
                                "a delayed message reuses the cancellation token {} of a \
                                 message still pending",
                                Shown(token)
                            ),
                        ));
                    }
                    changed.insert(token, true);
                }
                DelayedCommand::Send { token: None, .. } => {}
                DelayedCommand::Cancel { token } if token.is_empty() => {
                    return Err(rejected(
                        address,
                        "a cancellation has an empty token".to_owned(),
                    ));
                }
                DelayedCommand::Cancel { token } => {
                    changed.insert(token, false);
                }
            }
        }
        Ok(())
    }

    /// Applies a checked reply of `address`, as the runtime does: state mutations, then
    /// messages, delayed messages and cancellations, and egress messages, each in the
    /// reply's order.
    fn apply(&mut self, address: Address, outcome: Outcome) {
        let now = self.now;
        let states = self.states.entry(address.clone()).or_default();
        for mutation in outcome.mutations {
            match mutation.value {
                Some(bytes) => {
                    states.insert(mutation.name, Stored::new(bytes, now));
                }
                None => {
                    states.remove(&mutation.name);
                }
            }
        }
        if states.is_empty() {
            self.states.remove(&address);
        }
        for (target, argument, has_value) in outcome.messages {
            let envelope = Envelope {
                caller: Some(address.clone()),
                argument,
                has_value,
            };
            self.deliver(target, envelope);
        }
        for delayed in outcome.delayed {
            match delayed {
                DelayedCommand::Send {
                    delay_ms,
                    target,
                    argument,
                    has_value,
                    token,
                } => {
                    let delay = Duration::from_millis(u64::try_from(delay_ms).unwrap_or(0));
                    let key = (now.saturating_add(delay), self.timers_sent);
                    self.timers_sent += 1;
                    let token = token.map(|token| (address.id().to_owned(), token));
                    if let Some(token) = &token {
                        self.tokens.insert(token.clone(), key);
                    }
                    let envelope = Envelope {
                        caller: Some(address.clone()),
                        argument,
                        has_value,
                    };
                    self.timers.insert(
                        key,
                        Timer {
                            target,
                            envelope,
                            token,
                        },
                    );
                }
                DelayedCommand::Cancel { token } => {
                    if let Some(key) = self.tokens.remove(&(address.id().to_owned(), token)) {
                        self.timers.remove(&key);
                    }
                }
            }
        }
        // An egress message keeps its typename and bytes: one without a value (3.x) is an
        // `Any` without bytes here.
        for (egress, argument, _) in outcome.egresses {
            self.egresses.entry(egress).or_default().push(argument);
        }
    }
}

impl fmt::Debug for LocalRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRuntime")
            .field("protocol_version", &self.protocol_version())
            .field("functions", self.handler.functions())
            .field("extra_states", &self.extra_states)
            .field("registered_states", &self.registered)
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
            .field("remote", &self.remote)
            .field("now", &self.now)
            .field("pending_messages", &self.pending_messages())
            .field("pending_delayed", &self.timers.len())
            .field("batches", &self.history.len())
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

fn rejected(address: &Address, reason: String) -> RuntimeError {
    RuntimeError::RejectedReply {
        address: Box::new(address.clone()),
        reason,
    }
}

fn invalid(source: impl Into<Error>) -> RuntimeError {
    RuntimeError::InvalidArgument {
        source: source.into(),
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
        let mut runtime = LocalRuntime::v2(functions);
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
