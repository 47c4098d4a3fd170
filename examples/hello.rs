//! The Python SDK documentation's first function: `example/hello` takes the message as
//! the `Any` it arrives in and unpacks a `User` from it.
//!
//! ```text
//! cargo run --example hello                       # serves http://127.0.0.1:8000/statefun
//! cargo run --example hello -- --addr 0.0.0.0:8000
//! cargo run --example hello -- --module-yaml      # examples/deploy/hello.yaml
//! ```

mod common;

use prost_types::Any;
use statefun_sync::{Context, StatefulFunctions};

use common::User;

/// A simple hello world function.
fn hello_function(_ctx: &mut Context, message: Any) -> anyhow::Result<()> {
    // Python: `user = User(); message.Unpack(user)`. `to_msg` checks the type URL.
    let user: User = message.to_msg()?;
    log::info!("Hello {}", user.name);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut functions = StatefulFunctions::new();
    functions.bind("example/hello", hello_function)?;
    common::serve_from_args(functions)
}
