//! [`ValueSpec`]: a typed state, declared in code.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use crate::error::Error;
use crate::registry::{Expiration, StateSpec};
use crate::types::Type;

/// A state of type `T`: its name, and when it expires. Declare it when binding the
/// function ([`Binding::state`](crate::Binding::state)), then read and write it through
/// [`Context::get`](crate::Context::get), [`Context::set`](crate::Context::set) and
/// [`Context::remove`](crate::Context::remove).
///
/// On the 3.x protocol the specs are what the function announces to the runtime in the
/// state handshake (name, typename, expiration); on 2.2 they go into `module.yaml`, and
/// the value is stored as an `Any` of the type's typename.
///
/// ```
/// use std::time::Duration;
/// use statefun_sync::ValueSpec;
///
/// const SEEN: ValueSpec<i32> = ValueSpec::named("seen").expire_after_call(Duration::from_secs(3600));
/// assert_eq!(SEEN.name(), "seen");
/// ```
pub struct ValueSpec<T> {
    name: Cow<'static, str>,
    expiration: Option<Expiration>,
    value_type: PhantomData<fn() -> T>,
}

impl<T: Type> ValueSpec<T> {
    /// A spec named `name`, for a `const` or a `static`.
    ///
    /// # Panics
    ///
    /// If `name` does not follow the rule of the 3.x SDKs (a letter or `_`, then letters,
    /// digits or `_`); in a `const`, that is a compile error. Names made at run time go
    /// through [`try_named`](Self::try_named).
    pub const fn named(name: &'static str) -> Self {
        if let Err(reason) = check_name(name) {
            panic!("{}", reason);
        }
        ValueSpec {
            name: Cow::Borrowed(name),
            expiration: None,
            value_type: PhantomData,
        }
    }

    /// A spec named `name`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `name` does not follow the rule of the 3.x SDKs: a
    /// letter or `_`, then letters, digits or `_`.
    pub fn try_named(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        check_name(&name).map_err(|reason| Error::InvalidArgument {
            operation: "ValueSpec::try_named",
            reason: format!("{}: {reason}", crate::text::Shown(&name)),
        })?;
        Ok(ValueSpec {
            name: Cow::Owned(name),
            expiration: None,
            value_type: PhantomData,
        })
    }

    /// Lets the runtime drop the value when the function has not been called for this
    /// address for `duration` (the Python SDK's `expire_after_call`, the runtime's
    /// `AFTER_INVOKE`). A zero duration means no expiration, as in the SDKs.
    ///
    /// # Panics
    ///
    /// If the spec already expires after write: a state expires one way or the other.
    pub const fn expire_after_call(self, duration: Duration) -> Self {
        self.expire(Expiration::AfterInvoke(duration))
    }

    /// Lets the runtime drop the value when it has not been written for `duration` (the
    /// runtime's `AFTER_WRITE`). A zero duration means no expiration, as in the SDKs.
    ///
    /// # Panics
    ///
    /// If the spec already expires after call: a state expires one way or the other.
    pub const fn expire_after_write(self, duration: Duration) -> Self {
        self.expire(Expiration::AfterWrite(duration))
    }

    const fn expire(mut self, expiration: Expiration) -> Self {
        let set_already = matches!(
            (&self.expiration, &expiration),
            (Some(Expiration::AfterInvoke(_)), Expiration::AfterWrite(_))
                | (Some(Expiration::AfterWrite(_)), Expiration::AfterInvoke(_))
        );
        if set_already {
            panic!("a state expires after call or after write, not both");
        }
        self.expiration = Some(expiration);
        self
    }
}

impl<T> ValueSpec<T> {
    /// The state's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When the state expires, if it does.
    pub fn expiration(&self) -> Option<Expiration> {
        self.expiration
    }
}

impl<T> Clone for ValueSpec<T> {
    fn clone(&self) -> Self {
        ValueSpec {
            name: self.name.clone(),
            expiration: self.expiration,
            value_type: PhantomData,
        }
    }
}

impl<T: Type> fmt::Debug for ValueSpec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueSpec")
            .field("name", &self.name)
            .field("type", &T::type_name())
            .field("expiration", &self.expiration)
            .finish()
    }
}

impl<T: Type> From<&ValueSpec<T>> for StateSpec {
    fn from(spec: &ValueSpec<T>) -> Self {
        let state = StateSpec::new(spec.name.clone().into_owned()).typed(T::type_name());
        match spec.expiration {
            Some(expiration) => state.expire(expiration),
            None => state,
        }
    }
}

impl<T: Type> From<ValueSpec<T>> for StateSpec {
    fn from(spec: ValueSpec<T>) -> Self {
        StateSpec::from(&spec)
    }
}

/// Checks a state name against the rule of the 3.x SDKs: Java's and Go's
/// `[a-zA-Z_][a-zA-Z_0-9]*`. (The Python SDK also refuses Python keywords such as `def`,
/// which no other SDK and not the runtime care about; they are accepted here.)
const fn check_name(name: &str) -> Result<(), &'static str> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err("a state name cannot be empty");
    }
    if !(bytes[0].is_ascii_alphabetic() || bytes[0] == b'_') {
        return Err("a state name starts with a letter or `_`");
    }
    let mut i = 1;
    while i < bytes.len() {
        if !(bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            return Err("a state name holds only letters, digits and `_`");
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule_of_the_3x_sdks() {
        for good in ["seen", "_x", "a1_b", "A"] {
            assert!(ValueSpec::<i32>::try_named(good).is_ok(), "{good}");
        }
        for (bad, rule) in [
            ("", "empty"),
            ("1a", "starts with"),
            ("a-b", "only letters"),
            ("a b", "only letters"),
            ("é", "starts with"),
        ] {
            let err = ValueSpec::<i32>::try_named(bad).unwrap_err().to_string();
            assert!(err.contains(rule), "{bad}: {err}");
        }
    }

    #[test]
    #[should_panic(expected = "not both")]
    fn a_spec_expires_one_way_only() {
        let _ = ValueSpec::<i32>::named("x")
            .expire_after_call(Duration::from_secs(1))
            .expire_after_write(Duration::from_secs(1));
    }

    #[test]
    fn a_spec_declares_its_typename_and_expiration() {
        let spec = ValueSpec::<i64>::named("total").expire_after_write(Duration::from_millis(5));
        let state = StateSpec::from(&spec);
        assert_eq!(state.name(), "total");
        assert_eq!(state.typename(), Some("io.statefun.types/long"));
        assert_eq!(
            state.expiration(),
            Some(Expiration::AfterWrite(Duration::from_millis(5)))
        );
    }
}
