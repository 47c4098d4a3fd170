//! The 3.x side of the fuzz kit: a handler built with `RequestReplyHandler::v3` whose
//! functions run a script from their message bytes through the typed API (`get`, `set`,
//! `remove` of `ValueSpec`s, `send`, `send_after`, `send_after_cancellable`,
//! `cancel_delayed_message`, `send_egress`, `Message::get`) and the untyped one, a model
//! of what the script did, and the properties every answer of `handle()` must have.
//!
//! Before each input, [`prepare`] decodes the request with prost, independently of the
//! crate, so [`check`] can say what the answer must be: 404 for an unbound target, the
//! handshake (and nothing run) exactly when a declared state is missing, every invocation
//! run otherwise, and what each state read must return.
//!
//! The script is read as the 2.2 one is (see the crate root): one byte per operation, the
//! low four bits choose it, the high bit says whether an error from it is ignored instead
//! of passed up with `?`; operands follow; a script that runs out of bytes just ends.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::Duration;

use prost::Message as _;
use prost_types::Any;
use statefun_sync::proto::reqreply::{
    from_function, to_function, Address as ProtoAddress, FromFunction, TypedValue,
};
use statefun_sync::types::Type;
use statefun_sync::{Context, Error, Message, RequestReplyHandler, StatefulFunctions, ValueSpec};

use crate::check_error;
use crate::script::{last_write, run, Script, Step};

/// Declares [`A`], [`B`] and [`C`]; runs the message bytes, whatever their type.
pub const ALL: &str = "fuzz3/all";
/// Takes an `io.statefun.types/string` (`Message::get::<String>()?`), runs its UTF-8.
pub const TYPED: &str = "fuzz3/typed";
/// Bound with `bind` (an `Any`, the typename as its type URL); runs its value.
pub const ANY: &str = "fuzz3/any";
/// The workloads' greeter (`benches/workloads3`): declares [`SEEN`], runs the message bytes.
pub const GREETER: &str = "bench/greeter";
/// The workloads' fan-out: no state, runs the message bytes.
pub const FANOUT: &str = "bench/fanout";

/// Every bound function type.
pub const BOUND: [&str; 5] = [ALL, TYPED, ANY, GREETER, FANOUT];

/// `a`, an `i32`, no expiration.
pub static A: ValueSpec<i32> = ValueSpec::named("a");
/// `b`, a `String`, expiring 1 s after the last call.
pub static B: ValueSpec<String> = ValueSpec::named("b").expire_after_call(Duration::from_secs(1));
/// `c`, an `i64`, expiring 1.5 s after the last write.
pub static C: ValueSpec<i64> =
    ValueSpec::named("c").expire_after_write(Duration::from_millis(1500));
/// `seen`, an `i32`, as the workloads' greeter declares it.
pub static SEEN: ValueSpec<i32> = ValueSpec::named("seen");
/// A declared name with another type: `UndeclaredState`.
static A_AS_STRING: ValueSpec<String> = ValueSpec::named("a");
/// Declared by no function.
static MISSING: ValueSpec<bool> = ValueSpec::named("missing");

/// The state names a script uses (`missing` and `other` are declared by no function).
pub const STATE_NAMES: [&str; 6] = ["a", "b", "c", "seen", "missing", "other"];

/// A declared state as the handshake must announce it: name, typename, expiration mode
/// (`ExpireMode` as an `i32`) and milliseconds.
pub type Announced = (&'static str, &'static str, i32, i64);

/// What the handshake asks for, per function type, in declaration order.
pub fn declared(function_type: &str) -> &'static [Announced] {
    const ALL_STATES: [Announced; 3] = [
        ("a", "io.statefun.types/int", 0, 0),
        ("b", "io.statefun.types/string", 2, 1000),
        ("c", "io.statefun.types/long", 1, 1500),
    ];
    const GREETER_STATES: [Announced; 1] = [("seen", "io.statefun.types/int", 0, 0)];
    match function_type {
        ALL => &ALL_STATES,
        GREETER => &GREETER_STATES,
        _ => &[],
    }
}

/// A state's value as the model sees it: its typename and bytes; `None` is no value.
pub type Value = Option<(String, Vec<u8>)>;

/// The request as prost decodes it: what the answer must follow from.
#[derive(Debug, Clone, Default)]
pub struct Decoded {
    /// The target, if the batch has one.
    pub target: Option<ProtoAddress>,
    /// The states, by name, the last one of a name winning.
    pub states: Vec<(String, Value)>,
    /// How many invocations.
    pub invocations: usize,
}

impl Decoded {
    /// The target's function type, `namespace/type`.
    pub fn function_type(&self) -> Option<String> {
        self.target
            .as_ref()
            .map(|t| format!("{}/{}", t.namespace, t.r#type))
    }

    /// Whether the batch carries the state `name`.
    pub fn carries(&self, name: &str) -> bool {
        self.states.iter().any(|(n, _)| n == name)
    }

    /// The value the request carries for `name`: `None` if it does not carry it.
    pub fn carried(&self, name: &str) -> Option<&Value> {
        self.states.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// A state value as a model [`Value`]: absent and `has_value = false` are no value.
pub fn value_of(typed: Option<&TypedValue>) -> Value {
    typed
        .filter(|t| t.has_value)
        .map(|t| (t.typename.clone(), t.value.to_vec()))
}

/// `ToFunction` with the batch as an optional message (the same wire format as its oneof).
#[derive(Clone, PartialEq, prost::Message)]
struct RawToFunction {
    #[prost(message, optional, tag = "100")]
    invocation: Option<RawBatch>,
}

/// `InvocationBatchRequest`, its states read with [`RawState`].
#[derive(Clone, PartialEq, prost::Message)]
struct RawBatch {
    #[prost(message, optional, tag = "1")]
    target: Option<ProtoAddress>,
    #[prost(message, repeated, tag = "2")]
    state: Vec<RawState>,
    #[prost(message, repeated, tag = "3")]
    invocations: Vec<to_function::Invocation>,
}

/// `PersistedValue` with each occurrence of `state_value` kept apart (the same wire format:
/// protobuf merges the occurrences of a message field, which [`merged`] does).
#[derive(Clone, PartialEq, prost::Message)]
struct RawState {
    #[prost(string, tag = "1")]
    state_name: String,
    #[prost(message, repeated, tag = "2")]
    state_value: Vec<TypedValue>,
}

/// The occurrences of a message field merged, as protobuf reads them: decoding their
/// concatenation.
fn merged(occurrences: &[TypedValue]) -> Option<TypedValue> {
    if occurrences.is_empty() {
        return None;
    }
    let bytes: Vec<u8> = occurrences.iter().flat_map(|t| t.encode_to_vec()).collect();
    Some(TypedValue::decode(bytes.as_slice()).expect("re-encoded TypedValues decode"))
}

/// Decodes a request as prost does; `None` when it is not a `ToFunction` with a batch.
pub fn decode_request(body: &[u8]) -> Option<Decoded> {
    let batch = RawToFunction::decode(body).ok()?.invocation?;
    let mut states: Vec<(String, Value)> = Vec::new();
    for state in batch.state {
        let typed = merged(&state.state_value);
        let value = value_of(typed.as_ref());
        match states.iter_mut().find(|(n, _)| *n == state.state_name) {
            Some(slot) => slot.1 = value,
            None => states.push((state.state_name, value)),
        }
    }
    Some(Decoded {
        target: batch.target,
        states,
        invocations: batch.invocations.len(),
    })
}

/// What the script did during one `handle()` call, and the request it ran on.
#[derive(Debug, Default)]
pub struct Model {
    /// The request as prost decoded it (see [`prepare`]).
    pub request: Option<Decoded>,
    /// The messages sent, as the reply must carry them.
    pub messages: Vec<from_function::Invocation>,
    /// The delayed messages and cancellations, in order.
    pub delayed: Vec<from_function::DelayedInvocation>,
    /// The egress messages.
    pub egresses: Vec<from_function::EgressMessage>,
    /// The last successful write to each state: `Some` set, `None` removed.
    pub written: Vec<(String, Value)>,
    /// The status the batch must fail with, once a function passed an error up or panicked.
    pub failure: Option<u16>,
    /// A property broken inside a function (checked outside, where a panic is not caught).
    pub violation: Option<String>,
    /// How many invocations ran.
    pub invocations: usize,
}

impl Model {
    /// The value of state `name` now, as far as the model knows it: `Some(value)` once
    /// written or when the request carries it, `None` when unknown (not carried, or the
    /// request did not decode with prost).
    fn current(&self, name: &str) -> Option<Value> {
        if let Some((_, value)) = self.written.iter().find(|(n, _)| n == name) {
            return Some(value.clone());
        }
        self.request.as_ref()?.carried(name).cloned()
    }

    fn violate(&mut self, what: String) {
        self.violation.get_or_insert(what);
    }
}

thread_local! {
    static MODEL: RefCell<Model> = RefCell::new(Model::default());
}

fn with_model<T>(f: impl FnOnce(&mut Model) -> T) -> T {
    MODEL.with(|m| f(&mut m.borrow_mut()))
}

/// Forgets the previous input and decodes `body` for the checks: call before `handle()`.
pub fn prepare(body: &[u8]) {
    let request = decode_request(body);
    MODEL.with(|m| {
        *m.borrow_mut() = Model {
            request,
            ..Model::default()
        }
    });
}

/// The model of the input just handled.
pub fn take() -> Model {
    MODEL.with(|m| std::mem::take(&mut *m.borrow_mut()))
}

/// The 3.x handler every 3.x target uses, built once.
pub fn handler() -> &'static RequestReplyHandler {
    static HANDLER: OnceLock<RequestReplyHandler> = OnceLock::new();
    HANDLER.get_or_init(new_handler)
}

/// A new 3.x handler with the scripted functions ([`BOUND`]).
pub fn new_handler() -> RequestReplyHandler {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message(ALL, |ctx: &mut Context, message: Message| {
            run_script(ctx, Some(&message), message.bytes().unwrap_or_default())
        })
        .expect("valid typename")
        .state(&A)
        .state(&B)
        .state(&C);
    functions
        .bind_message(TYPED, |ctx: &mut Context, message: Message| {
            let script = message.get::<String>().inspect_err(|_| {
                with_model(|m| m.failure = Some(400));
            })?;
            run_script(ctx, Some(&message), script.unwrap_or_default().as_bytes())
        })
        .expect("valid typename");
    functions
        .bind(ANY, |ctx, message: Any| {
            run_script(ctx, None, &message.value)
        })
        .expect("valid typename");
    functions
        .bind_message(GREETER, |ctx: &mut Context, message: Message| {
            run_script(ctx, Some(&message), message.bytes().unwrap_or_default())
        })
        .expect("valid typename")
        .state(&SEEN);
    functions
        .bind_message(FANOUT, |ctx: &mut Context, message: Message| {
            run_script(ctx, Some(&message), message.bytes().unwrap_or_default())
        })
        .expect("valid typename");
    RequestReplyHandler::v3(functions).expect("every state is a ValueSpec")
}

/// A value a script sends: an `Any` (sent as is, its type URL the typename) or a value of a
/// built-in type (sent as `&T`).
#[derive(Debug, Clone)]
enum Payload {
    Any(Any),
    Int(i32),
    Long(i64),
    Bool(bool),
    Str(String),
}

impl Payload {
    /// The `TypedValue` the reply must carry for it.
    fn typed(&self) -> TypedValue {
        fn of<T: Type>(value: &T) -> TypedValue {
            let mut bytes = Vec::new();
            value
                .encode_value(&mut bytes)
                .expect("the fuzz values encode");
            TypedValue {
                typename: T::type_name().to_string(),
                has_value: true,
                value: bytes.into(),
            }
        }
        match self {
            Payload::Any(any) => TypedValue {
                typename: any.type_url.clone(),
                has_value: true,
                value: any.value.clone().into(),
            },
            Payload::Int(v) => of(v),
            Payload::Long(v) => of(v),
            Payload::Bool(v) => of(v),
            Payload::Str(v) => of(v),
        }
    }
}

/// Runs `$body` with `$v` bound to the payload as a `statefun_sync::Value`.
macro_rules! with_value {
    ($payload:expr, |$v:ident| $body:expr) => {
        match $payload {
            Payload::Any($v) => $body,
            Payload::Int($v) => $body,
            Payload::Long($v) => $body,
            Payload::Bool($v) => $body,
            Payload::Str($v) => $body,
        }
    };
}

/// The typenames a 3.x script sends to, before text (see [`Script::typename`]).
const TYPENAMES: [&str; 6] = [
    ALL,
    "fuzz3/other",
    "nonamespace",
    "/noname",
    "fuzz3/",
    "com.example/app/f",
];

/// The step of a short delay, in nanoseconds (see [`Script::delay`]): 0.1 ms, so a byte
/// of steps spans 0 to 25.5 ms, whole and fractional milliseconds.
const NANOS_STEP: u64 = 100_000;

/// A payload: an `Any`, an `i32`, an `i64` (read as an `i32`), a `bool` or a `String`.
fn payload(s: &mut Script<'_>) -> Payload {
    match s.byte_or_zero() % 5 {
        0 => Payload::Any(s.any()),
        1 => Payload::Int(i32::from_le_bytes(s.array())),
        2 => Payload::Long(i64::from(i32::from_le_bytes(s.array()))),
        3 => Payload::Bool(s.byte_or_zero() % 2 == 1),
        _ => Payload::Str(s.text()),
    }
}

/// `typename` split as the crate documents it: at the last `/`, both parts non-empty.
fn split(typename: &str) -> Option<(&str, &str)> {
    typename
        .rsplit_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
}

fn address(typename: &str, id: &str) -> Option<ProtoAddress> {
    let (namespace, name) = split(typename)?;
    (!id.is_empty()).then(|| ProtoAddress {
        namespace: namespace.into(),
        r#type: name.into(),
        id: id.into(),
    })
}

/// What an effect adds to the model when it succeeds.
enum Effect {
    Nothing,
    Message(from_function::Invocation),
    Delayed(from_function::DelayedInvocation),
    Egress(from_function::EgressMessage),
    Written(String, Value),
    /// The operation succeeded where the model says it must fail.
    Unexpected(String),
}

/// A typed state, chosen by the script.
enum Spec {
    Int(&'static ValueSpec<i32>),
    Long(&'static ValueSpec<i64>),
    Bool(&'static ValueSpec<bool>),
    Str(&'static ValueSpec<String>),
}

fn spec(byte: u8) -> Spec {
    match byte % 6 {
        0 => Spec::Int(&A),
        1 => Spec::Str(&B),
        2 => Spec::Long(&C),
        3 => Spec::Int(&SEEN),
        4 => Spec::Str(&A_AS_STRING),
        _ => Spec::Bool(&MISSING),
    }
}

/// Whether `ctx`'s function declares `name` with `typename`.
fn declares(ctx: &Context<'_>, name: &str, typename: &str) -> bool {
    declared(&ctx.address().function_type().to_string())
        .iter()
        .any(|(n, t, _, _)| *n == name && *t == typename)
}

/// A typed read: checks it against the model (a violation when they differ).
fn get<T: Type + PartialEq + std::fmt::Debug>(
    ctx: &Context<'_>,
    spec: &ValueSpec<T>,
) -> Result<Effect, Error> {
    let typename = T::type_name().to_string();
    let is_declared = declares(ctx, spec.name(), &typename);
    let got = ctx.get(spec);
    let expected = with_model(|m| m.current(spec.name()));
    match (&got, is_declared, expected) {
        (Err(Error::UndeclaredState { .. }), false, _) => {}
        (_, false, _) => {
            return Ok(Effect::Unexpected(format!(
                "get({:?}) of an undeclared spec: {got:?}",
                spec.name()
            )))
        }
        (Err(Error::UndeclaredState { .. }), true, _) => {
            return Ok(Effect::Unexpected(format!(
                "get({:?}) of a declared spec is UndeclaredState",
                spec.name()
            )))
        }
        (_, true, None) => {} // the request did not decode with prost: nothing to compare
        (_, true, Some(value)) => {
            let oracle: Result<Option<T>, ()> = match &value {
                None => Ok(None),
                Some((t, bytes)) if *t == typename => {
                    T::decode_value(bytes).map(Some).map_err(|_| ())
                }
                Some(_) => Err(()),
            };
            let agrees = match (&got, &oracle) {
                (Ok(a), Ok(b)) => a == b,
                (Err(Error::UnreadableState { .. }), Err(())) => true,
                _ => false,
            };
            if !agrees {
                return Ok(Effect::Unexpected(format!(
                    "get({:?}) returned {got:?}; the state holds {value:?}",
                    spec.name()
                )));
            }
        }
    }
    got.map(|_| Effect::Nothing)
}

fn set<T: Type>(ctx: &mut Context<'_>, spec: &ValueSpec<T>, value: &T) -> Result<Effect, Error> {
    ctx.set(spec, value)?;
    let mut bytes = Vec::new();
    value
        .encode_value(&mut bytes)
        .expect("the fuzz values encode");
    Ok(Effect::Written(
        spec.name().into(),
        Some((T::type_name().to_string(), bytes)),
    ))
}

fn remove<T: Type>(ctx: &mut Context<'_>, spec: &ValueSpec<T>) -> Result<Effect, Error> {
    ctx.remove(spec)?;
    Ok(Effect::Written(spec.name().into(), None))
}

/// The argument read as `T`, checked against its typename.
fn read_message<T: Type>(message: &Message<'_>) -> Result<Effect, Error> {
    let is = T::type_name().is(message.typename());
    match message.get::<T>() {
        Err(Error::UnexpectedMessageType { .. }) if is => Ok(Effect::Unexpected(format!(
            "Message::get of a {:?} said it is of another type",
            message.typename()
        ))),
        Ok(_) if !is => Ok(Effect::Unexpected(format!(
            "Message::get read a {:?} as {}",
            message.typename(),
            T::type_name()
        ))),
        other => other.map(|_| Effect::Nothing),
    }
}

fn run_script(
    ctx: &mut Context<'_>,
    message: Option<&Message<'_>>,
    script: &[u8],
) -> anyhow::Result<()> {
    with_model(|m| m.invocations += 1);
    run(
        script,
        |s, op| operation(ctx, message, s, op),
        |effect| {
            with_model(|m| match effect {
                Effect::Nothing => {}
                Effect::Message(message) => m.messages.push(message),
                Effect::Delayed(delayed) => m.delayed.push(delayed),
                Effect::Egress(egress) => m.egresses.push(egress),
                Effect::Written(name, value) => last_write(&mut m.written, name, value),
                Effect::Unexpected(what) => m.violate(what),
            })
        },
        |status| with_model(|m| m.failure = Some(status)),
    )
}

/// Runs one operation of a script, `op` (its low four bits) with its operands from `s`.
fn operation(
    ctx: &mut Context<'_>,
    message: Option<&Message<'_>>,
    s: &mut Script<'_>,
    op: u8,
) -> Step<Effect> {
    Step::Done(match op {
        0 => {
            let (t, id, p) = (s.typename(&TYPENAMES), s.id(), payload(s));
            with_value!(&p, |v| ctx.send(&t, &id, v)).map(|()| match address(&t, &id) {
                Some(target) => Effect::Message(from_function::Invocation {
                    target: Some(target),
                    argument: Some(p.typed()),
                }),
                None => Effect::Unexpected(format!("send to {t:?}/{id:?} succeeded")),
            })
        }
        1 => {
            let p = payload(s);
            let caller = ctx.caller().map(|c| ProtoAddress {
                namespace: c.namespace().into(),
                r#type: c.name().into(),
                id: c.id().into(),
            });
            with_value!(&p, |v| ctx.reply(v)).map(|()| match caller {
                Some(target) => Effect::Message(from_function::Invocation {
                    target: Some(target),
                    argument: Some(p.typed()),
                }),
                None => Effect::Unexpected("reply without a caller succeeded".into()),
            })
        }
        op @ (2 | 3) => {
            let (d, t, id, p) = (
                s.delay(NANOS_STEP),
                s.typename(&TYPENAMES),
                s.id(),
                payload(s),
            );
            let token = if op == 3 { Some(s.token()) } else { None };
            let sent = match &token {
                None => with_value!(&p, |v| ctx.send_after(d, &t, &id, v)),
                Some(token) => {
                    with_value!(&p, |v| ctx.send_after_cancellable(d, &t, &id, v, token))
                }
            };
            sent.map(|()| {
                let ms = i64::try_from(d.as_millis()).ok();
                match (address(&t, &id), ms) {
                    (Some(target), Some(delay_in_ms)) if token.as_deref() != Some("") => {
                        Effect::Delayed(from_function::DelayedInvocation {
                            delay_in_ms,
                            target: Some(target),
                            argument: Some(p.typed()),
                            is_cancellation_request: false,
                            cancellation_token: token.unwrap_or_default(),
                        })
                    }
                    _ => Effect::Unexpected(format!(
                        "send_after({d:?}, {t:?}, {id:?}, token {token:?}) succeeded"
                    )),
                }
            })
        }
        4 => {
            let token = s.token();
            ctx.cancel_delayed_message(&token).map(|()| {
                if token.is_empty() {
                    Effect::Unexpected("an empty token was cancelled".into())
                } else {
                    Effect::Delayed(from_function::DelayedInvocation {
                        is_cancellation_request: true,
                        cancellation_token: token,
                        ..Default::default()
                    })
                }
            })
        }
        5 => {
            let (t, p) = (s.typename(&TYPENAMES), payload(s));
            with_value!(&p, |v| ctx.send_egress(&t, v)).map(|()| match split(&t) {
                Some((namespace, name)) => Effect::Egress(from_function::EgressMessage {
                    egress_namespace: namespace.into(),
                    egress_type: name.into(),
                    argument: Some(p.typed()),
                }),
                None => Effect::Unexpected(format!("send_egress to {t:?} succeeded")),
            })
        }
        6 => match spec(s.byte_or_zero()) {
            Spec::Int(spec) => get(ctx, spec),
            Spec::Long(spec) => get(ctx, spec),
            Spec::Bool(spec) => get(ctx, spec),
            Spec::Str(spec) => get(ctx, spec),
        },
        7 => match spec(s.byte_or_zero()) {
            Spec::Int(spec) => set(ctx, spec, &i32::from_le_bytes(s.array())),
            Spec::Long(spec) => set(ctx, spec, &i64::from_le_bytes(s.array())),
            Spec::Bool(spec) => set(ctx, spec, &(s.byte_or_zero() % 2 == 1)),
            Spec::Str(spec) => set(ctx, spec, &s.text()),
        },
        8 => match spec(s.byte_or_zero()) {
            Spec::Int(spec) => remove(ctx, spec),
            Spec::Long(spec) => remove(ctx, spec),
            Spec::Bool(spec) => remove(ctx, spec),
            Spec::Str(spec) => remove(ctx, spec),
        },
        9 => match (message, s.byte_or_zero() % 4) {
            (None, _) => Ok(Effect::Nothing),
            (Some(m), 0) => read_message::<i32>(m),
            (Some(m), 1) => read_message::<i64>(m),
            (Some(m), 2) => read_message::<bool>(m),
            (Some(m), _) => read_message::<String>(m),
        },
        10 => {
            let name = s.state_name(&STATE_NAMES);
            let got = ctx.get_state(&name);
            let expected = with_model(|m| m.current(&name));
            match (&got, expected) {
                (Ok(a), Some(b)) => {
                    let a = a
                        .as_ref()
                        .map(|any| (any.type_url.clone(), any.value.clone()));
                    if a != b {
                        with_model(|m| {
                            m.violate(format!("get_state({name:?}) read {a:?}, not {b:?}"))
                        });
                    }
                }
                (Err(Error::UnknownState { .. }), Some(_)) => with_model(|m| {
                    m.violate(format!(
                        "get_state({name:?}): UnknownState, but it is carried"
                    ))
                }),
                (Ok(_), None) if with_model(|m| m.request.is_some()) => with_model(|m| {
                    m.violate(format!("get_state({name:?}) of a state not carried is Ok"))
                }),
                _ => {}
            }
            got.map(|_| Effect::Nothing)
        }
        11 => {
            let (name, any) = (s.state_name(&STATE_NAMES), s.any());
            let value = (any.type_url.clone(), any.value.clone());
            ctx.set_state(&name, any)
                .map(|()| Effect::Written(name, Some(value)))
        }
        12 => {
            let name = s.state_name(&STATE_NAMES);
            ctx.remove_state(&name)
                .map(|()| Effect::Written(name, None))
        }
        13 => return Step::Fail,
        14 => return Step::Panic,
        _ => Ok(Effect::Nothing),
    })
}

/// The properties of one 3.x `handle()` answer, given the request as prost decoded it and
/// what the script did. Panics (the fuzzer's finding) when one does not hold.
///
/// - `Ok`: the reply decodes (prost) as a 3.x `FromFunction` with a response. When the
///   request decodes with prost too: its target is bound; the reply is the handshake
///   exactly when a declared state is missing, and then lists exactly the missing specs
///   in declaration order (name, typename, expiration) and nothing ran; otherwise every
///   invocation ran once and the reply carries exactly the messages, delayed messages,
///   cancellations and egress messages the script made, in order and field for field,
///   and one mutation per written state with its last value, for carried states only.
/// - `Err`: never `MissingDeclaredState` (3.x answers with the handshake); status 400,
///   404, 413 or 500 (the script's own failure's status when it failed); a 404 or a
///   request that did not decode ran nothing; a short message without control characters.
pub fn check(result: &Result<Vec<u8>, Error>, model: &Model) {
    if let Some(violation) = &model.violation {
        panic!("inside the function: {violation}");
    }
    let request = model.request.as_ref();
    match result {
        Ok(reply) => {
            assert_eq!(
                model.failure, None,
                "the batch failed but handle() returned Ok"
            );
            let decoded = FromFunction::decode(reply.as_slice()).unwrap_or_else(|e| {
                panic!("an Ok reply does not decode as a 3.x FromFunction: {e}")
            });
            let response = decoded
                .response
                .unwrap_or_else(|| panic!("an Ok reply has no response: {reply:02x?}"));
            let Some(request) = request else {
                // Decoded by the crate, not by prost (e.g. groups nested within the crate's
                // limit but past prost's, counted from the top): nothing more to compare.
                return;
            };
            let function_type = request.function_type().expect("an Ok batch has a target");
            assert!(
                BOUND.contains(&function_type.as_str()),
                "Ok for the unbound target {function_type:?}"
            );
            let missing: Vec<&Announced> = declared(&function_type)
                .iter()
                .filter(|(name, ..)| !request.carries(name))
                .collect();
            match response {
                from_function::Response::IncompleteInvocationContext(context) => {
                    assert!(!missing.is_empty(), "a handshake with every state carried");
                    assert_eq!(model.invocations, 0, "a function ran before the handshake");
                    let got: Vec<Announced> = context
                        .missing_values
                        .iter()
                        .map(|spec| {
                            let expiration = spec.expiration_spec.unwrap_or_default();
                            let name = STATE_NAMES
                                .iter()
                                .find(|n| **n == spec.state_name)
                                .unwrap_or(&"?");
                            let typename = declared(&function_type)
                                .iter()
                                .find(|(_, t, ..)| *t == spec.type_typename)
                                .map_or("?", |(_, t, ..)| t);
                            (
                                *name,
                                typename,
                                expiration.mode,
                                expiration.expire_after_millis,
                            )
                        })
                        .collect();
                    let expected: Vec<Announced> = missing.iter().map(|a| **a).collect();
                    assert_eq!(got, expected, "the handshake's specs: {context:?}");
                }
                from_function::Response::InvocationResult(result) => {
                    assert!(
                        missing.is_empty(),
                        "ran without the declared states {missing:?}"
                    );
                    assert_eq!(model.invocations, request.invocations, "invocations run");
                    assert_eq!(result.outgoing_messages, model.messages, "messages");
                    assert_eq!(
                        result.delayed_invocations, model.delayed,
                        "delayed messages"
                    );
                    assert_eq!(result.outgoing_egresses, model.egresses, "egress messages");
                    check_mutations(&result.state_mutations, model, request);
                }
            }
        }
        Err(err) => {
            assert!(
                !matches!(err, Error::MissingDeclaredState { .. }),
                "3.x answers a missing state with the handshake, not {err:?}"
            );
            if matches!(
                err,
                Error::UnknownFunctionType { .. }
                    | Error::MalformedRequest { .. }
                    | Error::NoInvocation
                    | Error::TooManyInvocations { .. }
                    | Error::TooManyStates { .. }
            ) {
                assert_eq!(model.invocations, 0, "a function ran before {err:?}");
            }
            if let (Error::UnknownFunctionType { .. }, Some(request)) = (err, request) {
                let function_type = request.function_type().unwrap_or_default();
                assert!(
                    !BOUND.contains(&function_type.as_str()),
                    "404 for the bound target {function_type:?}"
                );
            }
            check_error(err, model.failure);
        }
    }
}

fn check_mutations(
    mutations: &[from_function::PersistedValueMutation],
    model: &Model,
    request: &Decoded,
) {
    use from_function::persisted_value_mutation::MutationType;
    for (i, m) in mutations.iter().enumerate() {
        assert!(
            mutations[..i].iter().all(|e| e.state_name != m.state_name),
            "two mutations for state {:?}",
            m.state_name
        );
        assert!(
            request.carries(&m.state_name),
            "a mutation of {:?}, not carried",
            m.state_name
        );
    }
    assert_eq!(
        mutations.len(),
        model.written.len(),
        "{mutations:?} vs {:?}",
        model.written
    );
    for (name, value) in &model.written {
        let m = mutations
            .iter()
            .find(|m| m.state_name == *name)
            .unwrap_or_else(|| panic!("no mutation for the written state {name:?}"));
        match value {
            Some((typename, bytes)) => {
                assert_eq!(m.mutation_type, MutationType::Modify as i32, "{name:?}");
                let expected = TypedValue {
                    typename: typename.clone(),
                    has_value: true,
                    value: bytes.clone().into(),
                };
                assert_eq!(m.state_value.as_ref(), Some(&expected), "{name:?}");
            }
            None => {
                assert_eq!(m.mutation_type, MutationType::Delete as i32, "{name:?}");
                assert_eq!(m.state_value, None, "a DELETE of {name:?} carries no value");
            }
        }
    }
}
