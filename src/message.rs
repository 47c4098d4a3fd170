//! Packing messages into `Any` and decoding them back: one type, or one of several.

use std::error::Error as StdError;
use std::fmt;

use prost::{Message as ProstMessage, Name};
use prost_types::Any;

use crate::address::Address;
use crate::error::Error;
use crate::text::Shown;
use crate::types::{EncodeError, Type, TypeName};

/// A function argument that can be decoded from the `Any` a message travels in: any
/// prost message with [`prost::Name`] (generated with `enable_type_names()`), or an enum of
/// several made with [`message_union!`](crate::message_union).
///
/// Used by [`StatefulFunctions::bind_typed`](crate::StatefulFunctions::bind_typed). The
/// type is recognised by the full message name after the type URL's last `/`, as the
/// Python SDK's `Any.Is` does, so any type URL domain is accepted.
pub trait FromAny: Sized {
    /// The full protobuf names of the message types accepted, e.g. `["example.User"]`.
    fn type_names() -> Vec<String>;

    /// Decodes `any`: `None` when it holds no type accepted here, `Some(Err(_))` when it
    /// holds one whose bytes do not decode.
    fn from_any(any: &Any) -> Option<Result<Self, prost::DecodeError>>;

    /// As [`from_any`](Self::from_any), for an `Any` given as its two fields, which the
    /// handler borrows from the request body. The default builds the `Any`; prost
    /// messages and [`message_union!`](crate::message_union) enums decode without it.
    #[doc(hidden)]
    fn from_parts(type_url: &str, value: &[u8]) -> Option<Result<Self, prost::DecodeError>> {
        Self::from_any(&Any {
            type_url: type_url.to_owned(),
            value: value.to_vec(),
        })
    }
}

impl<M: ProstMessage + Name + Default> FromAny for M {
    fn type_names() -> Vec<String> {
        vec![M::full_name()]
    }

    fn from_any(any: &Any) -> Option<Result<Self, prost::DecodeError>> {
        Self::from_parts(&any.type_url, &any.value)
    }

    fn from_parts(type_url: &str, value: &[u8]) -> Option<Result<Self, prost::DecodeError>> {
        is_type::<M>(type_url).then(|| M::decode(value))
    }
}

/// Whether `type_url` names the message type `M`: whether it has a `/` and its part after
/// the last `/` is `M`'s full name, as protobuf's `Any.Is` decides in Python and Java (a
/// bare `pkg.Message` is no type URL). Compared from the end, without searching for the
/// `/` (a protobuf name has none) and without allocating.
pub(crate) fn is_type<M: Name>(type_url: &str) -> bool {
    let Some(rest) = type_url.strip_suffix(M::NAME) else {
        return false;
    };
    let rest = if M::PACKAGE.is_empty() {
        rest
    } else {
        match rest
            .strip_suffix('.')
            .and_then(|rest| rest.strip_suffix(M::PACKAGE))
        {
            Some(rest) => rest,
            None => return false,
        }
    };
    rest.ends_with('/')
}

/// A value to send or store: its type and its bytes, written straight into the reply by
/// the protocol, in whatever message the protocol wraps values in (2.2: `Any`; 3.x:
/// `TypedValue`). This is the one shape in which the core hands a value to a protocol.
///
/// Public only so that [`Value`] can name it: the module is private, so no user can.
pub trait Payload {
    /// The length of the type (a type URL or typename), in bytes; 0 for none.
    fn type_len(&self) -> usize;
    /// Appends the type.
    fn put_type(&self, buf: &mut Vec<u8>);
    /// How many bytes [`put_value`](Self::put_value) is expected to write (the protocol
    /// writes the lengths around the value for it, and writes them again if the value
    /// turns out otherwise: see [`Type::encoded_len_hint`]); `None` when there is no value,
    /// only a typename (3.x's `TypedValue` with `has_value` false, which 2.2's `Any`
    /// cannot say), and `put_value` writes nothing.
    fn value_len_hint(&self) -> Option<usize>;
    /// Appends the value's bytes. The protocol writes them before anything that states
    /// their length, so the length in the reply is what this wrote; on an error it
    /// removes whatever this appended, and records nothing.
    fn put_value(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError>;
}

/// The type of `payload` as text, for error messages.
pub(crate) fn type_of(payload: &dyn Payload) -> String {
    let mut typename = Vec::with_capacity(payload.type_len());
    payload.put_type(&mut typename);
    // A type URL and a typename are UTF-8 already; nothing is lost.
    String::from_utf8_lossy(&typename).into_owned()
}

/// The error for `payload`'s value, which could not be encoded for `destination` (e.g.
/// ``state `seen` ``); the text is made only on this path.
#[cold]
pub(crate) fn unencodable(
    payload: &dyn Payload,
    destination: impl FnOnce() -> String,
    source: EncodeError,
) -> Error {
    Error::UnencodableValue {
        typename: type_of(payload),
        destination: destination().into_boxed_str(),
        source,
    }
}

/// An `Any` sends its type URL and value as they are.
impl Payload for Any {
    fn type_len(&self) -> usize {
        self.type_url.len()
    }

    fn put_type(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.type_url.as_bytes());
    }

    fn value_len_hint(&self) -> Option<usize> {
        Some(self.value.len())
    }

    fn put_value(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        buf.extend_from_slice(&self.value);
        Ok(())
    }
}

impl<P: Payload + ?Sized> Payload for &P {
    fn type_len(&self) -> usize {
        (**self).type_len()
    }

    fn put_type(&self, buf: &mut Vec<u8>) {
        (**self).put_type(buf)
    }

    fn value_len_hint(&self) -> Option<usize> {
        (**self).value_len_hint()
    }

    fn put_value(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        (**self).put_value(buf)
    }
}

/// Packs `message` into an `Any` with the type URL `type.googleapis.com/<full name>`.
///
/// The prefix is always `type.googleapis.com/`, as in the Python SDK and the runtime,
/// whatever [`Name::type_url`] says: prost's default for a hand-written `Name` impl is
/// `/<full name>`. Encoding into a growing `Vec` cannot fail, so unlike
/// `prost_types::Any::from_msg` this returns no `Result`.
pub fn pack<M: ProstMessage + Name>(message: &M) -> Any {
    Any {
        type_url: TypeName::of_message::<M>().to_string(),
        value: message.encode_to_vec(),
    }
}

/// A value of a [`Type`], encoded as it is written, or only the type's typename (`None`).
/// Public only so that [`Value`] can name it: the module is private, so no user can.
#[derive(Debug)]
pub struct Typed<'a, T>(pub(crate) Option<&'a T>);

impl<T: Type> Payload for Typed<'_, T> {
    #[inline]
    fn type_len(&self) -> usize {
        T::type_name().len()
    }

    #[inline]
    fn put_type(&self, buf: &mut Vec<u8>) {
        T::type_name().put(buf)
    }

    fn value_len_hint(&self) -> Option<usize> {
        self.0.map(Type::encoded_len_hint)
    }

    fn put_value(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self.0 {
            Some(value) => value.encode_value(buf),
            None => Ok(()),
        }
    }
}

/// A value a [`Context`](crate::Context) can send:
///
/// - a reference to a value of any [`Type`], e.g. `&42`, `&my_message`;
/// - a `&str`, as a `String` (`io.statefun.types/string`);
/// - `None::<&T>`, the typename of `T` with no value (3.x only: a `TypedValue` with
///   `has_value` false, as Python's `to_typed_value(T, None)`), and `Some(&value)`;
/// - a received [`Message`], as it came: its typename, its bytes, or no value;
/// - a [`RawValue`], a typename and optional bytes chosen at run time;
/// - an [`Any`] as it is (on 3.x its type URL is the typename).
pub trait Value: private::Sealed {
    /// What the protocol writes.
    #[doc(hidden)]
    type Payload<'p>: Payload
    where
        Self: 'p;

    #[doc(hidden)]
    fn payload(&self) -> Self::Payload<'_>;
}

mod private {
    pub trait Sealed {}
    impl Sealed for prost_types::Any {}
    impl Sealed for &prost_types::Any {}
    impl<T: super::Type> Sealed for &T {}
    impl<T: super::Type> Sealed for Option<&T> {}
    impl Sealed for &str {}
    impl Sealed for super::Message<'_> {}
    impl Sealed for &super::Message<'_> {}
    impl Sealed for super::RawValue {}
    impl Sealed for &super::RawValue {}
}

impl Value for Any {
    type Payload<'p> = &'p Any;

    fn payload(&self) -> &Any {
        self
    }
}

impl Value for &Any {
    type Payload<'p>
        = &'p Any
    where
        Self: 'p;

    fn payload(&self) -> &Any {
        self
    }
}

impl<T: Type> Value for &T {
    type Payload<'p>
        = Typed<'p, T>
    where
        Self: 'p;

    fn payload(&self) -> Typed<'_, T> {
        Typed(Some(*self))
    }
}

impl<T: Type> Value for Option<&T> {
    type Payload<'p>
        = Typed<'p, T>
    where
        Self: 'p;

    fn payload(&self) -> Typed<'_, T> {
        Typed(*self)
    }
}

/// `"text"` sends what `&"text".to_string()` sends, without building the `String`.
impl Value for &str {
    type Payload<'p>
        = Text<'p>
    where
        Self: 'p;

    fn payload(&self) -> Text<'_> {
        Text(self)
    }
}

/// A received message is sent on as it came: its typename, and its bytes or no value.
impl<'a> Value for Message<'a> {
    type Payload<'p>
        = Message<'a>
    where
        Self: 'p;

    fn payload(&self) -> Message<'a> {
        *self
    }
}

impl<'a> Value for &Message<'a> {
    type Payload<'p>
        = Message<'a>
    where
        Self: 'p;

    fn payload(&self) -> Message<'a> {
        **self
    }
}

/// A typed value whose type is chosen at run time: a typename and its bytes, or the
/// typename alone (no value, 3.x). For routers, forwarders and replay tools that handle
/// values of many types alike; a function that knows its types uses them, as `&T`.
///
/// It is a [`Value`]: send it anywhere a value goes, or keep it in a state with
/// [`Context::set_state`](crate::Context::set_state), and read it back with
/// [`Context::get_state`](crate::Context::get_state) (`RawValue::from(any)`). A received
/// [`Message`] becomes one with [`Message::to_raw`].
///
/// ```
/// use statefun_sync::{Context, Message, RawValue};
///
/// /// Sends every message on to `example/sink`, ints to one instance and the rest to
/// /// another, each under its own typename, with its bytes or without a value.
/// fn route(ctx: &mut Context, message: Message) -> anyhow::Result<()> {
///     let raw: RawValue = message.to_raw();
///     let id = if raw.is::<i32>() { "ints" } else { "others" };
///     ctx.send("example/sink", id, &raw)?;
///     Ok(())
/// }
///
/// let five = RawValue::of(&5i32)?;
/// assert_eq!((five.typename(), five.bytes()), ("io.statefun.types/int", Some(&[0x0d, 5, 0, 0, 0][..])));
/// assert_eq!(five.get::<i32>()?, Some(5));
/// assert!(!RawValue::without_value("example/Ping").has_value());
/// # Ok::<(), statefun_sync::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawValue {
    typename: String,
    value: Option<Vec<u8>>,
}

impl RawValue {
    /// The value `bytes` of type `typename`, as the type encodes it.
    pub fn new(typename: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        RawValue {
            typename: typename.into(),
            value: Some(bytes.into()),
        }
    }

    /// The typename alone, with no value (3.x only: a `TypedValue` with `has_value` false).
    pub fn without_value(typename: impl Into<String>) -> Self {
        RawValue {
            typename: typename.into(),
            value: None,
        }
    }

    /// `value`, encoded by its [`Type`].
    ///
    /// # Errors
    ///
    /// [`Error::UnencodableValue`] if the type cannot encode it.
    pub fn of<T: Type>(value: &T) -> Result<Self, Error> {
        let bytes = encoded(value, "a raw value")?;
        Ok(RawValue::new(T::type_name().to_string(), bytes))
    }

    /// The typename.
    pub fn typename(&self) -> &str {
        &self.typename
    }

    /// The bytes, as the type encodes them; `None` when there is no value.
    pub fn bytes(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    /// Whether there is a value.
    pub fn has_value(&self) -> bool {
        self.value.is_some()
    }

    /// Whether the value is of type `T`: whether its typename is `T`'s.
    pub fn is<T: Type>(&self) -> bool {
        T::type_name().is(&self.typename)
    }

    /// The value decoded as a `T`; `None` when there is no value.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the value is of another type, or its bytes do not
    /// decode as a `T`.
    pub fn get<T: Type>(&self) -> Result<Option<T>, Error> {
        let invalid = |reason: String| Error::InvalidArgument {
            operation: "RawValue::get",
            reason,
        };
        if !self.is::<T>() {
            return Err(invalid(format!(
                "the value is of type {}, not {}",
                Shown(&self.typename),
                T::type_name()
            )));
        }
        let Some(bytes) = &self.value else {
            return Ok(None);
        };
        T::decode_value(bytes).map(Some).map_err(|source| {
            invalid(format!(
                "a value of type {} does not decode: {source}",
                Shown(&self.typename)
            ))
        })
    }
}

/// `value` as its [`Type`] encodes it, on its own; an error names `destination` (e.g. `a
/// raw value`) and the type when the type cannot encode it.
pub(crate) fn encoded<T: Type>(value: &T, destination: &str) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::with_capacity(value.encoded_len_hint());
    match value.encode_value(&mut bytes) {
        Ok(()) => Ok(bytes),
        Err(source) => Err(Error::UnencodableValue {
            typename: T::type_name().to_string(),
            destination: destination.into(),
            source,
        }),
    }
}

/// A state's value read with [`Context::get_state`](crate::Context::get_state): its type
/// URL is its typename (3.x).
impl From<Any> for RawValue {
    fn from(any: Any) -> Self {
        RawValue::new(any.type_url, any.value)
    }
}

impl Payload for RawValue {
    fn type_len(&self) -> usize {
        self.typename.len()
    }

    fn put_type(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.typename.as_bytes());
    }

    fn value_len_hint(&self) -> Option<usize> {
        self.value.as_ref().map(Vec::len)
    }

    fn put_value(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        buf.extend_from_slice(self.bytes().unwrap_or_default());
        Ok(())
    }
}

impl Value for RawValue {
    type Payload<'p> = &'p RawValue;

    fn payload(&self) -> &RawValue {
        self
    }
}

impl Value for &RawValue {
    type Payload<'p>
        = &'p RawValue
    where
        Self: 'p;

    fn payload(&self) -> &RawValue {
        self
    }
}

/// A text sent as the built-in `String` type. Public only so that [`Value`] can name it:
/// the module is private, so no user can.
#[derive(Debug)]
pub struct Text<'a>(&'a str);

impl Payload for Text<'_> {
    fn type_len(&self) -> usize {
        crate::types::builtin::STRING.len()
    }

    fn put_type(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(crate::types::builtin::STRING.as_bytes());
    }

    fn value_len_hint(&self) -> Option<usize> {
        Some(crate::types::string_len(self.0))
    }

    fn put_value(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        crate::types::put_string(self.0, buf);
        Ok(())
    }
}

impl Payload for Message<'_> {
    fn type_len(&self) -> usize {
        self.typename.len()
    }

    fn put_type(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.typename.as_bytes());
    }

    fn value_len_hint(&self) -> Option<usize> {
        self.value.map(<[u8]>::len)
    }

    fn put_value(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        buf.extend_from_slice(self.value.unwrap_or_default());
        Ok(())
    }
}

/// A message a function received: its typename and its bytes (or none: a 3.x message can
/// carry a typename alone), read as a [`Type`] on demand. What
/// [`StatefulFunctions::bind_message`](crate::StatefulFunctions::bind_message) hands the
/// function, borrowed from the request. It is a [`Value`] too: sent on, it goes as it came.
///
/// ```
/// # use statefun_sync::{Context, Message};
/// fn greet(ctx: &mut Context, message: Message) -> anyhow::Result<()> {
///     if message.is::<String>() {
///         // `None` when the message has no value, as Python's `as_string()`.
///         let name: Option<String> = message.get()?;
///         println!("hello {}", name.unwrap_or_default());
///     }
///     Ok(())
/// }
/// ```
///
/// # The name
///
/// `Message` is what every Stateful Functions SDK calls a received message (Java's and
/// JavaScript's `Message`, Go's `statefun.Message`, Python's `Message`), so a port reads
/// the same. It shares its name with prost's trait [`prost::Message`], which code using
/// this crate rarely names: the derive is spelled `#[derive(prost::Message)]`, and the
/// trait's methods (`encode_to_vec`, `decode`) need it in scope only as
/// `use prost::Message as _;`, which leaves the name to this type.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    typename: &'a str,
    value: Option<&'a [u8]>,
    address: &'a Address,
    invocation: usize,
}

impl<'a> Message<'a> {
    pub(crate) fn new(
        typename: &'a str,
        value: Option<&'a [u8]>,
        address: &'a Address,
        invocation: usize,
    ) -> Self {
        Message {
            typename,
            value,
            address,
            invocation,
        }
    }

    /// The message's typename (on 2.2, its `Any`'s type URL).
    pub fn typename(&self) -> &'a str {
        self.typename
    }

    /// The message's bytes, as its type encodes them; `None` when it has no value (3.x),
    /// as Python's `raw_value()`.
    pub fn bytes(&self) -> Option<&'a [u8]> {
        self.value
    }

    /// Whether the message has a value: a 3.x message can carry a typename alone
    /// (`has_value` false); a 2.2 message always has one.
    pub fn has_value(&self) -> bool {
        self.value.is_some()
    }

    /// Whether the message is of type `T`: whether its typename is `T`'s.
    pub fn is<T: Type>(&self) -> bool {
        T::type_name().is(self.typename)
    }

    /// The message decoded as a `T`; `None` when it has no value, as Python's
    /// `as_type(T)`.
    ///
    /// # Errors
    ///
    /// [`Error::UnexpectedMessageType`] if the message is of another type;
    /// [`Error::MalformedArgument`] if its bytes do not decode as a `T`. Both are the
    /// request's fault (400) when a function passes them up with `?`.
    pub fn get<T: Type>(&self) -> Result<Option<T>, Error> {
        if !self.is::<T>() {
            return Err(Error::UnexpectedMessageType {
                address: Box::new(self.address.clone()),
                invocation: self.invocation,
                expected: vec![T::type_name().to_string()],
                actual: self.typename.to_owned(),
            });
        }
        let Some(value) = self.value else {
            return Ok(None);
        };
        T::decode_value(value)
            .map(Some)
            .map_err(|source| Error::MalformedArgument {
                address: Box::new(self.address.clone()),
                invocation: self.invocation,
                type_url: self.typename.to_owned(),
                source,
            })
    }

    /// The message, owned, as a [`RawValue`]: its typename, and its bytes or no value.
    pub fn to_raw(&self) -> RawValue {
        RawValue {
            typename: self.typename.to_owned(),
            value: self.value.map(<[u8]>::to_vec),
        }
    }

    /// The message as an `Any`: its typename as the type URL, and no bytes when it has no
    /// value.
    pub fn to_any(&self) -> Any {
        Any {
            type_url: self.typename.to_owned(),
            value: self.value.unwrap_or_default().to_vec(),
        }
    }
}

/// Unpacks `any` into the message type `M`. The type is recognised by the full message
/// name after the type URL's last `/`, as the SDKs do, so any type URL domain is accepted.
///
/// ```
/// use statefun_sync::{pack, unpack};
///
/// let any = pack(&prost_types::Duration { seconds: 5, nanos: 0 });
/// assert_eq!(unpack::<prost_types::Duration>(&any)?.seconds, 5);
/// assert!(unpack::<prost_types::Timestamp>(&any).is_err());
/// # Ok::<(), statefun_sync::UnpackError>(())
/// ```
///
/// # Errors
///
/// [`UnpackError::WrongType`] if `any` holds another message type;
/// [`UnpackError::Malformed`] if its bytes do not decode as `M`.
pub fn unpack<M: ProstMessage + Name + Default>(any: &Any) -> Result<M, UnpackError> {
    if !is_type::<M>(&any.type_url) {
        return Err(UnpackError::WrongType {
            expected: M::full_name(),
            actual: any.type_url.clone(),
        });
    }
    M::decode(any.value.as_slice()).map_err(|source| UnpackError::Malformed {
        type_url: any.type_url.clone(),
        source,
    })
}

/// Why an `Any` could not be unpacked into a message type.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum UnpackError {
    /// The `Any` holds another message type.
    WrongType {
        /// The full name of the message type asked for.
        expected: String,
        /// The `Any`'s type URL.
        actual: String,
    },
    /// The `Any` holds the message type asked for, but its bytes do not decode.
    Malformed {
        /// The `Any`'s type URL.
        type_url: String,
        /// What prost could not decode.
        source: prost::DecodeError,
    },
}

impl fmt::Display for UnpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnpackError::WrongType { expected, actual } => write!(
                f,
                "expected a message of type `{expected}`, found one of type `{actual}`"
            ),
            UnpackError::Malformed { type_url, .. } => {
                write!(f, "a message of type `{type_url}` does not decode")
            }
        }
    }
}

impl StdError for UnpackError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            UnpackError::WrongType { .. } => None,
            UnpackError::Malformed { source, .. } => Some(source),
        }
    }
}

/// Defines an enum of message types that a function accepts, the Rust form of the
/// Python SDK's `typing.Union[User, Admin]`, and implements [`FromAny`] for it, so
/// [`StatefulFunctions::bind_typed`](crate::StatefulFunctions::bind_typed) dispatches on
/// the type URL.
///
/// ```
/// use statefun_sync::{message_union, Context, StatefulFunctions};
///
/// message_union! {
///     /// What `example/goodbye` accepts (well-known types stand in for your own).
///     #[derive(Debug)]
///     pub enum Visitor {
///         User(prost_types::Timestamp),
///         Admin(prost_types::Duration),
///     }
/// }
///
/// fn goodbye(_ctx: &mut Context, message: Visitor) -> anyhow::Result<()> {
///     match message {
///         Visitor::User(_) => println!("Goodbye user"),
///         Visitor::Admin(_) => println!("Goodbye admin"),
///     }
///     Ok(())
/// }
///
/// let mut functions = StatefulFunctions::new();
/// functions.bind_typed("example/goodbye", goodbye)?;
/// # Ok::<(), statefun_sync::Error>(())
/// ```
#[macro_export]
macro_rules! message_union {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident($ty:ty)),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$variant_meta])* $variant($ty)),+
        }

        impl $crate::FromAny for $name {
            fn type_names() -> ::std::vec::Vec<::std::string::String> {
                let mut names = ::std::vec::Vec::new();
                $(names.extend(<$ty as $crate::FromAny>::type_names());)+
                names
            }

            fn from_any(
                any: &$crate::__private::Any,
            ) -> ::std::option::Option<::std::result::Result<Self, $crate::__private::DecodeError>> {
                <Self as $crate::FromAny>::from_parts(&any.type_url, &any.value)
            }

            fn from_parts(
                type_url: &str,
                value: &[u8],
            ) -> ::std::option::Option<::std::result::Result<Self, $crate::__private::DecodeError>> {
                $(
                    if let ::std::option::Option::Some(result) = <$ty as $crate::FromAny>::from_parts(type_url, value) {
                        return ::std::option::Option::Some(result.map($name::$variant));
                    }
                )+
                ::std::option::Option::None
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_urls_match_on_the_full_name_after_the_last_slash() {
        let cases = [
            ("type.googleapis.com/google.protobuf.Duration", true),
            ("example.com/types/google.protobuf.Duration", true),
            ("/google.protobuf.Duration", true),
            ("google.protobuf.Duration", false),
            ("type.googleapis.com/google.protobuf.Timestamp", false),
            ("type.googleapis.com/protobuf.Duration", false),
            ("type.googleapis.com/google.protobufXDuration", false),
            ("", false),
        ];
        for (url, expected) in cases {
            assert_eq!(
                is_type::<prost_types::Duration>(url),
                expected,
                "url {url:?}"
            );
        }
    }

    #[test]
    fn a_packed_message_decodes_back() {
        let message = prost_types::Duration {
            seconds: 3,
            nanos: 4,
        };
        let any = pack(&message);
        assert_eq!(any.type_url, "type.googleapis.com/google.protobuf.Duration");
        assert_eq!(
            prost_types::Duration::from_any(&any).unwrap().unwrap(),
            message
        );
        assert!(prost_types::Timestamp::from_any(&any).is_none());
    }

    /// A hand-written `Name` impl, whose default `type_url()` is `/<full name>`.
    #[derive(Clone, PartialEq, prost::Message)]
    struct HandWritten {}

    impl Name for HandWritten {
        const NAME: &'static str = "HandWritten";
        const PACKAGE: &'static str = "example";
    }

    #[test]
    fn packing_always_uses_the_googleapis_prefix() {
        assert_eq!(HandWritten::type_url(), "/example.HandWritten");
        assert_eq!(
            pack(&HandWritten {}).type_url,
            "type.googleapis.com/example.HandWritten"
        );
    }
}
