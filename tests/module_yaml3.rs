//! `StatefulFunctions::module_yaml_v3`: the module.yaml of Stateful Functions 3.1 to 3.3,
//! one `---`-separated document per component, with the keys the runtime's 3.3 sources read
//! (`HttpFunctionEndpointSpec`, `DefaultHttpRequestReplyClientSpec`, `NettyRequestReplySpec`,
//! `RoutableKafkaIngressSpec`, `GenericKafkaEgressSpec`). The expected texts are compared
//! whole.

use std::time::Duration;

use statefun_sync::{
    DeliverySemantic, Error, KafkaEgress, KafkaIngress, StartupPosition, StatefulFunctions,
    Transport, ValueSpec,
};

const SEEN: ValueSpec<i32> = ValueSpec::named("seen");

fn two_functions() -> StatefulFunctions {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("example/greeter", |_, _| Ok(()))
        .unwrap()
        .state(&SEEN)
        .max_num_batch_requests(500)
        .timeout(Duration::from_secs(120));
    functions
        .bind_message("example/printer", |_, _| Ok(()))
        .unwrap();
    functions
}

#[test]
fn each_function_gets_an_endpoint_document_and_states_are_left_out() {
    let yaml = two_functions()
        .module_yaml_v3("http://functions:8000/statefun")
        .to_string();

    let expected = "\
kind: io.statefun.endpoints.v2/http
spec:
  functions: example/greeter
  urlPathTemplate: http://functions:8000/statefun
  maxNumBatchRequests: 500
  transport:
    timeouts:
      call: 2min
---
kind: io.statefun.endpoints.v2/http
spec:
  functions: example/printer
  urlPathTemplate: http://functions:8000/statefun
";
    assert_eq!(yaml, expected);
}

#[test]
fn the_transport_and_its_timeouts_apply_to_every_endpoint() {
    let functions = two_functions();
    let yaml = functions
        .module_yaml_v3("http://functions:8000/statefun")
        .transport(Transport::OkHttp)
        .connect_timeout(Duration::from_secs(5))
        .unwrap()
        .read_timeout(Duration::from_millis(1500))
        .unwrap()
        .write_timeout(Duration::from_secs(60))
        .unwrap()
        .to_string();

    let expected = "\
kind: io.statefun.endpoints.v2/http
spec:
  functions: example/greeter
  urlPathTemplate: http://functions:8000/statefun
  maxNumBatchRequests: 500
  transport:
    type: io.statefun.transports.v1/okhttp
    timeouts:
      call: 2min
      connect: 5s
      read: 1500ms
      write: 1min
---
kind: io.statefun.endpoints.v2/http
spec:
  functions: example/printer
  urlPathTemplate: http://functions:8000/statefun
  transport:
    type: io.statefun.transports.v1/okhttp
    timeouts:
      connect: 5s
      read: 1500ms
      write: 1min
";
    assert_eq!(yaml, expected);
}

#[test]
fn a_transport_without_timeouts_has_only_its_type() {
    let mut functions = StatefulFunctions::new();
    functions.bind_message("example/a", |_, _| Ok(())).unwrap();

    let yaml = functions
        .module_yaml_v3("http://gateway/{function.name}")
        .transport(Transport::Async)
        .to_string();

    // `{` would start a flow mapping in a plain scalar, so the template is quoted.
    let expected = "\
kind: io.statefun.endpoints.v2/http
spec:
  functions: example/a
  urlPathTemplate: \"http://gateway/{function.name}\"
  transport:
    type: io.statefun.transports.v1/async
";
    assert_eq!(yaml, expected);
}

#[test]
fn mutual_tls_writes_the_asynchronous_clients_certificate_files() {
    // NettyRequestReplySpec's keys: trust_cacerts, client_cert, client_key.
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("example/a", |_, _| Ok(()))
        .unwrap()
        .timeout(Duration::from_secs(30));

    let yaml = functions
        .module_yaml_v3("https://functions:8443/statefun")
        .trust_cacerts("/etc/statefun/ca.crt")
        .client_certificate("classpath:client.crt", "/etc/statefun/client.key")
        .to_string();

    let expected = "\
kind: io.statefun.endpoints.v2/http
spec:
  functions: example/a
  urlPathTemplate: https://functions:8443/statefun
  transport:
    type: io.statefun.transports.v1/async
    trust_cacerts: /etc/statefun/ca.crt
    client_cert: classpath:client.crt
    client_key: /etc/statefun/client.key
    timeouts:
      call: 30s
";
    assert_eq!(yaml, expected);
}

#[test]
fn the_okhttp_transport_drops_the_tls_files_it_cannot_read() {
    let mut functions = StatefulFunctions::new();
    functions.bind_message("example/a", |_, _| Ok(())).unwrap();

    let yaml = functions
        .module_yaml_v3("https://functions:8443/statefun")
        .trust_cacerts("/etc/statefun/ca.crt")
        .transport(Transport::OkHttp)
        .to_string();

    assert!(yaml.ends_with("  transport:\n    type: io.statefun.transports.v1/okhttp\n"));
    assert!(!yaml.contains("trust_cacerts"), "{yaml}");
}

#[test]
fn a_unix_socket_endpoint_is_written_as_the_runtime_parses_it() {
    let mut functions = StatefulFunctions::new();
    functions.bind_message("example/a", |_, _| Ok(())).unwrap();

    let yaml = functions
        .module_yaml_v3("http+unix:///run/statefun/functions.sock/statefun")
        .to_string();

    assert!(
        yaml.contains("  urlPathTemplate: \"http+unix:///run/statefun/functions.sock/statefun\"\n"),
        "{yaml}"
    );
}

#[test]
fn kafka_ingresses_and_egresses_follow_the_endpoints() {
    let mut functions = StatefulFunctions::new();
    functions
        .bind_message("example/greeter", |_, _| Ok(()))
        .unwrap();
    let names = KafkaIngress::new("example/names", "kafka:9092")
        .unwrap()
        .consumer_group_id("greeter")
        .startup_position(StartupPosition::Earliest)
        .topic(
            "names",
            "io.statefun.types/string",
            &["example/greeter", "other/logger"],
        )
        .unwrap()
        .topic(
            "users",
            "type.googleapis.com/example.User",
            &["example/greeter"],
        )
        .unwrap()
        .property("security.protocol", "SSL");
    let replay = KafkaIngress::new("example/replay", "kafka-1:9092,kafka-2:9092")
        .unwrap()
        .startup_position(StartupPosition::SpecificOffsets(vec![
            ("names".into(), 0, 91),
            ("names".into(), 1, 11),
        ]))
        .topic("names", "io.statefun.types/string", &["example/greeter"])
        .unwrap();
    let greets = KafkaEgress::new("example/greets", "kafka:9092")
        .unwrap()
        .delivery_semantic(DeliverySemantic::ExactlyOnce {
            transaction_timeout: Duration::from_secs(900),
        })
        .property("transaction.max.timeout.ms", "900000");
    let audit = KafkaEgress::new("example/audit", "kafka:9092")
        .unwrap()
        .delivery_semantic(DeliverySemantic::NoGuarantee);
    let plain = KafkaEgress::new("example/plain", "kafka:9092").unwrap();

    let yaml = functions
        .module_yaml_v3("http://functions:8000/statefun")
        .kafka_ingress(names)
        .unwrap()
        .kafka_ingress(replay)
        .unwrap()
        .kafka_egress(greets)
        .unwrap()
        .kafka_egress(audit)
        .unwrap()
        .kafka_egress(plain)
        .unwrap()
        .to_string();

    // Numbers and comma lists are quoted so that a YAML 1.1 reader keeps them as text; the
    // runtime reads properties with `asText()`.
    let expected = "\
kind: io.statefun.endpoints.v2/http
spec:
  functions: example/greeter
  urlPathTemplate: http://functions:8000/statefun
---
kind: io.statefun.kafka.v1/ingress
spec:
  id: example/names
  address: kafka:9092
  consumerGroupId: greeter
  startupPosition:
    type: earliest
  topics:
    - topic: names
      valueType: io.statefun.types/string
      targets:
        - example/greeter
        - other/logger
    - topic: users
      valueType: type.googleapis.com/example.User
      targets:
        - example/greeter
  properties:
    - security.protocol: SSL
---
kind: io.statefun.kafka.v1/ingress
spec:
  id: example/replay
  address: \"kafka-1:9092,kafka-2:9092\"
  startupPosition:
    type: specific-offsets
    offsets:
      - names/0: 91
      - names/1: 11
  topics:
    - topic: names
      valueType: io.statefun.types/string
      targets:
        - example/greeter
---
kind: io.statefun.kafka.v1/egress
spec:
  id: example/greets
  address: kafka:9092
  deliverySemantic:
    type: exactly-once
    transactionTimeout: 15min
  properties:
    - transaction.max.timeout.ms: \"900000\"
---
kind: io.statefun.kafka.v1/egress
spec:
  id: example/audit
  address: kafka:9092
  deliverySemantic:
    type: none
---
kind: io.statefun.kafka.v1/egress
spec:
  id: example/plain
  address: kafka:9092
";
    assert_eq!(yaml, expected);
}

#[test]
fn the_other_startup_positions_and_semantics_have_the_runtimes_names() {
    let functions = StatefulFunctions::new();
    let ingress = |position| {
        KafkaIngress::new("example/in", "kafka:9092")
            .unwrap()
            .startup_position(position)
            .topic("t", "example/T", &["example/f"])
            .unwrap()
    };
    let yaml = functions
        .module_yaml_v3("http://functions:8000/statefun")
        .kafka_ingress(ingress(StartupPosition::GroupOffsets))
        .unwrap()
        .to_string();
    assert!(
        yaml.contains("  startupPosition:\n    type: group-offsets\n"),
        "{yaml}"
    );
    let yaml = functions
        .module_yaml_v3("")
        .kafka_ingress(ingress(StartupPosition::Latest))
        .unwrap()
        .to_string();
    assert!(yaml.contains("    type: latest\n"), "{yaml}");
    // No offsets at all is an empty list, not a null the runtime cannot iterate.
    let yaml = functions
        .module_yaml_v3("")
        .kafka_ingress(ingress(StartupPosition::SpecificOffsets(vec![])))
        .unwrap()
        .to_string();
    assert!(
        yaml.contains("    type: specific-offsets\n    offsets: []\n"),
        "{yaml}"
    );
    let egress = KafkaEgress::new("example/out", "kafka:9092")
        .unwrap()
        .delivery_semantic(DeliverySemantic::AtLeastOnce);
    let yaml = functions
        .module_yaml_v3("")
        .kafka_egress(egress)
        .unwrap()
        .to_string();
    assert!(
        yaml.contains("  deliverySemantic:\n    type: at-least-once\n"),
        "{yaml}"
    );
}

#[test]
fn without_functions_the_first_component_opens_the_file() {
    let functions = StatefulFunctions::new();
    let yaml = functions
        .module_yaml_v3("http://functions:8000/statefun")
        .kafka_egress(KafkaEgress::new("example/out", "kafka:9092").unwrap())
        .unwrap()
        .to_string();

    assert_eq!(
        yaml,
        "kind: io.statefun.kafka.v1/egress\nspec:\n  id: example/out\n  address: kafka:9092\n"
    );
    assert_eq!(functions.module_yaml_v3("http://h/").to_string(), "");
}

/// The error's `InvalidArgument` operation and message.
fn refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> (&'static str, String) {
    match result {
        Err(Error::InvalidArgument { operation, reason }) => (operation, reason),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn ingress_settings_the_runtime_would_refuse_are_refused_naming_the_field() {
    let ingress = || KafkaIngress::new("example/in", "kafka:9092").unwrap();
    let cases = [
        (
            refusal(KafkaIngress::new("in", "kafka:9092")),
            "KafkaIngress::new",
            "the ingress id `in` is not `namespace/name`",
        ),
        (
            refusal(KafkaIngress::new("example/in", "")),
            "KafkaIngress::new",
            "the Kafka address is empty",
        ),
        (
            refusal(ingress().topic("", "example/T", &["example/f"])),
            "KafkaIngress::topic",
            "the Kafka topic is empty",
        ),
        (
            refusal(ingress().topic("t", "example/", &["example/f"])),
            "KafkaIngress::topic",
            "the value type `example/` is not `namespace/name`: the name",
        ),
        (
            refusal(ingress().topic("t", "example/T", &[])),
            "KafkaIngress::topic",
            "the Kafka topic `t` has no target function",
        ),
        (
            refusal(
                ingress()
                    .topic("t", "example/T", &["example/f"])
                    .unwrap()
                    .topic("t", "example/U", &["example/g"]),
            ),
            "KafkaIngress::topic",
            "the Kafka topic `t` is already routed",
        ),
        (
            refusal(
                StatefulFunctions::new()
                    .module_yaml_v3("")
                    .kafka_ingress(ingress()),
            ),
            "ModuleYamlV3::kafka_ingress",
            "the Kafka ingress `example/in` routes no topic",
        ),
    ];
    for ((operation, reason), expected_operation, expected_reason) in cases {
        assert_eq!(operation, expected_operation, "{reason}");
        assert!(
            reason.starts_with(expected_reason),
            "{reason:?} should start with {expected_reason:?}"
        );
    }

    let err = ingress()
        .topic("t", "example/T", &["example/f", "nobody"])
        .unwrap_err();
    assert!(matches!(err, Error::InvalidTypename(_)), "{err:?}");
    assert!(err.to_string().contains("`nobody`"), "{err}");
}

#[test]
fn egress_ids_addresses_and_duplicates_are_checked() {
    let (operation, reason) = refusal(KafkaEgress::new("/out", "kafka:9092"));
    assert_eq!(operation, "KafkaEgress::new");
    assert!(
        reason.starts_with("the egress id `/out` is not `namespace/name`: the namespace"),
        "{reason}"
    );
    let (_, reason) = refusal(KafkaEgress::new("example/out", ""));
    assert_eq!(reason, "the Kafka address is empty");

    let functions = StatefulFunctions::new();
    let egress = || KafkaEgress::new("example/out", "kafka:9092").unwrap();
    let (operation, reason) = refusal(
        functions
            .module_yaml_v3("")
            .kafka_egress(egress())
            .unwrap()
            .kafka_egress(egress()),
    );
    assert_eq!(operation, "ModuleYamlV3::kafka_egress");
    assert_eq!(
        reason,
        "a Kafka egress with id `example/out` was already added"
    );

    let ingress = || {
        KafkaIngress::new("example/in", "kafka:9092")
            .unwrap()
            .topic("t", "example/T", &["example/f"])
            .unwrap()
    };
    let (_, reason) = refusal(
        functions
            .module_yaml_v3("")
            .kafka_ingress(ingress())
            .unwrap()
            .kafka_ingress(ingress()),
    );
    assert_eq!(
        reason,
        "a Kafka ingress with id `example/in` was already added"
    );
}

#[test]
fn timeouts_under_a_millisecond_are_refused() {
    let functions = StatefulFunctions::new();
    let yaml = || functions.module_yaml_v3("http://h/");
    let (operation, reason) = refusal(yaml().connect_timeout(Duration::ZERO));
    assert_eq!(operation, "ModuleYamlV3::connect_timeout");
    assert!(reason.contains("under a millisecond"), "{reason}");
    assert_eq!(
        refusal(yaml().read_timeout(Duration::from_micros(999))).0,
        "ModuleYamlV3::read_timeout"
    );
    assert_eq!(
        refusal(yaml().write_timeout(Duration::ZERO)).0,
        "ModuleYamlV3::write_timeout"
    );
    assert!(yaml().connect_timeout(Duration::from_millis(1)).is_ok());
}
