//! The example app: the functions of the Python SDK's documentation, in one place, for
//! `server` (on `serve()`), `flask` (on tiny_http) and `existing_service`.
//!
//! | function type | takes | does |
//! |---|---|---|
//! | `example/hello` | `User` | logs "Hello <name>" |
//! | `example/goodbye` | `User` or `Admin` | logs a goodbye for each |
//! | `example/caller` | anything | sends a `User` (Joe) to `example/hello` |
//! | `example/delay` | anything | replies "hello from the past" to its caller, 30 minutes later |
//! | `example/count` | `User` or `Forget` | counts a user's greetings in state `count` and greets on the Kafka egress `example/greets`; `Forget` deletes the state |

use std::time::Duration;

use prost_types::Any;
use statefun_sync::{kafka_record_v2, message_union, Context, StatefulFunctions, ValueSpec};

use super::{Admin, Count, Forget, Response, User};

/// `example/hello` with a typed argument: the Python SDK's
/// `def hello_function(context, message: User)`.
pub fn hello(_ctx: &mut Context, message: User) -> anyhow::Result<()> {
    log::info!("Hello {}", message.name);
    Ok(())
}

message_union! {
    /// What `example/goodbye` accepts: the Python SDK's `typing.Union[User, Admin]`.
    pub enum Visitor {
        User(User),
        Admin(Admin),
    }
}

/// `example/goodbye`, a function of a union of message types.
pub fn goodbye(_ctx: &mut Context, message: Visitor) -> anyhow::Result<()> {
    match message {
        Visitor::User(user) => log::info!("Goodbye user {}", user.name),
        Visitor::Admin(admin) => log::info!("Goodbye admin {}", admin.name),
    }
    Ok(())
}

/// `example/caller`: sends a message to another function, `example/hello/<user id>`.
pub fn caller(ctx: &mut Context, _message: Any) -> anyhow::Result<()> {
    let user = User {
        user_id: "id".into(),
        name: "Joe".into(),
    };
    ctx.send("example/hello", &user.user_id, &user)?;
    Ok(())
}

/// `example/delay`: replies to its caller after 30 minutes.
pub fn delayed(ctx: &mut Context, _message: Any) -> anyhow::Result<()> {
    let Some(caller) = ctx.caller() else {
        // An error would make the runtime retry the batch until its timeout.
        log::warn!(
            "{}: the message came from an ingress: no caller to reply to",
            ctx.address()
        );
        return Ok(());
    };
    let response = Response {
        message: "hello from the past".into(),
    };
    ctx.send_after(
        Duration::from_secs(30 * 60),
        caller.typename(),
        caller.id(),
        &response,
    )?;
    Ok(())
}

message_union! {
    /// What `example/count` accepts.
    pub enum CountMessage {
        Greet(User),
        Forget(Forget),
    }
}

/// `example/count`'s state: how often it has seen the user.
pub const COUNT: ValueSpec<Count> = ValueSpec::named("count");

/// `example/count`: greets a user by the number of times it has seen them, keeping the
/// count in the state `count`; `Forget` deletes it (the Python SDK's
/// `del context["count"]`).
pub fn count_greeter(ctx: &mut Context, message: CountMessage) -> anyhow::Result<()> {
    let user = match message {
        CountMessage::Greet(user) => user,
        CountMessage::Forget(Forget {}) => {
            ctx.remove(&COUNT)?;
            return Ok(());
        }
    };
    let mut count = ctx.get(&COUNT)?.unwrap_or_default();
    count.value += 1;
    ctx.set(&COUNT, &count)?;

    let greeting = Response {
        message: compute_greeting(&user.name, count.value),
    };
    let record = kafka_record_v2("greetings", &user.name, &greeting)?;
    ctx.send_egress("example/greets", &record)?;
    Ok(())
}

/// The greeting for the `seen`th visit, as in the Flink Stateful Functions walkthrough.
pub fn compute_greeting(name: &str, seen: i64) -> String {
    match seen {
        1 => format!("Hello {name}! :)"),
        2 => format!("Hello again {name}! ^^"),
        3 => format!("Third time is a charm! {name}! :P"),
        _ => format!("Happy to see you once again {name} ! <3 (visit {seen})"),
    }
}

/// Every function of the app, bound with the states they declare.
pub fn functions() -> StatefulFunctions {
    let mut functions = StatefulFunctions::new();
    bind(&mut functions).expect("the example's function types are valid and distinct");
    functions
}

fn bind(functions: &mut StatefulFunctions) -> Result<(), statefun_sync::Error> {
    functions.bind_typed("example/hello", hello)?;
    functions.bind_typed("example/goodbye", goodbye)?;
    functions.bind("example/caller", caller)?;
    functions.bind("example/delay", delayed)?;
    functions
        .bind_typed("example/count", count_greeter)?
        .state(&COUNT);
    Ok(())
}
