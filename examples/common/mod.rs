//! What the examples share: their message types (package `example`), the app that
//! `server`, `flask` and `existing_service` serve, and command-line handling.
//!
//! An app would generate its message types with prost-build from its `.proto` files;
//! the examples write them by hand to stay self-contained.
#![allow(dead_code)] // each example uses its own subset

pub mod app;

use std::fmt::Write as _;

use prost::Name;
use prost_types::Any;
use statefun_sync::http::Server;
use statefun_sync::proto::egress;
use statefun_sync::proto::io::KafkaProducerRecord;
use statefun_sync::types::{Type, TypeName};
use statefun_sync::{FromAny, RequestReplyHandler, StatefulFunctions};

/// Implements `prost::Name` for a message of package `example`, with the type URL the
/// runtime and every SDK use, so `Any::to_msg` and `Any::from_msg` work too; and makes it
/// a value the functions send and keep as it is (`protobuf_type!`).
macro_rules! example_message {
    ($type:ident) => {
        impl Name for $type {
            const NAME: &'static str = stringify!($type);
            const PACKAGE: &'static str = "example";

            fn full_name() -> String {
                format!("example.{}", stringify!($type))
            }

            fn type_url() -> String {
                format!("type.googleapis.com/example.{}", stringify!($type))
            }
        }
        statefun_sync::protobuf_type!($type);
    };
}

/// A user, as in the Python SDK's documentation.
#[derive(Clone, PartialEq, prost::Message)]
pub struct User {
    #[prost(string, tag = "1")]
    pub user_id: String,
    #[prost(string, tag = "2")]
    pub name: String,
}
example_message!(User);

/// An administrator: the other half of `example/goodbye`'s union.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Admin {
    #[prost(string, tag = "1")]
    pub name: String,
}
example_message!(Admin);

/// A counter, kept in the state `count`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Count {
    #[prost(int64, tag = "1")]
    pub value: i64,
}
example_message!(Count);

/// A text sent back: a greeting, or the delayed "hello from the past".
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    #[prost(string, tag = "1")]
    pub message: String,
}
example_message!(Response);

/// Tells `example/count` to forget a user (it deletes the state `count`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Forget {}
example_message!(Forget);

/// What `example/greeter` of the 3.x greeter (`greeter3`) takes: a user to greet.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GreetRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}
// A 3.x typed value named `type.googleapis.com/example.GreetRequest`.
example_message!(GreetRequest);

/// The `module.yaml` endpoint the files in `examples/deploy/` use: the functions run in
/// a container (or host) called `functions`, port 8000.
pub const DEPLOY_ENDPOINT: &str = "http://functions:8000/statefun";

/// Command-line options of the example servers.
pub struct Options {
    /// `--addr HOST:PORT` (or `STATEFUN_ADDR`), default `127.0.0.1:8000`.
    pub addr: String,
    /// `--module-yaml`: print the module.yaml and exit.
    pub module_yaml: bool,
    /// `--endpoint URL` for the printed module.yaml; without it, [`DEPLOY_ENDPOINT`] in
    /// the scheme the transport options ask for (`https`, `http+unix`).
    pub endpoint: String,
    /// `--unix PATH`: listen on a Unix domain socket instead of `addr`.
    pub unix: Option<String>,
    /// `--tls-cert PEM` and `--tls-key PEM`: serve TLS (feature `tls`).
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// `--client-ca PEM`: mutual TLS, clients need a certificate from this CA.
    pub client_ca: Option<String>,
    /// `--grow-batches MS` (with `--target-batch N`, `--min-pace N`): replies paced to grow
    /// the runtime's batches, each held at most MS milliseconds.
    pub grow_batches: Option<statefun_sync::http::BatchGrowth>,
}

const USAGE: &str = "options:
  --addr HOST:PORT   where to listen (default 127.0.0.1:8000, or $STATEFUN_ADDR);
                     0.0.0.0:8000 to accept connections from other hosts
  --module-yaml      print the module.yaml that deploys these functions, and exit
  --endpoint URL     the endpoint written in it (default http://functions:8000/statefun,
                     https://… with --tls-cert, http+unix://PATH/statefun with --unix)
  --unix PATH        listen on a Unix domain socket instead (name it *.sock; the runtime
                     calls http+unix://PATH/statefun)
  --tls-cert PEM     serve TLS with this certificate chain ...
  --tls-key PEM      ... and this private key
  --client-ca PEM    mutual TLS: accept only clients with a certificate from this CA
  --grow-batches MS  pace replies so that the runtime sends fewer, larger batches when it
                     sends many small ones, holding a reply at most MS milliseconds
  --target-batch N   ... aiming at N invocations per batch (default 16)
  --min-pace N       ... and holding nothing under N replies per second (default 200)";

/// Reads the options; prints the usage and exits on `--help` or a wrong option.
pub fn options() -> Options {
    let mut options = Options {
        addr: std::env::var("STATEFUN_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".into()),
        module_yaml: false,
        endpoint: String::new(),
        unix: None,
        tls_cert: None,
        tls_key: None,
        client_ca: None,
        grow_batches: None,
    };
    let (mut target_batch, mut min_pace) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => options.addr = value(&mut args, "--addr"),
            "--module-yaml" => options.module_yaml = true,
            "--endpoint" => options.endpoint = value(&mut args, "--endpoint"),
            "--unix" => options.unix = Some(value(&mut args, "--unix")),
            "--tls-cert" => options.tls_cert = Some(value(&mut args, "--tls-cert")),
            "--tls-key" => options.tls_key = Some(value(&mut args, "--tls-key")),
            "--client-ca" => options.client_ca = Some(value(&mut args, "--client-ca")),
            "--grow-batches" => {
                let ms = number(&mut args, "--grow-batches");
                let max_hold = std::time::Duration::from_millis(ms.into());
                options.grow_batches = Some(max_hold.into());
            }
            "--target-batch" => target_batch = Some(number(&mut args, "--target-batch")),
            "--min-pace" => min_pace = Some(number(&mut args, "--min-pace")),
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => {
                eprintln!("unknown option `{other}`\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    match (&mut options.grow_batches, target_batch.or(min_pace)) {
        (Some(growth), _) => {
            if let Some(target) = target_batch {
                *growth = growth.with_target_batch(target);
            }
            if let Some(pace) = min_pace {
                *growth = growth.with_min_pace(pace);
            }
        }
        (None, Some(_)) => {
            eprintln!(
                "`--target-batch` and `--min-pace` tune `--grow-batches`, which is off\n{USAGE}"
            );
            std::process::exit(2);
        }
        (None, None) => {}
    }
    if options.endpoint.is_empty() {
        let s = if options.tls_cert.is_some() { "s" } else { "" };
        options.endpoint = match &options.unix {
            Some(path) => format!("http{s}+unix://{path}/statefun"),
            None => DEPLOY_ENDPOINT.replacen("http", &format!("http{s}"), 1),
        };
    }
    options
}

/// The value after a flag; exits with a message when there is none.
pub fn value(args: &mut impl Iterator<Item = String>, flag: &str) -> String {
    args.next().unwrap_or_else(|| {
        eprintln!("`{flag}` needs a value");
        std::process::exit(2);
    })
}

/// The number after a flag; exits with a message when there is none.
fn number(args: &mut impl Iterator<Item = String>, flag: &str) -> u32 {
    let text = value(args, flag);
    text.parse().unwrap_or_else(|_| {
        eprintln!("`{flag}` takes a whole number, not `{text}`");
        std::process::exit(2);
    })
}

/// Logs at `info` unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
}

/// What every example server's `main` does: with `--module-yaml`, prints the
/// deployment; otherwise serves `functions` on the crate's server until SIGTERM or
/// SIGINT.
pub fn serve_from_args(functions: StatefulFunctions) -> anyhow::Result<()> {
    let options = options();
    if options.module_yaml {
        print!("{}", functions.module_yaml_v2(&options.endpoint));
        return Ok(());
    }
    serve(RequestReplyHandler::v2(functions), &options)
}

/// Serves `handler` on the crate's server, with the probes `GET /health` and `GET /ready`
/// (and, with the feature `metrics`, on by default, Prometheus metrics at `GET /metrics`),
/// until SIGTERM or SIGINT (Ctrl-C): then it stops gracefully, as an orchestrator
/// expects, and returns.
pub fn serve(handler: RequestReplyHandler, options: &Options) -> anyhow::Result<()> {
    init_logging();
    let names: Vec<String> = handler
        .functions()
        .function_types()
        .map(ToString::to_string)
        .collect();
    let version = handler.protocol_version();
    let builder = Server::builder();
    // Metrics for Prometheus: per function type from the handler, per request from the
    // server, both served at GET /metrics (feature `metrics`, on by default).
    #[cfg(feature = "metrics")]
    let (handler, builder) = {
        let metrics = statefun_sync::metrics::Metrics::new();
        (
            handler.with_metrics(&metrics),
            builder.metrics("/metrics", &metrics),
        )
    };
    let builder = match &options.unix {
        Some(path) => builder.bind_unix(path),
        None => builder.bind(options.addr.as_str()),
    };
    let builder = with_tls(builder, options)?;
    let builder = match options.grow_batches {
        Some(growth) => builder.grow_batches(growth),
        None => builder,
    };
    let server = builder
        // Probes for an orchestrator (Kubernetes' livenessProbe and readinessProbe).
        .health("/health")
        .ready("/ready")
        // The first SIGTERM or SIGINT: /ready answers 503, no new connections, the
        // requests in flight are answered; then join() returns. A second: at once.
        .stop_on_signals()
        .start(handler)?;
    let metrics = if cfg!(feature = "metrics") {
        ", /metrics"
    } else {
        ""
    };
    log::info!(
        "serving {} (protocol {version}) at {}, and GET /health and /ready{metrics} \
         (Ctrl-C or SIGTERM to stop)",
        names.join(", "),
        server.url(),
    );
    server.join();
    log::info!("stopped");
    Ok(())
}

/// TLS as `--tls-cert`, `--tls-key` and `--client-ca` say, if they say anything.
#[cfg(feature = "tls")]
fn with_tls(
    builder: statefun_sync::http::ServerBuilder,
    options: &Options,
) -> anyhow::Result<statefun_sync::http::ServerBuilder> {
    use statefun_sync::http::TlsConfig;
    let tls = match (&options.tls_cert, &options.tls_key) {
        (Some(cert), Some(key)) => TlsConfig::new(cert, key),
        (None, None) if options.client_ca.is_none() => return Ok(builder),
        _ => anyhow::bail!(
            "TLS needs both --tls-cert and --tls-key (and --client-ca for mutual TLS)"
        ),
    };
    Ok(builder.tls(match &options.client_ca {
        Some(ca) => tls.client_ca(ca),
        None => tls,
    }))
}

/// Without the feature `tls`, the TLS options are refused rather than ignored.
#[cfg(not(feature = "tls"))]
fn with_tls(
    builder: statefun_sync::http::ServerBuilder,
    options: &Options,
) -> anyhow::Result<statefun_sync::http::ServerBuilder> {
    if options.tls_cert.is_some() || options.tls_key.is_some() || options.client_ca.is_some() {
        anyhow::bail!("TLS options need the feature `tls` (on by default): this build has none");
    }
    Ok(builder)
}

/// A readable form of a message: decoded when its type is one of the examples', a 3.x
/// built-in type or a Kafka record, else its type URL (on 3.x, its typename) and size.
pub fn describe(any: &Any) -> String {
    if let Some(text) = describe_typed(any) {
        return text;
    }
    fn decoded<M: FromAny + std::fmt::Debug>(any: &Any) -> Option<String> {
        match M::from_any(any)? {
            Ok(message) => Some(format!("{message:?}")),
            Err(err) => Some(format!("{} that does not decode: {err}", any.type_url)),
        }
    }
    if let Some(record) = KafkaProducerRecord::from_any(any).and_then(Result::ok) {
        let mut text = format!(
            "KafkaProducerRecord {{ topic: {:?}, key: {:?}, value: ",
            record.topic, record.key
        );
        match <Response as prost::Message>::decode(record.value_bytes.as_slice()) {
            Ok(value) => {
                let _ = write!(text, "{value:?} }}");
            }
            Err(_) => {
                let _ = write!(text, "{} bytes }}", record.value_bytes.len());
            }
        }
        return text;
    }
    decoded::<User>(any)
        .or_else(|| decoded::<GreetRequest>(any))
        .or_else(|| decoded::<Admin>(any))
        .or_else(|| decoded::<Count>(any))
        .or_else(|| decoded::<Response>(any))
        .or_else(|| decoded::<Forget>(any))
        .unwrap_or_else(|| format!("{} ({} bytes)", any.type_url, any.value.len()))
}

/// A 3.x value of a built-in type, or a 3.x Kafka record, decoded.
fn describe_typed(any: &Any) -> Option<String> {
    fn typed<T: Type + std::fmt::Debug>(any: &Any) -> Option<String> {
        T::type_name()
            .is(&any.type_url)
            .then(|| match T::decode_value(&any.value) {
                Ok(value) => format!("{value:?} ({})", any.type_url),
                Err(err) => format!("{} that does not decode: {err}", any.type_url),
            })
    }
    if TypeName::of_message::<egress::KafkaProducerRecord>().is(&any.type_url) {
        let record =
            <egress::KafkaProducerRecord as prost::Message>::decode(&any.value[..]).ok()?;
        return Some(format!(
            "KafkaProducerRecord {{ topic: {:?}, key: {:?}, value: {:?} }}",
            record.topic,
            record.key,
            String::from_utf8_lossy(&record.value_bytes)
        ));
    }
    typed::<String>(any)
        .or_else(|| typed::<i32>(any))
        .or_else(|| typed::<i64>(any))
        .or_else(|| typed::<bool>(any))
        .or_else(|| typed::<f64>(any))
}
