//! The greeter, tested one batch at a time and as a whole app on the local runtime.

use getting_started::example::{GreetRequest, GreetResponse, SeenCount};
use getting_started::{functions, GREETER, GREETINGS, SEEN};
use statefun_sync::testing::v2::{Reply, Request};
use statefun_sync::testing::LocalRuntime;
use statefun_sync::RequestReplyHandler;

fn visit(name: &str) -> GreetRequest {
    GreetRequest { name: name.into() }
}

#[test]
fn a_batch_counts_each_visit_and_greets_on_the_egress() -> anyhow::Result<()> {
    let handler = RequestReplyHandler::v2(functions());
    // What the runtime sends: Alice, seen once before, visits twice in one batch.
    let request = Request::to(GREETER, "alice")
        .with_state_value("seen", &SeenCount { seen: 1 })
        .invoke(&visit("Alice"))
        .invoke(&visit("Alice"))
        .to_bytes();

    let reply = Reply::decode(&handler.handle(&request)?)?;

    assert_eq!(reply.modified(&SEEN)?, Some(SeenCount { seen: 3 }));
    let mut greetings = Vec::new();
    for emitted in reply.egresses_to(GREETINGS) {
        let record = emitted.kafka_record_v2::<GreetResponse>()?;
        assert_eq!(
            (record.topic.as_str(), record.key.as_str()),
            ("greetings", "alice")
        );
        greetings.push(record.value.greeting);
    }
    assert_eq!(
        greetings,
        ["Hello Alice, visit #2!", "Hello Alice, visit #3!"]
    );
    Ok(())
}

#[test]
fn a_deployment_without_the_state_is_refused() {
    let handler = RequestReplyHandler::v2(functions());
    // module.yaml forgot to declare `seen`: the request carries no such state.
    let request = Request::to(GREETER, "alice")
        .invoke(&visit("Alice"))
        .to_bytes();

    let err = handler.handle(&request).unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("seen"), "{err}");
}

#[test]
fn the_app_remembers_each_user() -> anyhow::Result<()> {
    let mut runtime = LocalRuntime::v2(functions());
    runtime.send(GREETER, "alice", &visit("Alice"))?;
    runtime.send(GREETER, "bob", &visit("Bob"))?;
    runtime.run()?;
    runtime.send(GREETER, "alice", &visit("Alice"))?;
    runtime.run()?;

    let greetings: Vec<String> = runtime
        .kafka_records::<GreetResponse>(GREETINGS)?
        .into_iter()
        .map(|record| record.value.greeting)
        .collect();
    assert_eq!(
        greetings,
        [
            "Hello Alice, visit #1!",
            "Hello Bob, visit #1!",
            "Hello Alice, visit #2!"
        ]
    );
    let seen = runtime.get(GREETER, "alice", &SEEN)?;
    assert_eq!(seen, Some(SeenCount { seen: 2 }));
    Ok(())
}
