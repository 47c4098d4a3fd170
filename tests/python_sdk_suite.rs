//! The Python SDK 2.2.2 test suite (`tests/*_test.py`), behaviour by behaviour, through
//! the public API.

mod support;

use std::time::Duration;

use prost_types::Any;
use statefun_sync::testing::{v2::Request, StateChange};
use statefun_sync::{
    kafka_record_v2, kinesis_record_v2, message_union, pack, unpack, Address, Context, Error,
    FromAny, FunctionType, RequestReplyHandler, StatefulFunctions,
};
use support::{caller, handler_for, run, Admin, LoginEvent, SeenCount};

// request_reply_test.py: test_integration ------------------------------------------------

fn integration(ctx: &mut Context, _message: Any) -> anyhow::Result<()> {
    // state access
    let mut seen = ctx
        .get_state("seen")?
        .as_ref()
        .map(unpack::<SeenCount>)
        .transpose()?
        .unwrap();
    seen.seen += 1;
    ctx.set_state("seen", pack(&seen))?;

    // regular state access
    let seen_any = ctx.get_state("seen")?.unwrap();
    let seen: SeenCount = seen_any.to_msg()?;

    // sending and replying
    ctx.reply(pack(&seen))?;
    let any = Any {
        type_url: "type.googleapis.com/k8s.demo.SeenCount".into(),
        value: vec![],
    };
    ctx.send("bar.baz/foo", "12345", any.clone())?;

    // delayed messages
    ctx.send_after(Duration::from_secs(3600), "night/owl", "1", any.clone())?;

    // egresses
    ctx.send_egress("foo.bar.baz/my-egress", any)?;
    ctx.send_egress("foo.bar.baz/my-egress", pack(&seen))?;

    // kafka egress
    ctx.send_egress(
        "sdk/kafka",
        pack(&kafka_record_v2("hello", "hello world", &seen)?),
    )?;
    ctx.send_egress("sdk/kafka", pack(&kafka_record_v2("hello", "", &seen)?))?;

    // AWS Kinesis generic egress
    ctx.send_egress(
        "sdk/kinesis",
        pack(&kinesis_record_v2("hello", "hello world", "1234", &seen)?),
    )?;
    ctx.send_egress(
        "sdk/kinesis",
        pack(&kinesis_record_v2("hello", "hello world", "", &seen)?),
    )?;
    Ok(())
}

#[test]
fn request_reply_integration() {
    let handler = handler_for("org.foo/greeter", integration);
    let request = Request::to("org.foo/greeter", "0")
        .with_state_value("seen", pack(&SeenCount { seen: 100 }))
        .invoke_from(
            caller(),
            pack(&LoginEvent {
                user_name: "user-1".into(),
            }),
        )
        .to_bytes();

    let reply = run(&handler, &request);

    // first outgoing message: the reply to the caller
    let first = &reply.messages()[0];
    assert_eq!(
        first.target,
        Address::new("org.foo", "greeter-java", "0").unwrap()
    );
    assert_eq!(
        first.argument.type_url,
        "type.googleapis.com/k8s.demo.SeenCount"
    );
    assert_eq!(first.argument.to_msg::<SeenCount>().unwrap().seen, 101);

    // second outgoing message
    let second = &reply.messages()[1];
    assert_eq!(
        second.target,
        Address::new("bar.baz", "foo", "12345").unwrap()
    );
    assert_eq!(
        second.argument.type_url,
        "type.googleapis.com/k8s.demo.SeenCount"
    );

    // state mutations
    assert_eq!(reply.state_changes().len(), 1);
    let (name, change) = &reply.state_changes()[0];
    assert_eq!(name, "seen");
    assert_eq!(
        *change,
        StateChange::Modified(pack(&SeenCount { seen: 101 }))
    );

    // delayed
    assert_eq!(
        reply.delayed_messages().next().unwrap().delay,
        Duration::from_millis(3_600_000)
    );
    assert_eq!(
        reply.delayed_messages().next().unwrap().target,
        Address::new("night", "owl", "1").unwrap()
    );

    // egresses
    let egresses = reply.egresses();
    assert_eq!(egresses.len(), 6);
    assert_eq!(egresses[0].egress, "foo.bar.baz/my-egress");
    assert_eq!(
        egresses[0].argument.type_url,
        "type.googleapis.com/k8s.demo.SeenCount"
    );
    assert_eq!(
        egresses[2].argument.type_url,
        "type.googleapis.com/org.apache.flink.statefun.flink.io.KafkaProducerRecord"
    );
    assert_eq!(
        egresses[4].argument.type_url,
        "type.googleapis.com/org.apache.flink.statefun.flink.io.KinesisEgressRecord"
    );
    let kafka: statefun_sync::proto::io::KafkaProducerRecord =
        egresses[2].argument.to_msg().unwrap();
    assert_eq!(kafka.topic, "hello");
    assert_eq!(kafka.key, "hello world");
    assert_eq!(
        kafka.value_bytes,
        prost::Message::encode_to_vec(&SeenCount { seen: 101 })
    );
    let kinesis: statefun_sync::proto::io::KinesisEgressRecord =
        egresses[4].argument.to_msg().unwrap();
    assert_eq!(
        (
            kinesis.stream.as_str(),
            kinesis.partition_key.as_str(),
            kinesis.explicit_hash_key.as_str()
        ),
        ("hello", "hello world", "1234")
    );
}

// statefun_test.py ----------------------------------------------------------------------

#[test]
fn functions_bind_under_their_typenames() {
    let mut functions = StatefulFunctions::new();
    functions.bind("org.foo/greeter", |_, _| Ok(())).unwrap();
    functions.bind("org.foo/echo", |_, _| Ok(())).unwrap();

    assert!(functions.is_bound("org.foo/greeter"));
    assert!(functions.is_bound("org.foo/echo"));
    assert!(!functions.is_bound("org.foo/other"));
    assert_eq!(
        functions
            .function_types()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["org.foo/greeter", "org.foo/echo"]
    );
}

#[test]
fn a_typed_function_gets_its_argument_unpacked() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_typed("org.foo/greeter", |ctx, login: LoginEvent| {
            ctx.reply(pack(&Admin {
                name: login.user_name,
            }))?;
            Ok(())
        })
        .unwrap();
    let handler = RequestReplyHandler::v2(functions);
    let request = Request::to("org.foo/greeter", "0")
        .invoke_from(
            caller(),
            pack(&LoginEvent {
                user_name: "bob".into(),
            }),
        )
        .to_bytes();

    let reply = run(&handler, &request);

    assert_eq!(
        reply.messages()[0].argument.to_msg::<Admin>().unwrap().name,
        "bob"
    );
}

#[test]
fn unpacking_an_any_gives_back_the_message() {
    let argument = LoginEvent {
        user_name: "x".into(),
    };
    let unpacked = LoginEvent::from_any(&pack(&argument)).unwrap().unwrap();
    assert_eq!(unpacked, argument);
}

// type_deduction_test.py: typed and union-typed bindings --------------------------------

message_union! {
    #[derive(Debug, PartialEq)]
    enum Visitor {
        User(LoginEvent),
        Admin(Admin),
    }
}

#[test]
fn a_union_lists_its_types_in_order() {
    assert_eq!(
        Visitor::type_names(),
        ["k8s.demo.LoginEvent", "k8s.demo.Admin"]
    );
    assert_eq!(LoginEvent::type_names(), ["k8s.demo.LoginEvent"]);
}

#[test]
fn a_union_typed_function_dispatches_on_the_type_url() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_typed("org.foo/goodbye", |ctx, visitor: Visitor| {
            let who = match visitor {
                Visitor::User(u) => format!("user {}", u.user_name),
                Visitor::Admin(a) => format!("admin {}", a.name),
            };
            ctx.reply(pack(&Admin { name: who }))?;
            Ok(())
        })
        .unwrap();
    let handler = RequestReplyHandler::v2(functions);
    let request = Request::to("org.foo/goodbye", "0")
        .invoke_from(
            caller(),
            pack(&LoginEvent {
                user_name: "u".into(),
            }),
        )
        .invoke_from(caller(), pack(&Admin { name: "a".into() }))
        .to_bytes();

    let reply = run(&handler, &request);

    let names: Vec<_> = reply
        .messages()
        .iter()
        .map(|m| m.argument.to_msg::<Admin>().unwrap().name)
        .collect();
    assert_eq!(names, ["user u", "admin a"]);
}

#[test]
fn a_message_of_another_type_is_an_error_naming_both_types() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_typed("org.foo/goodbye", |_, _: Visitor| Ok(()))
        .unwrap();
    let handler = RequestReplyHandler::v2(functions);
    let request = Request::to("org.foo/goodbye", "0")
        .invoke(pack(&SeenCount { seen: 1 }))
        .to_bytes();

    let err = handler.handle(&request).unwrap_err();

    assert!(
        matches!(&err, Error::UnexpectedMessageType { expected, actual, invocation: 0, .. }
            if expected == &["k8s.demo.LoginEvent", "k8s.demo.Admin"]
            && actual == "type.googleapis.com/k8s.demo.SeenCount"),
        "{err:?}"
    );
    assert_eq!(err.status(), 400);
    let text = err.to_string();
    assert!(
        text.contains("k8s.demo.LoginEvent") && text.contains("k8s.demo.SeenCount"),
        "{text}"
    );
}

// typename_test.py ----------------------------------------------------------------------

#[test]
fn typename_example() {
    let function_type: FunctionType = "foo/bar".parse().unwrap();
    assert_eq!(
        (function_type.namespace(), function_type.name()),
        ("foo", "bar")
    );
}

#[test]
fn typename_errors() {
    for input in ["/bar", "n/", "/", ""] {
        assert!(
            matches!(input.parse::<FunctionType>(), Err(invalid) if invalid.input() == input),
            "{input:?}"
        );
    }
}

// any_state_handle_test.py: a state through a batch --------------------------------------

fn typed_any(type_url: &str) -> Any {
    Any {
        type_url: type_url.into(),
        value: vec![],
    }
}

/// Runs `function` on one invocation with state `state` holding `value`; returns what the
/// function sent (its observations) and the reply's state changes.
fn with_state(
    value: Option<Any>,
    function: impl Fn(&mut Context, Any) -> anyhow::Result<()> + Send + Sync + 'static,
) -> statefun_sync::testing::v2::Reply {
    let handler = handler_for("org.foo/state", function);
    let request = Request::to("org.foo/state", "0")
        .with_state("state", value)
        .invoke(Any::default())
        .to_bytes();
    run(&handler, &request)
}

#[test]
fn state_handle_example() {
    let reply = with_state(Some(typed_any("com/hello")), |ctx, _| {
        assert_eq!(ctx.get_state("state")?.unwrap().type_url, "com/hello");
        Ok(())
    });
    assert!(reply.state_changes().is_empty(), "a read is not a change");
}

#[test]
fn state_handle_delete() {
    let reply = with_state(Some(typed_any("com/hello")), |ctx, _| {
        ctx.remove_state("state")?;
        assert_eq!(ctx.get_state("state")?, None);
        Ok(())
    });
    assert!(reply.deleted("state"));
}

#[test]
fn state_handle_modify() {
    let reply = with_state(Some(typed_any("com/hello")), |ctx, _| {
        ctx.set_state("state", typed_any("com/world"))?;
        assert_eq!(ctx.get_state("state")?.unwrap().type_url, "com/world");
        Ok(())
    });
    assert_eq!(
        reply.state_change("state"),
        Some(&StateChange::Modified(typed_any("com/world")))
    );
}

#[test]
fn state_handle_unmodified_bytes_round_trip() {
    // The runtime would send the same bytes again: reading them again gives the same value.
    let reply = with_state(Some(typed_any("com/hello")), |ctx, _| {
        let value = ctx.get_state("state")?;
        ctx.set_state("state", value.unwrap())?;
        Ok(())
    });
    assert_eq!(
        reply.state_change("state"),
        Some(&StateChange::Modified(typed_any("com/hello")))
    );
}

#[test]
fn state_handle_missing_value() {
    let reply = with_state(None, |ctx, _| {
        assert_eq!(ctx.get_state("state")?, None);
        assert_eq!(
            ctx.get_state("state")?
                .as_ref()
                .map(unpack::<SeenCount>)
                .transpose()?,
            None
        );
        Ok(())
    });
    assert!(reply.state_changes().is_empty());
}
