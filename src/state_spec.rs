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

    /// Lets the runtime drop the value when neither read nor written at its address for
    /// `duration` (the runtime's `AFTER_INVOKE`), as
    /// [`ValueSpec::expire_after_call`](crate::ValueSpec::expire_after_call).
    ///
    /// # Panics
    ///
    /// If the spec already expires after write: a state expires one way or the other.
    pub fn expire_after_call(self, duration: Duration) -> Self {
        self.with_expiration(Expiration::AfterCall(duration))
    }

    /// Lets the runtime drop the value when it has not been written for `duration` (the
    /// runtime's `AFTER_WRITE`), as
    /// [`ValueSpec::expire_after_write`](crate::ValueSpec::expire_after_write).
    ///
    /// # Panics
    ///
    /// If the spec already expires after call: a state expires one way or the other.
    pub fn expire_after_write(self, duration: Duration) -> Self {
        self.with_expiration(Expiration::AfterWrite(duration))
    }

    /// Sets the expiration, refusing a second mode as `ValueSpec` does.
    pub(crate) fn with_expiration(mut self, expiration: Expiration) -> Self {
        if let Some(set) = self.expiration {
            assert!(
                std::mem::discriminant(&set) == std::mem::discriminant(&expiration),
                "a state expires after call or after write, not both"
            );
        }
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
    /// After the state was neither read nor written for this long: `expire_after_call`
    /// (`after-invoke` in `module.yaml`, `AFTER_INVOKE` in the 3.x protocol; the
    /// runtime's default mode).
    AfterCall(Duration),
    /// After the state was not written for this long (`after-write`).
    AfterWrite(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_spec_expires_as_a_value_spec_does() {
        let spec = StateSpec::new("s").expire_after_call(Duration::from_secs(1));
        assert_eq!(
            spec.expiration(),
            Some(Expiration::AfterCall(Duration::from_secs(1)))
        );
        let spec = spec.expire_after_call(Duration::from_secs(2));
        assert_eq!(
            spec.expiration(),
            Some(Expiration::AfterCall(Duration::from_secs(2)))
        );
        let spec = StateSpec::new("s").expire_after_write(Duration::from_secs(3));
        assert_eq!(
            spec.expiration(),
            Some(Expiration::AfterWrite(Duration::from_secs(3)))
        );
    }

    #[test]
    #[should_panic(expected = "not both")]
    fn a_state_spec_expires_one_way_only() {
        let _ = StateSpec::new("s")
            .expire_after_write(Duration::from_secs(1))
            .expire_after_call(Duration::from_secs(1));
    }
}
