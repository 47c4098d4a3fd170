//! What a function declares of its states: [`StateSpec`] (a name, a typename, an
//! expiration) and [`Expiration`]. Its own module, below everything that uses it: the
//! registry keeps them per binding, the protocols announce them (3.x's handshake) or
//! check them (2.2), the context checks typed access against them, and
//! [`ValueSpec`](crate::ValueSpec) makes one.

use std::time::Duration;

use crate::types::TypeName;

/// What [`Binding::states`](crate::Binding::states) takes: anything that declares a
/// state, as [`Binding::state`](crate::Binding::state) takes it (a [`ValueSpec`](crate::ValueSpec), a [`StateSpec`], a
/// name).
pub trait DeclaredState {
    /// The state as the binding declares it.
    fn state_spec(&self) -> StateSpec;
}

impl DeclaredState for StateSpec {
    fn state_spec(&self) -> StateSpec {
        self.clone()
    }
}

impl DeclaredState for str {
    fn state_spec(&self) -> StateSpec {
        StateSpec::new(self)
    }
}

/// A state a function declares: its name, its typename when it was declared through a
/// typed [`ValueSpec`](crate::ValueSpec), and, optionally, when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSpec {
    name: String,
    typename: Option<String>,
    expiration: Option<Expiration>,
}

impl StateSpec {
    /// An untyped state that never expires (2.2 only: a 3.x function declares the type of
    /// each state, through a [`ValueSpec`](crate::ValueSpec)).
    pub fn new(name: impl Into<String>) -> Self {
        StateSpec {
            name: name.into(),
            typename: None,
            expiration: None,
        }
    }

    /// Gives the state the typename of its values.
    pub(crate) fn typed(mut self, typename: TypeName) -> Self {
        self.typename = Some(typename.to_string());
        self
    }

    /// The typename of the state's values; `None` for an untyped state.
    pub fn typename(&self) -> Option<&str> {
        self.typename.as_deref()
    }

    /// Lets the runtime drop the state's value after `expiration`.
    pub fn expire(mut self, expiration: Expiration) -> Self {
        self.expiration = Some(expiration);
        self
    }

    /// The state's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When the state expires, if it does.
    pub fn expiration(&self) -> Option<Expiration> {
        self.expiration
    }
}

impl From<&str> for StateSpec {
    fn from(name: &str) -> Self {
        StateSpec::new(name)
    }
}

impl From<String> for StateSpec {
    fn from(name: String) -> Self {
        StateSpec::new(name)
    }
}

/// When the runtime drops a state's value (`expireAfter` and `expireMode` in `module.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expiration {
    /// After the state was neither read nor written for this long (`after-invoke`, the
    /// runtime's default mode).
    AfterInvoke(Duration),
    /// After the state was not written for this long (`after-write`).
    AfterWrite(Duration),
}
