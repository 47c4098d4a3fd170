//! Typed functions: `example/hello` takes a `User` (the Python SDK's
//! `def hello_function(context, message: User)`), and `example/goodbye` takes a `User` or
//! an `Admin` (its `typing.Union[User, Admin]`). A message of another type fails its
//! batch with a 400 that names the expected and the actual type.
//!
//! ```text
//! cargo run --example typed                       # serves http://127.0.0.1:8000/statefun
//! cargo run --example typed -- --module-yaml      # examples/deploy/typed.yaml
//! ```

mod common;

use statefun_sync::StatefulFunctions;

use common::app::{goodbye, hello};

fn main() -> anyhow::Result<()> {
    let mut functions = StatefulFunctions::new();
    functions.bind_typed("example/hello", hello)?;
    functions.bind_typed("example/goodbye", goodbye)?;
    common::serve_from_args(functions)
}
