//! The typed API on both protocols: typed specs serve 2.2 too (a value travels as an `Any`
//! of its typename), `bind_typed` and `message_union!` work on 3.x typed values, and the
//! protocol-specific rules of delays and cancellation hold on each side.

use std::time::Duration;

use prost::Message as _;
use prost_types::Any;
use statefun_sync::proto::reqreply::{self as pb, to_function};
use statefun_sync::testing::v2::{Reply, Request};
use statefun_sync::testing::v3;
use statefun_sync::testing::StateChange;
use statefun_sync::{
    message_union, pack, Address, Context, Error, Message, RequestReplyHandler, StatefulFunctions,
    ValueSpec,
};

const COUNT: ValueSpec<i64> = ValueSpec::named("count");
const LAST: ValueSpec<prost_types::Duration> = ValueSpec::named("last");

// A message of the tests' own, made a `Type` as an app makes its messages one.
#[derive(Clone, PartialEq, prost::Message)]
struct Greeting {
    #[prost(string, tag = "1")]
    text: String,
}
impl prost::Name for Greeting {
    const NAME: &'static str = "Greeting";
    const PACKAGE: &'static str = "test";
}
statefun_sync::protobuf_type!(Greeting);

const GREETING: ValueSpec<Greeting> = ValueSpec::named("greeting");

fn caller() -> Address {
    Address::new("test", "caller", "c").unwrap()
}

/// On 2.2 a typed spec reads and writes an `Any` whose type URL is the typename: a prost
/// message's is its usual `type.googleapis.com/<full name>`, so Python 2.2 functions read
/// it as they read any packed state.
#[test]
fn typed_specs_serve_the_2_2_protocol_as_anys_of_their_typename() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind("test/f", |ctx: &mut Context, _: Any| {
            let count = ctx.get(&COUNT)?.unwrap_or(0);
            ctx.set(&COUNT, &(count + 1))?;
            let greeting = ctx.get(&GREETING)?.unwrap_or_default();
            ctx.set(
                &GREETING,
                &Greeting {
                    text: format!("{}!", greeting.text),
                },
            )?;
            ctx.remove(&LAST)?;
            Ok(())
        })
        .unwrap()
        .state(&COUNT)
        .state(&GREETING)
        .state(&LAST);
    let handler = RequestReplyHandler::v2(functions);
    let five = Any {
        type_url: "io.statefun.types/long".into(),
        value: vec![0x09, 5, 0, 0, 0, 0, 0, 0, 0],
    };
    let request = Request::to("test/f", "1")
        .with_state("count", Some(five))
        .with_state_value("greeting", pack(&Greeting { text: "hi".into() }))
        .with_state("last", None)
        .invoke(Any::default())
        .to_bytes();

    let reply = Reply::decode(&handler.handle(&request).unwrap()).unwrap();

    assert_eq!(
        reply.state_change("count"),
        Some(&StateChange::Modified(Any {
            type_url: "io.statefun.types/long".into(),
            value: vec![0x09, 6, 0, 0, 0, 0, 0, 0, 0],
        }))
    );
    assert_eq!(
        reply.state_change("greeting"),
        Some(&StateChange::Modified(pack(&Greeting {
            text: "hi!".into()
        })))
    );
    assert!(reply.deleted("last"));
}

/// A typed read of a 2.2 state holding another type is an error naming both types.
#[test]
fn a_2_2_state_of_another_type_is_unreadable_by_a_typed_spec() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind("test/f", |ctx: &mut Context, _: Any| {
            ctx.get(&COUNT)?;
            Ok(())
        })
        .unwrap()
        .state(&COUNT);
    let handler = RequestReplyHandler::v2(functions);
    let request = Request::to("test/f", "1")
        .with_state_value("count", pack(&Greeting::default()))
        .invoke(Any::default())
        .to_bytes();

    let err = handler.handle(&request).unwrap_err();

    assert!(matches!(err, Error::UnreadableState { .. }), "{err:?}");
    assert_eq!(err.status(), 400);
    let report = err.report();
    assert!(
        report.contains("type.googleapis.com/test.Greeting")
            && report.contains("io.statefun.types/long"),
        "{report}"
    );
}

message_union! {
    enum Visitor {
        Greeting(Greeting),
        Duration(prost_types::Duration),
    }
}

/// `bind_typed` and `message_union!` dispatch on a 3.x message's typename, which for a
/// protobuf type is the type URL they know.
#[test]
fn bind_typed_and_message_unions_work_on_3x_typed_values() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_typed("test/one", |ctx: &mut Context, greeting: Greeting| {
            ctx.reply(&format!("one: {}", greeting.text))?;
            Ok(())
        })
        .unwrap();
    functions
        .bind_typed("test/union", |ctx: &mut Context, visitor: Visitor| {
            let text = match visitor {
                Visitor::Greeting(greeting) => greeting.text,
                Visitor::Duration(duration) => duration.seconds.to_string(),
            };
            ctx.reply(&text)?;
            Ok(())
        })
        .unwrap();
    let handler = RequestReplyHandler::v3(functions).unwrap();
    let hello = Greeting {
        text: "hello".into(),
    };

    let one = v3::Request::to("test/one", "1")
        .invoke_from(caller(), &hello)
        .to_bytes();
    let union = v3::Request::to("test/union", "1")
        .invoke_from(caller(), &hello)
        .invoke_from(
            caller(),
            pack(&prost_types::Duration {
                seconds: 7,
                nanos: 0,
            }),
        )
        .to_bytes();
    let texts = |request: &[u8]| -> Vec<String> {
        let reply = v3::Reply::decode(&handler.handle(request).unwrap()).unwrap();
        reply
            .messages()
            .iter()
            .map(|m| m.get::<String>().unwrap())
            .collect()
    };

    assert_eq!(texts(&one), ["one: hello"]);
    assert_eq!(texts(&union), ["hello", "7"]);

    let wrong = v3::Request::to("test/one", "1")
        .invoke_from(caller(), &5i32)
        .to_bytes();
    let err = handler.handle(&wrong).unwrap_err();
    assert!(
        matches!(err, Error::UnexpectedMessageType { .. }),
        "{err:?}"
    );
    assert_eq!(err.status(), 400);
}

/// `Message::get` of another type is the request's fault (400) when passed up; a state the
/// binding does not declare is the function's (500).
#[test]
fn message_and_state_errors_have_the_status_of_whose_fault_they_are() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/f", |ctx: &mut Context, message: Message| {
            if message.is::<bool>() {
                ctx.get(&COUNT)?; // not declared
            } else {
                message.get::<Greeting>()?;
            }
            Ok(())
        })
        .unwrap()
        .state(&GREETING);
    let handler = RequestReplyHandler::v3(functions).unwrap();
    let with_state = |r: v3::Request| r.with_state(&GREETING, None);

    let wrong_type = with_state(v3::Request::to("test/f", "1"))
        .invoke(&"text".to_string())
        .to_bytes();
    let err = handler.handle(&wrong_type).unwrap_err();
    assert!(
        matches!(err, Error::UnexpectedMessageType { .. }),
        "{err:?}"
    );
    assert_eq!(err.status(), 400);
    assert!(err.report().contains("io.statefun.types/string"), "{err}");

    let malformed = with_state(v3::Request::to("test/f", "1"))
        .invoke(Any {
            type_url: "type.googleapis.com/test.Greeting".into(),
            value: vec![0x0a, 5, b'x'],
        })
        .to_bytes();
    let err = handler.handle(&malformed).unwrap_err();
    assert!(matches!(err, Error::MalformedArgument { .. }), "{err:?}");
    assert_eq!(err.status(), 400);

    let undeclared = with_state(v3::Request::to("test/f", "1"))
        .invoke(&true)
        .to_bytes();
    let err = handler.handle(&undeclared).unwrap_err();
    assert_eq!(err.status(), 500);
    let report = err.report();
    assert!(
        report.contains("count") && report.contains("io.statefun.types/long"),
        "{report}"
    );
}

/// What each protocol allows of delays: 2.2 refuses a zero delay and any cancellation;
/// 3.x sends zero delays, tokens and cancellations, and refuses an empty token.
#[test]
fn delays_and_cancellation_follow_each_protocols_rules() {
    fn bind(functions: &mut StatefulFunctions) {
        functions
            .bind_message("test/timer", |ctx: &mut Context, message: Message| {
                match message.get::<i32>()?.unwrap_or_default() {
                    0 => ctx.send_after(Duration::ZERO, "test/timer", "1", &1i32)?,
                    1 => ctx.send_after_cancellable(
                        Duration::from_millis(1500),
                        "test/timer",
                        "1",
                        &2i32,
                        "tok",
                    )?,
                    2 => ctx.cancel_delayed_message("tok")?,
                    _ => ctx.cancel_delayed_message("")?,
                }
                Ok(())
            })
            .unwrap();
    }
    let mut functions = StatefulFunctions::new();
    bind(&mut functions);
    let v2 = RequestReplyHandler::v2(functions);
    let mut functions = StatefulFunctions::new();
    bind(&mut functions);
    let v3 = RequestReplyHandler::v3(functions).unwrap();

    let v2_request = |n: i32| {
        Request::to("test/timer", "1")
            .invoke(Any {
                type_url: "io.statefun.types/int".into(),
                value: if n == 0 {
                    vec![]
                } else {
                    [vec![0x0d], n.to_le_bytes().to_vec()].concat()
                },
            })
            .to_bytes()
    };
    for (n, reason) in [
        (0, "the delay is zero"),
        (1, "needs the Stateful Functions 3.x protocol"),
        (2, "needs the Stateful Functions 3.x protocol"),
    ] {
        let err = v2.handle(&v2_request(n)).unwrap_err();
        assert_eq!(err.status(), 500, "{n}: {err}");
        assert!(err.report().contains(reason), "{n}: {}", err.report());
    }

    let reply = |n: i32| {
        let request = v3::Request::to("test/timer", "1").invoke(&n).to_bytes();
        v3::Reply::decode(&v3.handle(&request).unwrap()).unwrap()
    };
    assert!(matches!(
        reply(0).delayed(),
        [v3::Delayed::Send { message, cancellation_token: None }] if message.delay.is_zero()
    ));
    assert!(matches!(
        reply(1).delayed(),
        [v3::Delayed::Send { message, cancellation_token: Some(token) }]
            if token == "tok" && message.delay == Duration::from_millis(1500)
    ));
    assert_eq!(reply(2).cancellations().collect::<Vec<_>>(), ["tok"]);
    let empty = v3::Request::to("test/timer", "1").invoke(&3i32).to_bytes();
    let err = v3.handle(&empty).unwrap_err();
    assert!(
        err.report().contains("cancellation token is empty"),
        "{}",
        err.report()
    );
}

/// A 3.x request whose argument is encoded with prost's own types (fields in any order,
/// the shape the runtime sends) reads the same as one from the testing kit.
#[test]
fn a_request_built_with_the_generated_types_reads_the_same() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/echo", |ctx: &mut Context, message: Message| {
            ctx.reply(message.get::<String>()?.as_ref())?;
            Ok(())
        })
        .unwrap();
    let handler = RequestReplyHandler::v3(functions).unwrap();
    let request = pb::ToFunction {
        request: Some(to_function::Request::Invocation(
            to_function::InvocationBatchRequest {
                target: Some(pb::Address {
                    namespace: "test".into(),
                    r#type: "echo".into(),
                    id: "1".into(),
                }),
                state: vec![],
                invocations: vec![to_function::Invocation {
                    caller: Some(pb::Address {
                        namespace: "test".into(),
                        r#type: "caller".into(),
                        id: "c".into(),
                    }),
                    argument: Some(pb::TypedValue {
                        typename: "io.statefun.types/string".into(),
                        has_value: true,
                        value: vec![0x0a, 2, b'h', b'i'].into(),
                    }),
                }],
            },
        )),
    }
    .encode_to_vec();

    let reply = v3::Reply::decode(&handler.handle(&request).unwrap()).unwrap();

    assert_eq!(reply.messages()[0].target, caller());
    assert_eq!(reply.messages()[0].get::<String>().unwrap(), "hi");
}

/// A batch that has read a declared spec still refuses, later in the same batch, a spec of
/// the same name and another type, and one of another name made at run time: what was
/// found declared is remembered for that spec alone.
#[test]
fn a_spec_found_declared_vouches_for_no_other() {
    const COUNT_AS_I32: ValueSpec<i32> = ValueSpec::named("count");
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("test/f", |ctx: &mut Context, message: Message| {
            ctx.set(&COUNT, &1)?;
            ctx.get(&COUNT)?;
            match message.get::<String>()?.as_deref() {
                Some("same name, another type") => {
                    ctx.get(&COUNT_AS_I32)?;
                }
                Some("a name made at run time") => {
                    let name = String::from("coun") + "t2";
                    ctx.get(&ValueSpec::<i64>::try_named(name)?)?;
                }
                _ => {}
            }
            Ok(())
        })
        .unwrap()
        .state(&COUNT);
    let handler = RequestReplyHandler::v3(functions).unwrap();
    for (argument, refused) in [
        ("same name, another type", "count"),
        ("a name made at run time", "count2"),
    ] {
        let request = v3::Request::to("test/f", "1")
            .with_state(&COUNT, None)
            .invoke(&"first".to_string())
            .invoke(&argument.to_string())
            .to_bytes();
        let err = handler.handle(&request).unwrap_err();
        let report = err.report();
        assert!(
            matches!(&err, Error::FunctionFailed { invocation: 1, .. })
                && report.contains(&format!("used state `{refused}`"))
                && report.contains("does not declare"),
            "{argument}: {report}"
        );
    }
}
