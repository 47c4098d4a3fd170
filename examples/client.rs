//! Sends one batch to a running example, as the runtime would, and prints the reply.
//!
//! ```text
//! cargo run --example server        # in one terminal
//! cargo run --example client        # in another: example/count/alice greets Joe
//! cargo run --example client -- --function example/count --count 2
//! cargo run --example client -- --function example/count --forget
//! cargo run --example client -- --function example/delay
//! cargo run --example client -- --function example/caller
//! cargo run --example client -- --function example/goodbye --admin
//! cargo run --example greeter3      # the 3.x greeter, in one terminal
//! cargo run --example client -- --v3                     # greets Joe through example/greeter/alice
//! cargo run --example client -- --v3 --count 41          # with `seen` = 41
//! ```
//!
//! It builds the request with `statefun_sync::testing::v2::Request` (carrying the states
//! the app declares for the function), and sends it with `testing::v2::call_remote`, which
//! POSTs it as the runtime would and decodes the reply into a `testing::v2::Reply`. With
//! `--v3` it speaks 3.x as the runtime does (`testing::v3`): the first request carries no
//! state, the function answers with the states it declares (the handshake), and the
//! request goes again with them.

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use statefun_sync::testing::v3::{self, StateDeclaration};
use statefun_sync::testing::{
    v2::{call_remote, Reply, Request},
    Emitted, RemoteError, Sent, StateChange,
};
use statefun_sync::{pack, Address};

use common::{describe, Admin, Count, Forget, GreetRequest, User};

const USAGE: &str = "options:
  --addr HOST:PORT     the server (default 127.0.0.1:8000)
  --path PATH          its path (default /statefun)
  --function TYPE      the function type to call (default example/count)
  --id ID              the instance id (default alice)
  --name NAME          the user's name in the message (default Joe)
  --admin              send an Admin instead of a User
  --forget             send a Forget (example/count deletes its state)
  --count N            the value of the state `count` in the request (default: none)
  --caller TYPE/ID     the caller (default example/client/1)
  --no-caller          send the message as from an ingress
  --v3                 speak 3.x, to `cargo run --example greeter3` (default function
                       example/greeter; --count sets its int state `seen`)";

struct Options {
    addr: String,
    path: String,
    function: String,
    id: String,
    name: String,
    admin: bool,
    forget: bool,
    count: Option<i64>,
    caller: Option<String>,
    v3: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        addr: "127.0.0.1:8000".into(),
        path: "/statefun".into(),
        function: "example/count".into(),
        id: "alice".into(),
        name: "Joe".into(),
        admin: false,
        forget: false,
        count: None,
        caller: Some("example/client/1".into()),
        v3: false,
    };
    let mut function_given = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || common::value(&mut args, &arg);
        match arg.as_str() {
            "--addr" => o.addr = value(),
            "--path" => o.path = value(),
            "--function" => {
                o.function = value();
                function_given = true;
            }
            "--id" => o.id = value(),
            "--name" => o.name = value(),
            "--admin" => o.admin = true,
            "--forget" => o.forget = true,
            "--count" => o.count = Some(value().parse().context("--count takes a number")?),
            "--caller" => o.caller = Some(value()),
            "--no-caller" => o.caller = None,
            "--v3" => o.v3 = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown option `{other}`\n{USAGE}"),
        }
    }
    if o.v3 && !function_given {
        o.function = "example/greeter".into();
    }
    Ok(o)
}

fn main() -> anyhow::Result<()> {
    let o = options()?;
    if o.v3 {
        return main_v3(&o);
    }

    let message = if o.forget {
        pack(&Forget {})
    } else if o.admin {
        pack(&Admin {
            name: o.name.clone(),
        })
    } else {
        pack(&User {
            user_id: o.id.clone(),
            name: o.name.clone(),
        })
    };
    let mut request = Request::to(&o.function, &o.id);
    // The runtime sends every state module.yaml declares for the function.
    let app = common::app::functions();
    for state in app.declared_states(&o.function).unwrap_or_default() {
        request = match (state.name(), o.count) {
            ("count", Some(value)) => request.with_state_value("count", pack(&Count { value })),
            (name, _) => request.with_state(name, None),
        };
    }
    request = match &o.caller {
        Some(caller) => {
            let caller: Address = caller.parse().context("--caller takes namespace/type/id")?;
            request.invoke_from(caller, message.clone())
        }
        None => request.invoke(message.clone()),
    };

    let url = format!("http://{}{}", o.addr, o.path);
    println!("POST {url}");
    println!("  to {}/{}", o.function, o.id);
    if let Some(caller) = &o.caller {
        println!("  from {caller}");
    }
    println!("  message {}", describe(&message));
    if let Some(value) = o.count {
        println!("  state count = {}", describe(&pack(&Count { value })));
    }

    let started = Instant::now();
    let reply = call_remote(&url, &request, Duration::from_secs(30))
        .map_err(|err| failed_call(err, &o.addr, "cargo run --example server"))?;
    println!("reply in {:.1?}", started.elapsed());
    print_reply(&reply);
    Ok(())
}

/// The 3.x exchange: the request, the handshake if the function asks for states, and the
/// request again with them, as the runtime does it.
fn main_v3(o: &Options) -> anyhow::Result<()> {
    let url = format!("http://{}{}", o.addr, o.path);
    let message = GreetRequest {
        name: o.name.clone(),
    };
    let caller: Option<Address> = match &o.caller {
        Some(caller) => Some(caller.parse().context("--caller takes namespace/type/id")?),
        None => None,
    };
    let seen = o
        .count
        .map(i32::try_from)
        .transpose()
        .context("--count is an i32 for the 3.x greeter")?;
    println!("POST {url} (Stateful Functions 3.x)");
    println!("  to {}/{}", o.function, o.id);
    if let Some(caller) = &caller {
        println!("  from {caller}");
    }
    println!("  message {message:?}");

    let mut states: Vec<StateDeclaration> = Vec::new();
    loop {
        let mut request = v3::Request::to(&o.function, &o.id);
        for state in &states {
            request = match (state.name.as_str(), seen) {
                ("seen", Some(value)) => request.with_state_value("seen", &value),
                (name, _) => request.with_state_raw(name, None),
            };
        }
        request = match &caller {
            Some(caller) => request.invoke_from(caller.clone(), &message),
            None => request.invoke(&message),
        };
        let started = Instant::now();
        let reply = v3::call_remote(&url, &request, Duration::from_secs(30))
            .map_err(|err| failed_call(err, &o.addr, "cargo run --example greeter3"))?;
        println!("reply in {:.1?}", started.elapsed());
        let Some(missing) = reply.missing_states() else {
            print_reply_v3(&reply);
            return Ok(());
        };
        if missing.is_empty() || !states.is_empty() {
            bail!("the function asked for states it was sent: {missing:?}");
        }
        println!("handshake: the function declares");
        for state in missing {
            println!(
                "  {} of type {}, expiring {:?}",
                state.name, state.typename, state.expiration
            );
        }
        println!("sending the batch again with them");
        states = missing.to_vec();
    }
}

fn print_reply_v3(reply: &v3::Reply) {
    print_state_changes(reply.state_changes());
    print_messages(reply.messages());
    println!(
        "delayed messages and cancellations:{}",
        none(reply.delayed().is_empty())
    );
    for delayed in reply.delayed() {
        match delayed {
            v3::Delayed::Send {
                message,
                cancellation_token,
            } => println!(
                "  to {} after {:?} (token {cancellation_token:?}): {}",
                message.target,
                message.delay,
                describe(&message.argument)
            ),
            v3::Delayed::Cancel { cancellation_token } => {
                println!("  cancel {cancellation_token:?}")
            }
        }
    }
    print_egresses(reply.egresses());
}

fn print_reply(reply: &Reply) {
    print_state_changes(reply.state_changes());
    print_messages(reply.messages());
    println!(
        "delayed messages:{}",
        none(reply.delayed_messages().next().is_none())
    );
    for sent in reply.delayed_messages() {
        println!(
            "  to {} after {:?}: {}",
            sent.target,
            sent.delay,
            describe(&sent.argument)
        );
    }
    print_egresses(reply.egresses());
}

fn print_state_changes(changes: &[(String, StateChange)]) {
    println!("state mutations:{}", none(changes.is_empty()));
    for (name, change) in changes {
        match change {
            StateChange::Modified(value) => println!("  {name} = {}", describe(value)),
            StateChange::Deleted => println!("  {name} deleted"),
        }
    }
}

fn print_messages(messages: &[Sent]) {
    println!("messages:{}", none(messages.is_empty()));
    for sent in messages {
        println!("  to {}: {}", sent.target, describe(&sent.argument));
    }
}

fn print_egresses(egresses: &[Emitted]) {
    println!("egress messages:{}", none(egresses.is_empty()));
    for emitted in egresses {
        println!("  to {}: {}", emitted.egress, describe(&emitted.argument));
    }
}

/// What a failed call becomes: a refusal by the server is printed, and the client exits
/// with 1; no reply at all is an error that says which server to start.
fn failed_call(err: RemoteError, addr: &str, server: &str) -> anyhow::Error {
    match err {
        RemoteError::Status { status, body } => {
            eprintln!(
                "the server refused the batch: HTTP {status}: {}",
                body.trim_end()
            );
            std::process::exit(1);
        }
        err @ RemoteError::Io { .. } => {
            anyhow::Error::new(err).context(format!("no reply from {addr}: is `{server}` running?"))
        }
        err => err.into(),
    }
}

fn none(empty: bool) -> &'static str {
    if empty {
        " none"
    } else {
        ""
    }
}
