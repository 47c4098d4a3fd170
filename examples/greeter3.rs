//! The greeter on the Stateful Functions **3.x** protocol (runtimes 3.0 to 3.3), served on
//! the crate's server at http://127.0.0.1:8000/statefun.
//!
//! ```text
//! cargo run --example greeter3                    # then, in another terminal:
//! cargo run --example client -- --v3              # greets Joe, prints the decoded reply
//! cargo run --example greeter3 -- --module-yaml   # examples/deploy/greeter3.yaml (3.x format)
//! ```
//!
//! It takes the main example's options for the transports the runtime offers, and
//! `--module-yaml` writes the matching endpoint and transport:
//!
//! ```text
//! cargo run --example greeter3 -- --tls-cert tls.crt --tls-key tls.key --client-ca ca.crt
//! cargo run --example greeter3 -- --unix /run/statefun/functions.sock
//! cargo run --example greeter3 -- --module-yaml --tls-cert tls.crt --tls-key tls.key --client-ca ca.crt
//! ```
//!
//! | function type | takes | does |
//! |---|---|---|
//! | `example/greeter` | `GreetRequest` | counts the user's greetings in the `int` state `seen` (dropped after a day without a call), sends the greeting to `example/printer/<name>` and, as a Kafka record, to the egress `example/greets` |
//! | `example/printer` | a `string` | logs it |
//!
//! The first request for `example/greeter` carries no state: the handler answers with
//! the state handshake (`seen`, `io.statefun.types/int`, expiring after a day without a
//! call), and the runtime sends the batch again with the state attached.

mod common;

use std::time::Duration;

use anyhow::Context as _;

use statefun_sync::{
    kafka_record_v3, Context, KafkaEgress, KafkaIngress, Message, ModuleYamlV3,
    RequestReplyHandler, StatefulFunctions, ValueSpec,
};

use common::GreetRequest;

/// How often the greeter has greeted a user: a 3.x `int`, gone after a day without a call.
const SEEN: ValueSpec<i32> =
    ValueSpec::named("seen").expire_after_call(Duration::from_secs(24 * 60 * 60));

/// `example/greeter`: greets a user, counting the greetings.
fn greet(ctx: &mut Context, message: Message) -> anyhow::Result<()> {
    let request: GreetRequest = message.get()?.context("a greeting without a value")?;
    let seen = ctx.get(&SEEN)?.unwrap_or(0) + 1;
    ctx.set(&SEEN, &seen)?;
    let greeting = format!("Hello {}, for the {} time!", request.name, ordinal(seen));
    ctx.send("example/printer", &request.name, &greeting)?;
    let record = kafka_record_v3("greetings", &request.name, greeting.as_str())?;
    ctx.send_egress("example/greets", &record)?;
    Ok(())
}

/// `example/printer`: logs what it is sent.
fn print(ctx: &mut Context, message: Message) -> anyhow::Result<()> {
    let text: String = message.get()?.context("a text without a value")?;
    log::info!("{}: {text}", ctx.address());
    Ok(())
}

fn ordinal(n: i32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// The greeter's functions, bound with their states.
fn functions() -> Result<StatefulFunctions, statefun_sync::Error> {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("example/greeter", greet)?
        .state(&SEEN);
    functions.bind_message("example/printer", print)?;
    Ok(functions)
}

/// The deployment: the functions' endpoint, the Kafka topic `names` of `GreetRequest`s
/// routed to `example/greeter` (by the record key as id), and the Kafka egress.
/// With `--tls-cert` the runtime's client trusts the CA (a file the user puts on the
/// runtime's machines), and with `--client-ca` it presents a client certificate: the paths
/// written are placeholders to fill in.
fn module_yaml<'a>(
    functions: &'a StatefulFunctions,
    options: &'a common::Options,
) -> Result<ModuleYamlV3<'a>, statefun_sync::Error> {
    let mut yaml = functions.module_yaml_v3(&options.endpoint);
    if options.tls_cert.is_some() {
        yaml = yaml.trust_cacerts("/path/to/ca.crt");
    }
    if options.client_ca.is_some() {
        yaml = yaml.client_certificate("/path/to/client.crt", "/path/to/client.key");
    }
    yaml.kafka_ingress(KafkaIngress::new("example/names", "kafka:9092")?.topic(
        "names",
        "type.googleapis.com/example.GreetRequest",
        &["example/greeter"],
    )?)?
    .kafka_egress(KafkaEgress::new("example/greets", "kafka:9092")?)
}

fn main() -> anyhow::Result<()> {
    let options = common::options();
    let functions = functions()?;
    if options.module_yaml {
        print!("{}", module_yaml(&functions, &options)?);
        return Ok(());
    }
    common::serve(RequestReplyHandler::v3(functions)?, &options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals() {
        let got: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 111].map(ordinal).into();
        assert_eq!(
            got,
            ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "111th"]
        );
    }
}
