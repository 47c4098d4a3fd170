//! Function types (`namespace/name`) and addresses (`namespace/name/id`).

use std::fmt;

use crate::error::Error;

/// The address of one function instance: its function type (`namespace/name`) and its id.
///
/// ```
/// use statefun_sync::Address;
///
/// let address = Address::from_typename("example/greeter", "alice")?;
/// assert_eq!(address.typename(), "example/greeter");
/// assert_eq!(address.to_string(), "example/greeter/alice");
/// # Ok::<(), statefun_sync::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    namespace: String,
    name: String,
    id: String,
}

impl Address {
    /// An address from its three parts, taken as they are.
    ///
    /// The runtime's own addresses (the target and the caller of a request) arrive this
    /// way. Use [`Address::from_typename`] to check a function type written by hand.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        id: impl Into<String>,
    ) -> Self {
        Address {
            namespace: namespace.into(),
            name: name.into(),
            id: id.into(),
        }
    }

    /// The address of `id` within the function type `typename` (`namespace/name`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTypename`] if `typename` is not `namespace/name` with both parts
    /// non-empty (see [`parse_typename`]).
    pub fn from_typename(typename: &str, id: impl Into<String>) -> Result<Self, Error> {
        let (namespace, name) = parse_typename(typename)?;
        Ok(Address::new(namespace, name, id))
    }

    /// The namespace, e.g. `example` in `example/greeter/alice`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The function type's name, e.g. `greeter` in `example/greeter/alice`
    /// (the protocol's `type` field).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The id of the instance, e.g. `alice` in `example/greeter/alice`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The function type, `namespace/name`.
    pub fn typename(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether this address belongs to the function type `namespace/name`, without
    /// building the typename.
    pub(crate) fn is_type(&self, namespace: &str, name: &str) -> bool {
        self.namespace == namespace && self.name == name
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.name, self.id)
    }
}

/// Splits a function type `namespace/name` into its namespace and name.
///
/// The split is at the **last** `/`, so a namespace may itself contain slashes
/// (`com.example/app/greeter` is namespace `com.example/app`, name `greeter`). Both
/// parts must be non-empty. This is the Python SDK's `parse_typename`.
///
/// ```
/// use statefun_sync::parse_typename;
///
/// assert_eq!(parse_typename("org.foo/greeter")?, ("org.foo", "greeter"));
/// assert!(parse_typename("/greeter").is_err());
/// # Ok::<(), statefun_sync::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidTypename`], quoting the input, if it has no `/`, or if the part
/// before or after the last `/` is empty.
pub fn parse_typename(typename: &str) -> Result<(&str, &str), Error> {
    let invalid = |reason| Error::InvalidTypename {
        input: typename.to_owned(),
        reason,
    };
    let (namespace, name) = typename
        .rsplit_once('/')
        .ok_or_else(|| invalid("a function type must be of the form `namespace/name`"))?;
    if namespace.is_empty() {
        return Err(invalid("the namespace (before the last `/`) is empty"));
    }
    if name.is_empty() {
        return Err(invalid("the name (after the last `/`) is empty"));
    }
    Ok((namespace, name))
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
        for (input, expected) in cases {
            assert_eq!(parse_typename(input).unwrap(), expected, "input {input:?}");
        }
    }

    #[test]
    fn malformed_typenames_are_rejected_with_the_input_quoted() {
        for input in ["", "/", "/bar", "n/", "noslash", "a/b/"] {
            let err = parse_typename(input).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidTypename { input: quoted, .. } if quoted == input),
                "input {input:?}: {err:?}"
            );
            assert!(err.to_string().contains(&format!("`{input}`")), "{err}");
        }
    }

    #[test]
    fn an_address_displays_as_namespace_name_id() {
        let address = Address::from_typename("com.example/app/greeter", "alice").unwrap();
        assert_eq!(address.namespace(), "com.example/app");
        assert_eq!(address.name(), "greeter");
        assert_eq!(address.id(), "alice");
        assert_eq!(address.typename(), "com.example/app/greeter");
        assert_eq!(address.to_string(), "com.example/app/greeter/alice");
    }
}
