//! A function that sends a message to another: `example/caller` sends a `User` to
//! `example/hello/<user id>`, which logs it.
//!
//! ```text
//! cargo run --example caller                      # serves http://127.0.0.1:8000/statefun
//! cargo run --example client -- --function example/caller
//! cargo run --example caller -- --module-yaml     # examples/deploy/caller.yaml
//! ```

mod common;

use statefun_sync::StatefulFunctions;

use common::app::{caller, hello};

fn main() -> anyhow::Result<()> {
    let mut functions = StatefulFunctions::new();
    functions.bind("example/caller", caller)?;
    functions.bind_typed("example/hello", hello)?;
    common::serve_from_args(functions)
}
