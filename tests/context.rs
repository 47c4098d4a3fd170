//! Every `Context` method, through a real batch.

mod support;

use std::time::Duration;

use prost_types::Any;
use statefun_sync::testing::{v2::Request, StateChange};
use statefun_sync::{
    pack, unpack, Address, Error, RequestReplyHandler, StatefulFunctions, ValueSpec,
};
use support::{caller, handler_for, ping, run, run_err, Admin, SeenCount};

fn one_invocation(typename: &str) -> Request {
    Request::to(typename, "me").invoke_from(caller(), ping(0))
}

#[test]
fn address_and_caller_are_the_invocations() {
    let handler = handler_for("ex/who", |ctx, _| {
        let address = ctx.address().clone();
        let caller = ctx.caller().map(|c| c.to_string()).unwrap_or_default();
        ctx.send_egress(
            "ex/out",
            pack(&Admin {
                name: format!("{address} <- {caller}"),
            }),
        )?;
        Ok(())
    });
    let request = Request::to("ex/who", "me")
        .invoke_from(Address::new("a.b", "c", "1").unwrap(), ping(0))
        .invoke(ping(1))
        .to_bytes();

    let reply = run(&handler, &request);

    let seen: Vec<_> = reply
        .egresses()
        .iter()
        .map(|e| e.argument.to_msg::<Admin>().unwrap().name)
        .collect();
    assert_eq!(seen, ["ex/who/me <- a.b/c/1", "ex/who/me <- "]);
}

#[test]
fn send_and_pack_and_send_keep_their_order() {
    let handler = handler_for("ex/send", |ctx, _| {
        ctx.send("a/b", "1", ping(1))?;
        ctx.send("c.d/e/f", "2", pack(&SeenCount { seen: 2 }))?;
        ctx.send("a/b", "3", ping(3))?;
        Ok(())
    });

    let reply = run(&handler, &one_invocation("ex/send").to_bytes());

    let sent: Vec<_> = reply
        .messages()
        .iter()
        .map(|m| (m.target.to_string(), m.argument.clone()))
        .collect();
    assert_eq!(
        sent,
        [
            ("a/b/1".to_string(), ping(1)),
            ("c.d/e/f/2".to_string(), pack(&SeenCount { seen: 2 })),
            ("a/b/3".to_string(), ping(3)),
        ]
    );
    assert_eq!(reply.messages()[1].target.namespace(), "c.d/e");
}

#[test]
fn send_refuses_an_empty_id_and_a_malformed_typename() {
    let handler = handler_for("ex/send", |ctx, message| {
        let result = match message.value[0] {
            0 => ctx.send("a/b", "", ping(0)),
            1 => ctx.send("nonamespace", "1", ping(0)),
            2 => ctx.send("", "1", pack(&SeenCount::default())),
            _ => ctx.send("a/", "1", pack(&SeenCount::default())),
        };
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidArgument {
                    operation: "send",
                    ..
                } | Error::InvalidTypename(_)
            ),
            "{err:?}"
        );
        Err(err.into())
    });
    for n in 0..4 {
        let request = Request::to("ex/send", "me").invoke(ping(n)).to_bytes();
        let err = run_err(&handler, &request);
        assert!(matches!(err, Error::FunctionFailed { .. }), "{n}: {err:?}");
        assert_eq!(err.status(), 500);
    }
}

#[test]
fn reply_and_pack_and_reply_go_to_the_caller_of_each_invocation() {
    let handler = handler_for("ex/echo", |ctx, message| {
        ctx.reply(message.clone())?;
        ctx.reply(pack(&SeenCount {
            seen: message.value[0].into(),
        }))?;
        Ok(())
    });
    let request = Request::to("ex/echo", "me")
        .invoke_from(Address::new("x", "y", "1").unwrap(), ping(1))
        .invoke_from(Address::new("x", "y", "2").unwrap(), ping(2))
        .to_bytes();

    let reply = run(&handler, &request);

    let sent: Vec<_> = reply
        .messages()
        .iter()
        .map(|m| (m.target.id().to_owned(), m.argument.clone()))
        .collect();
    assert_eq!(
        sent,
        [
            ("1".into(), ping(1)),
            ("1".into(), pack(&SeenCount { seen: 1 })),
            ("2".into(), ping(2)),
            ("2".into(), pack(&SeenCount { seen: 2 })),
        ]
    );
}

#[test]
fn reply_without_a_caller_is_an_error_naming_the_invocation() {
    let handler = handler_for("ex/echo", |ctx, message| {
        if message.value[0] == 0 {
            ctx.reply(message)?;
        } else {
            ctx.reply(pack(&SeenCount::default()))?;
        }
        Ok(())
    });
    for n in 0..2 {
        let request = Request::to("ex/echo", "me")
            .invoke_from(caller(), ping(n))
            .invoke(ping(n))
            .to_bytes();

        let err = run_err(&handler, &request);

        let Error::FunctionFailed {
            invocation, source, ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(*invocation, 1);
        assert!(
            matches!(
                source.downcast_ref::<Error>(),
                Some(Error::NoCaller { invocation: 1, .. })
            ),
            "{source:?}"
        );
        assert!(err.report().contains("no caller"), "{}", err.report());
    }
}

#[test]
fn send_after_sends_whole_milliseconds() {
    let handler = handler_for("ex/later", |ctx, _| {
        ctx.send_after(Duration::from_secs(30 * 60), "ex/a", "1", ping(1))?;
        ctx.send_after(
            Duration::from_micros(1500),
            "ex/b",
            "2",
            pack(&SeenCount { seen: 2 }),
        )?;
        ctx.send_after(Duration::from_micros(999), "ex/c", "3", ping(3))?;
        Ok(())
    });

    let reply = run(&handler, &one_invocation("ex/later").to_bytes());

    let delayed: Vec<_> = reply
        .delayed_messages()
        .map(|d| (d.delay, d.target.to_string(), d.argument.clone()))
        .collect();
    assert_eq!(
        delayed,
        [
            (Duration::from_secs(1800), "ex/a/1".into(), ping(1)),
            (
                Duration::from_millis(1),
                "ex/b/2".into(),
                pack(&SeenCount { seen: 2 })
            ),
            (Duration::ZERO, "ex/c/3".into(), ping(3)),
        ]
    );
}

#[test]
fn send_after_refuses_a_zero_delay_an_empty_id_and_a_bad_typename() {
    let handler = handler_for("ex/later", |ctx, message| {
        let err = match message.value[0] {
            0 => ctx.send_after(Duration::ZERO, "ex/a", "1", ping(0)),
            1 => ctx.send_after(
                Duration::from_secs(1),
                "ex/a",
                "",
                pack(&SeenCount::default()),
            ),
            2 => ctx.send_after(Duration::MAX, "ex/a", "1", ping(0)),
            _ => ctx.send_after(Duration::from_secs(1), "ex", "1", ping(0)),
        }
        .unwrap_err();
        Err(err.into())
    });
    let expectations = [
        "delay is zero",
        "is empty",
        "longer than",
        "invalid function type",
    ];
    for (n, expected) in expectations.iter().enumerate() {
        let request = Request::to("ex/later", "me")
            .invoke(ping(n as u8))
            .to_bytes();
        let err = run_err(&handler, &request);
        assert!(err.report().contains(expected), "{n}: {}", err.report());
    }
}

#[test]
fn egress_messages_keep_their_order_and_split_the_typename() {
    let handler = handler_for("ex/out", |ctx, _| {
        ctx.send_egress("ex.io/sink", ping(1))?;
        ctx.send_egress("ex.io/other/sink", pack(&SeenCount { seen: 2 }))?;
        assert!(ctx.send_egress("nosink", ping(0)).is_err());
        Ok(())
    });

    let reply = run(&handler, &one_invocation("ex/out").to_bytes());

    let egresses: Vec<_> = reply
        .egresses()
        .iter()
        .map(|e| (e.egress.clone(), e.argument.clone()))
        .collect();
    assert_eq!(
        egresses,
        [
            ("ex.io/sink".into(), ping(1)),
            ("ex.io/other/sink".into(), pack(&SeenCount { seen: 2 }))
        ]
    );
}

#[test]
fn egress_records_validate_as_the_python_sdk_does() {
    let value = SeenCount { seen: 1 };
    let kafka_err = statefun_sync::kafka_record_v2("", "k", &value).unwrap_err();
    assert!(
        kafka_err.to_string().contains("Kafka topic is empty"),
        "{kafka_err}"
    );
    let kinesis_stream = statefun_sync::kinesis_record_v2("", "p", "", &value).unwrap_err();
    assert!(
        kinesis_stream.to_string().contains("stream is empty"),
        "{kinesis_stream}"
    );
    let kinesis_key = statefun_sync::kinesis_record_v2("s", "", "", &value).unwrap_err();
    assert!(
        kinesis_key.to_string().contains("partition key is empty"),
        "{kinesis_key}"
    );

    let kafka = statefun_sync::kafka_record_v2("t", "", &value).unwrap();
    assert_eq!((kafka.topic.as_str(), kafka.key.as_str()), ("t", ""));
}

#[test]
fn state_writes_are_visible_to_later_invocations_and_reply_once() {
    // Each invocation adds its ping value to `sum` and reports what it read.
    let handler = handler_for("ex/sum", |ctx, message| {
        let sum = ctx
            .get_state("sum")?
            .as_ref()
            .map(unpack::<SeenCount>)
            .transpose()?
            .unwrap_or_default()
            .seen;
        ctx.send("ex/observer", "1", pack(&SeenCount { seen: sum }))?;
        ctx.set_state(
            "sum",
            pack(&SeenCount {
                seen: sum + i64::from(message.value[0]),
            }),
        )?;
        Ok(())
    });
    let request = Request::to("ex/sum", "me")
        .with_state("other", Some(ping(9)))
        .with_state_value("sum", pack(&SeenCount { seen: 10 }))
        .invoke(ping(1))
        .invoke(ping(2))
        .invoke(ping(3))
        .to_bytes();

    let reply = run(&handler, &request);

    let reads: Vec<_> = reply
        .messages()
        .iter()
        .map(|m| m.argument.to_msg::<SeenCount>().unwrap().seen)
        .collect();
    assert_eq!(reads, [10, 11, 13]);
    assert_eq!(
        reply.state_changes(),
        [(
            "sum".to_string(),
            StateChange::Modified(pack(&SeenCount { seen: 16 }))
        )]
    );
}

#[test]
fn get_state_set_state_and_remove_state_through_a_batch() {
    let handler = handler_for("ex/state", |ctx, message| {
        match message.value[0] {
            0 => ctx.set_state("a", ping(7))?,
            1 => assert_eq!(ctx.get_state("a")?, Some(ping(7))),
            2 => ctx.remove_state("a")?,
            3 => assert_eq!(ctx.get_state("a")?, None),
            4 => ctx.remove_state("b")?,
            _ => ctx.set_state("b", ping(8))?,
        }
        Ok(())
    });
    let mut request = Request::to("ex/state", "me")
        .with_state("a", Some(ping(1)))
        .with_state("b", None)
        .with_state("c", Some(ping(3)));
    for n in 0..6 {
        request = request.invoke(ping(n));
    }

    let reply = run(&handler, &request.to_bytes());

    // `a` was set then deleted: DELETE. `b` was deleted then set: MODIFY. `c` untouched.
    assert_eq!(
        reply.state_changes(),
        [
            ("a".to_string(), StateChange::Deleted),
            ("b".to_string(), StateChange::Modified(ping(8))),
        ]
    );
}

#[test]
fn mutations_follow_the_request_state_order() {
    let handler = handler_for("ex/order", |ctx, _| {
        ctx.set_state("z", ping(1))?;
        ctx.remove_state("a")?;
        ctx.set_state("m", ping(2))?;
        Ok(())
    });
    let request = Request::to("ex/order", "me")
        .with_state("a", None)
        .with_state("m", None)
        .with_state("z", None)
        .invoke(ping(0))
        .to_bytes();

    let reply = run(&handler, &request);

    let names: Vec<_> = reply
        .state_changes()
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(names, ["a", "m", "z"]);
}

statefun_sync::protobuf_type!(Admin);

#[test]
fn a_typed_read_refuses_another_message_type() {
    const SEEN: ValueSpec<Admin> = ValueSpec::named("seen");
    let mut functions = StatefulFunctions::new();
    functions
        .bind("ex/state", |ctx, _| {
            ctx.get(&SEEN)?;
            Ok(())
        })
        .unwrap()
        .state(&SEEN);
    let handler = RequestReplyHandler::v2(functions);
    let request = Request::to("ex/state", "me")
        .with_state_value("seen", pack(&SeenCount { seen: 1 }))
        .invoke(ping(0))
        .to_bytes();

    let err = run_err(&handler, &request);

    let chain = err.report();
    assert!(matches!(err, Error::UnreadableState { .. }), "{err:?}");
    assert_eq!(err.status(), 400);
    assert!(
        chain.contains("state `seen`")
            && chain.contains("k8s.demo.SeenCount")
            && chain.contains("k8s.demo.Admin"),
        "{chain}"
    );
}

#[test]
fn state_bytes_that_are_not_an_any_are_unreadable_not_a_panic() {
    let handler = handler_for("ex/state", |ctx, message| {
        if message.value[0] == 0 {
            ctx.get_state("seen")?;
        } else {
            ctx.get_state("seen")?
                .as_ref()
                .map(unpack::<SeenCount>)
                .transpose()?;
        }
        Ok(())
    });
    for n in 0..2 {
        let request = Request::to("ex/state", "me")
            .with_state_bytes("seen", vec![0x0a, 0x05, b'x'])
            .invoke(ping(n))
            .to_bytes();
        let err = run_err(&handler, &request);
        assert!(
            matches!(&err, Error::UnreadableState { state, .. } if state == "seen"),
            "{n}: {err:?}"
        );
        assert!(
            std::error::Error::source(&err).is_some(),
            "the decode error is kept"
        );
    }
}

#[test]
fn a_state_the_request_did_not_carry_is_unknown_for_every_accessor() {
    // Invocation 0 (`ping(9)`) succeeds; invocation 1 touches `missing` in one of five ways.
    let handler = handler_for("ex/state", |ctx, message| {
        match message.value[0] {
            0 => _ = ctx.get_state("missing")?,
            1 => {
                _ = ctx
                    .get_state("missing")?
                    .as_ref()
                    .map(unpack::<SeenCount>)
                    .transpose()?
            }
            2 => ctx.set_state("missing", Any::default())?,
            3 => ctx.set_state("missing", pack(&SeenCount::default()))?,
            4 => ctx.remove_state("missing")?,
            _ => ctx.set_state("present", ping(1))?,
        }
        Ok(())
    });
    for n in 0..5 {
        let request = Request::to("ex/state", "me")
            .with_state("present", None)
            .invoke(ping(9))
            .invoke(ping(n))
            .to_bytes();

        let err = run_err(&handler, &request);

        assert!(
            matches!(&err, Error::UnknownState { state, invocation: 1, .. } if state == "missing"),
            "{n}: {err:?}"
        );
        assert_eq!(err.status(), 400);
        let text = err.to_string();
        assert!(
            text.contains("`ex/state`")
                && text.contains("`missing`")
                && text.contains("module.yaml"),
            "{text}"
        );
    }
}
