//! A delayed message: `example/delay` replies "hello from the past" to its caller
//! 30 minutes after it was called (`send_after`). The function goes on serving
//! meanwhile; the runtime keeps the message and delivers it on time.
//!
//! ```text
//! cargo run --example delayed                     # serves http://127.0.0.1:8000/statefun
//! cargo run --example client -- --function example/delay
//! cargo run --example delayed -- --module-yaml    # examples/deploy/delayed.yaml
//! ```

mod common;

use statefun_sync::StatefulFunctions;

use common::app::delayed;

fn main() -> anyhow::Result<()> {
    let mut functions = StatefulFunctions::new();
    functions.bind("example/delay", delayed)?;
    common::serve_from_args(functions)
}
