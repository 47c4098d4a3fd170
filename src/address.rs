//! Function types (`namespace/name`) and addresses (`namespace/name/id`).
//!
//! This is the one place that parses or formats a function type, and the one place that
//! converts between [`Address`] and the protocol's address message.

use std::fmt;
use std::str::FromStr;

use crate::proto::polyglot as wire;
use crate::text::Shown;

/// A function type, `namespace/name`: what a function is bound under, and the first two
/// parts of every [`Address`].
///
/// ```
/// use statefun_sync::FunctionType;
///
/// let greeter: FunctionType = "com.example/app/greeter".parse()?;
/// assert_eq!(greeter.namespace(), "com.example/app");
/// assert_eq!(greeter.name(), "greeter");
/// assert_eq!(greeter.to_string(), "com.example/app/greeter");
/// assert_eq!(greeter.as_str(), "com.example/app/greeter");
/// assert!("/greeter".parse::<FunctionType>().is_err());
/// # Ok::<(), statefun_sync::InvalidTypename>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FunctionType {
    /// `namespace/name`, kept whole so that it is at hand as text.
    typename: String,
    /// Where the `/` between the namespace and the name is.
    slash: usize,
}

impl FunctionType {
    /// The function type `namespace/name`, from its two parts, checked as
    /// [`str::parse`] checks the text: what it prints parses back to the same parts.
    ///
    /// ```
    /// use statefun_sync::FunctionType;
    ///
    /// let greeter = FunctionType::new("com.example/app", "greeter")?;
    /// assert_eq!(greeter.to_string().parse::<FunctionType>()?, greeter);
    /// // `a/b/c` would read back as namespace `a/b`, name `c`.
    /// assert!(FunctionType::new("a", "b/c").is_err());
    /// # Ok::<(), statefun_sync::InvalidTypename>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`InvalidTypename`] if either part is empty, or the name has a `/` (the namespace
    /// may have some: the text splits at the last one).
    pub fn new(namespace: impl AsRef<str>, name: impl AsRef<str>) -> Result<Self, InvalidTypename> {
        let function_type = FunctionType::from_wire(namespace, name);
        let invalid = |reason| InvalidTypename {
            input: function_type.to_string(),
            reason,
        };
        if function_type.namespace().is_empty() {
            return Err(invalid("the namespace is empty"));
        }
        if function_type.name().is_empty() {
            return Err(invalid("the name is empty"));
        }
        if function_type.name().contains('/') {
            return Err(invalid(
                "the name has a `/`, so `namespace/name` would split elsewhere",
            ));
        }
        Ok(function_type)
    }

    /// The function type of an address as the wire carries it: its two parts taken as
    /// they are, as the runtime sent them.
    pub(crate) fn from_wire(namespace: impl AsRef<str>, name: impl AsRef<str>) -> Self {
        let (namespace, name) = (namespace.as_ref(), name.as_ref());
        let mut typename = String::with_capacity(namespace.len() + 1 + name.len());
        typename.push_str(namespace);
        typename.push('/');
        typename.push_str(name);
        FunctionType {
            typename,
            slash: namespace.len(),
        }
    }

    /// The namespace, e.g. `example` in `example/greeter`.
    pub fn namespace(&self) -> &str {
        &self.typename[..self.slash]
    }

    /// The name, e.g. `greeter` in `example/greeter` (the protocol's `type` field).
    pub fn name(&self) -> &str {
        &self.typename[self.slash + 1..]
    }

    /// The function type as text, `namespace/name`, e.g. for
    /// [`Context::send`](crate::Context::send).
    pub fn as_str(&self) -> &str {
        &self.typename
    }

    /// Whether this is the function type `namespace/name`, without building it.
    pub(crate) fn is(&self, namespace: &str, name: &str) -> bool {
        self.name() == name && self.namespace() == namespace
    }

    /// Splits `namespace/name` into its parts, borrowed: how the crate checks a function
    /// type given as text without allocating.
    ///
    /// The split is at the **last** `/`, so a namespace may itself contain slashes
    /// (`com.example/app/greeter` is namespace `com.example/app`, name `greeter`), as
    /// the Python SDK's `parse_typename` does. Both parts must be non-empty.
    pub(crate) fn split(typename: &str) -> Result<(&str, &str), InvalidTypename> {
        let invalid = |reason| InvalidTypename {
            input: typename.to_owned(),
            reason,
        };
        // A scan from the end: a function type's name is a few bytes, which this finds
        // in fewer instructions than `rsplit_once`'s `memrchr` (once per message sent).
        let slash = typename
            .bytes()
            .rposition(|byte| byte == b'/')
            .ok_or_else(|| invalid("a function type must be of the form `namespace/name`"))?;
        let (namespace, name) = (&typename[..slash], &typename[slash + 1..]);
        if namespace.is_empty() {
            return Err(invalid("the namespace (before the last `/`) is empty"));
        }
        if name.is_empty() {
            return Err(invalid("the name (after the last `/`) is empty"));
        }
        Ok((namespace, name))
    }

    /// As [`split`](Self::split), accepting anything: at the last `/`, or all name when
    /// there is none. For tests that build requests for malformed function types.
    #[cfg(feature = "testing")]
    pub(crate) fn split_unchecked(typename: &str) -> (&str, &str) {
        typename.rsplit_once('/').unwrap_or(("", typename))
    }
}

impl FromStr for FunctionType {
    type Err = InvalidTypename;

    /// Parses `namespace/name`, split at the last `/`, both parts non-empty.
    ///
    /// # Errors
    ///
    /// [`InvalidTypename`], quoting the input, if it has no `/`, or if the part before
    /// or after the last `/` is empty.
    fn from_str(typename: &str) -> Result<Self, InvalidTypename> {
        let (namespace, name) = FunctionType::split(typename)?;
        Ok(FunctionType::from_wire(namespace, name))
    }
}

impl fmt::Display for FunctionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.typename)
    }
}

/// The function type with both parts empty, `/`.
impl Default for FunctionType {
    fn default() -> Self {
        FunctionType::from_wire("", "")
    }
}

/// Ordered by namespace, then name.
impl Ord for FunctionType {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.namespace(), self.name()).cmp(&(other.namespace(), other.name()))
    }
}

impl PartialOrd for FunctionType {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl AsRef<str> for FunctionType {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// Why a text is not a function type `namespace/name`; inside the crate's [`Error`] it is
/// [`Error::InvalidTypename`](crate::Error::InvalidTypename).
///
/// [`Error`]: crate::Error
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTypename {
    input: String,
    reason: &'static str,
}

impl InvalidTypename {
    /// The text as given.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for InvalidTypename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid function type {}: {}",
            Shown(&self.input),
            self.reason
        )
    }
}

impl std::error::Error for InvalidTypename {}

/// Compares with a function type written as text, e.g. `function_type == "ex/greeter"`.
impl PartialEq<str> for FunctionType {
    fn eq(&self, typename: &str) -> bool {
        FunctionType::split(typename).is_ok_and(|(namespace, name)| self.is(namespace, name))
    }
}

impl PartialEq<&str> for FunctionType {
    fn eq(&self, typename: &&str) -> bool {
        *self == **typename
    }
}

/// The address of one function instance: its function type (`namespace/name`) and its id.
///
/// ```
/// use statefun_sync::Address;
///
/// let address = Address::from_typename("example/greeter", "alice")?;
/// assert_eq!(address.function_type(), "example/greeter");
/// assert_eq!(address.to_string(), "example/greeter/alice");
/// # Ok::<(), statefun_sync::InvalidTypename>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    function_type: FunctionType,
    id: String,
}

impl Address {
    /// The address of `id` within the function type `namespace/name`, checked as
    /// [`FunctionType::new`] checks it. The id may be anything.
    ///
    /// The runtime's own addresses (the target and the caller of a request) arrive
    /// unchecked, as the runtime sent them; an address from the wire, as the testing kit
    /// takes it for a malformed request, is `Address::from(proto::polyglot::Address
    /// { .. })`.
    ///
    /// # Errors
    ///
    /// [`InvalidTypename`] as [`FunctionType::new`].
    pub fn new(
        namespace: impl AsRef<str>,
        name: impl AsRef<str>,
        id: impl Into<String>,
    ) -> Result<Self, InvalidTypename> {
        Ok(Address::of(FunctionType::new(namespace, name)?, id))
    }

    /// An address as the wire carries it: its three parts taken as they are.
    pub(crate) fn from_wire(
        namespace: impl AsRef<str>,
        name: impl AsRef<str>,
        id: impl Into<String>,
    ) -> Self {
        Address::of(FunctionType::from_wire(namespace, name), id)
    }

    /// The address of `id` within `function_type`.
    pub fn of(function_type: FunctionType, id: impl Into<String>) -> Self {
        Address {
            function_type,
            id: id.into(),
        }
    }

    /// The address of `id` within the function type `typename` (`namespace/name`).
    ///
    /// # Errors
    ///
    /// [`InvalidTypename`] if `typename` is not `namespace/name` with both parts
    /// non-empty (see [`FunctionType`]).
    pub fn from_typename(typename: &str, id: impl Into<String>) -> Result<Self, InvalidTypename> {
        Ok(Address::of(typename.parse()?, id))
    }

    /// The function type, `namespace/name`.
    pub fn function_type(&self) -> &FunctionType {
        &self.function_type
    }

    /// The function type as text, `namespace/name`: what
    /// [`Context::send`](crate::Context::send) takes.
    pub fn typename(&self) -> &str {
        self.function_type.as_str()
    }

    /// The namespace, e.g. `example` in `example/greeter/alice`.
    pub fn namespace(&self) -> &str {
        self.function_type.namespace()
    }

    /// The function type's name, e.g. `greeter` in `example/greeter/alice`
    /// (the protocol's `type` field).
    pub fn name(&self) -> &str {
        self.function_type.name()
    }

    /// The id of the instance, e.g. `alice` in `example/greeter/alice`.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.function_type, self.id)
    }
}

/// Parses `namespace/name/id`: the id after the last `/`, the function type before it.
/// This reads back what [`Display`](fmt::Display) writes unless the id itself has a `/`
/// (the runtime allows any id), which this reads as part of the function type.
///
/// ```
/// use statefun_sync::Address;
///
/// let address: Address = "example/greeter/alice".parse()?;
/// assert_eq!((address.function_type().to_string().as_str(), address.id()), ("example/greeter", "alice"));
/// # Ok::<(), statefun_sync::InvalidTypename>(())
/// ```
impl FromStr for Address {
    type Err = InvalidTypename;

    /// # Errors
    ///
    /// [`InvalidTypename`] if there is no `/` before the id, or what comes before it is
    /// not a function type.
    fn from_str(address: &str) -> Result<Self, InvalidTypename> {
        let (typename, id) = address.rsplit_once('/').ok_or_else(|| InvalidTypename {
            input: address.to_owned(),
            reason: "an address must be of the form `namespace/name/id`",
        })?;
        Address::from_typename(typename, id)
    }
}

/// An address as the runtime sends it, its parts taken as they are, unchecked.
impl From<wire::Address> for Address {
    fn from(address: wire::Address) -> Self {
        Address::from_wire(address.namespace, address.r#type, address.id)
    }
}

impl From<&Address> for wire::Address {
    fn from(address: &Address) -> Self {
        wire::Address {
            namespace: address.namespace().to_owned(),
            r#type: address.name().to_owned(),
            id: address.id().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typenames_split_at_the_last_slash() {
        let cases = [
            ("foo/bar", ("foo", "bar")),
            ("org.foo/greeter", ("org.foo", "greeter")),
            ("com.example/app/greeter", ("com.example/app", "greeter")),
            ("a//b", ("a/", "b")),
        ];
        for (input, (namespace, name)) in cases {
            let parsed: FunctionType = input.parse().unwrap();
            assert_eq!(
                (parsed.namespace(), parsed.name()),
                (namespace, name),
                "input {input:?}"
            );
            assert_eq!(parsed.to_string(), input);
            assert_eq!(parsed, input);
        }
    }

    #[test]
    fn malformed_typenames_are_rejected_with_the_input_quoted() {
        for input in ["", "/", "/bar", "n/", "noslash", "a/b/"] {
            let err = input.parse::<FunctionType>().unwrap_err();
            assert_eq!(err.input(), input);
            assert!(err.to_string().contains(&format!("`{input}`")), "{err}");
            assert_ne!(FunctionType::default(), input);
        }
    }

    #[test]
    fn parts_that_would_print_as_another_function_type_are_refused() {
        for (namespace, name) in [("a", "b/c"), ("", "b"), ("a", ""), ("a", "/")] {
            let err = FunctionType::new(namespace, name).unwrap_err();
            assert_eq!(err.input(), format!("{namespace}/{name}"));
            assert!(Address::new(namespace, name, "id").is_err());
        }
        for (namespace, name) in [("a/b", "c"), ("com.example", "greeter"), ("a/", "b")] {
            let function_type = FunctionType::new(namespace, name).unwrap();
            let text = function_type.to_string();
            assert_eq!(
                text.parse::<FunctionType>().unwrap(),
                function_type,
                "{text}"
            );
        }
    }

    #[test]
    fn an_address_displays_as_namespace_name_id() {
        let address = Address::from_typename("com.example/app/greeter", "alice").unwrap();
        assert_eq!(address.namespace(), "com.example/app");
        assert_eq!(address.name(), "greeter");
        assert_eq!(address.id(), "alice");
        assert_eq!(address.function_type(), "com.example/app/greeter");
        assert_eq!(address.to_string(), "com.example/app/greeter/alice");
    }

    #[test]
    fn addresses_convert_to_the_wire_and_back() {
        let address = Address::new("ns", "f", "1").unwrap();
        let on_wire = wire::Address::from(&address);
        assert_eq!(
            (on_wire.namespace.as_str(), on_wire.r#type.as_str()),
            ("ns", "f")
        );
        assert_eq!(Address::from(on_wire), address);
    }
}
