//! Every error variant: when it happens, what it says, which HTTP status it maps to, and
//! that a failed batch never produces a reply.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prost::Message;
use statefun_sync::testing::v2::Request;
use statefun_sync::{Address, Error, RequestReplyHandler, StatefulFunctions};
use support::{caller, handler_for, ping, run, run_err, SeenCount};

#[test]
fn binding_a_malformed_typename_is_an_error_quoting_it() {
    let mut functions = StatefulFunctions::new();
    for typename in ["", "greeter", "/greeter", "example/"] {
        let err = functions.bind(typename, |_, _| Ok(())).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidTypename(invalid) if invalid.input() == typename),
            "{err:?}"
        );
        assert!(err.to_string().contains(&format!("`{typename}`")), "{err}");
    }
    assert_eq!(functions.function_types().count(), 0);
}

#[test]
fn binding_one_type_twice_is_an_error() {
    let mut functions = StatefulFunctions::new();
    functions.bind("example/greeter", |_, _| Ok(())).unwrap();

    let err = functions
        .bind_typed("example/greeter", |_, _: SeenCount| Ok(()))
        .unwrap_err();

    assert!(
        matches!(&err, Error::DuplicateFunction { function_type } if function_type == "example/greeter"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "a function is already bound to type `example/greeter`"
    );
}

fn counting_handler() -> (RequestReplyHandler, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let handler = handler_for("ex/count", move |ctx, message| {
        counter.fetch_add(1, Ordering::SeqCst);
        ctx.send("ex/sink", "1", message)?;
        Ok(())
    });
    (handler, calls)
}

#[test]
fn malformed_requests_are_400_and_run_nothing() {
    let (handler, calls) = counting_handler();
    let good = Request::to("ex/count", "1")
        .with_state("s", Some(ping(1)))
        .invoke(ping(1))
        .invoke(ping(2))
        .to_bytes();
    let mut bad_utf8 = Request::to("ex/count", "1").invoke(ping(1)).to_bytes();
    let at = bad_utf8.iter().position(|&b| b == b'c').unwrap(); // in "ex/count"
    bad_utf8[at] = 0xff;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated by one byte", good[..good.len() - 1].to_vec()),
        (
            "truncated inside the last invocation",
            good[..good.len() - 4].to_vec(),
        ),
        ("wrong wire type for field 100", vec![0xa0, 0x06, 0x01]),
        (
            "huge length prefix",
            vec![
                0xa2, 0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ],
        ),
        ("non-UTF-8 in the target", bad_utf8),
        (
            "an invocation whose caller runs past its end",
            // ToFunction{invocation{invocations[0]{caller: 5 bytes claimed, 1 present}}}
            vec![0xa2, 0x06, 0x05, 0x1a, 0x03, 0x0a, 0x05, 0x08],
        ),
    ];
    for (what, body) in cases {
        let err = run_err(&handler, &body);
        assert!(
            matches!(err, Error::MalformedRequest { .. }),
            "{what}: {err:?}"
        );
        assert_eq!(err.status(), 400, "{what}");
        assert!(
            err.to_string()
                .starts_with("malformed request: cannot decode `ToFunction"),
            "{what}: {err}"
        );
        assert!(
            std::error::Error::source(&err).is_some(),
            "{what}: the cause is kept"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no function ran");
}

#[test]
fn a_body_without_an_invocation_batch_is_400() {
    let (handler, _) = counting_handler();
    for body in [&[][..], &[0x08, 0x01][..]] {
        let err = run_err(&handler, body);
        assert!(matches!(err, Error::NoInvocation), "{err:?}");
        assert_eq!(err.status(), 400);
    }
}

#[test]
fn an_unknown_function_type_is_404_naming_it() {
    let (handler, _) = counting_handler();
    let request = Request::to("ex/nobody", "1").invoke(ping(1)).to_bytes();

    let err = run_err(&handler, &request);

    assert!(
        matches!(&err, Error::UnknownFunctionType { address } if **address == Address::new("ex", "nobody", "1").unwrap()),
        "{err:?}"
    );
    assert_eq!(err.status(), 404);
    assert_eq!(err.to_string(), "no function is bound to type `ex/nobody`");
}

#[test]
fn a_declared_state_missing_from_the_request_is_400_before_anything_runs() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let mut functions = StatefulFunctions::new();
    functions
        .bind("ex/declared", move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap()
        .state("seen")
        .state("visits");
    let handler = RequestReplyHandler::v2(functions);
    let request = Request::to("ex/declared", "1")
        .with_state("seen", None)
        .invoke(ping(1))
        .to_bytes();

    let err = run_err(&handler, &request);

    assert!(
        matches!(&err, Error::MissingDeclaredState { address, state }
            if *address.function_type() == "ex/declared" && state == "visits"),
        "{err:?}"
    );
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("module.yaml"), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // With every declared state carried, the batch runs.
    let request = Request::to("ex/declared", "1")
        .with_state("visits", None)
        .with_state("seen", None)
        .invoke(ping(1))
        .to_bytes();
    run(&handler, &request);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn an_argument_of_the_right_type_that_does_not_decode_is_400() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_typed("ex/typed", |_, _: SeenCount| Ok(()))
        .unwrap();
    let handler = RequestReplyHandler::v2(functions);
    let argument = prost_types::Any {
        type_url: "type.googleapis.com/k8s.demo.SeenCount".into(),
        value: vec![0x08], // field 1 varint, value missing
    };
    let request = Request::to("ex/typed", "1").invoke(argument).to_bytes();

    let err = run_err(&handler, &request);

    assert!(
        matches!(&err, Error::MalformedArgument { type_url, invocation: 0, .. }
            if type_url == "type.googleapis.com/k8s.demo.SeenCount"),
        "{err:?}"
    );
    assert_eq!(err.status(), 400);
}

#[test]
fn a_failing_function_fails_the_whole_batch_with_no_partial_reply() {
    let handler = handler_for("ex/fails", |ctx, message| {
        ctx.send("ex/sink", "1", message.clone())?;
        ctx.set_state("s", message.clone())?;
        if message.value[0] == 2 {
            return Err(anyhow::anyhow!("user not found").context("looking up the user"));
        }
        Ok(())
    });
    let request = Request::to("ex/fails", "alice")
        .with_state("s", None)
        .invoke(ping(0))
        .invoke(ping(1))
        .invoke(ping(2))
        .invoke(ping(3))
        .to_bytes();

    let err = run_err(&handler, &request);

    let Error::FunctionFailed {
        address,
        invocation,
        source,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(address.to_string(), "ex/fails/alice");
    assert_eq!(*invocation, 2);
    assert_eq!(format!("{source:#}"), "looking up the user: user not found");
    assert_eq!(err.status(), 500);
    assert_eq!(
        err.report(),
        "function `ex/fails/alice` failed at invocation 2: looking up the user: user not found"
    );
}

#[test]
fn a_panicking_function_is_caught_and_the_handler_stays_usable() {
    let handler = handler_for("ex/panics", |ctx, message| {
        if message.value[0] == 1 {
            panic!("boom at {}", ctx.address());
        }
        ctx.reply(message)?;
        Ok(())
    });
    let panicking = Request::to("ex/panics", "p")
        .invoke_from(caller(), ping(0))
        .invoke_from(caller(), ping(1))
        .to_bytes();
    let good = Request::to("ex/panics", "p")
        .invoke_from(caller(), ping(0))
        .to_bytes();

    for _ in 0..3 {
        let err = run_err(&handler, &panicking);
        assert!(
            matches!(&err, Error::FunctionPanicked { invocation: 1, message, .. } if message == "boom at ex/panics/p"),
            "{err:?}"
        );
        assert_eq!(err.status(), 500);
        let reply = run(&handler, &good);
        assert_eq!(reply.messages().len(), 1);
    }
}

#[test]
fn one_handler_serves_many_threads() {
    let handler = Arc::new(handler_for("ex/echo", |ctx, message| {
        ctx.reply(message)?;
        Ok(())
    }));
    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            let handler = handler.clone();
            std::thread::spawn(move || {
                for i in 0..200u8 {
                    let request = Request::to("ex/echo", "1")
                        .invoke_from(caller(), ping(t.wrapping_mul(31).wrapping_add(i)))
                        .to_bytes();
                    let reply = run(&handler, &request);
                    assert_eq!(
                        reply.messages()[0].argument,
                        ping(t.wrapping_mul(31).wrapping_add(i))
                    );
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn an_empty_batch_replies_with_an_empty_invocation_result() {
    let (handler, calls) = counting_handler();
    let request = Request::to("ex/count", "1").to_bytes();

    let reply = handler.handle(&request).unwrap();

    // `invocation_result` is set (field 100, empty), so the runtime sees a non-empty body.
    assert_eq!(reply, [0xa2, 0x06, 0x00]);
    let decoded = statefun_sync::proto::polyglot::FromFunction::decode(reply.as_slice()).unwrap();
    assert!(decoded.response.is_some());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn a_batch_over_the_invocation_limit_is_413_and_runs_nothing() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let mut functions = StatefulFunctions::new();
    functions
        .bind("ex/limited", move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
    let handler = RequestReplyHandler::v2(functions).max_invocations(2);
    let mut request = Request::to("ex/limited", "1");
    for n in 0..3 {
        request = request.invoke(ping(n));
    }

    let err = run_err(&handler, &request.to_bytes());

    assert!(
        matches!(err, Error::TooManyInvocations { limit: 2 }),
        "{err:?}"
    );
    assert_eq!(err.status(), 413);
    assert!(err.to_string().contains("more than 2 invocations"), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        RequestReplyHandler::DEFAULT_MAX_INVOCATIONS,
        100_000,
        "the documented default"
    );
}

#[test]
fn a_batch_over_the_state_limit_is_413_and_runs_nothing() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let mut functions = StatefulFunctions::new();
    functions
        .bind("ex/count", move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
    let handler = RequestReplyHandler::v2(functions).max_states(2);
    let request = Request::to("ex/count", "1")
        .with_state("a", None)
        .with_state("b", None)
        .with_state("c", None)
        .invoke(ping(0))
        .to_bytes();

    let err = run_err(&handler, &request);

    assert!(matches!(err, Error::TooManyStates { limit: 2 }), "{err:?}");
    assert_eq!(err.status(), 413);
    assert!(err.to_string().contains("more than 2 states"), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn a_request_data_error_under_the_functions_own_context_keeps_both_and_stays_400() {
    use anyhow::Context as _;
    let handler = handler_for("ex/ctx", |ctx, _| {
        ctx.get_state("profile")
            .context("loading the user profile")?;
        Ok(())
    });
    let request = Request::to("ex/ctx", "1").invoke(ping(0)).to_bytes();

    let err = run_err(&handler, &request);

    assert!(matches!(err, Error::FunctionFailed { .. }), "{err:?}");
    assert_eq!(err.status(), 400, "the cause is the request's data");
    let chain = err.report();
    assert!(
        chain.contains("loading the user profile") && chain.contains("state `profile`"),
        "{chain}"
    );
}
