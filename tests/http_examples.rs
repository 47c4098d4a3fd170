//! The example app (`examples/common/app.rs`) over `serve()`'s server, as `cargo run
//! --example server` runs it, and its deployment file.

#![cfg(feature = "server")]

mod support;

use std::time::Duration;

use prost_types::Any;
use statefun_sync::http::Server;
use statefun_sync::proto::io::KafkaProducerRecord;
use statefun_sync::testing::v2::{Reply, Request};
use statefun_sync::testing::StateChange;
use statefun_sync::{pack, Address, FromAny, RequestReplyHandler};
use support::examples::{app, Count, Forget, Response, User, DEPLOY_ENDPOINT};
use support::http::Client;

fn joe() -> User {
    User {
        user_id: "joe".into(),
        name: "Joe".into(),
    }
}

fn call(server: &Server, request: Request) -> Reply {
    let mut client = Client::to(server);
    let response = client.post("/statefun", &request.to_bytes()).unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    Reply::decode(&response.body).unwrap()
}

fn start() -> Server {
    Server::builder()
        .bind("127.0.0.1:0")
        .start(RequestReplyHandler::v2(app::functions()))
        .unwrap()
}

#[test]
fn the_count_greeter_counts_in_state_greets_on_the_egress_and_forgets() {
    let server = start();
    let caller = Address::new("example", "client", "1").unwrap();

    let reply = call(
        &server,
        Request::to("example/count", "joe")
            .with_state_value("count", pack(&Count { value: 2 }))
            .invoke_from(caller.clone(), pack(&joe())),
    );
    let Some(StateChange::Modified(count)) = reply.state_change("count") else {
        panic!("count is modified");
    };
    let count = Count::from_any(count).unwrap().unwrap();
    assert_eq!(count.value, 3);
    let record = KafkaProducerRecord::from_any(&reply.egresses()[0].argument)
        .unwrap()
        .unwrap();
    assert_eq!(reply.egresses()[0].egress, "example/greets");
    assert_eq!(
        <Response as prost::Message>::decode(record.value_bytes.as_slice())
            .unwrap()
            .message,
        "Third time is a charm! Joe! :P"
    );

    let reply = call(
        &server,
        Request::to("example/count", "joe")
            .with_state_value("count", pack(&Count { value: 3 }))
            .invoke(pack(&Forget {})),
    );
    assert!(reply.deleted("count"));
}

#[test]
fn the_delayed_function_replies_to_its_caller_after_30_minutes() {
    let server = start();
    let caller = Address::new("example", "client", "1").unwrap();

    let reply = call(
        &server,
        Request::to("example/delay", "x").invoke_from(caller.clone(), Any::default()),
    );

    let delayed = reply.delayed_messages().next().unwrap();
    assert_eq!(delayed.target, caller);
    assert_eq!(delayed.delay, Duration::from_secs(30 * 60));
    assert_eq!(
        Response::from_any(&delayed.argument)
            .unwrap()
            .unwrap()
            .message,
        "hello from the past"
    );
}

#[test]
fn the_caller_sends_a_user_to_example_hello() {
    let server = start();

    let reply = call(
        &server,
        Request::to("example/caller", "x").invoke(Any::default()),
    );

    assert_eq!(
        reply.messages()[0].target,
        Address::new("example", "hello", "id").unwrap()
    );
    let user = User::from_any(&reply.messages()[0].argument)
        .unwrap()
        .unwrap();
    assert_eq!(user.name, "Joe");
}

#[test]
fn the_example_messages_unpack_from_an_any_as_in_the_hello_example() {
    let any = pack(&joe());
    assert_eq!(any.type_url, "type.googleapis.com/example.User");
    assert_eq!(any.to_msg::<User>().unwrap(), joe());
    assert!(any.to_msg::<Count>().is_err());
}

#[test]
fn the_deployment_files_of_the_app_match_its_bindings() {
    let expected = app::functions().module_yaml_v2(DEPLOY_ENDPOINT).to_string();
    for example in ["server", "flask", "existing_service"] {
        let path = format!(
            "{}/examples/deploy/{example}.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let file = std::fs::read_to_string(&path).unwrap();
        let yaml: String = file
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| format!("{line}\n"))
            .collect();
        assert_eq!(yaml, expected, "{path}");
    }
}
