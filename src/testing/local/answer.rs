//! How the local runtime reads a reply, on either protocol: what it asks of the runtime
//! ([`Outcome`]), or the states a 3.x function asks for ([`Answer::MissingStates`]).

use prost::bytes::Bytes;
use prost::Message;
use prost_types::Any;

use super::super::invocation_result;
use super::super::v3::{self, StateDeclaration};
use crate::address::{Address, FunctionType};
use crate::proto::polyglot::from_function;
use crate::proto::reqreply as proto3;
use crate::protocol::ProtocolVersion;
use crate::state_spec::Expiration;
use crate::text::Shown;

/// What a reply asks of the runtime, whatever the version.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) mutations: Vec<Mutation>,
    /// Each with whether it has a value (3.x can send a typename alone).
    pub(super) messages: Vec<(Address, Any, bool)>,
    pub(super) delayed: Vec<DelayedCommand>,
    pub(super) egresses: Vec<(String, Any, bool)>,
}

/// A state mutation: the new value as the runtime stores it, or `None` to delete it.
#[derive(Debug)]
pub(super) struct Mutation {
    pub(super) name: String,
    pub(super) value: Option<Bytes>,
    /// A 3.x `MODIFY`'s typename.
    pub(super) typename: Option<String>,
}

/// A delayed message, or (3.x) the cancellation of one.
#[derive(Debug)]
pub(super) enum DelayedCommand {
    Send {
        delay_ms: i64,
        target: Address,
        argument: Any,
        has_value: bool,
        token: Option<String>,
    },
    Cancel {
        token: String,
    },
}

/// A reply: the batch ran, or (3.x) the handshake asks for states.
#[derive(Debug)]
pub(super) enum Answer {
    Ran(Outcome),
    Handshake(Vec<StateDeclaration>),
}

/// Decodes a reply of `version` as the runtime reads it: on 2.2 it must carry an
/// invocation result; on 3.x an empty `FromFunction` is an empty result.
pub(super) fn decode_answer(version: ProtocolVersion, bytes: &[u8]) -> Result<Answer, String> {
    match version {
        ProtocolVersion::V3 => decode_answer_v3(bytes),
        _ => decode_answer_v2(bytes),
    }
}

pub(super) fn decode_answer_v2(bytes: &[u8]) -> Result<Answer, String> {
    let response = invocation_result(bytes)
        .map_err(|e| format!("it does not decode as a FromFunction: {e}"))?
        .ok_or_else(|| "the FromFunction has no invocation_result (field 100)".to_owned())?;
    let modify = from_function::persisted_value_mutation::MutationType::Modify as i32;
    Ok(Answer::Ran(Outcome {
        mutations: response
            .state_mutations
            .into_iter()
            .map(|m| Mutation {
                name: m.state_name,
                // An empty value is no value on 2.2.
                value: (m.mutation_type == modify && !m.state_value.is_empty())
                    .then_some(m.state_value),
                typename: None,
            })
            .collect(),
        messages: response
            .outgoing_messages
            .into_iter()
            .map(|m| {
                (
                    m.target.unwrap_or_default().into(),
                    m.argument.unwrap_or_default(),
                    true,
                )
            })
            .collect(),
        delayed: response
            .delayed_invocations
            .into_iter()
            .map(|d| DelayedCommand::Send {
                // The 2.2 runtime reads a negative delay as none.
                delay_ms: d.delay_in_ms.max(0),
                target: d.target.unwrap_or_default().into(),
                argument: d.argument.unwrap_or_default(),
                has_value: true,
                token: None,
            })
            .collect(),
        egresses: response
            .outgoing_egresses
            .into_iter()
            .map(|e| {
                (
                    format!("{}/{}", e.egress_namespace, e.egress_type),
                    e.argument.unwrap_or_default(),
                    true,
                )
            })
            .collect(),
    }))
}

pub(super) fn decode_answer_v3(bytes: &[u8]) -> Result<Answer, String> {
    use proto3::from_function::persisted_value_mutation::MutationType;
    use proto3::from_function::Response;

    let reply = proto3::FromFunction::decode(bytes)
        .map_err(|e| format!("it does not decode as a 3.x FromFunction: {e}"))?;
    let response = match reply.response {
        None => return Ok(Answer::Ran(Outcome::default())),
        Some(Response::IncompleteInvocationContext(context)) => {
            return Ok(Answer::Handshake(
                context
                    .missing_values
                    .into_iter()
                    .map(StateDeclaration::from_proto)
                    .collect(),
            ))
        }
        Some(Response::InvocationResult(response)) => response,
    };
    let mut mutations = Vec::with_capacity(response.state_mutations.len());
    for m in response.state_mutations {
        let mutation = match MutationType::try_from(m.mutation_type) {
            Ok(MutationType::Delete) => Mutation {
                name: m.state_name,
                value: None,
                typename: None,
            },
            Ok(MutationType::Modify) => {
                // The runtime stores a MODIFY's bytes whatever `has_value` says.
                let value = m.state_value.unwrap_or_default();
                Mutation {
                    name: m.state_name,
                    value: Some(value.value),
                    typename: Some(value.typename),
                }
            }
            Err(_) => {
                return Err(format!(
                    "the mutation of state {} has the unknown mutation type {}",
                    Shown(&m.state_name),
                    m.mutation_type
                ))
            }
        };
        mutations.push(mutation);
    }
    Ok(Answer::Ran(Outcome {
        mutations,
        messages: response
            .outgoing_messages
            .into_iter()
            .map(|m| {
                let (argument, has_value) = v3::any_of(m.argument);
                (v3::address_from_proto(m.target), argument, has_value)
            })
            .collect(),
        delayed: response
            .delayed_invocations
            .into_iter()
            .map(|d| {
                if d.is_cancellation_request {
                    DelayedCommand::Cancel {
                        token: d.cancellation_token,
                    }
                } else {
                    let (argument, has_value) = v3::any_of(d.argument);
                    DelayedCommand::Send {
                        delay_ms: d.delay_in_ms,
                        target: v3::address_from_proto(d.target),
                        argument,
                        has_value,
                        // The runtime sends without a token when it is empty.
                        token: Some(d.cancellation_token).filter(|t| !t.is_empty()),
                    }
                }
            })
            .collect(),
        egresses: response
            .outgoing_egresses
            .into_iter()
            .map(|e| {
                let (argument, has_value) = v3::any_of(e.argument);
                (
                    format!("{}/{}", e.egress_namespace, e.egress_type),
                    argument,
                    has_value,
                )
            })
            .collect(),
    }))
}

/// Whether the runtime can register `declaration`: a typename it parses, and a TTL
/// that is positive (Flink refuses any other).
pub(super) fn check_declaration(declaration: &StateDeclaration) -> Result<(), String> {
    if let Err(invalid) = declaration.typename.parse::<FunctionType>() {
        return Err(format!(
            "its handshake declares state {} with the typename {}, which is not \
             `namespace/name` ({})",
            Shown(&declaration.name),
            Shown(&declaration.typename),
            invalid.reason()
        ));
    }
    match declaration.expiration {
        Some(Expiration::AfterCall(ttl) | Expiration::AfterWrite(ttl)) if ttl.is_zero() => {
            Err(format!(
                "its handshake declares state {} to expire after 0 ms; the runtime refuses \
                 a time-to-live that is not positive",
                Shown(&declaration.name)
            ))
        }
        _ => Ok(()),
    }
}
