//! The Python SDK 3.3.0 test suite (`statefun-sdk-python/tests/*_test.py` at
//! apache/flink-statefun `release-3.3.0`), ported test by test to the crate's 3.x API:
//! [`RequestReplyHandler::v3`], [`StatefulFunctions::bind_message`], [`ValueSpec`] and the
//! typed state of [`Context`], [`Type`] and its built-ins, [`Message`].
//!
//! One module per Python file; each test says which Python test it ports and where the
//! Rust form differs. Requests are built with the prost types of
//! `statefun_sync::proto::reqreply`, as the Python suite builds `ToFunction` by hand, and
//! replies are decoded with them.
//!
//! Much of the Python suite tests internals (`storage.resolve`, `Cell.dirty`,
//! `for_typename`); those tests are ported to what the internals are for, the bytes of
//! the handshake and of the reply.
//!
//! Not ported, because there is nothing in Rust to test:
//! - `statefun_test.py::test_async`: the crate is synchronous by design; a function is a
//!   plain `Fn`, and there is no `is_async` to report.
//! - `statefun_test.py::test_wrong_signature` (a function without its `context` parameter
//!   is a `ValueError` at bind time): in Rust it does not compile, since
//!   [`StatefulFunctions::bind_message`] takes an `Fn(&mut Context, Message)`.
//!
//! The JSON-typed port of `types_test.py::test_json_type` needs the crate feature `json`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use statefun_sync::prost::bytes::Bytes;
use statefun_sync::prost::Message as ProstMessage;
use statefun_sync::proto::egress::{KafkaProducerRecord, KinesisEgressRecord};
use statefun_sync::proto::reqreply::from_function::expiration_spec::ExpireMode;
use statefun_sync::proto::reqreply::from_function::persisted_value_mutation::MutationType;
use statefun_sync::proto::reqreply::from_function::{self, InvocationResponse, PersistedValueSpec};
use statefun_sync::proto::reqreply::{self as pb, to_function, FromFunction, ToFunction};
use statefun_sync::types::{builtin, Type};
use statefun_sync::{
    pack, Context, Error, Message, RequestReplyHandler, StateSpec, StatefulFunctions, ValueSpec,
};

// Helpers: the Python suite's `InvocationBuilder` and `round_trip` ---------------------

/// Builds a `ToFunction`, as `request_reply_test.py`'s `InvocationBuilder` does.
#[derive(Debug, Default)]
struct InvocationBuilder {
    batch: to_function::InvocationBatchRequest,
}

fn address(namespace: &str, name: &str, id: &str) -> pb::Address {
    pb::Address {
        namespace: namespace.into(),
        r#type: name.into(),
        id: id.into(),
    }
}

impl InvocationBuilder {
    fn new() -> Self {
        InvocationBuilder::default()
    }

    fn with_target(mut self, namespace: &str, name: &str, id: &str) -> Self {
        self.batch.target = Some(address(namespace, name, id));
        self
    }

    /// A state as the runtime sends it: `None` is a state without a value (no
    /// `state_value`).
    fn with_state(mut self, name: &str, value: Option<pb::TypedValue>) -> Self {
        self.batch.state.push(to_function::PersistedValue {
            state_name: name.into(),
            state_value: value,
        });
        self
    }

    /// An invocation with `argument`, from `caller` (`None`: from an ingress).
    fn with_invocation(
        mut self,
        argument: pb::TypedValue,
        caller: Option<(&str, &str, &str)>,
    ) -> Self {
        self.batch.invocations.push(to_function::Invocation {
            caller: caller.map(|(namespace, name, id)| address(namespace, name, id)),
            argument: Some(argument),
        });
        self
    }

    fn to_bytes(&self) -> Vec<u8> {
        ToFunction {
            request: Some(to_function::Request::Invocation(self.batch.clone())),
        }
        .encode_to_vec()
    }
}

/// `value` as a `TypedValue` of its type, as Python's `to_typed_value(type, value)`.
fn typed<T: Type>(value: &T) -> pb::TypedValue {
    let mut bytes = Vec::new();
    value.encode_value(&mut bytes).expect("the value encodes");
    pb::TypedValue {
        typename: T::type_name().to_string(),
        has_value: true,
        value: Bytes::from(bytes),
    }
}

/// A `TypedValue` of `T`'s type without a value, as Python's `to_typed_value(type, None)`.
fn no_value<T: Type>() -> pb::TypedValue {
    pb::TypedValue {
        typename: T::type_name().to_string(),
        has_value: false,
        value: Bytes::new(),
    }
}

/// The value a `TypedValue` holds, after checking that it has one, of `T`'s typename.
fn value_of<T: Type>(typed_value: &pb::TypedValue) -> T {
    assert_eq!(typed_value.typename, T::type_name().to_string());
    assert!(typed_value.has_value, "{typed_value:?}");
    T::decode_value(&typed_value.value).expect("the value decodes")
}

/// Runs `request` through a 3.x handler for `functions`; the reply, decoded.
fn call(functions: StatefulFunctions, request: &InvocationBuilder) -> Result<FromFunction, Error> {
    let handler = RequestReplyHandler::v3(functions)?;
    let reply = handler.handle(&request.to_bytes())?;
    Ok(FromFunction::decode(reply.as_slice()).expect("the reply is a FromFunction"))
}

/// Python's `round_trip`: as [`call`], for a batch that must succeed.
fn round_trip(functions: StatefulFunctions, request: &InvocationBuilder) -> FromFunction {
    call(functions, request).unwrap_or_else(|err| panic!("the batch failed: {err:?}"))
}

/// The reply's `invocation_result`; fails the test on a handshake.
fn invocation_result(reply: &FromFunction) -> &InvocationResponse {
    match &reply.response {
        Some(from_function::Response::InvocationResult(result)) => result,
        other => panic!("expected an invocation_result, got {other:?}"),
    }
}

/// The reply's `incomplete_invocation_context.missing_values`; fails the test otherwise.
fn missing_values(reply: &FromFunction) -> &[PersistedValueSpec] {
    match &reply.response {
        Some(from_function::Response::IncompleteInvocationContext(context)) => {
            &context.missing_values
        }
        other => panic!("expected an incomplete_invocation_context, got {other:?}"),
    }
}

/// What a function saw, for the test to check once the batch is over: an assertion inside
/// the function would only fail the batch, and could not show that the function ran.
#[derive(Debug)]
struct Log<T>(Arc<Mutex<Vec<T>>>);

impl<T> Clone for Log<T> {
    fn clone(&self) -> Self {
        Log(Arc::clone(&self.0))
    }
}

impl<T> Log<T> {
    fn new() -> Self {
        Log(Arc::new(Mutex::new(Vec::new())))
    }

    fn push(&self, entry: T) {
        self.0.lock().unwrap().push(entry);
    }

    fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

// request_reply_test.py ------------------------------------------------------------------

mod request_reply_test {
    use super::*;

    const SEEN: ValueSpec<i32> = ValueSpec::named("seen");

    /// The function of `test_integration`, call by call.
    fn greeter(ctx: &mut Context, message: Message) -> anyhow::Result<()> {
        // messaging
        if message.is::<String>() {
            let _unused: String = message.get()?.unwrap_or_default();
        }

        // state access
        let seen = ctx.get(&SEEN)?.unwrap_or_default();
        ctx.set(&SEEN, &(seen + 1))?;

        // sending
        ctx.send("org.foo/greeter-java", "0", &seen)?;

        // delayed messages
        let hoo = "hoo hoo".to_string();
        ctx.send_after(Duration::from_secs(3600), "night/owl", "1", &hoo)?;

        // delayed with cancellation
        ctx.send_after_cancellable(
            Duration::from_secs(3600),
            "night/owl",
            "1",
            &hoo,
            "token-1234",
        )?;
        ctx.cancel_delayed_message("token-1234")?;

        // kafka egress: an int value is Kafka's IntegerSerializer, 4 bytes big-endian
        let kafka = KafkaProducerRecord {
            key: "abc".into(),
            value_bytes: 1_337_420i32.to_be_bytes().to_vec(),
            topic: "out".into(),
        };
        ctx.send_egress("e/kafka", pack(&kafka))?;

        // kinesis egress: a str value is its UTF-8 bytes
        let kinesis = KinesisEgressRecord {
            partition_key: "abc".into(),
            value_bytes: b"hello there".to_vec(),
            stream: "out".into(),
            explicit_hash_key: String::new(),
        };
        ctx.send_egress("e/kinesis", pack(&kinesis))?;
        Ok(())
    }

    /// Ports `test_integration`: one invocation of a function that reads and writes its
    /// state, sends a message, two delayed messages (one with a cancellation token),
    /// cancels by that token, and sends to a Kafka and a Kinesis egress.
    ///
    /// Differs: Python's `kafka_egress_message` and `kinesis_egress_message` build the
    /// egress records; here the function builds the 3.x `proto::egress` records itself
    /// (the crate's `kafka_record_v2` makes the 2.2 record, package
    /// `org.apache.flink.statefun.flink.io`), with the bytes Python puts in `value_bytes`,
    /// and sends them with `pack_and_send_egress`. The reply is checked as Python checks
    /// it, and also for the values (the Python test only checks typenames).
    #[test]
    fn integration() {
        let mut functions = StatefulFunctions::new();
        functions
            .bind_message("org.foo/greeter", greeter)
            .unwrap()
            .state(&SEEN);
        let request = InvocationBuilder::new()
            .with_target("org.foo", "greeter", "0")
            .with_state("seen", Some(typed(&1i32)))
            .with_invocation(
                typed(&"Hello".to_string()),
                Some(("org.foo", "greeter-java", "0")),
            );

        let reply = round_trip(functions, &request);
        let result = invocation_result(&reply);

        // first outgoing message
        let first = &result.outgoing_messages[0];
        assert_eq!(first.target, Some(address("org.foo", "greeter-java", "0")));
        let argument = first.argument.as_ref().unwrap();
        assert_eq!(argument.typename, "io.statefun.types/int");
        assert_eq!(value_of::<i32>(argument), 1, "the value seen before");

        // state mutations
        let mutation = &result.state_mutations[0];
        assert_eq!(mutation.mutation_type, MutationType::Modify as i32);
        assert_eq!(mutation.state_name, "seen");
        assert_eq!(value_of::<i32>(mutation.state_value.as_ref().unwrap()), 2);

        // delayed
        let delayed = &result.delayed_invocations;
        assert_eq!(delayed.len(), 3, "{delayed:?}");
        assert_eq!(delayed[0].delay_in_ms, 1000 * 60 * 60);
        assert_eq!(delayed[0].target, Some(address("night", "owl", "1")));
        assert_eq!(
            value_of::<String>(delayed[0].argument.as_ref().unwrap()),
            "hoo hoo"
        );
        assert_eq!(delayed[0].cancellation_token, "");

        // delayed with token
        assert_eq!(delayed[1].cancellation_token, "token-1234");
        assert!(!delayed[1].is_cancellation_request);

        // cancellation: the token and nothing else
        assert!(delayed[2].is_cancellation_request);
        assert_eq!(delayed[2].cancellation_token, "token-1234");
        assert_eq!(delayed[2].target, None);
        assert_eq!(delayed[2].argument, None);

        // egresses
        let egresses = &result.outgoing_egresses;
        assert_eq!(egresses.len(), 2, "{egresses:?}");
        assert_eq!(egresses[0].egress_namespace, "e");
        assert_eq!(egresses[0].egress_type, "kafka");
        let kafka = egresses[0].argument.as_ref().unwrap();
        assert_eq!(
            kafka.typename,
            "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
        );
        let record = <KafkaProducerRecord as ProstMessage>::decode(kafka.value.as_ref()).unwrap();
        assert_eq!(
            (
                record.topic.as_str(),
                record.key.as_str(),
                record.value_bytes.as_slice()
            ),
            ("out", "abc", &[0x00, 0x14, 0x68, 0x4c][..])
        );
        assert_eq!(
            (
                egresses[1].egress_namespace.as_str(),
                egresses[1].egress_type.as_str()
            ),
            ("e", "kinesis")
        );
        let kinesis = egresses[1].argument.as_ref().unwrap();
        assert_eq!(
            kinesis.typename,
            "type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord"
        );
        let record = <KinesisEgressRecord as ProstMessage>::decode(kinesis.value.as_ref()).unwrap();
        assert_eq!(
            (
                record.stream.as_str(),
                record.partition_key.as_str(),
                record.value_bytes.as_slice()
            ),
            ("out", "abc", &b"hello there"[..])
        );
    }

    /// Ports `test_integration_incomplete_context`: a request that carries only one of the
    /// three declared states is answered with the two missing specs, in declaration order,
    /// the one that expires with `AFTER_WRITE` and 2000 ms.
    ///
    /// Differs: also checks what the Python test leaves out, that each spec carries its
    /// typename and that the function did not run.
    #[test]
    fn integration_incomplete_context() {
        const SEEN: ValueSpec<i32> = ValueSpec::named("seen");
        const MISSING_1: ValueSpec<String> = ValueSpec::named("missing_state_1");
        const MISSING_2: ValueSpec<f32> =
            ValueSpec::named("missing_state_2").expire_after_write(Duration::from_millis(2000));
        let ran = Log::new();
        let log = ran.clone();
        let mut functions = StatefulFunctions::new();
        functions
            .bind_message("org.foo/bar", move |_: &mut Context, _: Message| {
                log.push(());
                Ok(())
            })
            .unwrap()
            .state(&SEEN)
            .state(&MISSING_1)
            .state(&MISSING_2);
        // only 'seen' is provided (without a value)
        let request = InvocationBuilder::new()
            .with_target("org.foo", "bar", "0")
            .with_state("seen", None)
            .with_invocation(typed(&1i32), None);

        let reply = round_trip(functions, &request);
        let missing = missing_values(&reply);

        assert_eq!(missing.len(), 2, "{missing:?}");
        assert_eq!(missing[0].state_name, "missing_state_1");
        assert_eq!(missing[0].type_typename, builtin::STRING);
        assert_eq!(missing[1].state_name, "missing_state_2");
        assert_eq!(missing[1].type_typename, builtin::FLOAT);
        let expiration = missing[1].expiration_spec.as_ref().unwrap();
        assert_eq!(expiration.mode, ExpireMode::AfterWrite as i32);
        assert_eq!(expiration.expire_after_millis, 2000);
        assert!(ran.take().is_empty(), "nothing of the batch runs");
    }

    /// Ports `test_caller_not_set`: a message from an ingress (no caller) shows no caller.
    ///
    /// Differs: Python asserts inside the function; here the function logs what it saw.
    /// A second invocation checks that a caller sent with all three fields empty is no
    /// caller either (PROTOCOL3.md). 3.x Python has no `reply()`; the crate's
    /// [`Context::reply`] sends to the caller, so without one it is [`Error::NoCaller`],
    /// checked here too.
    #[test]
    fn caller_not_set() {
        let seen = Log::new();
        let log = seen.clone();
        let mut functions = StatefulFunctions::new();
        functions
            .bind_message("org.foo/greeter", move |ctx: &mut Context, _: Message| {
                let reply = ctx.reply(&"hi".to_string());
                log.push((ctx.caller().cloned(), reply));
                Ok(())
            })
            .unwrap();
        let request = InvocationBuilder::new()
            .with_target("org.foo", "greeter", "0")
            .with_invocation(typed(&"Hello".to_string()), None)
            .with_invocation(typed(&"Hello".to_string()), Some(("", "", "")));

        let reply = round_trip(functions, &request);

        let seen = seen.take();
        assert_eq!(seen.len(), 2);
        for (invocation, (caller, reply)) in seen.iter().enumerate() {
            assert_eq!(*caller, None, "invocation {invocation}");
            assert!(
                matches!(reply, Err(Error::NoCaller { invocation: i, .. }) if *i == invocation),
                "invocation {invocation}: {reply:?}"
            );
        }
        assert!(invocation_result(&reply).outgoing_messages.is_empty());
    }
}

// statefun_test.py -----------------------------------------------------------------------

mod statefun_test {
    use super::*;

    fn noop(_: &mut Context, _: Message) -> anyhow::Result<()> {
        Ok(())
    }

    /// Ports `test_example`: a function bound with a spec is found under its typename,
    /// with its storage spec.
    ///
    /// Differs: Python's `for_typename(...)` and `fun.storage_spec` are
    /// [`StatefulFunctions::is_bound`] and [`StatefulFunctions::declared_states`] here;
    /// `is_async` has no counterpart (the crate is synchronous), and a 3.x handler is
    /// built for the functions instead.
    #[test]
    fn example() {
        const SEEN_COUNT: ValueSpec<i32> = ValueSpec::named("seen_count");
        let mut functions = StatefulFunctions::new();
        functions
            .bind_message("org.foo/greeter", noop)
            .unwrap()
            .state(&SEEN_COUNT);

        assert!(functions.is_bound("org.foo/greeter"));
        assert_eq!(
            functions.declared_states("org.foo/greeter").map(<[_]>::len),
            Some(1)
        );
        let handler = RequestReplyHandler::v3(functions).unwrap();
        assert_eq!(
            handler.protocol_version(),
            statefun_sync::ProtocolVersion::V3
        );
    }

    /// Ports `test_state_spec`: the storage spec lists the declared specs, in order.
    ///
    /// Differs: Python compares the `ValueSpec` objects; here the declared
    /// [`StateSpec`]s, which hold a spec's name, typename and expiration.
    #[test]
    fn state_spec() {
        const FOO: ValueSpec<i32> = ValueSpec::named("foo");
        const BAR: ValueSpec<String> = ValueSpec::named("bar");
        let mut functions = StatefulFunctions::new();
        functions
            .bind_message("org.foo/greeter", noop)
            .unwrap()
            .state(&FOO)
            .state(&BAR);

        let declared = functions.declared_states("org.foo/greeter").unwrap();

        assert_eq!(declared, [StateSpec::from(&FOO), StateSpec::from(&BAR)]);
        let described: Vec<_> = declared
            .iter()
            .map(|spec| (spec.name(), spec.typename()))
            .collect();
        assert_eq!(
            described,
            [
                ("foo", Some("io.statefun.types/int")),
                ("bar", Some("io.statefun.types/string"))
            ]
        );
    }

    /// Ports `test_stateless`: a function bound without specs declares none.
    #[test]
    fn stateless() {
        let mut functions = StatefulFunctions::new();
        functions.bind_message("org.foo/greeter", noop).unwrap();

        assert_eq!(functions.declared_states("org.foo/greeter"), Some(&[][..]));
    }

    /// Ports `test_duplicate_state`: two specs with one name are refused (Python: a
    /// `ValueError` at bind time).
    ///
    /// Differs: [`Binding::state`](statefun_sync::Binding::state) returns no `Result`, so
    /// the refusal can come only when the 3.x handler is built, as it does for untyped
    /// states ([`Error::UntypedState`]); the error must name the state.
    #[test]
    fn duplicate_state() {
        const BAR: ValueSpec<i32> = ValueSpec::named("bar");
        let mut functions = StatefulFunctions::new();
        functions
            .bind_message("org.foo/greeter", noop)
            .unwrap()
            .state(&BAR)
            .state(&BAR);

        let err = RequestReplyHandler::v3(functions).unwrap_err();

        assert!(matches!(err, Error::DuplicateState { .. }), "{err:?}");
        assert!(err.to_string().contains("bar"), "{err}");
    }
}

// storage_test.py ------------------------------------------------------------------------

/// Python's `storage_test.py` resolves specs against the request's values and inspects
/// the storage's cells directly; these ports run the same specs and values through a 3.x
/// handler, bound to `example/func`, and check what a cell's state becomes: the value a
/// function reads, the handshake, and the reply's mutations.
mod storage_test {
    use super::*;

    const A: ValueSpec<i32> = ValueSpec::named("a");
    const B: ValueSpec<String> = ValueSpec::named("b");

    /// A request to `example/func/0` with `states` and one invocation.
    fn request(states: Vec<(&str, Option<pb::TypedValue>)>) -> InvocationBuilder {
        states
            .into_iter()
            .fold(
                InvocationBuilder::new().with_target("example", "func", "0"),
                |builder, (name, value)| builder.with_state(name, value),
            )
            .with_invocation(typed(&0i32), None)
    }

    /// `functions` with `function` bound to `example/func`, declaring `specs`.
    fn bound<F>(specs: Vec<StateSpec>, function: F) -> StatefulFunctions
    where
        F: Fn(&mut Context, Message) -> anyhow::Result<()> + Send + Sync + 'static,
    {
        let mut functions = StatefulFunctions::new();
        let binding = functions.bind_message("example/func", function).unwrap();
        specs
            .into_iter()
            .fold(binding, |binding, spec| binding.state(spec));
        functions
    }

    /// The single mutation of a reply.
    fn only_mutation(reply: &FromFunction) -> &from_function::PersistedValueMutation {
        let mutations = &invocation_result(reply).state_mutations;
        assert_eq!(mutations.len(), 1, "{mutations:?}");
        &mutations[0]
    }

    /// Ports `test_example`: the values the request carries are what the function reads.
    #[test]
    fn example() {
        let seen = Log::new();
        let log = seen.clone();
        let functions = bound(vec![(&A).into(), (&B).into()], move |ctx, _| {
            log.push((ctx.get(&A)?, ctx.get(&B)?));
            Ok(())
        });
        let request = request(vec![
            ("a", Some(typed(&1i32))),
            ("b", Some(typed(&"hello".to_string()))),
        ]);

        round_trip(functions, &request);

        assert_eq!(seen.take(), [(Some(1), Some("hello".to_string()))]);
    }

    /// Ports `test_failed_resolution`: with no values at all, every spec is missing, and
    /// the handshake asks for them all, in declaration order.
    #[test]
    fn failed_resolution() {
        let functions = bound(vec![(&A).into(), (&B).into()], |_, _| Ok(()));

        let reply = round_trip(functions, &request(vec![]));

        let missing: Vec<_> = missing_values(&reply)
            .iter()
            .map(|spec| (spec.state_name.as_str(), spec.type_typename.as_str()))
            .collect();
        assert_eq!(missing, [("a", builtin::INT), ("b", builtin::STRING)]);
    }

    /// Ports `test_partial_failed_resolution`: with only `a`, only `b` is missing.
    #[test]
    fn partial_failed_resolution() {
        let functions = bound(vec![(&A).into(), (&B).into()], |_, _| Ok(()));

        let reply = round_trip(functions, &request(vec![("a", Some(typed(&1i32)))]));

        let missing: Vec<_> = missing_values(&reply)
            .iter()
            .map(|spec| spec.state_name.as_str())
            .collect();
        assert_eq!(missing, ["b"]);
    }

    /// Ports `test_ignore_unknown`: a value the function does not declare is ignored, and
    /// reading it fails even though the request carries it.
    ///
    /// Differs: Python's `store.b` raises `AttributeError`; here [`Context::get`] returns
    /// [`Error::UndeclaredState`], naming the state and the type it was read as.
    #[test]
    fn ignore_unknown() {
        let seen = Log::new();
        let log = seen.clone();
        let functions = bound(vec![(&A).into()], move |ctx, _| {
            log.push((ctx.get(&A)?, ctx.get(&B)));
            Ok(())
        });
        let request = request(vec![
            ("a", Some(typed(&1i32))),
            ("b", Some(typed(&"hello".to_string()))),
        ]);

        let reply = round_trip(functions, &request);

        let [(a, b)] = &seen.take()[..] else {
            panic!("the function runs once");
        };
        assert_eq!(*a, Some(1));
        assert!(
            matches!(b, Err(Error::UndeclaredState { state, typename, .. })
                if state == "b" && typename == builtin::STRING),
            "{b:?}"
        );
        assert!(invocation_result(&reply).state_mutations.is_empty());
    }

    /// Ports `test_attribute_manipulation`: add, set, delete and set again within one
    /// invocation, each read back at once.
    ///
    /// Differs: Python's `store.a += 1`, `store.a = 1337` and `del store.a` are
    /// [`Context::get`], [`Context::set`] and [`Context::remove`]. Also checks the reply:
    /// one `MODIFY` with the final value, 0, which is a value (`has_value`) of empty bytes.
    #[test]
    fn attribute_manipulation() {
        let seen = Log::new();
        let log = seen.clone();
        let functions = bound(vec![(&A).into()], move |ctx, _| {
            let a = ctx.get(&A)?.unwrap_or_default();
            ctx.set(&A, &(a + 1))?;
            log.push(ctx.get(&A)?);
            ctx.set(&A, &1337)?;
            log.push(ctx.get(&A)?);
            ctx.remove(&A)?;
            log.push(ctx.get(&A)?);
            ctx.set(&A, &0)?;
            log.push(ctx.get(&A)?);
            Ok(())
        });

        let reply = round_trip(functions, &request(vec![("a", Some(typed(&1i32)))]));

        assert_eq!(seen.take(), [Some(2), Some(1337), None, Some(0)]);
        let mutation = only_mutation(&reply);
        assert_eq!(mutation.mutation_type, MutationType::Modify as i32);
        let value = mutation.state_value.as_ref().unwrap();
        assert!(value.has_value && value.value.is_empty(), "{value:?}");
        assert_eq!(value_of::<i32>(value), 0);
    }

    /// Ports `test_no_modifications`: a state that is only read is not dirty.
    ///
    /// Differs: Python checks the cell's `dirty` flag; here the reply carries no mutation.
    #[test]
    fn no_modifications() {
        let seen = Log::new();
        let log = seen.clone();
        let functions = bound(vec![(&A).into()], move |ctx, _| {
            log.push(ctx.get(&A)?);
            Ok(())
        });

        let reply = round_trip(functions, &request(vec![("a", Some(typed(&1i32)))]));

        assert_eq!(seen.take(), [Some(1)]);
        assert!(invocation_result(&reply).state_mutations.is_empty());
    }

    /// Ports `test_modification`: a set state is dirty, and holds the new value, encoded.
    ///
    /// Differs: Python inspects the cell; here the reply's `MODIFY` carries the value.
    #[test]
    fn modification() {
        let functions = bound(vec![(&A).into()], |ctx, _| {
            ctx.set(&A, &23_249_425)?;
            Ok(())
        });

        let reply = round_trip(functions, &request(vec![("a", Some(typed(&1i32)))]));

        let mutation = only_mutation(&reply);
        assert_eq!(mutation.mutation_type, MutationType::Modify as i32);
        assert_eq!(mutation.state_name, "a");
        assert_eq!(
            value_of::<i32>(mutation.state_value.as_ref().unwrap()),
            23_249_425
        );
    }

    /// Ports `test_deletion`: a deleted state is dirty, without a value.
    ///
    /// Differs: Python inspects the cell; here the reply carries a `DELETE` without a
    /// value.
    #[test]
    fn deletion() {
        let functions = bound(vec![(&A).into()], |ctx, _| {
            ctx.remove(&A)?;
            Ok(())
        });

        let reply = round_trip(functions, &request(vec![("a", Some(typed(&1i32)))]));

        let mutation = only_mutation(&reply);
        assert_eq!(mutation.mutation_type, MutationType::Delete as i32);
        assert_eq!(mutation.state_name, "a");
        assert_eq!(mutation.state_value, None);
    }

    /// Ports `test_missing_val`: a state the request carries without a value reads as
    /// none, and setting it makes a value.
    ///
    /// Differs: Python's helper sends the value as `TypedValue{has_value: false}`; the
    /// runtime also sends no `state_value` at all. Both forms are checked.
    #[test]
    fn missing_val() {
        for carried in [Some(no_value::<i32>()), None] {
            let seen = Log::new();
            let log = seen.clone();
            let functions = bound(vec![(&A).into()], move |ctx, _| {
                log.push(ctx.get(&A)?);
                ctx.set(&A, &121_314)?;
                Ok(())
            });

            let reply = round_trip(functions, &request(vec![("a", carried.clone())]));

            assert_eq!(seen.take(), [None], "{carried:?}");
            let mutation = only_mutation(&reply);
            assert_eq!(mutation.mutation_type, MutationType::Modify as i32);
            assert_eq!(
                value_of::<i32>(mutation.state_value.as_ref().unwrap()),
                121_314,
                "{carried:?}"
            );
        }
    }

    /// Ports `test_stateless`: a function without specs has an empty storage.
    ///
    /// Differs: Python counts the cells; here a request without states runs the function
    /// (no handshake) and the reply changes no state.
    #[test]
    fn stateless() {
        let ran = Log::new();
        let log = ran.clone();
        let functions = bound(vec![], move |_, _| {
            log.push(());
            Ok(())
        });

        let reply = round_trip(functions, &request(vec![]));

        assert_eq!(ran.take().len(), 1);
        assert!(invocation_result(&reply).state_mutations.is_empty());
    }
}

// typename_test.py -----------------------------------------------------------------------

/// Python's `parse_typename` is [`FunctionType`](statefun_sync::FunctionType)'s `parse`
/// here, and checks every typename the API takes: a binding's and a message target's.
mod typename_test {
    use super::*;
    use statefun_sync::FunctionType;

    /// Checks that `input` is refused as a typename: by `parse`, by
    /// [`StatefulFunctions::bind_message`] and by [`Context::send`], each naming it
    /// (Python: `ValueError`).
    fn assert_refused(input: &'static str) {
        let parsed = input.parse::<FunctionType>();
        assert!(
            matches!(&parsed, Err(invalid) if invalid.input() == input),
            "{input:?}: {parsed:?}"
        );

        let mut functions = StatefulFunctions::new();
        let bound = functions
            .bind_message(input, |_: &mut Context, _: Message| Ok(()))
            .map(|_| ());
        assert!(
            matches!(&bound, Err(Error::InvalidTypename(invalid)) if invalid.input() == input),
            "{input:?}: {bound:?}"
        );

        let sent = Log::new();
        let log = sent.clone();
        functions
            .bind_message("org.foo/sender", move |ctx: &mut Context, _: Message| {
                log.push(ctx.send(input, "a", &1i32));
                Ok(())
            })
            .unwrap();
        let request = InvocationBuilder::new()
            .with_target("org.foo", "sender", "0")
            .with_invocation(typed(&1i32), None);
        round_trip(functions, &request);
        let sent = sent.take();
        assert!(
            matches!(&sent[..], [Err(Error::InvalidTypename(invalid))] if invalid.input() == input),
            "{input:?}: {sent:?}"
        );
    }

    /// Ports `test_example`: `foo/bar` is namespace `foo`, name `bar`.
    ///
    /// Differs: also checks that the split is at the last `/`, as `parse_typename`'s
    /// `rfind` does.
    #[test]
    fn example() {
        let parsed: FunctionType = "foo/bar".parse().unwrap();
        assert_eq!((parsed.namespace(), parsed.name()), ("foo", "bar"));

        let nested: FunctionType = "org.foo/app/bar".parse().unwrap();
        assert_eq!((nested.namespace(), nested.name()), ("org.foo/app", "bar"));
    }

    /// Ports `test_no_namespace`: `/bar` is refused.
    #[test]
    fn no_namespace() {
        assert_refused("/bar");
    }

    /// Ports `test_no_name`: `n/` is refused.
    #[test]
    fn no_name() {
        assert_refused("n/");
    }

    /// Ports `test_no_namespace_and_name`: `/` is refused.
    #[test]
    fn no_namespace_and_name() {
        assert_refused("/");
    }

    /// Ports `test_empty_string`: the empty string is refused.
    #[test]
    fn empty_string() {
        assert_refused("");
    }
}

// types_test.py --------------------------------------------------------------------------

mod types_test {
    use super::*;

    /// Python's `assertRoundTrip`: `value` encoded and decoded again is `value`.
    fn assert_round_trip<T: Type + PartialEq + std::fmt::Debug>(value: T) {
        let mut bytes = Vec::new();
        value
            .encode_value(&mut bytes)
            .unwrap_or_else(|err| panic!("{value:?}: {err}"));
        let got = T::decode_value(&bytes).unwrap_or_else(|err| panic!("{value:?}: {err}"));
        assert_eq!(got, value);
    }

    /// Ports `test_built_ins`: each built-in type round-trips, with the values Python uses.
    ///
    /// Differs: Python's `BoolType`, `IntType`, ... are the [`Type`] impls of `bool`,
    /// `i32`, `f32`, `f64`, `i64` and `String`; their typenames are checked too.
    #[test]
    fn built_ins() {
        assert_round_trip(true);
        assert_round_trip(0i32);
        assert_round_trip(0.5f32);
        assert_round_trip(1e-20f64);
        assert_round_trip(1i64 << 45);
        assert_round_trip("hello world".to_string());

        let typenames = [
            bool::type_name().to_string(),
            i32::type_name().to_string(),
            f32::type_name().to_string(),
            f64::type_name().to_string(),
            i64::type_name().to_string(),
            String::type_name().to_string(),
        ];
        assert_eq!(
            typenames,
            [
                builtin::BOOL,
                builtin::INT,
                builtin::FLOAT,
                builtin::DOUBLE,
                builtin::LONG,
                builtin::STRING
            ]
        );
    }

    /// Ports `test_message`: a message holding a string is a string, and reads as one.
    ///
    /// Differs: Python builds a `Message` directly; the crate makes [`Message`]s only for
    /// the invocations of a batch, so the function receives it and logs what it saw.
    #[test]
    fn message() {
        let seen = Log::new();
        let log = seen.clone();
        let mut functions = StatefulFunctions::new();
        functions
            .bind_message("foo/bar", move |_: &mut Context, message: Message| {
                log.push((
                    message.typename().to_owned(),
                    message.is::<String>(),
                    message.is::<i32>(),
                    message.get::<String>()?.unwrap_or_default(),
                ));
                Ok(())
            })
            .unwrap();
        let request = InvocationBuilder::new()
            .with_target("foo", "bar", "1")
            .with_invocation(typed(&"hello world".to_string()), None);

        round_trip(functions, &request);

        assert_eq!(
            seen.take(),
            [(
                builtin::STRING.to_string(),
                true,
                false,
                "hello world".to_string()
            )]
        );
    }

    /// Ports `test_json_type` (feature `json`): a user type under the typename
    /// `org.foo.bar/UserJson`, with JSON for its bytes, round-trips.
    #[cfg(feature = "json")]
    mod json {
        use super::assert_round_trip;
        use statefun_sync::types::{DecodeError, EncodeError, Type, TypeName};

        /// The Python test's `simple_type(typename, serialize_fn=json.dumps,
        /// deserialize_fn=json.loads)`: a [`Type`] written by hand.
        #[derive(Debug, PartialEq)]
        struct UserJson(serde_json::Value);

        impl Type for UserJson {
            fn type_name() -> TypeName {
                TypeName::new("org.foo.bar/UserJson")
            }
            fn encode_value(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
                buf.extend_from_slice(self.0.to_string().as_bytes());
                Ok(())
            }
            fn decode_value(bytes: &[u8]) -> Result<Self, DecodeError> {
                Ok(UserJson(serde_json::from_slice(bytes)?))
            }
        }

        /// The same type through the crate's `json_type!` (Python's `make_json_type`).
        #[derive(Debug, PartialEq)]
        struct User(serde_json::Value);

        impl serde::Serialize for User {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(serializer)
            }
        }

        impl<'de> serde::Deserialize<'de> for User {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                serde_json::Value::deserialize(deserializer).map(User)
            }
        }

        statefun_sync::json_type!(User => "org.foo.bar/UserJson");

        fn bob() -> serde_json::Value {
            serde_json::json!({"name": "bob", "last": "mop"})
        }

        /// Ports `test_json_type` with a hand-written [`Type`], as the Python test's
        /// `simple_type`.
        #[test]
        fn simple_type() {
            assert_eq!(UserJson::type_name(), "org.foo.bar/UserJson");
            assert_round_trip(UserJson(bob()));
        }

        /// Ports `test_json_type` with `json_type!`; also checks that it reads what
        /// Python's `json.dumps` writes (with its `", "` and `": "` separators).
        #[test]
        fn json_type() {
            assert_eq!(User::type_name(), "org.foo.bar/UserJson");
            assert_round_trip(User(bob()));
            let from_python = User::decode_value(br#"{"name": "bob", "last": "mop"}"#).unwrap();
            assert_eq!(from_python, User(bob()));
        }
    }
}

// valuespec_test.py ----------------------------------------------------------------------

/// Python reads a spec's `after_call`, `after_write` and `duration` (ms); here a spec's
/// [`expiration`](ValueSpec::expiration), and the `expiration_spec` its handshake sends.
mod valuespec_test {
    use super::*;
    use statefun_sync::Expiration;

    /// The `PersistedValueSpec` that the handshake sends for `spec`.
    fn announced(spec: &ValueSpec<i32>) -> PersistedValueSpec {
        let mut functions = StatefulFunctions::new();
        functions
            .bind_message("org.foo/f", |_: &mut Context, _: Message| Ok(()))
            .unwrap()
            .state(spec);
        let request = InvocationBuilder::new()
            .with_target("org.foo", "f", "0")
            .with_invocation(typed(&1i32), None);
        let reply = round_trip(functions, &request);
        let missing = missing_values(&reply);
        assert_eq!(missing.len(), 1, "{missing:?}");
        missing[0].clone()
    }

    /// `(mode, expire_after_millis)` of an announced spec.
    fn expiration_of(spec: &PersistedValueSpec) -> (i32, i64) {
        let expiration = spec.expiration_spec.as_ref().expect("always set");
        (expiration.mode, expiration.expire_after_millis)
    }

    /// Ports `test_example`: a spec has its name and type, and does not expire.
    #[test]
    fn example() {
        let a = ValueSpec::<i32>::named("a");
        assert_eq!(a.name(), "a");
        assert_eq!(StateSpec::from(&a).typename(), Some(builtin::INT));
        assert_eq!(a.expiration(), None);

        let announced = announced(&a);
        assert_eq!(announced.state_name, "a");
        assert_eq!(announced.type_typename, builtin::INT);
        assert_eq!(expiration_of(&announced), (ExpireMode::None as i32, 0));
    }

    /// `spec` expires as `expected` (and in no other way), and its handshake announces
    /// `mode` with `millis`.
    fn assert_expires(spec: &ValueSpec<i32>, expected: Expiration, mode: ExpireMode, millis: i64) {
        assert_eq!(spec.expiration(), Some(expected));
        assert_eq!(expiration_of(&announced(spec)), (mode as i32, millis));
    }

    /// Ports `test_expire_after_access`: `expire_after_call(1 s)` expires after call,
    /// 1000 ms, and not after write.
    #[test]
    fn expire_after_access() {
        let a = ValueSpec::<i32>::named("a").expire_after_call(Duration::from_secs(1));
        let expected = Expiration::AfterCall(Duration::from_secs(1));
        assert_expires(&a, expected, ExpireMode::AfterInvoke, 1000);
    }

    /// Ports `test_expire_after_write`: `expire_after_write(1 s)` expires after write,
    /// 1000 ms, and not after call.
    #[test]
    fn expire_after_write() {
        let a = ValueSpec::<i32>::named("a").expire_after_write(Duration::from_secs(1));
        let expected = Expiration::AfterWrite(Duration::from_secs(1));
        assert_expires(&a, expected, ExpireMode::AfterWrite, 1000);
    }

    /// Ports `test_illegal_name`: `-a` is no state name.
    ///
    /// Differs: Python also refuses `def`, because a Python spec becomes an attribute of
    /// `context.storage` and a keyword cannot be one. Rust has no such attribute; the
    /// crate follows the Java and Go SDKs' rule (`[a-zA-Z_][a-zA-Z_0-9]*`), which accepts
    /// `def`, and the runtime takes any name. So `def` is checked to be accepted.
    #[test]
    fn illegal_name() {
        let err = ValueSpec::<i32>::try_named("-a").unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument { reason, .. } if reason.contains("-a")),
            "{err:?}"
        );

        let def = ValueSpec::<i32>::try_named("def").unwrap();
        assert_eq!(def.name(), "def");
    }
}

// message_test.py ------------------------------------------------------------------------

/// Python builds outgoing messages with `message_builder` and reads them with `is_int()`,
/// `as_int()`, ...; here a function sends the value with [`Context::send`], and the
/// message the reply carries is delivered to a second function, which reads it through
/// [`Message::is`] and [`Message::get`].
mod message_test {
    use super::*;

    /// Sends `value` from one function to `foo/bar/a`, then delivers what the reply
    /// carries to `foo/bar`; returns what `foo/bar` read with `read`.
    fn send_and_receive<V, R>(value: V, read: fn(&Message) -> R) -> Vec<R>
    where
        V: Type + Send + Sync + 'static,
        R: Send + 'static,
    {
        let mut functions = StatefulFunctions::new();
        functions
            .bind_message("org.foo/sender", move |ctx: &mut Context, _: Message| {
                ctx.send("foo/bar", "a", &value)?;
                Ok(())
            })
            .unwrap();
        let request = InvocationBuilder::new()
            .with_target("org.foo", "sender", "0")
            .with_invocation(typed(&0i32), None);
        let reply = round_trip(functions, &request);
        let sent = &invocation_result(&reply).outgoing_messages;
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].target, Some(address("foo", "bar", "a")));

        let seen = Log::new();
        let log = seen.clone();
        let mut functions = StatefulFunctions::new();
        functions
            .bind_message("foo/bar", move |_: &mut Context, message: Message| {
                log.push(read(&message));
                Ok(())
            })
            .unwrap();
        let delivery = InvocationBuilder::new()
            .with_target("foo", "bar", "a")
            .with_invocation(sent[0].argument.clone().unwrap(), None);
        round_trip(functions, &delivery);
        seen.take()
    }

    /// Ports `test_example`: a message built from `int_value=1` is an int, and reads as 1.
    #[test]
    fn example() {
        let seen = send_and_receive(1i32, |message| {
            (message.is::<i32>(), message.get::<i32>().ok().flatten())
        });
        assert_eq!(seen, [(true, Some(1))]);
    }

    /// Ports `test_with_type`: a message built from `value=5.0, value_type=FloatType` is
    /// a float, and reads as 5.0.
    #[test]
    fn with_type() {
        let seen = send_and_receive(5.0f32, |message| {
            (
                message.is::<f32>(),
                message.is::<f64>(),
                message.get::<f32>().ok().flatten(),
            )
        });
        assert_eq!(seen, [(true, false, Some(5.0))]);
    }

    /// Ports `test_kafka_egress`: a Kafka egress record with an int value goes out under
    /// the 3.x Kafka record typename, with a value.
    ///
    /// Differs: instead of `kafka_egress_message`, the function builds the 3.x
    /// `proto::egress` record itself (the crate's `kafka_record_v2` builds the 2.2
    /// record type), with the 4 big-endian bytes Python writes for an `int`, and sends it
    /// with [`Context::pack_and_send_egress`].
    #[test]
    fn kafka_egress() {
        let mut functions = StatefulFunctions::new();
        functions
            .bind_message("org.foo/sender", |ctx: &mut Context, _: Message| {
                let record = KafkaProducerRecord {
                    key: String::new(),
                    value_bytes: 1_337_420i32.to_be_bytes().to_vec(),
                    topic: "topic".into(),
                };
                ctx.send_egress("foo/bar", pack(&record))?;
                Ok(())
            })
            .unwrap();
        let request = InvocationBuilder::new()
            .with_target("org.foo", "sender", "0")
            .with_invocation(typed(&0i32), None);

        let reply = round_trip(functions, &request);

        let egresses = &invocation_result(&reply).outgoing_egresses;
        assert_eq!(egresses.len(), 1, "{egresses:?}");
        assert_eq!(
            (
                egresses[0].egress_namespace.as_str(),
                egresses[0].egress_type.as_str()
            ),
            ("foo", "bar")
        );
        let typed_value = egresses[0].argument.as_ref().unwrap();
        assert_eq!(
            typed_value.typename,
            "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
        );
        assert!(typed_value.has_value);
        let record =
            <KafkaProducerRecord as ProstMessage>::decode(typed_value.value.as_ref()).unwrap();
        assert_eq!(record.topic, "topic");
        assert_eq!(record.value_bytes, [0x00, 0x14, 0x68, 0x4c]);
    }
}
