//! [`ValueSpec`]: a typed state, declared in code.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use crate::error::Error;
use crate::state_spec::{DeclaredState, Expiration, StateSpec};
use crate::types::Type;

/// A state of type `T`: its name, and when it expires. Declare it when binding the
/// function ([`Binding::state`](crate::Binding::state)), then read and write it through
/// [`Context::get`](crate::Context::get), [`Context::set`](crate::Context::set) and
/// [`Context::remove`](crate::Context::remove).
///
/// On the 3.x protocol the specs are what the function announces to the runtime in the
/// state handshake (name, typename, expiration; see the guide's
/// [state handshake](crate::guide::protocols#the-state-handshake)); on 2.2 they go into
/// `module.yaml`, and the value is stored as an `Any` of the type's typename.
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
    /// A name is what Python's `str.isidentifier()` accepts: a letter or `_`, then
    /// letters, digits or `_`, in any script (`zähler`, `計数`); see the crate's Python
    /// 3.3 table for what the SDKs accept (Python's own also wants it lower case).
    ///
    /// # Panics
    ///
    /// If `name` breaks the rule in its ASCII characters (`1st`, `a-b`, an empty name);
    /// in a `const`, that is a compile error. Const evaluation cannot read the Unicode
    /// tables, so a non-ASCII character that is no letter or digit (`a€b`) is refused when
    /// the handler is built ([`RequestReplyHandler::v3`](crate::RequestReplyHandler::v3)).
    /// Names made at run time go through [`try_named`](Self::try_named), which checks all.
    pub const fn named(name: &'static str) -> Self {
        if let Err(reason) = check_ascii_part(name) {
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
    /// [`Error::InvalidArgument`] if `name` is not what Python's `str.isidentifier()`
    /// accepts: a letter or `_`, then letters, digits or `_`.
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
        self.expire(Expiration::AfterCall(duration))
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
            (Some(Expiration::AfterCall(_)), Expiration::AfterWrite(_))
                | (Some(Expiration::AfterWrite(_)), Expiration::AfterCall(_))
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

    /// The name when it lives for the whole program ([`named`](ValueSpec::named)): its
    /// bytes are never freed, so their address stands for them.
    pub(crate) fn static_name(&self) -> Option<&'static str> {
        match self.name {
            Cow::Borrowed(name) => Some(name),
            Cow::Owned(_) => None,
        }
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
            Some(expiration) => state.with_expiration(expiration),
            None => state,
        }
    }
}

impl<T: Type> DeclaredState for ValueSpec<T> {
    fn state_spec(&self) -> StateSpec {
        StateSpec::from(self)
    }
}

impl<T: Type> From<ValueSpec<T>> for StateSpec {
    fn from(spec: ValueSpec<T>) -> Self {
        StateSpec::from(&spec)
    }
}

/// Checks a state name with Python's `str.isidentifier()`: a letter (any character with
/// Unicode's XID_Start) or `_`, then letters, digits, `_` and the other characters with
/// XID_Continue (combining marks, say), so `zähler` is a name. That is every name the
/// Python SDK 3.3 accepts, and more: it also refuses keywords (`def`) and names that are
/// not lower case (`islower()`: `Count`, or `計数` with no cased letter), which no other
/// SDK and not the runtime care about.
///
/// What the other 3.x SDKs accept is narrower: Java's `Character.isLetter`, `isDigit` or
/// `_` per UTF-16 unit (so no combining marks and nothing outside the Basic Multilingual
/// Plane), Go's `[a-zA-Z_][a-zA-Z_0-9]*`, and JavaScript's `[_a-z]+`.
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    check_ascii_part(name)?;
    let mut chars = name.chars();
    let first = chars.next().ok_or(EMPTY)?;
    if !(first == '_' || unicode_ident::is_xid_start(first)) {
        return Err(START);
    }
    if chars.all(unicode_ident::is_xid_continue) {
        Ok(())
    } else {
        Err(CONTINUE)
    }
}

const EMPTY: &str = "a state name cannot be empty";
const START: &str = "a state name starts with a letter or `_` (as Python's `str.isidentifier()`)";
const CONTINUE: &str =
    "a state name holds only letters, digits and `_` (as Python's `str.isidentifier()`)";

/// The part of [`check_name`] that const evaluation can do: the rule for the ASCII
/// characters (the Unicode tables are not `const`). Non-ASCII characters are checked
/// when the handler is built, or by [`ValueSpec::try_named`].
const fn check_ascii_part(name: &str) -> Result<(), &'static str> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err(EMPTY);
    }
    if bytes[0].is_ascii() && !(bytes[0].is_ascii_alphabetic() || bytes[0] == b'_') {
        return Err(START);
    }
    let mut i = 1;
    while i < bytes.len() {
        if bytes[i].is_ascii() && !(bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            return Err(CONTINUE);
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_python_isidentifier_accepts() {
        // Each checked against Python 3.11's `str.isidentifier()` (the Python SDK also
        // refuses the keyword `def` and the names that are not `islower()`).
        let python_accepts = [
            "seen",
            "_x",
            "a1_b",
            "A",
            "zähler",
            "é",
            "計数",
            "_٣",
            "x\u{301}",
            "ab\u{203f}c",
            "ǅ",
            "def",
            "ℕ",
        ];
        for good in python_accepts {
            assert!(ValueSpec::<i32>::try_named(good).is_ok(), "{good}");
        }
        for (bad, rule) in [
            ("", "empty"),
            ("1a", "starts with"),
            ("a-b", "only letters"),
            ("a b", "only letters"),
            ("٣a", "starts with"),
            ("\u{301}x", "starts with"),
            ("a·b·€", "only letters"),
            ("a\u{200b}", "only letters"),
            ("😀", "starts with"),
        ] {
            let err = ValueSpec::<i32>::try_named(bad).unwrap_err().to_string();
            assert!(err.contains(rule), "{bad}: {err}");
        }
    }

    #[test]
    fn const_evaluation_checks_the_ascii_part() {
        // What `named` can check in a `const`: ASCII characters; the rest waits for the
        // handler (or `try_named`).
        assert_eq!(check_ascii_part("zähler"), Ok(()));
        assert_eq!(check_ascii_part("a€"), Ok(()));
        assert_eq!(check_name("a€"), Err(CONTINUE));
        assert_eq!(check_ascii_part("a-b"), Err(CONTINUE));
        assert_eq!(check_ascii_part("1a"), Err(START));
        assert_eq!(check_ascii_part(""), Err(EMPTY));
        const ZAEHLER: ValueSpec<i32> = ValueSpec::named("zähler");
        assert_eq!(ZAEHLER.name(), "zähler");
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
