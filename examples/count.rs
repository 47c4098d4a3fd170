//! State: `example/count` counts how often it has greeted each user in the state
//! `count`, which module.yaml must declare, and greets on the Kafka egress
//! `example/greets`; a `Forget` message deletes the state.
//!
//! ```text
//! cargo run --example count                       # serves http://127.0.0.1:8000/statefun
//! cargo run --example client -- --function example/count --count 2
//! cargo run --example client -- --function example/count --forget
//! cargo run --example count -- --module-yaml      # examples/deploy/count.yaml
//! ```

mod common;

use statefun_sync::StatefulFunctions;

use common::app::count_greeter;

fn main() -> anyhow::Result<()> {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_typed("example/count", count_greeter)?
        .state("count");
    common::serve_from_args(functions)
}
