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
//! ```
//!
//! It builds the request with `statefun_sync::testing::Request` (carrying the states
//! the app declares for the function), and sends it with `testing::call_remote`, which
//! POSTs it as the runtime would and decodes the reply into a `testing::Reply`.

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use statefun_sync::testing::{call_remote, RemoteError, Reply, Request, StateChange};
use statefun_sync::{pack, Address};

use common::{describe, Admin, Count, Forget, User};

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
  --no-caller          send the message as from an ingress";

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
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || common::value(&mut args, &arg);
        match arg.as_str() {
            "--addr" => o.addr = value(),
            "--path" => o.path = value(),
            "--function" => o.function = value(),
            "--id" => o.id = value(),
            "--name" => o.name = value(),
            "--admin" => o.admin = true,
            "--forget" => o.forget = true,
            "--count" => o.count = Some(value().parse().context("--count takes a number")?),
            "--caller" => o.caller = Some(value()),
            "--no-caller" => o.caller = None,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown option `{other}`\n{USAGE}"),
        }
    }
    Ok(o)
}

fn main() -> anyhow::Result<()> {
    let o = options()?;

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
            ("count", Some(value)) => request.with_packed_state("count", &Count { value }),
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
    let reply = match call_remote(&url, &request, Duration::from_secs(30)) {
        Ok(reply) => reply,
        Err(RemoteError::Status { status, body }) => {
            eprintln!(
                "the server refused the batch: HTTP {status}: {}",
                body.trim_end()
            );
            std::process::exit(1);
        }
        Err(err @ RemoteError::Io { .. }) => {
            return Err(err).with_context(|| {
                format!("no reply from {}: is the example server running?", o.addr)
            })
        }
        Err(err) => return Err(err.into()),
    };
    println!("reply in {:.1?}", started.elapsed());
    print_reply(&reply);
    Ok(())
}

fn print_reply(reply: &Reply) {
    println!("state mutations:{}", none(reply.state_changes().is_empty()));
    for (name, change) in reply.state_changes() {
        match change {
            StateChange::Modified(value) => println!("  {name} = {}", describe(value)),
            StateChange::Deleted => println!("  {name} deleted"),
        }
    }
    println!("messages:{}", none(reply.messages().is_empty()));
    for sent in reply.messages() {
        println!("  to {}: {}", sent.target, describe(&sent.argument));
    }
    println!(
        "delayed messages:{}",
        none(reply.delayed_messages().is_empty())
    );
    for sent in reply.delayed_messages() {
        println!(
            "  to {} after {:?}: {}",
            sent.target,
            sent.delay,
            describe(&sent.argument)
        );
    }
    println!("egress messages:{}", none(reply.egresses().is_empty()));
    for emitted in reply.egresses() {
        println!("  to {}: {}", emitted.egress, describe(&emitted.argument));
    }
}

fn none(empty: bool) -> &'static str {
    if empty {
        " none"
    } else {
        ""
    }
}
