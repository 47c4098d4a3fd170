//! The crate's one error type. Which HTTP status each error is: `Error::status`, in
//! `http/endpoint.rs`, with every other status decision.

use std::error::Error as StdError;
use std::fmt;

use crate::address::{Address, FunctionType, InvalidTypename};
use crate::text::{cut_with_ellipsis, Shown};

/// What went wrong while binding a function, inside a function's call to
/// [`Context`](crate::Context), or while handling a batch.
///
/// Every message names the thing that failed: the function type, the address, the
/// invocation's index in the batch, the state. The cause, where there is one, comes
/// from [`source()`](std::error::Error::source) and is not repeated in `Display`;
/// print the whole chain with [`Error::report`] (or `anyhow`'s `{:#}`).
///
/// [`Error::status`] maps an error to the HTTP status the runtime should see: 4xx for
/// what no retry can fix, 5xx for what might pass on a retry. The guide's
/// [Errors and HTTP statuses](crate::guide::errors) has every variant with its status, and
/// what the runtimes do with each.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A function type is not `namespace/name` with both parts non-empty.
    InvalidTypename(InvalidTypename),
    /// [`StatefulFunctions::bind`](crate::StatefulFunctions::bind) was called twice for one function type.
    DuplicateFunction {
        /// The function type.
        function_type: FunctionType,
    },
    /// The request body is not a serialized `ToFunction`.
    MalformedRequest {
        /// Where decoding failed, e.g. `ToFunction.invocation.state[2].state_name`.
        field: String,
        /// What was wrong there.
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The request is a `ToFunction` without an invocation batch (an empty body decodes
    /// to one).
    NoInvocation,
    /// The batch has more invocations than the handler accepts
    /// ([`RequestReplyHandler::max_invocations`](crate::RequestReplyHandler::max_invocations)).
    TooManyInvocations {
        /// The limit.
        limit: usize,
    },
    /// The batch carries more distinct states than the handler accepts
    /// ([`RequestReplyHandler::max_states`](crate::RequestReplyHandler::max_states)).
    TooManyStates {
        /// The limit.
        limit: usize,
    },
    /// The request's target has a function type that no function is bound to.
    UnknownFunctionType {
        /// The request's target (boxed to keep `Result<_, Error>` small).
        address: Box<Address>,
    },
    /// The request lacks a state that the function's binding declares: the deployment's
    /// `module.yaml` does not declare it.
    MissingDeclaredState {
        /// The request's target (boxed to keep `Result<_, Error>` small).
        address: Box<Address>,
        /// The state's name.
        state: String,
    },
    /// A function used a state that the request did not carry. The runtime sends every
    /// state declared in `module.yaml`, so the code and the deployment disagree.
    UnknownState {
        /// The address being invoked (boxed to keep `Result<_, Error>` small).
        address: Box<Address>,
        /// The invocation's index in the batch.
        invocation: usize,
        /// The state's name.
        state: String,
    },
    /// A state holds a value that is not the message type asked for, or does not decode.
    UnreadableState {
        /// The address being invoked (boxed to keep `Result<_, Error>` small).
        address: Box<Address>,
        /// The state's name.
        state: String,
        /// Why the value could not be read.
        source: Box<dyn StdError + Send + Sync>,
    },
    /// An invocation's argument is not of a message type its function accepts.
    UnexpectedMessageType {
        /// The address being invoked (boxed to keep `Result<_, Error>` small).
        address: Box<Address>,
        /// The invocation's index in the batch.
        invocation: usize,
        /// The full names of the message types the function accepts.
        expected: Vec<String>,
        /// The argument's type URL.
        actual: String,
    },
    /// An invocation's argument has the right type URL but its bytes do not decode.
    MalformedArgument {
        /// The address being invoked (boxed to keep `Result<_, Error>` small).
        address: Box<Address>,
        /// The invocation's index in the batch.
        invocation: usize,
        /// The argument's type URL (on 3.x, its typename).
        type_url: String,
        /// Why its bytes do not decode.
        source: Box<dyn StdError + Send + Sync>,
    },
    /// A function read or wrote a typed state ([`ValueSpec`](crate::ValueSpec)) that its
    /// binding does not declare, or declares with another type: the function's code and
    /// its binding disagree.
    UndeclaredState {
        /// The address being invoked (boxed to keep `Result<_, Error>` small).
        address: Box<Address>,
        /// The state's name.
        state: String,
        /// The typename the function used it with.
        typename: String,
    },
    /// A 3.x handler was built for a function that declares a state without a type (a
    /// name or a [`StateSpec`](crate::StateSpec), not a [`ValueSpec`](crate::ValueSpec)):
    /// 3.x announces each state's type to the runtime.
    UntypedState {
        /// The function type (boxed to keep `Result<_, Error>` small).
        function_type: Box<FunctionType>,
        /// The state's name.
        state: String,
    },
    /// A 3.x handler was built for a function that declares two states with one name (the
    /// Python SDK refuses it too): the handshake would announce the name twice.
    DuplicateState {
        /// The function type (boxed to keep `Result<_, Error>` small).
        function_type: Box<FunctionType>,
        /// The state's name.
        state: String,
    },
    /// [`Context::reply`](crate::Context::reply) was called for a message without a caller
    /// (it came from an ingress).
    NoCaller {
        /// The address being invoked (boxed to keep `Result<_, Error>` small).
        address: Box<Address>,
        /// The invocation's index in the batch.
        invocation: usize,
    },
    /// A [`Context`](crate::Context) method or an egress helper was called with an argument
    /// it cannot accept (an empty id, a zero delay, an empty Kafka topic, ...).
    InvalidArgument {
        /// The method, e.g. `send`.
        operation: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A value a function sent or stored could not be encoded: its
    /// [`Type::encode_value`](crate::types::Type::encode_value) failed (a JSON type's
    /// map with non-string keys, say). Nothing of the value reached the reply; passed up
    /// with `?`, it fails the batch (500), so the state keeps the value it had.
    UnencodableValue {
        /// The value's typename.
        typename: String,
        /// What the value was for, quoted: e.g. ``state `seen` ``, ``a message to
        /// `example/greeter/bob` ``, ``the egress `example/out` ``.
        destination: Box<str>,
        /// Why it could not be encoded.
        source: Box<dyn StdError + Send + Sync>,
    },
    /// A function returned an error.
    FunctionFailed {
        /// The address being invoked (boxed to keep `Result<_, Error>` small).
        address: Box<Address>,
        /// The invocation's index in the batch.
        invocation: usize,
        /// The function's own error, with its context chain.
        source: anyhow::Error,
    },
    /// A function panicked. The panic was caught; the handler stays usable.
    FunctionPanicked {
        /// The address being invoked (boxed to keep `Result<_, Error>` small).
        address: Box<Address>,
        /// The invocation's index in the batch.
        invocation: usize,
        /// The panic's message, when it had one.
        message: String,
    },
}

impl Error {
    /// The variant's name, e.g. `"FunctionFailed"`: the `kind` label of the errors
    /// counter in [`metrics`](crate::metrics), a small fixed set.
    #[cfg(feature = "metrics")]
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Error::InvalidTypename(..) => "InvalidTypename",
            Error::DuplicateFunction { .. } => "DuplicateFunction",
            Error::MalformedRequest { .. } => "MalformedRequest",
            Error::NoInvocation => "NoInvocation",
            Error::TooManyInvocations { .. } => "TooManyInvocations",
            Error::TooManyStates { .. } => "TooManyStates",
            Error::UnknownFunctionType { .. } => "UnknownFunctionType",
            Error::MissingDeclaredState { .. } => "MissingDeclaredState",
            Error::UnknownState { .. } => "UnknownState",
            Error::UnreadableState { .. } => "UnreadableState",
            Error::UnexpectedMessageType { .. } => "UnexpectedMessageType",
            Error::MalformedArgument { .. } => "MalformedArgument",
            Error::UndeclaredState { .. } => "UndeclaredState",
            Error::UntypedState { .. } => "UntypedState",
            Error::DuplicateState { .. } => "DuplicateState",
            Error::NoCaller { .. } => "NoCaller",
            Error::InvalidArgument { .. } => "InvalidArgument",
            Error::UnencodableValue { .. } => "UnencodableValue",
            Error::FunctionFailed { .. } => "FunctionFailed",
            Error::FunctionPanicked { .. } => "FunctionPanicked",
        }
    }
}

impl Error {
    /// The address the error is about: the request's target for the errors of
    /// [`RequestReplyHandler::handle`](crate::RequestReplyHandler::handle) once the
    /// request decoded, the invoked address for those of a function; `None` for a body
    /// that is not a batch, and for the errors of binding and of the egress helpers.
    ///
    /// This is what the HTTP fronts name in their log lines, without decoding the
    /// request again.
    pub fn address(&self) -> Option<&Address> {
        match self {
            Error::UnknownFunctionType { address }
            | Error::MissingDeclaredState { address, .. }
            | Error::UnknownState { address, .. }
            | Error::UnreadableState { address, .. }
            | Error::UnexpectedMessageType { address, .. }
            | Error::MalformedArgument { address, .. }
            | Error::NoCaller { address, .. }
            | Error::UndeclaredState { address, .. }
            | Error::FunctionFailed { address, .. }
            | Error::FunctionPanicked { address, .. } => Some(address),
            Error::InvalidTypename(_)
            | Error::DuplicateFunction { .. }
            | Error::MalformedRequest { .. }
            | Error::NoInvocation
            | Error::TooManyInvocations { .. }
            | Error::TooManyStates { .. }
            | Error::UntypedState { .. }
            | Error::DuplicateState { .. }
            | Error::InvalidArgument { .. }
            | Error::UnencodableValue { .. } => None,
        }
    }

    /// Whether a function failed on what the request carried, which no retry changes: a
    /// state it did not carry or cannot be read, an argument of another type.
    pub(crate) fn is_caused_by_request_data(&self) -> bool {
        matches!(
            self,
            Error::UnknownState { .. }
                | Error::UnreadableState { .. }
                | Error::UnexpectedMessageType { .. }
                | Error::MalformedArgument { .. }
        )
    }

    /// The error and its causes, joined with `: `, e.g. `function
    /// example/greeter/alice failed at invocation 0: user not found`.
    ///
    /// Safe to put in a log line or an HTTP error body: a cause's text (a function's own
    /// error may quote anything) has its control characters escaped, and the whole is cut
    /// at [`Error::MAX_REPORT_LEN`] bytes, ending in `...` when cut.
    pub fn report(&self) -> String {
        report_of(self)
    }

    /// The longest [`Error::report`], in bytes.
    pub const MAX_REPORT_LEN: usize = 2048;
}

/// `error` and its causes joined with `: `, control characters in the causes escaped, cut
/// at [`Error::MAX_REPORT_LEN`] bytes: what [`Error::report`] and the testing kit's
/// errors print.
pub(crate) fn report_of(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        for c in next.to_string().chars() {
            if c.is_control() {
                text.extend(c.escape_default());
            } else {
                text.push(c);
            }
        }
        if text.len() > Error::MAX_REPORT_LEN {
            break;
        }
        cause = next.source();
    }
    cut_with_ellipsis(&mut text, Error::MAX_REPORT_LEN);
    text
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidTypename(invalid) => invalid.fmt(f),
            Error::DuplicateFunction { function_type } => write!(
                f,
                "a function is already bound to type {}",
                Shown(function_type.as_str())
            ),
            Error::MalformedRequest { field, .. } => {
                write!(f, "malformed request: cannot decode `{field}`")
            }
            Error::NoInvocation => f.write_str(
                "malformed request: the ToFunction carries no invocation batch (field 100)",
            ),
            Error::TooManyInvocations { limit } => write!(
                f,
                "the batch has more than {limit} invocations, the handler's limit (raise it \
                 with RequestReplyHandler::max_invocations, or lower maxNumBatchRequests in \
                 module.yaml)"
            ),
            Error::TooManyStates { limit } => write!(
                f,
                "the batch carries more than {limit} states, the handler's limit (raise it with \
                 RequestReplyHandler::max_states)"
            ),
            Error::UnknownFunctionType { address } => write!(
                f,
                "no function is bound to type {}",
                Shown(address.function_type().as_str())
            ),
            Error::MissingDeclaredState { address, state } => write!(
                f,
                "the request for {} did not carry state {}, which the function declares \
                 (add it to the function's states in module.yaml)",
                Shown(address.function_type().as_str()),
                Shown(state)
            ),
            Error::UndeclaredState {
                address,
                state,
                typename,
            } => write!(
                f,
                "function {} used state {} of type {}, which its binding does not declare \
                 with that type (declare it with `.state(&SPEC)` when binding the function)",
                Shown(address.function_type().as_str()),
                Shown(state),
                Shown(typename)
            ),
            Error::UntypedState {
                function_type,
                state,
            } => write!(
                f,
                "function {} declares state {} without a type, and a 3.x handler tells the \
                 runtime each state's type (declare it with a ValueSpec)",
                Shown(function_type.as_str()),
                Shown(state)
            ),
            Error::DuplicateState {
                function_type,
                state,
            } => write!(
                f,
                "function {} declares state {} twice",
                Shown(function_type.as_str()),
                Shown(state)
            ),
            Error::UnknownState {
                address,
                invocation,
                state,
            } => write!(
                f,
                "function {} used state {} at invocation {invocation} of {}, but the request \
                 did not carry it (declare it in the function's states in module.yaml)",
                Shown(address.function_type().as_str()),
                Shown(state),
                Shown(&address.to_string())
            ),
            Error::UnreadableState { address, state, .. } => write!(
                f,
                "cannot read state {} of {}",
                Shown(state),
                Shown(&address.to_string())
            ),
            Error::UnexpectedMessageType {
                address,
                invocation,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "invocation {invocation} of {} has an argument of type {}, but the function \
                     accepts ",
                    Shown(&address.to_string()),
                    Shown(actual)
                )?;
                for (i, name) in expected.iter().enumerate() {
                    if i > 0 {
                        f.write_str(if i + 1 == expected.len() {
                            " or "
                        } else {
                            ", "
                        })?;
                    }
                    write!(f, "`{name}`")?;
                }
                Ok(())
            }
            Error::MalformedArgument {
                address,
                invocation,
                type_url,
                ..
            } => write!(
                f,
                "invocation {invocation} of {} has an argument of type {} that does not decode",
                Shown(&address.to_string()),
                Shown(type_url)
            ),
            Error::NoCaller {
                address,
                invocation,
            } => write!(
                f,
                "cannot reply at invocation {invocation} of {}: the message has no caller \
                 (it came from an ingress)",
                Shown(&address.to_string())
            ),
            Error::InvalidArgument { operation, reason } => write!(f, "`{operation}`: {reason}"),
            Error::UnencodableValue {
                typename,
                destination,
                ..
            } => write!(
                f,
                "cannot encode a value of type {} for {destination}",
                Shown(typename)
            ),
            Error::FunctionFailed {
                address,
                invocation,
                ..
            } => write!(
                f,
                "function {} failed at invocation {invocation}",
                Shown(&address.to_string())
            ),
            Error::FunctionPanicked {
                address,
                invocation,
                message,
            } => write!(
                f,
                "function {} panicked at invocation {invocation}: {}",
                Shown(&address.to_string()),
                Shown(message)
            ),
        }
    }
}

impl From<InvalidTypename> for Error {
    fn from(invalid: InvalidTypename) -> Self {
        Error::InvalidTypename(invalid)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::MalformedRequest { source, .. }
            | Error::UnreadableState { source, .. }
            | Error::MalformedArgument { source, .. }
            | Error::UnencodableValue { source, .. } => Some(source.as_ref()),
            Error::FunctionFailed { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Result<_, Error>` is what every `Context` call returns, so its size is pinned:
    /// variants box their address, and a change that grows the error shows up here.
    #[test]
    fn an_error_is_eight_words() {
        assert_eq!(
            std::mem::size_of::<Error>(),
            8 * std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn report_escapes_and_bounds_what_the_causes_say() {
        let err = Error::FunctionFailed {
            address: Box::new(Address::from_wire("ex", "t", "1")),
            invocation: 0,
            source: anyhow::anyhow!("bad\r\nline {}", "x".repeat(10_000)),
        };
        let chain = err.report();
        assert!(chain.contains("bad\\r\\nline"), "{chain}");
        assert!(!chain.chars().any(char::is_control), "{chain}");
        assert_eq!(chain.len(), Error::MAX_REPORT_LEN);
        assert!(chain.ends_with("..."));
    }

    #[test]
    fn report_joins_the_causes() {
        let err = Error::FunctionFailed {
            address: Box::new(Address::from_wire("example", "greeter", "alice")),
            invocation: 2,
            source: anyhow::anyhow!("user not found"),
        };
        assert_eq!(
            err.report(),
            "function `example/greeter/alice` failed at invocation 2: user not found"
        );
        assert_eq!(err.status(), 500);
    }
}
