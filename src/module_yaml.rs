//! The `module.yaml` that deploys a registry's functions, written from what the bindings
//! declare: [`ModuleYamlV2`] in the format of Stateful Functions 2.2, [`ModuleYamlV3`] in
//! the format of 3.1 to 3.3, with the Kafka ingresses and egresses an application declares.

use std::fmt::{self, Write as _};
use std::time::Duration;

use crate::address::FunctionType;
use crate::error::Error;
use crate::registry::StatefulFunctions;
use crate::state_spec::Expiration;
use crate::text::Shown;

/// The `module.yaml` (format version `2.0`, Stateful Functions 2.2) for the functions of a
/// registry, served at one endpoint; from [`StatefulFunctions::module_yaml_v2`]. For 3.x, see
/// [`ModuleYamlV3`]. It is written when displayed:
/// `print!("{yaml}")`, or `yaml.to_string()`.
#[derive(Debug, Clone, Copy)]
pub struct ModuleYamlV2<'a> {
    functions: &'a StatefulFunctions,
    endpoint: &'a str,
}

/// Written here rather than in `registry.rs`, so that the registry knows nothing of the
/// deployment format.
impl StatefulFunctions {
    /// The `module.yaml` (format version `2.0`) that deploys every bound function as a
    /// remote function at `endpoint`, e.g. `http://functions:8000/statefun`, with the
    /// states and settings each [`Binding`](crate::Binding) declares. Print it, or `to_string()` it.
    /// The guide's [Declared states and `module.yaml`](crate::guide::functions#declared-states-and-moduleyaml)
    /// says what declaring a state in code gives.
    ///
    /// ```
    /// use std::time::Duration;
    /// use statefun_sync::{Expiration, StateSpec, StatefulFunctions};
    ///
    /// let mut functions = StatefulFunctions::new();
    /// functions
    ///     .bind("example/greeter", |_, _| Ok(()))?
    ///     .state("seen")
    ///     .state(StateSpec::new("session").expire_after_call(Duration::from_secs(300)))
    ///     .max_num_batch_requests(500);
    /// let yaml = functions.module_yaml_v2("http://functions:8000/statefun").to_string();
    /// assert!(yaml.contains("type: example/greeter"));
    /// assert!(yaml.contains("expireAfter: 5min"));
    /// # Ok::<(), statefun_sync::Error>(())
    /// ```
    pub fn module_yaml_v2<'a>(&'a self, endpoint: &'a str) -> ModuleYamlV2<'a> {
        ModuleYamlV2 {
            functions: self,
            endpoint,
        }
    }
}

impl fmt::Display for ModuleYamlV2<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "version: \"2.0\"\n\nmodule:\n  meta:\n    type: remote\n  spec:\n    functions:\n",
        )?;
        let endpoint = yaml_scalar(self.endpoint);
        for binding in self.functions.bindings() {
            write!(
                f,
                "      - function:\n          meta:\n            kind: http\n            type: {}\n          spec:\n            endpoint: {endpoint}\n",
                yaml_scalar(binding.function_type().as_str()),
            )?;
            let states = binding.declared_states();
            if !states.is_empty() {
                f.write_str("            states:\n")?;
                for state in states {
                    writeln!(f, "              - name: {}", yaml_scalar(state.name()))?;
                    match state.expiration() {
                        Some(Expiration::AfterCall(after)) => {
                            writeln!(f, "                expireAfter: {}", FlinkDuration(after))?;
                        }
                        Some(Expiration::AfterWrite(after)) => writeln!(
                            f,
                            "                expireAfter: {}\n                expireMode: after-write",
                            FlinkDuration(after)
                        )?,
                        None => {}
                    }
                }
            }
            if let Some(max) = binding.max_num_batch_requests() {
                writeln!(f, "            maxNumBatchRequests: {max}")?;
            }
            if let Some(timeout) = binding.timeout() {
                writeln!(f, "            timeout: {}", FlinkDuration(timeout))?;
            }
        }
        Ok(())
    }
}

/// A duration in the largest whole unit Flink's `TimeUtils.parseDuration` reads.
struct FlinkDuration(Duration);

impl fmt::Display for FlinkDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit_ms, unit) in [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "min"),
            (1_000, "s"),
        ] {
            if ms > 0 && ms % unit_ms == 0 {
                return write!(f, "{}{unit}", ms / unit_ms);
            }
        }
        write!(f, "{ms}ms")
    }
}

/// A YAML plain scalar when that reads back as the same string, a quoted one otherwise.
fn yaml_scalar(text: &str) -> String {
    // Plain only when no YAML 1.1 reader (the runtime's is one) could take it for
    // anything but this string: not a keyword in any case, nothing number-like, no
    // indicator at either end.
    let keyword = [
        "true", "false", "yes", "no", "y", "n", "on", "off", "null", "~",
    ]
    .iter()
    .any(|k| text.eq_ignore_ascii_case(k));
    let number_like = text
        .trim_start_matches(['+', '-', '.'])
        .starts_with(|c: char| c.is_ascii_digit());
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c))
        && !text.starts_with(['-', ':', '.'])
        && !text.ends_with(':')
        && !keyword
        && !number_like;
    if plain {
        return text.to_owned();
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            // YAML 1.1 also breaks lines at U+2028 and U+2029.
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(quoted, "\\u{:04x}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

// ---------------------------------------------------------------------------------------
// Stateful Functions 3.x
// ---------------------------------------------------------------------------------------

/// The `module.yaml` for Stateful Functions 3.1 to 3.3, for the functions of a registry
/// served at one URL, with the Kafka ingresses and egresses of the application; from
/// [`StatefulFunctions::module_yaml_v3`]. It is written when displayed: `print!("{yaml}")`,
/// or `yaml.to_string()`.
///
/// The file is a stream of YAML documents separated by `---`, one component each: an
/// `io.statefun.endpoints.v2/http` endpoint per bound function (in bind order, each for its
/// exact function type), then each `io.statefun.kafka.v1/ingress`, then each
/// `io.statefun.kafka.v1/egress`, in the order they were added. States are not in it: a
/// 3.x function declares them to the runtime itself.
///
/// What each binding declares goes into its endpoint:
/// [`max_num_batch_requests`](crate::Binding::max_num_batch_requests) as
/// `maxNumBatchRequests`, and [`timeout`](crate::Binding::timeout) as the transport's `call`
/// timeout. What the HTTP client does for every endpoint is set here:
/// [`transport`](Self::transport) and the `connect`, `read` and `write` timeouts.
///
/// The runtime 3.0 reads only its own layout (`version: "3.0"`), not this one.
#[derive(Debug, Clone)]
pub struct ModuleYamlV3<'a> {
    functions: &'a StatefulFunctions,
    url_path_template: &'a str,
    transport: Option<Transport>,
    /// `trust_cacerts` of the asynchronous client.
    trust_cacerts: Option<&'a str>,
    /// `client_cert` and `client_key` of the asynchronous client.
    client_certificate: Option<(&'a str, &'a str)>,
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    ingresses: Vec<KafkaIngress>,
    egresses: Vec<KafkaEgress>,
}

/// The HTTP client the runtime calls the functions with (`spec.transport.type` of an
/// endpoint). Without one, the runtime picks: OkHttp on 3.1, the asynchronous client from
/// 3.2 on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// `io.statefun.transports.v1/async`: the runtime's non-blocking client (Netty). It
    /// has no `read` and `write` timeouts, and ignores them.
    Async,
    /// `io.statefun.transports.v1/okhttp`: the blocking client, the default of 3.1.
    OkHttp,
}

impl Transport {
    fn typename(self) -> &'static str {
        match self {
            Transport::Async => "io.statefun.transports.v1/async",
            Transport::OkHttp => "io.statefun.transports.v1/okhttp",
        }
    }
}

impl StatefulFunctions {
    /// The `module.yaml` for Stateful Functions 3.1 to 3.3 ([`ModuleYamlV3`]) that deploys
    /// every bound function as a remote function at `url_path_template`, e.g.
    /// `http://functions:8000/statefun`, or `http://gateway/{function.name}` for a gateway
    /// that routes by function name. Add Kafka ingresses and egresses, and the transport's
    /// settings, before printing it. The guide's
    /// [3.x `module.yaml`](crate::guide::protocols#the-3x-moduleyaml) shows one with its
    /// Kafka ingress, and [security](crate::guide::security) the transport block for TLS.
    ///
    /// ```
    /// use std::time::Duration;
    /// use statefun_sync::{KafkaEgress, KafkaIngress, StatefulFunctions, Transport};
    ///
    /// let mut functions = StatefulFunctions::new();
    /// functions
    ///     .bind_message("example/greeter", |_, _| Ok(()))?
    ///     .max_num_batch_requests(500)
    ///     .timeout(Duration::from_secs(120));
    /// let yaml = functions
    ///     .module_yaml_v3("http://functions:8000/statefun")
    ///     .transport(Transport::Async)
    ///     .kafka_ingress(
    ///         KafkaIngress::new("example/names", "kafka:9092")?
    ///             .consumer_group_id("greeter")
    ///             .topic("names", "io.statefun.types/string", &["example/greeter"])?,
    ///     )?
    ///     .kafka_egress(KafkaEgress::new("example/greets", "kafka:9092")?)?
    ///     .to_string();
    /// assert!(yaml.starts_with("kind: io.statefun.endpoints.v2/http\n"));
    /// assert!(yaml.contains("      call: 2min\n"));
    /// assert!(yaml.contains("\n---\nkind: io.statefun.kafka.v1/ingress\n"));
    /// # Ok::<(), statefun_sync::Error>(())
    /// ```
    ///
    /// A binding's [`timeout`](crate::Binding::timeout) is written as it is; the runtime
    /// refuses a zero one when it loads the file.
    pub fn module_yaml_v3<'a>(&'a self, url_path_template: &'a str) -> ModuleYamlV3<'a> {
        ModuleYamlV3 {
            functions: self,
            url_path_template,
            transport: None,
            trust_cacerts: None,
            client_certificate: None,
            connect_timeout: None,
            read_timeout: None,
            write_timeout: None,
            ingresses: Vec::new(),
            egresses: Vec::new(),
        }
    }
}

impl<'a> ModuleYamlV3<'a> {
    /// Sets `spec.transport.type` of every endpoint. [`Transport::OkHttp`] has no TLS
    /// settings: it drops those of [`trust_cacerts`](Self::trust_cacerts) and
    /// [`client_certificate`](Self::client_certificate).
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        if transport == Transport::OkHttp {
            self.trust_cacerts = None;
            self.client_certificate = None;
        }
        self
    }

    /// For `https` endpoints: the runtime trusts the server certificates that chain to the
    /// CA certificates in `ca_bundle` (`spec.transport.trust_cacerts`: a path on the
    /// runtime's machines, or `classpath:<resource>`), rather than the JVM's default
    /// trust store. Only the asynchronous client reads it, so this sets the transport to
    /// [`Transport::Async`].
    ///
    /// ```
    /// # use statefun_sync::StatefulFunctions;
    /// # let mut functions = StatefulFunctions::new();
    /// # functions.bind_message("example/greeter", |_, _| Ok(()))?;
    /// let yaml = functions
    ///     .module_yaml_v3("https://functions:8443/statefun")
    ///     .trust_cacerts("/etc/statefun/tls/ca.crt")
    ///     .client_certificate("/etc/statefun/tls/client.crt", "/etc/statefun/tls/client.key")
    ///     .to_string();
    /// assert!(yaml.contains("    type: io.statefun.transports.v1/async\n"));
    /// assert!(yaml.contains("    trust_cacerts: /etc/statefun/tls/ca.crt\n"));
    /// # Ok::<(), statefun_sync::Error>(())
    /// ```
    pub fn trust_cacerts(mut self, ca_bundle: &'a str) -> Self {
        self.trust_cacerts = Some(ca_bundle);
        self.transport = Some(Transport::Async);
        self
    }

    /// For mutual TLS: the runtime presents the certificate chain in `cert` with its
    /// private key in `key` (`spec.transport.client_cert` and `client_key`: PEM files, the
    /// key in PKCS#8, as Netty reads it; paths on the runtime's machines, or
    /// `classpath:<resource>`). The functions' server checks it against its CA bundle
    /// (`TlsConfig::client_ca`, feature `tls`). Only the asynchronous
    /// client reads them, so this sets the transport to [`Transport::Async`].
    pub fn client_certificate(mut self, cert: &'a str, key: &'a str) -> Self {
        self.client_certificate = Some((cert, key));
        self.transport = Some(Transport::Async);
        self
    }

    /// Sets `spec.transport.timeouts.connect` of every endpoint: how long the runtime
    /// waits for a TCP connection (its default: 10 s; the asynchronous client's own,
    /// without any `timeouts`, is 20 s).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `timeout` is under a millisecond: the runtime refuses
    /// a zero timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Result<Self, Error> {
        self.connect_timeout = Some(positive_timeout("ModuleYamlV3::connect_timeout", timeout)?);
        Ok(self)
    }

    /// Sets `spec.transport.timeouts.read` of every endpoint: how long the OkHttp client
    /// waits on one read (its default: 10 s). The asynchronous client has no such timeout.
    ///
    /// # Errors
    ///
    /// As [`connect_timeout`](Self::connect_timeout).
    pub fn read_timeout(mut self, timeout: Duration) -> Result<Self, Error> {
        self.read_timeout = Some(positive_timeout("ModuleYamlV3::read_timeout", timeout)?);
        Ok(self)
    }

    /// Sets `spec.transport.timeouts.write` of every endpoint: how long the OkHttp client
    /// waits on one write (its default: 10 s). The asynchronous client has no such timeout.
    ///
    /// # Errors
    ///
    /// As [`connect_timeout`](Self::connect_timeout).
    pub fn write_timeout(mut self, timeout: Duration) -> Result<Self, Error> {
        self.write_timeout = Some(positive_timeout("ModuleYamlV3::write_timeout", timeout)?);
        Ok(self)
    }

    /// Adds a Kafka ingress (`kind: io.statefun.kafka.v1/ingress`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `ingress` routes no topic, or if an ingress with its
    /// id was already added; the runtime would fail to start the job.
    pub fn kafka_ingress(mut self, ingress: KafkaIngress) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidArgument {
            operation: "ModuleYamlV3::kafka_ingress",
            reason,
        };
        if ingress.topics.is_empty() {
            return Err(invalid(format!(
                "the Kafka ingress {} routes no topic (add one with `KafkaIngress::topic`)",
                Shown(ingress.id.as_ref())
            )));
        }
        if self.ingresses.iter().any(|i| i.id == ingress.id) {
            return Err(invalid(format!(
                "a Kafka ingress with id {} was already added",
                Shown(ingress.id.as_ref())
            )));
        }
        self.ingresses.push(ingress);
        Ok(self)
    }

    /// Adds a Kafka egress (`kind: io.statefun.kafka.v1/egress`), which functions reach
    /// with [`Context::send_egress`](crate::Context::send_egress) under its id.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if an egress with its id was already added.
    pub fn kafka_egress(mut self, egress: KafkaEgress) -> Result<Self, Error> {
        if self.egresses.iter().any(|e| e.id == egress.id) {
            return Err(Error::InvalidArgument {
                operation: "ModuleYamlV3::kafka_egress",
                reason: format!(
                    "a Kafka egress with id {} was already added",
                    Shown(egress.id.as_ref())
                ),
            });
        }
        self.egresses.push(egress);
        Ok(self)
    }
}

/// `timeout`, if the runtime can take it: at least a millisecond, the unit it is written in.
fn positive_timeout(operation: &'static str, timeout: Duration) -> Result<Duration, Error> {
    if timeout.as_millis() == 0 {
        return Err(Error::InvalidArgument {
            operation,
            reason: format!(
                "the timeout {timeout:?} is under a millisecond; the runtime refuses zero"
            ),
        });
    }
    Ok(timeout)
}

/// A component's typename (`namespace/name`: an ingress or egress id, a value type),
/// checked as the runtime's `TypeName.parseFrom` checks it.
fn component_typename(
    operation: &'static str,
    what: &str,
    typename: &str,
) -> Result<FunctionType, Error> {
    typename.parse().map_err(
        |invalid: crate::address::InvalidTypename| Error::InvalidArgument {
            operation,
            reason: format!(
                "the {what} {} is not `namespace/name`: {}",
                Shown(typename),
                invalid.reason()
            ),
        },
    )
}

/// A non-empty text, or an [`Error::InvalidArgument`] naming `what`.
fn non_empty(operation: &'static str, what: &str, text: &str) -> Result<String, Error> {
    if text.is_empty() {
        return Err(Error::InvalidArgument {
            operation,
            reason: format!("the {what} is empty"),
        });
    }
    Ok(text.to_owned())
}

/// A Kafka ingress of a 3.x application (`kind: io.statefun.kafka.v1/ingress`): the
/// records of its topics become messages of a value type, sent to target functions. The
/// record key, as UTF-8, is the id of the target; a record without a key fails the job.
/// Add it with [`ModuleYamlV3::kafka_ingress`].
///
/// ```
/// use statefun_sync::{KafkaIngress, StartupPosition};
///
/// let ingress = KafkaIngress::new("example/names", "kafka:9092")?
///     .consumer_group_id("greeter")
///     .startup_position(StartupPosition::Earliest)
///     .topic("names", "io.statefun.types/string", &["example/greeter"])?
///     .property("security.protocol", "SSL");
/// # Ok::<(), statefun_sync::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaIngress {
    id: FunctionType,
    address: String,
    consumer_group_id: Option<String>,
    startup_position: Option<StartupPosition>,
    topics: Vec<KafkaTopic>,
    properties: Vec<(String, String)>,
}

/// One topic of a [`KafkaIngress`] and where its records go.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KafkaTopic {
    topic: String,
    value_type: FunctionType,
    targets: Vec<FunctionType>,
}

/// Where a [`KafkaIngress`] starts reading when the job starts without a savepoint
/// (`startupPosition`). Without one, the runtime starts from the latest offsets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StartupPosition {
    /// `group-offsets`: the offsets committed for the consumer group.
    GroupOffsets,
    /// `earliest`.
    Earliest,
    /// `latest`.
    Latest,
    /// `specific-offsets`: `(topic, partition, offset)` for each partition.
    SpecificOffsets(Vec<(String, i32, i64)>),
}

impl KafkaIngress {
    /// An ingress with the id `id` (`namespace/name`), reading from the Kafka brokers at
    /// `address` (e.g. `kafka:9092`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `id` is not `namespace/name` or `address` is empty.
    pub fn new(id: &str, address: &str) -> Result<Self, Error> {
        const OPERATION: &str = "KafkaIngress::new";
        Ok(KafkaIngress {
            id: component_typename(OPERATION, "ingress id", id)?,
            address: non_empty(OPERATION, "Kafka address", address)?,
            consumer_group_id: None,
            startup_position: None,
            topics: Vec::new(),
            properties: Vec::new(),
        })
    }

    /// Sets `consumerGroupId`, the Kafka consumer group.
    pub fn consumer_group_id(mut self, group: &str) -> Self {
        self.consumer_group_id = Some(group.to_owned());
        self
    }

    /// Sets `startupPosition`.
    pub fn startup_position(mut self, position: StartupPosition) -> Self {
        self.startup_position = Some(position);
        self
    }

    /// Routes the records of `topic` as messages of `value_type` (a typename, e.g.
    /// `io.statefun.types/string` or `type.googleapis.com/example.User`) to each function
    /// type in `targets`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `topic` is empty or already routed, if `value_type` is
    /// not `namespace/name`, or if `targets` is empty; [`Error::InvalidTypename`] if a
    /// target is not a function type.
    pub fn topic(mut self, topic: &str, value_type: &str, targets: &[&str]) -> Result<Self, Error> {
        const OPERATION: &str = "KafkaIngress::topic";
        let topic = non_empty(OPERATION, "Kafka topic", topic)?;
        let invalid = |reason: String| Error::InvalidArgument {
            operation: OPERATION,
            reason,
        };
        if self.topics.iter().any(|t| t.topic == topic) {
            return Err(invalid(format!(
                "the Kafka topic {} is already routed by this ingress",
                Shown(&topic)
            )));
        }
        let value_type = component_typename(OPERATION, "value type", value_type)?;
        if targets.is_empty() {
            return Err(invalid(format!(
                "the Kafka topic {} has no target function",
                Shown(&topic)
            )));
        }
        let targets = targets
            .iter()
            .map(|target| target.parse::<FunctionType>())
            .collect::<Result<_, _>>()?;
        self.topics.push(KafkaTopic {
            topic,
            value_type,
            targets,
        });
        Ok(self)
    }

    /// Adds a Kafka consumer property (`properties`), e.g. `security.protocol`. The named
    /// settings (`address`, `consumerGroupId`) win over properties.
    pub fn property(mut self, key: &str, value: &str) -> Self {
        self.properties.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// A Kafka egress of a 3.x application (`kind: io.statefun.kafka.v1/egress`): functions
/// send it [`kafka_record_v3`](crate::kafka_record_v3)s with
/// [`Context::send_egress`](crate::Context::send_egress) under its id. Add it with
/// [`ModuleYamlV3::kafka_egress`].
///
/// ```
/// use std::time::Duration;
/// use statefun_sync::{DeliverySemantic, KafkaEgress};
///
/// let egress = KafkaEgress::new("example/greets", "kafka:9092")?.delivery_semantic(
///     DeliverySemantic::ExactlyOnce {
///         transaction_timeout: Duration::from_secs(900),
///     },
/// );
/// # Ok::<(), statefun_sync::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaEgress {
    id: FunctionType,
    address: String,
    delivery_semantic: Option<DeliverySemantic>,
    properties: Vec<(String, String)>,
}

/// What a [`KafkaEgress`] guarantees (`deliverySemantic`). Without one, the runtime
/// delivers at least once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeliverySemantic {
    /// `at-least-once`: no record is lost; some may be written twice.
    AtLeastOnce,
    /// `exactly-once`, with Kafka transactions of at most `transaction_timeout`
    /// (`transactionTimeout`; it must not exceed the brokers' `transaction.max.timeout.ms`).
    ExactlyOnce {
        /// How long a transaction may stay open.
        transaction_timeout: Duration,
    },
    /// `none`: records may be lost or duplicated.
    NoGuarantee,
}

impl KafkaEgress {
    /// An egress with the id `id` (`namespace/name`), writing to the Kafka brokers at
    /// `address` (e.g. `kafka:9092`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `id` is not `namespace/name` or `address` is empty.
    pub fn new(id: &str, address: &str) -> Result<Self, Error> {
        const OPERATION: &str = "KafkaEgress::new";
        Ok(KafkaEgress {
            id: component_typename(OPERATION, "egress id", id)?,
            address: non_empty(OPERATION, "Kafka address", address)?,
            delivery_semantic: None,
            properties: Vec::new(),
        })
    }

    /// Sets `deliverySemantic`.
    pub fn delivery_semantic(mut self, semantic: DeliverySemantic) -> Self {
        self.delivery_semantic = Some(semantic);
        self
    }

    /// Adds a Kafka producer property (`properties`), e.g. `compression.type`.
    pub fn property(mut self, key: &str, value: &str) -> Self {
        self.properties.push((key.to_owned(), value.to_owned()));
        self
    }
}

impl fmt::Display for ModuleYamlV3<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut documents = Documents { first: true };
        let url = yaml_scalar(self.url_path_template);
        for binding in self.functions.bindings() {
            documents.start(f, "io.statefun.endpoints.v2/http")?;
            writeln!(
                f,
                "  functions: {}\n  urlPathTemplate: {url}",
                yaml_scalar(binding.function_type().as_str())
            )?;
            if let Some(max) = binding.max_num_batch_requests() {
                writeln!(f, "  maxNumBatchRequests: {max}")?;
            }
            let timeouts = [
                ("call", binding.timeout()),
                ("connect", self.connect_timeout),
                ("read", self.read_timeout),
                ("write", self.write_timeout),
            ];
            let any_timeout = timeouts.iter().any(|(_, timeout)| timeout.is_some());
            if self.transport.is_none() && !any_timeout {
                continue;
            }
            f.write_str("  transport:\n")?;
            if let Some(transport) = self.transport {
                writeln!(f, "    type: {}", transport.typename())?;
            }
            if let Some(ca_bundle) = self.trust_cacerts {
                writeln!(f, "    trust_cacerts: {}", yaml_scalar(ca_bundle))?;
            }
            if let Some((cert, key)) = self.client_certificate {
                writeln!(
                    f,
                    "    client_cert: {}\n    client_key: {}",
                    yaml_scalar(cert),
                    yaml_scalar(key)
                )?;
            }
            // Under `timeouts`, which every 3.1-3.3 client reads (the asynchronous one
            // only `call` and `connect`, also accepted flat).
            if any_timeout {
                f.write_str("    timeouts:\n")?;
                for (name, timeout) in timeouts {
                    if let Some(timeout) = timeout {
                        writeln!(f, "      {name}: {}", FlinkDuration(timeout))?;
                    }
                }
            }
        }
        for ingress in &self.ingresses {
            documents.start(f, "io.statefun.kafka.v1/ingress")?;
            write_id_and_address(f, &ingress.id, &ingress.address)?;
            if let Some(group) = &ingress.consumer_group_id {
                writeln!(f, "  consumerGroupId: {}", yaml_scalar(group))?;
            }
            if let Some(position) = &ingress.startup_position {
                write_startup_position(f, position)?;
            }
            f.write_str("  topics:\n")?;
            for topic in &ingress.topics {
                writeln!(
                    f,
                    "    - topic: {}\n      valueType: {}\n      targets:",
                    yaml_scalar(&topic.topic),
                    yaml_scalar(topic.value_type.as_ref())
                )?;
                for target in &topic.targets {
                    writeln!(f, "        - {}", yaml_scalar(target.as_ref()))?;
                }
            }
            write_properties(f, &ingress.properties)?;
        }
        for egress in &self.egresses {
            documents.start(f, "io.statefun.kafka.v1/egress")?;
            write_id_and_address(f, &egress.id, &egress.address)?;
            match egress.delivery_semantic {
                Some(DeliverySemantic::AtLeastOnce) => {
                    f.write_str("  deliverySemantic:\n    type: at-least-once\n")?;
                }
                Some(DeliverySemantic::ExactlyOnce {
                    transaction_timeout,
                }) => writeln!(
                    f,
                    "  deliverySemantic:\n    type: exactly-once\n    transactionTimeout: {}",
                    FlinkDuration(transaction_timeout)
                )?,
                Some(DeliverySemantic::NoGuarantee) => {
                    f.write_str("  deliverySemantic:\n    type: none\n")?;
                }
                None => {}
            }
            write_properties(f, &egress.properties)?;
        }
        Ok(())
    }
}

/// Starts each component's document, the ones after the first with a `---` line.
struct Documents {
    first: bool,
}

impl Documents {
    fn start(&mut self, f: &mut fmt::Formatter<'_>, kind: &str) -> fmt::Result {
        if !self.first {
            f.write_str("---\n")?;
        }
        self.first = false;
        writeln!(f, "kind: {kind}\nspec:")
    }
}

fn write_id_and_address(
    f: &mut fmt::Formatter<'_>,
    id: &FunctionType,
    address: &str,
) -> fmt::Result {
    writeln!(
        f,
        "  id: {}\n  address: {}",
        yaml_scalar(id.as_ref()),
        yaml_scalar(address)
    )
}

fn write_startup_position(f: &mut fmt::Formatter<'_>, position: &StartupPosition) -> fmt::Result {
    let kind = match position {
        StartupPosition::GroupOffsets => "group-offsets",
        StartupPosition::Earliest => "earliest",
        StartupPosition::Latest => "latest",
        StartupPosition::SpecificOffsets(_) => "specific-offsets",
    };
    writeln!(f, "  startupPosition:\n    type: {kind}")?;
    if let StartupPosition::SpecificOffsets(offsets) = position {
        if offsets.is_empty() {
            // A bare `offsets:` is null, which the runtime cannot iterate.
            return f.write_str("    offsets: []\n");
        }
        f.write_str("    offsets:\n")?;
        for (topic, partition, offset) in offsets {
            writeln!(
                f,
                "      - {}: {offset}",
                yaml_scalar(&format!("{topic}/{partition}"))
            )?;
        }
    }
    Ok(())
}

/// Kafka client properties, as the runtime reads them: a list of one-entry maps.
fn write_properties(f: &mut fmt::Formatter<'_>, properties: &[(String, String)]) -> fmt::Result {
    if properties.is_empty() {
        return Ok(());
    }
    f.write_str("  properties:\n")?;
    for (key, value) in properties {
        writeln!(f, "    - {}: {}", yaml_scalar(key), yaml_scalar(value))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_spec::StateSpec;

    #[test]
    fn flink_durations_use_the_largest_whole_unit() {
        let cases = [
            (Duration::from_secs(300), "5min"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_secs(86_400), "1d"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::ZERO, "0ms"),
        ];
        for (duration, expected) in cases {
            assert_eq!(
                FlinkDuration(duration).to_string(),
                expected,
                "{duration:?}"
            );
        }
    }

    #[test]
    fn yaml_scalars_are_quoted_when_plain_would_change_them() {
        let cases = [
            ("example/greeter", "example/greeter"),
            ("http://h:8000/statefun", "http://h:8000/statefun"),
            ("true", "\"true\""),
            ("12", "\"12\""),
            ("a b", "\"a b\""),
            ("", "\"\""),
            ("- x", "\"- x\""),
            ("True", "\"True\""),
            ("NULL", "\"NULL\""),
            ("Yes", "\"Yes\""),
            ("0x1F", "\"0x1F\""),
            ("1_000", "\"1_000\""),
            ("-1", "\"-1\""),
            (".5", "\".5\""),
            ("seen:", "\"seen:\""),
            ("seen_count", "seen_count"),
            ("a\"b\\c", "\"a\\\"b\\\\c\""),
            ("tab\there", "\"tab\\u0009here\""),
        ];
        for (input, expected) in cases {
            assert_eq!(yaml_scalar(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn module_yaml_lists_every_function_with_its_states() {
        let mut functions = StatefulFunctions::new();
        functions
            .bind("example/greeter", |_, _| Ok(()))
            .unwrap()
            .state("seen")
            .state(StateSpec::new("visit").expire_after_write(Duration::from_secs(60)))
            .timeout(Duration::from_secs(120));
        functions.bind("example/other", |_, _| Ok(())).unwrap();
        let declared: Vec<_> = functions
            .declared_states("example/greeter")
            .unwrap()
            .iter()
            .map(StateSpec::name)
            .collect();
        assert_eq!(declared, ["seen", "visit"]);
        assert_eq!(functions.declared_states("example/other"), Some(&[][..]));
        assert_eq!(functions.declared_states("example/none"), None);
        let yaml = functions
            .module_yaml_v2("http://localhost:8000/statefun")
            .to_string();
        let expected = "\
version: \"2.0\"

module:
  meta:
    type: remote
  spec:
    functions:
      - function:
          meta:
            kind: http
            type: example/greeter
          spec:
            endpoint: http://localhost:8000/statefun
            states:
              - name: seen
              - name: visit
                expireAfter: 1min
                expireMode: after-write
            timeout: 2min
      - function:
          meta:
            kind: http
            type: example/other
          spec:
            endpoint: http://localhost:8000/statefun
";
        assert_eq!(yaml, expected);
    }
}
