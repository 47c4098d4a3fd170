//! What a Python 3.3 function can say, said through the public 3.x API: state names as
//! Python's `str.isidentifier()` accepts them.

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
