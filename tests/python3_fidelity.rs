//! What a Python 3.3 function can say, said through the public 3.x API: state names as
//! Python's `str.isidentifier()` accepts them, values without a value (sent, received and
//! sent on), run-time typed values, and the API as people write it (the caller they hold,
//! a typename of their choice for a protobuf message, several states at once).

use statefun_sync::testing::v3::{Reply, Request};
use statefun_sync::{Context, Error, Message, RequestReplyHandler, StatefulFunctions, ValueSpec};

const ZAEHLER: ValueSpec<i64> = ValueSpec::named("zähler");

fn counter() -> RequestReplyHandler {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/counter", |ctx: &mut Context, _: Message| {
            let count = ctx.get(&ZAEHLER)?.unwrap_or(0);
            ctx.set(&ZAEHLER, &(count + 1))?;
            Ok(())
        })
        .unwrap()
        .state(&ZAEHLER);
    RequestReplyHandler::v3(functions).unwrap()
}

/// A non-ASCII name travels in the handshake and in the mutation as the UTF-8 the runtime
/// keeps it under, so an app moved from Python keeps its state.
#[test]
fn a_state_named_as_python_allows_is_announced_and_written_under_its_name() {
    let handler = counter();

    let handshake = Request::to("test/counter", "1").invoke(&1i32).to_bytes();
    let handshake = Reply::decode(&handler.handle(&handshake).unwrap()).unwrap();
    let missing = handshake.missing_states().expect("the handshake");
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].name, "zähler");
    assert_eq!(missing[0].typename, "io.statefun.types/long");

    let request = Request::to("test/counter", "1")
        .with_state(&ZAEHLER, Some(&41))
        .invoke(&1i32)
        .to_bytes();
    let reply = Reply::decode(&handler.handle(&request).unwrap()).unwrap();
    assert_eq!(reply.modified(&ZAEHLER).unwrap(), Some(42));
}

#[test]
fn names_python_refuses_are_refused_at_run_time_and_when_the_handler_is_built() {
    for name in ["a€b", "1st", "a-b", "٣a", ""] {
        let err = ValueSpec::<i64>::try_named(name).unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { .. }),
            "{name}: {err:?}"
        );
    }

    // `named` is const: it checks the ASCII characters, and the handler the rest.
    const EURO: ValueSpec<i64> = ValueSpec::named("a€b");
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/f", |_: &mut Context, _: Message| Ok(()))
        .unwrap()
        .state(&EURO);

    let err = RequestReplyHandler::v3(functions).unwrap_err();

    let text = err.to_string();
    assert!(
        text.contains("function `test/f` declares state `a€b`")
            && text.contains("str.isidentifier()"),
        "{text}"
    );
}

// Values without a value ---------------------------------------------------------------

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message as _;
use statefun_sync::proto::reqreply::{self as pb, from_function, FromFunction};
use statefun_sync::{Address, RawValue};

fn caller() -> Address {
    Address::new("test", "caller", "c").unwrap()
}

/// The reply's `InvocationResponse`, decoded with prost: what the runtime reads.
fn response(reply: &[u8]) -> from_function::InvocationResponse {
    match FromFunction::decode(reply).unwrap().response {
        Some(from_function::Response::InvocationResult(result)) => result,
        other => panic!("not an invocation result: {other:?}"),
    }
}

fn no_value(typename: &str) -> pb::TypedValue {
    pb::TypedValue {
        typename: typename.into(),
        has_value: false,
        value: Default::default(),
    }
}

fn handler_of(
    function: impl Fn(&mut Context, Message) -> anyhow::Result<()> + Send + Sync + 'static,
) -> RequestReplyHandler {
    let mut functions = StatefulFunctions::new();
    functions.bind_message("test/f", function).unwrap();
    RequestReplyHandler::v3(functions).unwrap()
}

/// `None::<&T>` goes out as Python's `to_typed_value(T, None)`: the typename, `has_value`
/// false, no bytes, through every call that sends.
#[test]
fn none_sends_the_typename_alone_everywhere_a_value_goes() {
    let handler = handler_of(|ctx, _| {
        ctx.send("test/g", "1", None::<&i32>)?;
        ctx.send_to(&Address::new("test", "g", "2").unwrap(), None::<&String>)?;
        ctx.reply(None::<&bool>)?;
        ctx.send_after(Duration::from_secs(1), "test/g", "3", None::<&i64>)?;
        ctx.send_after_cancellable(Duration::from_secs(1), "test/g", "4", None::<&f64>, "t")?;
        ctx.send_egress("test/out", None::<&f32>)?;
        ctx.send("test/g", "5", Some(&7i32))?;
        Ok(())
    });
    let request = Request::to("test/f", "1")
        .invoke_from(caller(), &1i32)
        .to_bytes();

    let response = response(&handler.handle(&request).unwrap());

    let arguments: Vec<_> = response
        .outgoing_messages
        .iter()
        .map(|m| m.argument.clone().unwrap())
        .collect();
    assert_eq!(
        arguments[..3],
        [
            no_value("io.statefun.types/int"),
            no_value("io.statefun.types/string"),
            no_value("io.statefun.types/bool"),
        ]
    );
    assert_eq!(
        response.outgoing_messages[2].target.as_ref().unwrap().id,
        "c"
    );
    assert!(arguments[3].has_value && arguments[3].value[..] == [0x0d, 7, 0, 0, 0]);
    let delayed: Vec<_> = response
        .delayed_invocations
        .iter()
        .map(|d| d.argument.clone().unwrap())
        .collect();
    assert_eq!(
        delayed,
        [
            no_value("io.statefun.types/long"),
            no_value("io.statefun.types/double")
        ]
    );
    assert_eq!(
        response.outgoing_egresses[0].argument,
        Some(no_value("io.statefun.types/float"))
    );

    // The testing kit reads the same.
    let reply = Reply::decode(&handler.handle(&request).unwrap()).unwrap();
    assert!(!reply.messages()[0].has_value);
    assert!(reply.messages()[0].get::<i32>().is_err());
    assert!(reply.messages()[3].has_value);
}

/// A received message without a value reads as Python reads it: `raw_value()` and
/// `as_type(T)` give `None`.
#[test]
fn a_message_without_a_value_says_so_and_reads_as_none() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let handler = handler_of(move |_, message| {
        log.lock().unwrap().push((
            message.typename().to_owned(),
            message.has_value(),
            message.bytes().map(<[u8]>::to_vec),
            message.get::<i32>()?,
        ));
        Ok(())
    });
    let request = Request::to("test/f", "1")
        .invoke_raw(None, Some(no_value("io.statefun.types/int")))
        .invoke(&0i32)
        .invoke(&5i32)
        .invoke_raw(None, None)
        .to_bytes();

    handler.handle(&request).unwrap_err(); // the last has no typename: not an int

    let int = "io.statefun.types/int".to_owned();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (int.clone(), false, None, None),
            (int.clone(), true, Some(vec![]), Some(0)),
            (int, true, Some(vec![0x0d, 5, 0, 0, 0]), Some(5)),
        ]
    );
}

/// A received message sent on goes as it came: typename, presence and bytes, whatever
/// its type, which the forwarder need not know.
#[test]
fn a_received_message_is_sent_on_as_it_came() {
    let handler = handler_of(|ctx, message| {
        let to = Address::new("test", "g", "1").unwrap();
        ctx.send_to(&to, message)?;
        ctx.send_egress("test/out", message)?;
        ctx.send_to(&to, message.to_raw())?;
        Ok(())
    });
    let odd = pb::TypedValue {
        typename: "com.example/Odd".into(),
        has_value: true,
        value: vec![0xff, 0, 1].into(),
    };
    for argument in [odd, no_value("io.statefun.types/int")] {
        let request = Request::to("test/f", "1")
            .invoke_raw(None, Some(argument.clone()))
            .to_bytes();

        let response = response(&handler.handle(&request).unwrap());

        for sent in &response.outgoing_messages {
            assert_eq!(sent.argument.as_ref(), Some(&argument));
        }
        assert_eq!(
            response.outgoing_egresses[0].argument.as_ref(),
            Some(&argument)
        );
    }
}

/// A `RawValue` is built at run time, sent, kept in a state and read back.
#[test]
fn a_raw_value_is_built_at_run_time_sent_kept_and_read_back() {
    const LAST: ValueSpec<i32> = ValueSpec::named("last");
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/f", |ctx: &mut Context, message: Message| {
            let raw = match message.typename() {
                "test/ping" => RawValue::without_value("test/pong"),
                _ => RawValue::new("io.statefun.types/int", message.bytes().unwrap_or_default()),
            };
            ctx.send("test/g", "1", &raw)?;
            if raw.has_value() {
                ctx.set_state("last", &raw)?;
                let back = RawValue::from(ctx.get_state("last")?.expect("just set"));
                assert_eq!(back, raw);
                assert_eq!(ctx.get(&LAST)?, raw.get::<i32>()?);
            }
            Ok(())
        })
        .unwrap()
        .state(&LAST);
    let handler = RequestReplyHandler::v3(functions).unwrap();
    let request = Request::to("test/f", "1")
        .with_state(&LAST, None)
        .invoke(&9i32)
        .invoke_raw(None, Some(no_value("test/ping")))
        .to_bytes();

    let reply = Reply::decode(&handler.handle(&request).unwrap()).unwrap();

    assert_eq!(reply.modified(&LAST).unwrap(), Some(9));
    assert_eq!(reply.messages()[0].get::<i32>().unwrap(), 9);
    assert_eq!(
        (
            reply.messages()[1].typename(),
            reply.messages()[1].has_value
        ),
        ("test/pong", false)
    );
}

/// 2.2's `Any` cannot say "no value": the calls refuse it, naming the call and the type.
#[test]
fn on_2_2_a_value_without_a_value_is_refused_at_the_call() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/f", |ctx: &mut Context, message: Message| {
            for refused in [
                ctx.send("test/g", "1", None::<&i32>),
                ctx.send_egress("test/out", RawValue::without_value("test/x")),
            ] {
                let err = refused.unwrap_err();
                assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
                assert!(err.to_string().contains("needs the Stateful Functions 3.x"));
            }
            // A 2.2 message always has a value, and goes on as it came.
            assert!(message.has_value());
            ctx.send("test/g", "2", message)?;
            Ok(())
        })
        .unwrap();
    let handler = RequestReplyHandler::v2(functions);
    let any = prost_types::Any {
        type_url: "type.googleapis.com/x".into(),
        value: vec![1, 2],
    };
    let request = statefun_sync::testing::v2::Request::to("test/f", "1")
        .invoke(any.clone())
        .to_bytes();

    let reply =
        statefun_sync::testing::v2::Reply::decode(&handler.handle(&request).unwrap()).unwrap();

    assert_eq!(reply.messages().len(), 1);
    assert_eq!(reply.messages()[0].argument, any);
}

// The API as people write it ------------------------------------------------------------

/// The code a user writes first: hold the caller, send to it; no clone, no re-parse.
#[test]
fn a_function_answers_its_caller_with_the_address_it_holds() {
    let handler = handler_of(|ctx, message| {
        let n = message.get::<i32>()?.unwrap_or(0);
        if let Some(caller) = ctx.caller() {
            ctx.send(caller.typename(), caller.id(), &(n + 1))?;
            ctx.send_to(caller, "text as a &str")?;
        }
        let err = ctx
            .send_to(&Address::new("test", "g", "").unwrap(), &1)
            .unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
        Ok(())
    });
    let request = Request::to("test/f", "1")
        .invoke_from(caller(), &41i32)
        .to_bytes();

    let reply = Reply::decode(&handler.handle(&request).unwrap()).unwrap();

    assert_eq!(reply.messages()[0].target, caller());
    assert_eq!(reply.messages()[0].get::<i32>().unwrap(), 42);
    assert_eq!(
        reply.messages()[1].get::<String>().unwrap(),
        "text as a &str"
    );
    assert_eq!(caller().typename(), "test/caller");
    assert_eq!(caller().function_type().as_str(), "test/caller");
}

/// StateFun's smoke test sends its commands as `statefun.smoke.e2e/commands`.
#[derive(Clone, PartialEq, prost::Message)]
struct Commands {
    #[prost(string, repeated, tag = "1")]
    command: Vec<String>,
}
statefun_sync::protobuf_type!(Commands => "statefun.smoke.e2e/commands");

#[test]
fn a_protobuf_message_travels_under_the_typename_of_the_apps_choice() {
    const LAST: ValueSpec<Commands> = ValueSpec::named("last");
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/f", |ctx: &mut Context, message: Message| {
            let commands: Commands = message.get()?.unwrap_or_default();
            ctx.set(&LAST, &commands)?;
            ctx.send("test/g", "1", &commands)?;
            Ok(())
        })
        .unwrap()
        .states(&[&LAST]);
    let handler = RequestReplyHandler::v3(functions).unwrap();
    let commands = Commands {
        command: vec!["send".into(), "verify".into()],
    };
    let handshake = Request::to("test/f", "1").invoke(&commands).to_bytes();
    let handshake = Reply::decode(&handler.handle(&handshake).unwrap()).unwrap();
    assert_eq!(
        handshake.missing_states().unwrap()[0].typename,
        "statefun.smoke.e2e/commands"
    );

    let request = Request::to("test/f", "1")
        .with_state(&LAST, None)
        .invoke(&commands)
        .to_bytes();
    let reply = Reply::decode(&handler.handle(&request).unwrap()).unwrap();

    assert_eq!(
        reply.messages()[0].typename(),
        "statefun.smoke.e2e/commands"
    );
    assert_eq!(reply.messages()[0].get::<Commands>().unwrap(), commands);
    assert_eq!(reply.modified(&LAST).unwrap(), Some(commands));
}

#[test]
fn several_states_are_declared_at_once_in_order() {
    const A: ValueSpec<i32> = ValueSpec::named("a");
    const B: ValueSpec<String> = ValueSpec::named("b");
    const C: ValueSpec<bool> = ValueSpec::named("c");
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/f", |_: &mut Context, _: Message| Ok(()))
        .unwrap()
        .states(&[&A, &B])
        .state(&C);
    let handler = RequestReplyHandler::v3(functions).unwrap();

    let request = Request::to("test/f", "1").invoke(&1i32).to_bytes();
    let reply = Reply::decode(&handler.handle(&request).unwrap()).unwrap();

    let names: Vec<_> = reply
        .missing_states()
        .unwrap()
        .iter()
        .map(|state| (state.name.as_str(), state.typename.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("a", "io.statefun.types/int"),
            ("b", "io.statefun.types/string"),
            ("c", "io.statefun.types/bool")
        ]
    );
}

/// The local runtime delivers a message without a value as it was sent, through a
/// forwarder, as the runtime does.
#[test]
fn the_local_runtime_carries_a_value_without_a_value_through() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/forwarder", |ctx: &mut Context, message: Message| {
            Ok(ctx.send("test/sink", "1", message)?)
        })
        .unwrap();
    functions
        .bind_message("test/sink", move |_: &mut Context, message: Message| {
            log.lock()
                .unwrap()
                .push((message.typename().to_owned(), message.has_value()));
            Ok(())
        })
        .unwrap();
    let mut runtime = statefun_sync::testing::LocalRuntime::v3(functions).unwrap();

    runtime.send("test/forwarder", "1", None::<&i64>).unwrap();
    runtime.send("test/forwarder", "1", &5i64).unwrap();
    runtime.run().unwrap();

    let long = "io.statefun.types/long".to_owned();
    assert_eq!(*seen.lock().unwrap(), [(long.clone(), false), (long, true)]);
}
