//! [`RuntimeError`]: what went wrong in a [`LocalRuntime`](super::LocalRuntime), and how
//! it explains itself.

use std::error::Error as StdError;
use std::fmt;

use super::super::{ReadError, RemoteError};
use super::Envelope;
use crate::address::{Address, FunctionType};
use crate::error::Error;
use crate::message::UnpackError;
use crate::text::Shown;

/// What went wrong in a [`LocalRuntime`](super::LocalRuntime).
#[derive(Debug)]
#[non_exhaustive]
pub enum RuntimeError {
    /// A batch for a function in the registry failed: the handler returned `source`
    /// (a function error or panic, an unknown function type, a missing state...). The
    /// batch was not applied and the runtime stopped.
    FunctionFailed {
        /// The address invoked (boxed to keep `Result<_, RuntimeError>` small).
        address: Box<Address>,
        /// The message that caused it: the invocation `source` names, or the batch's
        /// first message when the error is about the whole batch.
        message: Box<Envelope>,
        /// What the handler returned.
        source: Error,
    },
    /// A batch for a function routed to a remote endpoint did not get a reply. The batch
    /// was not applied and the runtime stopped.
    RemoteFailed {
        /// The address invoked (boxed to keep `Result<_, RuntimeError>` small).
        address: Box<Address>,
        /// The batch's first message (a remote error does not say which one failed).
        message: Box<Envelope>,
        /// The endpoint's URL.
        endpoint: String,
        /// Why there is no reply.
        source: RemoteError,
    },
    /// A reply changed a state that its function type does not declare; the runtime
    /// fails the job on this. The batch was not applied and the runtime stopped.
    UndeclaredStateMutation {
        /// The address invoked (boxed to keep `Result<_, RuntimeError>` small).
        address: Box<Address>,
        /// The state's name.
        state: String,
    },
    /// The runtime stopped at an earlier failure, and runs nothing more.
    Stopped {
        /// The earlier failure, with its causes.
        cause: String,
    },
    /// One call to [`run`](super::LocalRuntime::run) or [`advance`](super::LocalRuntime::advance) ran
    /// its maximum number of batches and messages were still pending: most likely
    /// functions that message each other forever. The runtime did not stop; the pending
    /// messages stay queued.
    BatchLimitReached {
        /// The limit ([`LocalRuntime::max_batches_per_run`](super::LocalRuntime::max_batches_per_run)).
        limit: usize,
        /// How many messages were pending, delayed ones due by then included.
        pending: usize,
    },
    /// A function type, id or endpoint given to the runtime is malformed, or a 2.2-only
    /// setting was given to a 3.x runtime.
    InvalidArgument {
        /// What is wrong: [`Error::InvalidTypename`] or [`Error::InvalidArgument`].
        source: Error,
    },
    /// A state was read or set that the function type does not declare (on 3.x: that
    /// the runtime has not registered and its binding does not declare).
    UnknownState {
        /// The function type.
        function_type: FunctionType,
        /// The state's name.
        state: String,
    },
    /// A state's value is not a serialized `Any`, or not the message type asked for (2.2).
    UnreadableState {
        /// The address (boxed to keep `Result<_, RuntimeError>` small).
        address: Box<Address>,
        /// The state's name.
        state: String,
        /// Why it cannot be read.
        source: UnpackError,
    },
    /// A state read as a [`Type`](crate::types::Type) holds a value of another type, or one that does not
    /// decode.
    UnreadableTypedState {
        /// The address (boxed to keep `Result<_, RuntimeError>` small).
        address: Box<Address>,
        /// The state's name.
        state: String,
        /// Why it cannot be read.
        source: ReadError,
    },
    /// A 3.x handshake declares a state that the runtime registered for the function type
    /// with another typename: the runtime cannot change a state's type, and fails the job.
    /// The batch was not applied and the runtime stopped.
    StateTypeChanged {
        /// The address whose reply it was (boxed to keep `Result<_, RuntimeError>` small);
        /// the states belong to its function type.
        address: Box<Address>,
        /// The state's name.
        state: String,
        /// The typename the state was registered with.
        registered: String,
        /// The typename the handshake declares.
        declared: String,
    },
    /// A 3.x state was given a value of another type than the one registered for it: by
    /// a reply's `MODIFY` (the runtime fails the job; the batch was not applied and the
    /// runtime stopped), or by [`LocalRuntime::set`](super::LocalRuntime::set) or [`LocalRuntime::set_state`](super::LocalRuntime::set_state).
    StateTypeMismatch {
        /// The address (boxed to keep `Result<_, RuntimeError>` small).
        address: Box<Address>,
        /// The state's name.
        state: String,
        /// The typename the state is registered with.
        registered: String,
        /// The typename of the value (`io.statefun.types/unset` for an empty one, as the
        /// runtime reads it).
        found: String,
    },
    /// A 3.x reply asks for what the runtime refuses, failing the job: a cancellation
    /// with an empty token, a second delayed message with a token still pending, a
    /// negative delay, a state that expires after a duration that is not positive, a
    /// handshake that asks for no new state. The batch was not applied and the runtime
    /// stopped.
    RejectedReply {
        /// The address whose reply it was (boxed to keep `Result<_, RuntimeError>` small).
        address: Box<Address>,
        /// What the runtime refuses.
        reason: String,
    },
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::FunctionFailed {
                address,
                message,
                source,
            } => {
                write!(
                    f,
                    "the batch for {} failed at the message {}",
                    Shown(&address.to_string()),
                    Described(message)
                )?;
                // The handler's text speaks of module.yaml; here the states come from the
                // bindings and `declare_states`.
                if let Some(state) = undeclared_state(source) {
                    write!(
                        f,
                        " (locally, declare state {} with `.state(...)` on the binding, or \
                         with `LocalRuntime::declare_states`)",
                        Shown(state)
                    )?;
                }
                Ok(())
            }
            RuntimeError::RemoteFailed {
                address,
                message,
                endpoint,
                ..
            } => write!(
                f,
                "the batch for {} (first message {}) got no reply from {}",
                Shown(&address.to_string()),
                Described(message),
                Shown(endpoint)
            ),
            RuntimeError::UndeclaredStateMutation { address, state } => write!(
                f,
                "the reply for {} changes state {}, which {} does not declare",
                Shown(&address.to_string()),
                Shown(state),
                Shown(address.function_type().as_str())
            ),
            RuntimeError::Stopped { cause } => {
                write!(
                    f,
                    "the local runtime stopped at an earlier failure: {cause}"
                )
            }
            RuntimeError::BatchLimitReached { limit, pending } => write!(
                f,
                "ran {limit} batches and {pending} messages are still pending (do functions \
                 message each other forever? raise the limit with max_batches_per_run)"
            ),
            RuntimeError::InvalidArgument { .. } => f.write_str("invalid argument"),
            RuntimeError::UnknownState {
                function_type,
                state,
            } => write!(
                f,
                "{} does not declare state {} (declare it on the binding or with \
                 declare_states)",
                Shown(function_type.as_str()),
                Shown(state)
            ),
            RuntimeError::UnreadableState { address, state, .. }
            | RuntimeError::UnreadableTypedState { address, state, .. } => {
                write!(
                    f,
                    "cannot read state {} of {}",
                    Shown(state),
                    Shown(&address.to_string())
                )
            }
            RuntimeError::StateTypeChanged {
                address,
                state,
                registered,
                declared,
            } => write!(
                f,
                "the handshake of {} declares state {} of {} with type {}, but the runtime \
                 registered it with type {} (a state cannot change its type)",
                Shown(&address.to_string()),
                Shown(state),
                Shown(address.function_type().as_str()),
                Shown(declared),
                Shown(registered)
            ),
            RuntimeError::StateTypeMismatch {
                address,
                state,
                registered,
                found,
            } => write!(
                f,
                "state {} of {} was given a value of type {}, but {} registered it with type {}",
                Shown(state),
                Shown(&address.to_string()),
                Shown(found),
                Shown(address.function_type().as_str()),
                Shown(registered)
            ),
            RuntimeError::RejectedReply { address, reason } => write!(
                f,
                "the runtime rejects the reply for {}: {reason}",
                Shown(&address.to_string())
            ),
        }
    }
}

impl StdError for RuntimeError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            RuntimeError::FunctionFailed { source, .. }
            | RuntimeError::InvalidArgument { source } => Some(source),
            RuntimeError::RemoteFailed { source, .. } => Some(source),
            RuntimeError::UnreadableState { source, .. } => Some(source),
            RuntimeError::UnreadableTypedState { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl RuntimeError {
    /// The error and its causes, joined with `: `, escaped and bounded as
    /// [`Error::report`] is.
    pub fn report(&self) -> String {
        crate::error::report_of(self)
    }
}

/// A message for an error text: its type URL and caller.
pub(super) struct Described<'a>(&'a Envelope);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Shown: a type URL from a remote function may hold anything.
        write!(f, "{}", Shown(&self.0.argument.type_url))?;
        match &self.0.caller {
            Some(caller) => write!(f, " from {}", Shown(&caller.to_string())),
            None => f.write_str(" from an ingress"),
        }
    }
}

/// The state a handler error says the request lacked, if that is what it says.
pub(super) fn undeclared_state(error: &Error) -> Option<&str> {
    match error {
        Error::UnknownState { state, .. } | Error::MissingDeclaredState { state, .. } => {
            Some(state)
        }
        Error::FunctionFailed { source, .. } => source
            .chain()
            .find_map(|cause| cause.downcast_ref::<Error>())
            .and_then(undeclared_state),
        _ => None,
    }
}
