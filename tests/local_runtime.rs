//! `LocalRuntime`: state, routing, batching, the virtual clock, egress, failure and the
//! batch limit, each through the public API only.

use std::time::Duration;

use prost_types::Any;
use statefun_sync::testing::{LocalRuntime, RuntimeError};
use statefun_sync::unpack;
use statefun_sync::{pack, Address, Context, Error, StatefulFunctions, ValueSpec};

/// A counter or a number, for messages and states.
#[derive(Clone, PartialEq, prost::Message)]
struct Count {
    #[prost(int64, tag = "1")]
    n: i64,
}

impl prost::Name for Count {
    const NAME: &'static str = "Count";
    const PACKAGE: &'static str = "test";
}

/// A line of text, for messages and egresses.
#[derive(Clone, PartialEq, prost::Message)]
struct Text {
    #[prost(string, tag = "1")]
    text: String,
}

impl prost::Name for Text {
    const NAME: &'static str = "Text";
    const PACKAGE: &'static str = "test";
}

statefun_sync::protobuf_type!(Count, Text);

fn count(n: i64) -> Count {
    Count { n }
}

fn text(text: &str) -> Text {
    Text { text: text.into() }
}

/// Adds each message's `n` to its state `total`, and emits the new total to `test/totals`.
fn adder(ctx: &mut Context, message: Count) -> anyhow::Result<()> {
    let total = ctx
        .get_state("total")?
        .as_ref()
        .map(unpack::<Count>)
        .transpose()?
        .unwrap_or_default()
        .n
        + message.n;
    ctx.set_state("total", pack(&count(total)))?;
    ctx.send_egress("test/totals", pack(&count(total)))?;
    Ok(())
}

/// Emits `<id>:<text>` to `test/log` for every message: the order things ran in.
fn logger(ctx: &mut Context, message: Text) -> anyhow::Result<()> {
    let line = format!("{}:{}", ctx.address().id(), message.text);
    ctx.send_egress("test/log", pack(&text(&line)))?;
    Ok(())
}

fn log(runtime: &LocalRuntime) -> Vec<String> {
    runtime
        .egress_values::<Text>("test/log")
        .unwrap()
        .into_iter()
        .map(|t| t.text)
        .collect()
}

fn adder_runtime() -> LocalRuntime {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_typed("test/adder", adder)
        .unwrap()
        .state("total");
    LocalRuntime::v2(functions)
}

#[test]
fn state_is_kept_per_address_across_batches() {
    let mut runtime = adder_runtime();
    for n in [1, 2, 3] {
        runtime.send("test/adder", "a", pack(&count(n))).unwrap();
        runtime.run().unwrap();
    }
    runtime.send("test/adder", "b", pack(&count(10))).unwrap();
    runtime.run().unwrap();

    assert_eq!(
        runtime
            .get("test/adder", "a", &ValueSpec::<Count>::named("total"))
            .unwrap(),
        Some(count(6))
    );
    assert_eq!(
        runtime
            .get("test/adder", "b", &ValueSpec::<Count>::named("total"))
            .unwrap(),
        Some(count(10))
    );
    assert_eq!(
        runtime.state("test/adder", "c", "total").unwrap(),
        None,
        "an address never invoked has no value"
    );
    assert_eq!(runtime.history().len(), 4, "{:?}", runtime.history());
}

#[test]
fn a_delete_mutation_clears_the_state() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_typed("test/toggle", |ctx: &mut Context, message: Count| {
            if message.n == 0 {
                ctx.remove_state("value")?;
            } else {
                ctx.set_state("value", pack(&message))?;
            }
            Ok(())
        })
        .unwrap()
        .state("value");
    let mut runtime = LocalRuntime::v2(functions);

    runtime.send("test/toggle", "t", pack(&count(7))).unwrap();
    runtime.run().unwrap();
    assert_eq!(
        runtime
            .get("test/toggle", "t", &ValueSpec::<Count>::named("value"))
            .unwrap(),
        Some(count(7))
    );
    runtime.send("test/toggle", "t", pack(&count(0))).unwrap();
    runtime.run().unwrap();
    assert_eq!(runtime.state("test/toggle", "t", "value").unwrap(), None);
}

#[test]
fn only_declared_states_are_sent_and_declare_states_adds_to_them() {
    // `adder` uses "total", but this binding does not declare it.
    let undeclared = || {
        let mut functions = StatefulFunctions::new();
        functions.bind_typed("test/adder", adder).unwrap();
        LocalRuntime::v2(functions)
    };

    let mut runtime = undeclared();
    runtime.send("test/adder", "a", pack(&count(1))).unwrap();
    let err = runtime.run().unwrap_err();
    match &err {
        RuntimeError::FunctionFailed { source, .. } => {
            assert!(
                matches!(source, Error::UnknownState { state, .. } if state == "total"),
                "{source:?}"
            )
        }
        other => panic!("expected FunctionFailed, got {other:?}"),
    }

    let mut runtime = undeclared()
        .declare_states("test/adder", ["total"])
        .unwrap();
    runtime.send("test/adder", "a", pack(&count(1))).unwrap();
    runtime.run().unwrap();
    assert_eq!(
        runtime
            .get("test/adder", "a", &ValueSpec::<Count>::named("total"))
            .unwrap(),
        Some(count(1))
    );
}

#[test]
fn messages_are_routed_between_functions_with_their_caller() {
    let mut functions = StatefulFunctions::new();
    // `test/asker` asks `test/echo/e` for an echo, and logs the answer and who sent it.
    functions
        .bind("test/asker", |ctx: &mut Context, message: Any| {
            match ctx.caller() {
                None => ctx.send("test/echo", "e", message)?,
                Some(caller) => {
                    let line = format!("{}<-{caller}", unpack::<Text>(&message)?.text);
                    ctx.send_egress("test/log", pack(&text(&line)))?;
                }
            }
            Ok(())
        })
        .unwrap();
    functions
        .bind("test/echo", |ctx: &mut Context, message: Any| {
            ctx.reply(message)?;
            Ok(())
        })
        .unwrap();
    let mut runtime = LocalRuntime::v2(functions);

    runtime.send("test/asker", "q", pack(&text("hi"))).unwrap();
    assert_eq!(runtime.run().unwrap(), 3);

    assert_eq!(log(&runtime), ["hi<-test/echo/e"]);
}

#[test]
fn an_ingress_message_has_no_caller() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind("test/who", |ctx: &mut Context, _: Any| {
            let from = ctx.caller().map_or("ingress".to_owned(), |c| c.to_string());
            ctx.send_egress("test/log", pack(&text(&from)))?;
            Ok(())
        })
        .unwrap();
    let mut runtime = LocalRuntime::v2(functions);
    runtime.send("test/who", "w", Any::default()).unwrap();
    runtime.run().unwrap();
    assert_eq!(log(&runtime), ["ingress"]);
}

#[test]
fn messages_that_arrive_before_an_address_runs_go_in_one_batch() {
    let mut runtime = adder_runtime();
    for n in 1..=5 {
        runtime.send("test/adder", "a", pack(&count(n))).unwrap();
    }
    assert_eq!(runtime.pending_messages(), 5);

    assert_eq!(runtime.run().unwrap(), 1);

    let batch = &runtime.history()[0];
    assert_eq!(batch.target, Address::new("test", "adder", "a").unwrap());
    assert_eq!(batch.size, 5);
    // In arrival order: the totals are running sums.
    assert_eq!(
        runtime.egress_values::<Count>("test/totals").unwrap(),
        [1, 3, 6, 10, 15].map(count)
    );
}

#[test]
fn messages_sent_by_one_batch_to_one_address_go_in_one_batch() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_typed("test/fanout", |ctx: &mut Context, message: Count| {
            for n in 0..message.n {
                ctx.send("test/adder", "sum", pack(&count(n)))?;
            }
            Ok(())
        })
        .unwrap();
    functions
        .bind_typed("test/adder", adder)
        .unwrap()
        .state("total");
    let mut runtime = LocalRuntime::v2(functions);

    runtime.send("test/fanout", "f", pack(&count(4))).unwrap();
    runtime.run().unwrap();

    let sizes: Vec<_> = runtime
        .history()
        .iter()
        .map(|b| (b.target.to_string(), b.size))
        .collect();
    assert_eq!(
        sizes,
        [
            ("test/fanout/f".to_owned(), 1),
            ("test/adder/sum".to_owned(), 4)
        ]
    );
}

#[test]
fn a_batch_holds_at_most_the_maximum_and_the_rest_waits_its_turn() {
    let mut runtime = adder_runtime().max_batch_size(2);
    for n in 1..=5 {
        runtime.send("test/adder", "a", pack(&count(n))).unwrap();
    }
    runtime.send("test/adder", "b", pack(&count(100))).unwrap();

    assert_eq!(runtime.run().unwrap(), 4);

    let batches: Vec<_> = runtime
        .history()
        .iter()
        .map(|b| (b.target.id().to_owned(), b.size))
        .collect();
    // `a` goes back in line behind `b` after its first turn.
    assert_eq!(
        batches,
        [("a", 2), ("b", 1), ("a", 2), ("a", 1)].map(|(id, n)| (id.to_owned(), n))
    );
    assert_eq!(
        runtime
            .get("test/adder", "a", &ValueSpec::<Count>::named("total"))
            .unwrap(),
        Some(count(15))
    );
}

#[test]
fn the_bindings_max_num_batch_requests_sets_its_batch_size() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_typed("test/adder", adder)
        .unwrap()
        .state("total")
        .max_num_batch_requests(3);
    let mut runtime = LocalRuntime::v2(functions);
    for n in 1..=7 {
        runtime.send("test/adder", "a", pack(&count(n))).unwrap();
    }
    runtime.run().unwrap();
    let sizes: Vec<_> = runtime.history().iter().map(|b| b.size).collect();
    assert_eq!(sizes, [3, 3, 1]);
}

#[test]
fn addresses_take_turns_first_come_first_served() {
    // `test/tree/root` messages `a` then `b`; `a` messages `c`. Each logs its id.
    let mut functions = StatefulFunctions::new();
    functions
        .bind_typed("test/tree", |ctx: &mut Context, message: Text| {
            logger(ctx, message)?;
            match ctx.address().id() {
                "root" => {
                    ctx.send("test/tree", "a", pack(&text("from root")))?;
                    ctx.send("test/tree", "b", pack(&text("from root")))?;
                }
                "a" => ctx.send("test/tree", "c", pack(&text("from a")))?,
                _ => {}
            }
            Ok(())
        })
        .unwrap();
    let mut runtime = LocalRuntime::v2(functions);
    runtime
        .send("test/tree", "root", pack(&text("go")))
        .unwrap();
    runtime.send("test/tree", "z", pack(&text("go"))).unwrap();
    runtime.run().unwrap();

    assert_eq!(
        log(&runtime),
        ["root:go", "z:go", "a:from root", "b:from root", "c:from a"]
    );
}

/// `test/timer/<id>` sends `test/log/timer` the text "<id> after <n>s" after the `n`
/// seconds of the `Count` it gets.
fn timer_runtime() -> LocalRuntime {
    let mut functions = StatefulFunctions::new();
    functions
        .bind("test/timer", |ctx: &mut Context, message: Any| {
            let delay = unpack::<Count>(&message)?;
            let line = text(&format!("{} after {}s", ctx.address().id(), delay.n));
            let delay = Duration::from_secs(delay.n as u64);
            ctx.send_after(delay, "test/log", "timer", pack(&line))?;
            Ok(())
        })
        .unwrap();
    functions.bind_typed("test/log", logger).unwrap();
    LocalRuntime::v2(functions)
}

#[test]
fn a_delayed_message_arrives_when_the_virtual_clock_reaches_it() {
    let mut runtime = timer_runtime();
    runtime.send("test/timer", "t", pack(&count(1800))).unwrap();
    runtime.run().unwrap();
    assert!(log(&runtime).is_empty());
    assert_eq!(runtime.pending_delayed().count(), 1);

    runtime.advance(Duration::from_secs(1799)).unwrap();
    assert!(log(&runtime).is_empty(), "not due yet");

    runtime.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(log(&runtime), ["timer:t after 1800s"]);
    assert_eq!(runtime.now(), Duration::from_secs(1800));
    assert_eq!(
        runtime.history().last().unwrap().at,
        Duration::from_secs(1800)
    );
    assert_eq!(runtime.pending_delayed().count(), 0);
}

#[test]
fn delayed_messages_arrive_in_due_time_order_ties_in_send_order() {
    let mut runtime = timer_runtime();
    // Sent in this order: the two 1-second ones with ids out of order.
    for (id, n) in [("1", 3), ("4", 1), ("3", 2), ("2", 1)] {
        runtime.send("test/timer", id, pack(&count(n))).unwrap();
    }
    runtime.advance(Duration::from_secs(10)).unwrap();

    let sent: Vec<_> = log(&runtime);
    // The two 1-second messages are due together, so they go in one batch.
    assert_eq!(
        sent,
        [
            "timer:4 after 1s",
            "timer:2 after 1s",
            "timer:3 after 2s",
            "timer:1 after 3s"
        ]
    );
    let log_batches: Vec<_> = runtime
        .history()
        .iter()
        .filter(|b| b.target.name() == "log")
        .map(|b| (b.at.as_secs(), b.size))
        .collect();
    assert_eq!(log_batches, [(1, 2), (2, 1), (3, 1)]);
}

#[test]
fn a_timer_that_rearms_itself_fires_once_per_period_within_one_advance() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind("test/tick", |ctx: &mut Context, message: Any| {
            ctx.send_egress("test/ticks", pack(&text("tick")))?;
            ctx.send_after(Duration::from_secs(60), "test/tick", "t", message)?;
            Ok(())
        })
        .unwrap();
    let mut runtime = LocalRuntime::v2(functions);
    runtime.send("test/tick", "t", Any::default()).unwrap();

    runtime.advance(Duration::from_secs(600)).unwrap();

    // At 0, 60, ..., 600 seconds.
    assert_eq!(runtime.egress("test/ticks").len(), 11);
    assert_eq!(
        runtime.pending_delayed().next().unwrap().0,
        Duration::from_secs(660)
    );
}

#[test]
fn egress_messages_are_recorded_per_egress() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_typed("test/split", |ctx: &mut Context, message: Count| {
            let egress = if message.n % 2 == 0 {
                "test/even"
            } else {
                "test/odd"
            };
            ctx.send_egress(egress, pack(&message))?;
            Ok(())
        })
        .unwrap();
    let mut runtime = LocalRuntime::v2(functions);
    for n in 1..=5 {
        runtime.send("test/split", "s", pack(&count(n))).unwrap();
    }
    runtime.run().unwrap();

    assert_eq!(
        runtime.egress_names().collect::<Vec<_>>(),
        ["test/even", "test/odd"]
    );
    assert_eq!(
        runtime.egress_values::<Count>("test/odd").unwrap(),
        [1, 3, 5].map(count)
    );
    assert_eq!(
        runtime.take_egress("test/even"),
        [pack(&count(2)), pack(&count(4))]
    );
    assert!(runtime.egress("test/even").is_empty(), "taken");
    assert!(runtime.egress("test/none").is_empty());
}

/// `test/adder`, but a message with `n < 0` makes it fail.
fn failing_runtime() -> LocalRuntime {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_typed("test/adder", |ctx: &mut Context, message: Count| {
            anyhow::ensure!(message.n >= 0, "negative input {}", message.n);
            adder(ctx, message)
        })
        .unwrap()
        .state("total");
    LocalRuntime::v2(functions)
}

#[test]
fn a_failing_batch_names_address_and_message_and_is_not_applied() {
    let mut runtime = failing_runtime();
    runtime.send("test/adder", "a", pack(&count(1))).unwrap();
    runtime.run().unwrap();
    // One batch: 2 succeeds (and would set the total to 3), then -5 fails.
    runtime.send("test/adder", "a", pack(&count(2))).unwrap();
    runtime.send("test/adder", "a", pack(&count(-5))).unwrap();

    let err = runtime.run().unwrap_err();

    let RuntimeError::FunctionFailed {
        address,
        message,
        source,
    } = &err
    else {
        panic!("expected FunctionFailed, got {err:?}");
    };
    assert_eq!(**address, Address::new("test", "adder", "a").unwrap());
    assert_eq!(message.unpack::<Count>().unwrap(), count(-5));
    assert_eq!(message.caller, None);
    assert!(
        matches!(source, Error::FunctionFailed { invocation: 1, .. }),
        "{source:?}"
    );
    assert!(
        err.report().contains("negative input -5"),
        "{}",
        err.report()
    );
    // Not applied: the state and the egress are as before the batch.
    assert_eq!(
        runtime
            .get("test/adder", "a", &ValueSpec::<Count>::named("total"))
            .unwrap(),
        Some(count(1))
    );
    assert_eq!(
        runtime.egress_values::<Count>("test/totals").unwrap(),
        [count(1)]
    );
    assert_eq!(
        runtime.pending_messages(),
        2,
        "the failed batch is still pending"
    );
}

#[test]
fn after_a_failure_the_runtime_stops() {
    let mut runtime = failing_runtime();
    runtime.send("test/adder", "a", pack(&count(-1))).unwrap();
    runtime.run().unwrap_err();

    for err in [
        runtime
            .send("test/adder", "b", pack(&count(1)))
            .unwrap_err(),
        runtime.run().unwrap_err(),
        runtime.advance(Duration::from_secs(1)).unwrap_err(),
    ] {
        assert!(
            matches!(&err, RuntimeError::Stopped { cause } if cause.contains("negative input -1")),
            "{err:?}"
        );
    }
    assert!(
        runtime.state("test/adder", "a", "total").is_ok(),
        "states stay readable"
    );
}

#[test]
fn a_panic_is_a_failure_that_names_the_message() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_typed("test/boom", |_: &mut Context, message: Text| {
            assert!(message.text != "boom", "it went boom");
            Ok(())
        })
        .unwrap();
    let mut runtime = LocalRuntime::v2(functions);
    runtime.send("test/boom", "b", pack(&text("fine"))).unwrap();
    runtime.send("test/boom", "b", pack(&text("boom"))).unwrap();

    let err = runtime.run().unwrap_err();

    let RuntimeError::FunctionFailed {
        message, source, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(message.unpack::<Text>().unwrap(), text("boom"));
    assert!(
        matches!(source, Error::FunctionPanicked { .. }),
        "{source:?}"
    );
}

#[test]
fn a_message_to_an_unbound_function_type_fails_with_the_sender_named() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind("test/sender", |ctx: &mut Context, message: Any| {
            ctx.send("test/nobody", "n", message)?;
            Ok(())
        })
        .unwrap();
    let mut runtime = LocalRuntime::v2(functions);
    runtime
        .send("test/sender", "s", pack(&text("lost")))
        .unwrap();

    let err = runtime.run().unwrap_err();

    let RuntimeError::FunctionFailed {
        address,
        message,
        source,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(address.to_string(), "test/nobody/n");
    assert_eq!(
        message.caller,
        Some(Address::new("test", "sender", "s").unwrap())
    );
    assert!(
        matches!(source, Error::UnknownFunctionType { .. }),
        "{source:?}"
    );
    assert_eq!(source.status(), 404);
}

#[test]
fn a_message_loop_stops_at_the_batch_limit_with_a_clear_error() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind("test/ping", |ctx: &mut Context, message: Any| {
            ctx.send("test/ping", "other", message)?;
            Ok(())
        })
        .unwrap();
    let mut runtime = LocalRuntime::v2(functions).max_batches_per_run(50);
    runtime.send("test/ping", "one", Any::default()).unwrap();

    let err = runtime.run().unwrap_err();

    assert!(
        matches!(
            err,
            RuntimeError::BatchLimitReached {
                limit: 50,
                pending: 1
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("50 batches"), "{err}");
    assert_eq!(runtime.history().len(), 50);
    // Not a failure: the runtime can go on, and stops again at the limit.
    let err = runtime.run().unwrap_err();
    assert!(
        matches!(err, RuntimeError::BatchLimitReached { .. }),
        "{err:?}"
    );
    assert_eq!(runtime.history().len(), 100);
}

#[test]
fn a_timer_loop_stops_at_the_batch_limit_too() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind("test/tick", |ctx: &mut Context, message: Any| {
            ctx.send_after(Duration::from_millis(1), "test/tick", "t", message)?;
            Ok(())
        })
        .unwrap();
    let mut runtime = LocalRuntime::v2(functions).max_batches_per_run(10);
    runtime.send("test/tick", "t", Any::default()).unwrap();

    let err = runtime.advance(Duration::from_secs(3600)).unwrap_err();

    assert!(
        matches!(err, RuntimeError::BatchLimitReached { limit: 10, .. }),
        "{err:?}"
    );
    assert!(
        runtime.now() < Duration::from_secs(1),
        "{:?}",
        runtime.now()
    );
}

#[test]
fn bad_arguments_are_errors_that_name_them() {
    let mut runtime = adder_runtime();
    let cases = [
        runtime.send("no-slash", "a", Any::default()).unwrap_err(),
        runtime.send("test/adder", "", Any::default()).unwrap_err(),
        adder_runtime().declare_states("/x", ["s"]).unwrap_err(),
        adder_runtime()
            .route_to_endpoint("test/adder", "https://h/x")
            .unwrap_err(),
        adder_runtime()
            .route_to_endpoint("test/adder", "http://h:port/x")
            .unwrap_err(),
    ];
    for err in cases {
        assert!(
            matches!(err, RuntimeError::InvalidArgument { .. }),
            "{err:?}"
        );
    }
    assert_eq!(runtime.pending_messages(), 0);
}

#[test]
fn reading_a_state_names_what_is_wrong() {
    let mut runtime = adder_runtime();
    runtime
        .set_state("test/adder", "a", "total", Some(pack(&text("not a count"))))
        .unwrap();

    let err = runtime.state("test/adder", "a", "totl").unwrap_err();
    assert!(
        matches!(&err, RuntimeError::UnknownState { state, .. } if state == "totl"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("`test/adder` does not declare state `totl`"),
        "{err}"
    );

    let err = runtime
        .get("test/adder", "a", &ValueSpec::<Count>::named("total"))
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::UnreadableTypedState { .. }),
        "{err:?}"
    );
    assert!(err.report().contains("test.Count"), "{}", err.report());
    assert_eq!(
        runtime
            .get("test/adder", "a", &ValueSpec::<Text>::named("total"))
            .unwrap(),
        Some(text("not a count"))
    );
}

#[test]
fn set_state_seeds_what_the_next_batch_reads() {
    let mut runtime = adder_runtime();
    runtime
        .set_state("test/adder", "a", "total", Some(pack(&count(40))))
        .unwrap();
    runtime.send("test/adder", "a", pack(&count(2))).unwrap();
    runtime.run().unwrap();
    assert_eq!(
        runtime.egress_values::<Count>("test/totals").unwrap(),
        [count(42)]
    );
}
