//! [`Context`]: what a function sees of its batch, and how it acts.

use std::cell::Cell;
use std::fmt;
use std::time::Duration;

use prost_types::Any;

use crate::address::{Address, FunctionType};
use crate::error::Error;
use crate::message::{type_of, unencodable, Typed, Value};
use crate::protocol::{
    AddressRef, Caller, Change, Delayed, DelayedError, Effects, Invocation, Mutations, Payload,
    Protocol, ProtocolVersion, States, WireError,
};
use crate::state_spec::StateSpec;
use crate::text::Shown;
use crate::types::{Type, TypeName};
use crate::value_spec::ValueSpec;

/// What a function sees of the batch it runs in, and how it acts: its address, the
/// current message's caller, its states, and the messages it sends.
///
/// One `Context` serves a whole batch: a state set by one invocation is what the next
/// invocation of the batch reads. Everything a function does through it is collected and
/// becomes the reply only when the whole batch succeeded.
///
/// The methods at a glance, with the errors each can return, are in the guide's
/// [Context reference](crate::guide::functions#context-reference).
///
/// States are reached two ways, for two kinds of state: by [`ValueSpec`] ([`get`],
/// [`set`], [`remove`]), typed and checked against what the function's binding declares,
/// the way of the 3.x SDKs; and by name ([`get_state`], [`set_state`], [`remove_state`]),
/// as the raw `Any` the runtime carries, for a 2.2 state that `module.yaml` declares and
/// whose type the function decides as it reads it, or a 3.x state read with its typename.
/// A protobuf message is a value once [`protobuf_type!`](crate::protobuf_type) names it
/// (or packed into an `Any` with [`pack`](crate::pack)): there is no separate "pack and
/// send".
///
/// [`get`]: Self::get
/// [`set`]: Self::set
/// [`remove`]: Self::remove
/// [`get_state`]: Self::get_state
/// [`set_state`]: Self::set_state
/// [`remove_state`]: Self::remove_state
pub struct Context<'a> {
    /// The wire format of the request, and of the reply being built.
    protocol: &'static dyn Protocol,
    address: &'a Address,
    /// The states the function's binding declares, which its typed state access checks.
    declared: &'a [StateSpec],
    /// The batch's invocations, where the callers are: so that [`caller`](Self::caller)
    /// lends one for as long as the batch runs, not just until the next call.
    invocations: &'a [Invocation<'a>],
    /// The invocation whose caller is the current one (a batch from one caller decodes
    /// it once, for its first invocation).
    caller_at: Option<usize>,
    invocation: usize,
    /// As the request carried them: serialized `Any`s borrowed from the request body,
    /// never decoded unless read, and never copied.
    states: States<'a>,
    /// What the batch changed, by position in `states`; empty until the first change, so
    /// a batch that only reads allocates nothing for its states.
    changes: Vec<Change>,
    /// Whether every value sent or stored must have one (2.2, whose `Any` cannot say
    /// otherwise).
    values_always_present: bool,
    effects: Effects,
    /// The spec [`check_declared`](Self::check_declared) last found declared, so that a
    /// function that reads and writes one state, invocation after invocation, scans the
    /// binding's states once a batch.
    declared_last: Cell<Option<SpecKey>>,
}

/// Which spec a typed access used: the address and length of its `'static` name, and its
/// type's `type_name` function. Equal keys are the same name (the same bytes, never freed)
/// and the same type (or two whose `type_name` compiled to one function, which gives the
/// same typename), so what was found declared for one holds for the other.
type SpecKey = (usize, usize, usize);

impl<'a> Context<'a> {
    pub(crate) fn new(
        protocol: &'static dyn Protocol,
        address: &'a Address,
        declared: &'a [StateSpec],
        states: States<'a>,
        invocations: &'a [Invocation<'a>],
    ) -> Self {
        Context {
            protocol,
            address,
            declared,
            invocations,
            caller_at: None,
            invocation: 0,
            states,
            changes: Vec::new(),
            values_always_present: protocol.version() == ProtocolVersion::V2,
            effects: Effects::default(),
            declared_last: Cell::new(None),
        }
    }

    /// Moves on to the invocation at `index`.
    pub(crate) fn begin_invocation(&mut self, index: usize) {
        self.invocation = index;
        if let Caller::Is(_) = self.invocations[index].caller {
            self.caller_at = Some(index);
        }
    }

    pub(crate) fn invocation_index(&self) -> usize {
        self.invocation
    }

    /// The reply to the batch: one mutation per changed state, in the request's state
    /// order, then the messages in the order they were sent.
    pub(crate) fn encode_reply(&self) -> Vec<u8> {
        let mutations = Mutations {
            states: self.states.as_slice(),
            changes: &self.changes,
        };
        self.protocol.encode_reply(mutations, &self.effects)
    }

    /// How many states the batch changed.
    pub(crate) fn changed_states(&self) -> usize {
        self.changes
            .iter()
            .filter(|change| !matches!(change, Change::Unchanged))
            .count()
    }

    /// The bytes of the state values the request carried, as it carried them.
    #[cfg(feature = "metrics")]
    pub(crate) fn read_bytes(&self) -> usize {
        self.states.value_bytes()
    }

    /// The bytes of the values the batch set, as the reply carries them (a deleted state
    /// has none).
    #[cfg(feature = "metrics")]
    pub(crate) fn written_bytes(&self) -> usize {
        self.changes
            .iter()
            .map(|change| match change {
                Change::Set(value) => value.len(),
                Change::Unchanged | Change::Deleted => 0,
            })
            .sum()
    }

    /// The address being invoked: this function's type and the id of the instance. Lent
    /// for as long as the batch runs, as [`caller`](Self::caller).
    pub fn address(&self) -> &'a Address {
        self.address
    }

    /// The protocol version of the batch (the handler's).
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.protocol.version()
    }

    /// The address of the function that sent the current message, or `None` when the
    /// message came from an ingress.
    ///
    /// It is lent for as long as the batch runs, so it can be sent to while held:
    ///
    /// ```
    /// # use statefun_sync::{Context, Message};
    /// fn count(ctx: &mut Context, _: Message) -> anyhow::Result<()> {
    ///     if let Some(caller) = ctx.caller() {
    ///         ctx.send_to(caller, &1)?;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn caller(&self) -> Option<&'a Address> {
        match self.invocations[self.caller_at?].caller {
            Caller::Is(ref caller) => caller.as_ref(),
            Caller::Unchanged => None,
        }
    }

    /// Sends `message` to the function instance `id` of type `typename` (`namespace/name`):
    /// any [`Value`], e.g. a reference to a value of any [`Type`] (`&42`, `&my_message`),
    /// which travels under its type's typename, `None::<&T>` for the typename alone (3.x),
    /// or a received [`Message`](crate::Message) as it came.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTypename`] if `typename` is not `namespace/name`;
    /// [`Error::InvalidArgument`] if `id` is empty, or for a value without a value on 2.2;
    /// [`Error::UnencodableValue`] if the value cannot be encoded.
    pub fn send<V: Value>(&mut self, typename: &str, id: &str, message: V) -> Result<(), Error> {
        let target = target_address("send", typename, id)?;
        self.push_message("send", "a message to", target, &message.payload())
    }

    /// Sends `message` to `target`, an address the function holds: its
    /// [`caller`](Self::caller), or one it kept, with nothing parsed again. Otherwise as
    /// [`send`](Self::send).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the target's id is empty, or for a value without a
    /// value on 2.2; [`Error::UnencodableValue`] if the value cannot be encoded.
    pub fn send_to<V: Value>(&mut self, target: &Address, message: V) -> Result<(), Error> {
        if target.id().is_empty() {
            return Err(empty_id("send_to", target.typename()));
        }
        self.push_message(
            "send_to",
            "a message to",
            AddressRef::from(target),
            &message.payload(),
        )
    }

    /// Sends `message` (any [`Value`]) to the caller of the current
    /// message. The 2.2 SDKs call this `reply`; the 3.x SDKs have no such call, and send to
    /// [`caller`](Self::caller) instead, which is what this does on either protocol.
    ///
    /// # Errors
    ///
    /// [`Error::NoCaller`] if the current message came from an ingress; otherwise as
    /// [`send_to`](Self::send_to).
    pub fn reply<V: Value>(&mut self, message: V) -> Result<(), Error> {
        self.push_reply("reply", &message.payload())
    }

    fn push_reply(&mut self, operation: &'static str, payload: &dyn Payload) -> Result<(), Error> {
        match self.caller() {
            Some(caller) => self.push_message(operation, "a reply to", caller.into(), payload),
            None => {
                self.check_has_value(operation, payload)?;
                Err(Error::NoCaller {
                    address: Box::new(self.address.clone()),
                    invocation: self.invocation,
                })
            }
        }
    }

    /// Records a message to `target`; `what` says what it is in an error (`a message to`,
    /// `a reply to`).
    #[inline]
    fn push_message(
        &mut self,
        operation: &'static str,
        what: &'static str,
        target: AddressRef<'_>,
        payload: &dyn Payload,
    ) -> Result<(), Error> {
        self.check_has_value(operation, payload)?;
        self.protocol
            .message(&mut self.effects, target, payload)
            .map_err(|source| unencodable(payload, || format!("{what} {}", to(target)), source))
    }

    /// Sends `message` (any [`Value`]) to the instance `id` of `typename`
    /// after `delay`, which the runtime receives in whole milliseconds (rounded down,
    /// exactly: the Python SDK goes through float seconds and can lose a millisecond). The
    /// function keeps processing messages meanwhile; a function may send itself a delayed
    /// message as a timer.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `delay` is longer than `i64::MAX` milliseconds, or
    /// zero on the 2.2 protocol (as in its Python SDK, where a zero `timedelta` is a
    /// "missing delay"; use [`send`](Self::send)), if `id` is empty, or for a value
    /// without a value on 2.2; [`Error::InvalidTypename`] if `typename` is not
    /// `namespace/name`; [`Error::UnencodableValue`] if the value cannot be encoded.
    pub fn send_after<V: Value>(
        &mut self,
        delay: Duration,
        typename: &str,
        id: &str,
        message: V,
    ) -> Result<(), Error> {
        self.push_delayed("send_after", delay, typename, id, &message.payload(), None)
    }

    /// As [`send_after`](Self::send_after), with a cancellation `token` that
    /// [`cancel_delayed_message`](Self::cancel_delayed_message) can cancel it by, in this
    /// batch or a later one, until it is delivered. 3.x only, and runtimes 3.1 and later:
    /// 3.0 reads it as a plain delayed message (see the guide's
    /// [Runtime versions](crate::guide::protocols#runtime-versions)).
    ///
    /// # Errors
    ///
    /// As [`send_after`](Self::send_after); [`Error::InvalidArgument`] if `token` is
    /// empty (the runtime rejects an empty token) or the handler speaks 2.2.
    pub fn send_after_cancellable<V: Value>(
        &mut self,
        delay: Duration,
        typename: &str,
        id: &str,
        message: V,
        token: &str,
    ) -> Result<(), Error> {
        self.push_delayed(
            "send_after_cancellable",
            delay,
            typename,
            id,
            &message.payload(),
            Some(token),
        )
    }

    /// Cancels the delayed message sent with `token`, if the runtime has not delivered it
    /// yet; a token that names no pending message is no error. The runtime keeps tokens
    /// per sending address (its id), so a function cancels what its own address sent. The
    /// cancellation goes out in the same list and order as the delayed messages, so a
    /// message sent and cancelled in one batch is never delivered. 3.x only, and runtimes
    /// 3.1 and later: 3.0 lacks the fields of a cancellation (see the guide's
    /// [Runtime versions](crate::guide::protocols#runtime-versions)).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `token` is empty (the runtime rejects it; the Python
    /// SDK sends it anyway) or the handler speaks 2.2.
    pub fn cancel_delayed_message(&mut self, token: &str) -> Result<(), Error> {
        self.protocol
            .cancel_delayed(&mut self.effects, token)
            .map_err(|reason| Error::InvalidArgument {
                operation: "cancel_delayed_message",
                reason: reason.to_owned(),
            })
    }

    fn push_delayed(
        &mut self,
        operation: &'static str,
        delay: Duration,
        typename: &str,
        id: &str,
        payload: &dyn Payload,
        token: Option<&str>,
    ) -> Result<(), Error> {
        let delay_ms = i64::try_from(delay.as_millis()).map_err(|_| Error::InvalidArgument {
            operation,
            reason: format!("the delay {delay:?} is longer than i64::MAX milliseconds"),
        })?;
        let target = target_address(operation, typename, id)?;
        self.check_has_value(operation, payload)?;
        let delayed = Delayed {
            delay,
            delay_ms,
            target,
            payload,
            token,
        };
        match self.protocol.delayed(&mut self.effects, delayed) {
            Ok(()) => Ok(()),
            Err(DelayedError::Invalid(reason)) => Err(Error::InvalidArgument {
                operation,
                reason: reason.to_owned(),
            }),
            Err(DelayedError::Unencodable(source)) => Err(unencodable(
                payload,
                || format!("a delayed message to {}", to(target)),
                source,
            )),
        }
    }

    /// Sends `message` to the egress `typename` (`namespace/name`, as its egress
    /// identifier in `module.yaml`). For Kafka and Kinesis egresses, send the record
    /// [`kafka_record_v3`](crate::kafka_record_v3) or
    /// [`kinesis_record_v3`](crate::kinesis_record_v3) builds (on 2.2,
    /// [`kafka_record_v2`](crate::kafka_record_v2) or
    /// [`kinesis_record_v2`](crate::kinesis_record_v2)).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTypename`] if `typename` is not `namespace/name`;
    /// [`Error::InvalidArgument`] for a value without a value on 2.2;
    /// [`Error::UnencodableValue`] if the value cannot be encoded.
    pub fn send_egress<V: Value>(&mut self, typename: &str, message: V) -> Result<(), Error> {
        self.push_egress("send_egress", typename, &message.payload())
    }

    fn push_egress(
        &mut self,
        operation: &'static str,
        typename: &str,
        payload: &dyn Payload,
    ) -> Result<(), Error> {
        let (namespace, name) = FunctionType::split(typename)?;
        self.check_has_value(operation, payload)?;
        self.protocol
            .egress(&mut self.effects, namespace, name, payload)
            .map_err(|source| {
                unencodable(
                    payload,
                    || format!("the egress {}", Shown(typename)),
                    source,
                )
            })
    }

    /// The value of the state `name`, or `None` when it has no value. On 3.x, the `Any`'s
    /// type URL is the value's typename.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownState`] if the request did not carry a state called `name` (the
    /// runtime sends every state declared in `module.yaml`, so the code and the deployment
    /// disagree); [`Error::UnreadableState`] if its bytes are not a serialized `Any`.
    pub fn get_state(&self, name: &str) -> Result<Option<Any>, Error> {
        let Some(stored) = self.current(name)? else {
            return Ok(None);
        };
        self.protocol
            .state_value_any(stored)
            .map(Some)
            .map_err(|source| self.unreadable(name, source))
    }

    /// Sets the state `name` to `value`: an [`Any`] (on 3.x its type URL is the
    /// typename), a [`RawValue`](crate::RawValue), or any other [`Value`], stored under
    /// its own typename. On 3.x the runtime expects the typename the state was declared
    /// with; a typed state is easier through [`set`](Self::set).
    ///
    /// Later invocations in the same batch see the new value; the reply carries one
    /// `MODIFY` per changed state, however often it was set.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownState`] if the request did not carry a state called `name`;
    /// [`Error::InvalidArgument`] for a value without a value on 2.2;
    /// [`Error::UnencodableValue`] if the value cannot be encoded.
    pub fn set_state<V: Value>(&mut self, name: &str, value: V) -> Result<(), Error> {
        let payload = value.payload();
        self.check_has_value("set_state", &payload)?;
        self.store(name, &payload)
    }

    /// Clears the state `name`. Later invocations in the same batch read `None`; the reply
    /// carries a `DELETE` for it (even if it had no value), unless a later invocation sets
    /// it again.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownState`] if the request did not carry a state called `name`.
    pub fn remove_state(&mut self, name: &str) -> Result<(), Error> {
        *self.change_mut(name)? = Change::Deleted;
        Ok(())
    }

    /// The value of the state `spec`, or `None` when it has no value.
    ///
    /// ```
    /// # use statefun_sync::{Context, Message, ValueSpec};
    /// const SEEN: ValueSpec<i32> = ValueSpec::named("seen");
    ///
    /// fn count(ctx: &mut Context, _: Message) -> anyhow::Result<()> {
    ///     let seen = ctx.get(&SEEN)?.unwrap_or(0);
    ///     ctx.set(&SEEN, &(seen + 1))?;
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::UndeclaredState`] if the function's binding does not declare `spec`
    /// (with its type); [`Error::UnreadableState`] if the value is of another typename
    /// (as the Python SDK checks) or does not decode.
    pub fn get<T: Type>(&self, spec: &ValueSpec<T>) -> Result<Option<T>, Error> {
        self.check_declared(spec)?;
        let Some((typename, value)) = self.current_parts(spec.name())? else {
            return Ok(None);
        };
        if !T::type_name().is(typename) {
            let holds = format!(
                "it holds a value of type {}, not {}",
                Shown(typename),
                T::type_name()
            );
            return Err(self.unreadable(spec.name(), holds));
        }
        T::decode_value(value)
            .map(Some)
            .map_err(|source| self.unreadable(spec.name(), source))
    }

    /// Sets the state `spec` to `value`. Later invocations in the same batch see the new
    /// value; the reply carries one `MODIFY` per changed state, however often it was set.
    ///
    /// # Errors
    ///
    /// [`Error::UndeclaredState`] if the function's binding does not declare `spec`;
    /// [`Error::UnencodableValue`] if `T` cannot encode `value` (the state keeps the
    /// value it had).
    pub fn set<T: Type>(&mut self, spec: &ValueSpec<T>, value: &T) -> Result<(), Error> {
        self.check_declared(spec)?;
        self.store(spec.name(), &Typed(Some(value)))
    }

    /// Clears the state `spec`. Later invocations in the same batch read `None`; the reply
    /// carries a `DELETE` for it (even if it had no value), unless a later invocation sets
    /// it again.
    ///
    /// # Errors
    ///
    /// [`Error::UndeclaredState`] if the function's binding does not declare `spec`.
    pub fn remove<T: Type>(&mut self, spec: &ValueSpec<T>) -> Result<(), Error> {
        self.check_declared(spec)?;
        *self.change_mut(spec.name())? = Change::Deleted;
        Ok(())
    }

    /// Whether the binding declares `spec`, name and type.
    fn check_declared<T: Type>(&self, spec: &ValueSpec<T>) -> Result<(), Error> {
        // A name made at run time has no key: its bytes may be freed, and their address
        // reused by another name.
        let key = spec.static_name().map(|name| {
            (
                name.as_ptr() as usize,
                name.len(),
                T::type_name as fn() -> TypeName as usize,
            )
        });
        if key.is_some() && self.declared_last.get() == key {
            return Ok(());
        }
        let declared = self.declared.iter().any(|state| {
            state.name() == spec.name()
                && state
                    .typename()
                    .is_some_and(|typename| T::type_name().is(typename))
        });
        if declared {
            if key.is_some() {
                self.declared_last.set(key);
            }
            return Ok(());
        }
        Err(Error::UndeclaredState {
            address: Box::new(self.address.clone()),
            state: spec.name().to_owned(),
            typename: T::type_name().to_string(),
        })
    }

    /// The type and bytes of the current value of the state `name`; `None` when it has
    /// no value.
    fn current_parts(&self, name: &str) -> Result<Option<(&str, &[u8])>, Error> {
        let Some(stored) = self.current(name)? else {
            return Ok(None);
        };
        self.protocol
            .state_value_parts(stored)
            .map(Some)
            .map_err(|source: WireError| self.unreadable(name, source))
    }

    /// The current value of the state `name` as the wire stores it; `None` when it has no
    /// value.
    #[inline]
    fn current(&self, name: &str) -> Result<Option<&[u8]>, Error> {
        let at = self
            .states
            .position(name)
            .ok_or_else(|| self.unknown_state(name))?;
        Ok(match self.changes.get(at) {
            None | Some(Change::Unchanged) => Some(self.states.value(at)).filter(|v| !v.is_empty()),
            Some(Change::Set(bytes)) => Some(bytes),
            Some(Change::Deleted) => None,
        })
    }

    fn change_mut(&mut self, name: &str) -> Result<&mut Change, Error> {
        let at = self
            .states
            .position(name)
            .ok_or_else(|| self.unknown_state(name))?;
        if self.changes.is_empty() {
            let count = self.states.as_slice().len();
            self.changes.resize_with(count, Change::default);
        }
        Ok(&mut self.changes[at])
    }

    /// Sets the state `name` to `value`; when the value cannot be encoded, the state
    /// keeps the value it had. A state set again in the same batch reuses its buffer: the
    /// new value is written behind the old one, which goes only once the new one is whole.
    fn store(&mut self, name: &str, value: &dyn Payload) -> Result<(), Error> {
        let protocol = self.protocol;
        let change = self.change_mut(name)?;
        let unencodable_here =
            |source| unencodable(value, || format!("state {}", Shown(name)), source);
        match change {
            Change::Set(buf) => {
                let old = buf.len();
                protocol
                    .put_state_value(buf, value)
                    .map_err(unencodable_here)?;
                buf.drain(..old);
            }
            unset => {
                let mut buf = Vec::new();
                protocol
                    .put_state_value(&mut buf, value)
                    .map_err(unencodable_here)?;
                *unset = Change::Set(buf);
            }
        }
        Ok(())
    }

    /// Refuses a value without a value on 2.2, whose `Any` cannot say so.
    #[inline]
    fn check_has_value(&self, operation: &'static str, payload: &dyn Payload) -> Result<(), Error> {
        // 3.x first: a value there is never asked whether it has one.
        if !self.values_always_present || payload.value_len_hint().is_some() {
            return Ok(());
        }
        Err(Error::InvalidArgument {
            operation,
            reason: format!(
                "a value of type {} without bytes (no value) needs the Stateful Functions \
                 3.x protocol: a 2.2 `Any` always carries a value",
                Shown(&type_of(payload))
            ),
        })
    }

    fn unknown_state(&self, name: &str) -> Error {
        Error::UnknownState {
            address: Box::new(self.address.clone()),
            invocation: self.invocation,
            state: name.to_owned(),
        }
    }

    fn unreadable(
        &self,
        name: &str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::UnreadableState {
            address: Box::new(self.address.clone()),
            state: name.to_owned(),
            source: source.into(),
        }
    }
}

/// An address quoted in an error message.
fn to(address: AddressRef<'_>) -> String {
    let text = format!("{}/{}/{}", address.namespace, address.name, address.id);
    Shown(&text).to_string()
}

fn empty_id(operation: &'static str, typename: &str) -> Error {
    Error::InvalidArgument {
        operation,
        reason: format!("the id of the target of type {} is empty", Shown(typename)),
    }
}

fn target_address<'t>(
    operation: &'static str,
    typename: &'t str,
    id: &'t str,
) -> Result<AddressRef<'t>, Error> {
    let (namespace, name) = FunctionType::split(typename)?;
    if id.is_empty() {
        return Err(empty_id(operation, typename));
    }
    Ok(AddressRef {
        namespace,
        name,
        id,
    })
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("address", &self.address)
            .field("caller", &self.caller())
            .field("invocation", &self.invocation)
            .field(
                "states",
                &self
                    .states
                    .as_slice()
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}
