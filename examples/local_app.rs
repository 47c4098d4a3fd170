//! A small Stateful Functions app on the local runtime: no cluster, no Kafka, no waiting.
//!
//! - `example/greeter/<user>` counts the user's visits (state `visits`), tells
//!   `example/stats/global` about each one, and greets the user on the Kafka egress
//!   `example/greetings` once the stats answer with the visitor number. After a first
//!   visit it sets itself a 30-minute reminder (a delayed message); if the user has not
//!   come back by then, it sends a "we miss you" to the same egress.
//! - `example/stats/global` counts all visits (state `total`) and replies to each greeter.
//!
//! Run it with `cargo run --example local_app`. The same functions, bound the same way,
//! serve a real deployment; `functions.module_yaml_v2(..)` prints their `module.yaml`.

use std::time::Duration;

use statefun_sync::testing::{read_kafka_record_v2, LocalRuntime};
use statefun_sync::{kafka_record_v2, message_union, Context, StatefulFunctions, ValueSpec};

// The app's message types, written by hand here; an app would generate them with
// prost-build from its `.proto` files.

/// Ingress: a user arrives.
#[derive(Clone, PartialEq, prost::Message)]
struct Greet {
    #[prost(string, tag = "1")]
    name: String,
}

/// Greeter to stats: a user visited.
#[derive(Clone, PartialEq, prost::Message)]
struct Visited {
    #[prost(string, tag = "1")]
    name: String,
}

/// Stats to greeter: the visit's number among all visits.
#[derive(Clone, PartialEq, prost::Message)]
struct VisitorNumber {
    #[prost(int64, tag = "1")]
    number: i64,
}

/// Greeter to itself, 30 minutes after a first visit.
#[derive(Clone, PartialEq, prost::Message)]
struct Reminder {}

/// A counter, kept in state.
#[derive(Clone, PartialEq, prost::Message)]
struct Count {
    #[prost(int64, tag = "1")]
    count: i64,
}

/// What goes to the egress, inside a Kafka record.
#[derive(Clone, PartialEq, prost::Message)]
struct Greeting {
    #[prost(string, tag = "1")]
    text: String,
}

/// `impl prost::Name` with the type URL the runtime and the other SDKs use, and the
/// message sent and kept as a value of that typename (`protobuf_type!`).
macro_rules! named {
    ($($ty:ident),+) => {$(
        impl prost::Name for $ty {
            const NAME: &'static str = stringify!($ty);
            const PACKAGE: &'static str = "example";
            fn type_url() -> String {
                format!("type.googleapis.com/example.{}", stringify!($ty))
            }
        }
        statefun_sync::protobuf_type!($ty);
    )+};
}
named!(Greet, Visited, VisitorNumber, Reminder, Count, Greeting);

message_union! {
    /// What the greeter accepts.
    enum ToGreeter {
        Greet(Greet),
        VisitorNumber(VisitorNumber),
        Reminder(Reminder),
    }
}

const GREETINGS: &str = "example/greetings";
/// The greeter's state: how often the user visited.
const VISITS: ValueSpec<Count> = ValueSpec::named("visits");
/// The stats' state: how many visits in all.
const TOTAL: ValueSpec<Count> = ValueSpec::named("total");
const REMIND_AFTER: Duration = Duration::from_secs(30 * 60);

fn greeter(ctx: &mut Context, message: ToGreeter) -> anyhow::Result<()> {
    let user = ctx.address().id().to_owned();
    let visits = ctx.get(&VISITS)?.unwrap_or_default().count;
    match message {
        ToGreeter::Greet(greet) => {
            let visits = visits + 1;
            ctx.set(&VISITS, &Count { count: visits })?;
            ctx.send("example/stats", "global", &Visited { name: greet.name })?;
            if visits == 1 {
                ctx.send_after(REMIND_AFTER, "example/greeter", &user, &Reminder {})?;
            }
        }
        ToGreeter::VisitorNumber(number) => {
            let text = format!(
                "Hello {user}! You are visitor #{}; this is your visit {visits}.",
                number.number
            );
            emit(ctx, &user, text)?;
        }
        ToGreeter::Reminder(_) if visits == 1 => {
            emit(ctx, &user, format!("We miss you, {user}."))?;
        }
        ToGreeter::Reminder(_) => {}
    }
    Ok(())
}

fn emit(ctx: &mut Context, user: &str, text: String) -> anyhow::Result<()> {
    let record = kafka_record_v2("greetings", user, &Greeting { text })?;
    ctx.send_egress(GREETINGS, &record)?;
    Ok(())
}

fn stats(ctx: &mut Context, _visited: Visited) -> anyhow::Result<()> {
    let total = ctx.get(&TOTAL)?.unwrap_or_default().count + 1;
    ctx.set(&TOTAL, &Count { count: total })?;
    ctx.reply(&VisitorNumber { number: total })?;
    Ok(())
}

fn functions() -> Result<StatefulFunctions, statefun_sync::Error> {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_typed("example/greeter", greeter)?
        .state(&VISITS);
    functions.bind_typed("example/stats", stats)?.state(&TOTAL);
    Ok(functions)
}

/// Prints, and takes, what reached the greetings egress.
fn print_greetings(runtime: &mut LocalRuntime) -> Result<(), Box<dyn std::error::Error>> {
    let now = runtime.now().as_secs();
    for any in runtime.take_egress(GREETINGS) {
        let record = read_kafka_record_v2::<Greeting>(&any)?;
        println!(
            "[t={:>2}min] kafka topic {:?}, key {:?}: {}",
            now / 60,
            record.topic,
            record.key,
            record.value.text
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut runtime = LocalRuntime::v2(functions()?);

    // Alice and Bob arrive from the ingress.
    for name in ["alice", "bob"] {
        runtime.send("example/greeter", name, &Greet { name: name.into() })?;
    }
    let batches = runtime.run()?;
    println!("ran {batches} batches:");
    for batch in runtime.history() {
        println!("  {} <- {} message(s)", batch.target, batch.size);
    }
    print_greetings(&mut runtime)?;

    // Ten minutes later, Alice comes back.
    runtime.advance(Duration::from_secs(10 * 60))?;
    runtime.send(
        "example/greeter",
        "alice",
        &Greet {
            name: "alice".into(),
        },
    )?;
    runtime.run()?;
    print_greetings(&mut runtime)?;

    // Half an hour after the first visits, the reminders fire: only Bob is missed.
    runtime.advance(REMIND_AFTER - runtime.now())?;
    print_greetings(&mut runtime)?;

    let total = runtime.get("example/stats", "global", &TOTAL)?;
    let alice = runtime.get("example/greeter", "alice", &VISITS)?;
    println!(
        "state: example/stats/global total = {}, example/greeter/alice visits = {}",
        total.unwrap_or_default().count,
        alice.unwrap_or_default().count
    );
    Ok(())
}
