//! The registry: which function answers which function type, and what it declares.

use std::fmt;
use std::time::Duration;

use prost_types::Any;

use crate::address::FunctionType;
use crate::context::Context;
use crate::error::Error;
use crate::message::{FromAny, Message};
use crate::protocol::RawArgument;
use crate::state_spec::{DeclaredState, StateSpec};

/// A bound function, type-erased: every binding becomes one of these.
/// It takes the argument as the request carries it, so a typed binding decodes its message
/// type straight from the request body.
pub(crate) type BoxedFunction =
    Box<dyn Fn(&mut Context<'_>, &RawArgument<'_>) -> anyhow::Result<()> + Send + Sync + 'static>;

/// The functions of one application, each bound under its function type
/// (`namespace/name`). Hand it to [`RequestReplyHandler::v3`](crate::RequestReplyHandler::v3)
/// or [`v2`](crate::RequestReplyHandler::v2). The guide's
/// [functions](crate::guide::functions) chapter shows the ways to bind one.
///
/// # Three ways to bind
///
/// A function is bound by what it wants to receive, and each way is one method, because
/// the function's argument type is what tells them apart (one generic `bind` would make
/// every closure spell out its argument's type, and could not tell a raw `Any` from an
/// `Any` to decode):
///
/// | method | the function receives | the SDKs' way |
/// |---|---|---|
/// | [`bind_message`](Self::bind_message) | a [`Message`], read as any [`Type`](crate::types::Type) on demand, with or without a value | the 3.x SDKs' (Python 3.3's `message.as_type(T)`) |
/// | [`bind_typed`](Self::bind_typed) | the message already decoded into one protobuf type, or one of several ([`message_union!`](crate::message_union)); another type fails the batch | Python 2.2's type hints (`def f(context, message: User)`) |
/// | [`bind`](Self::bind) | the message as the raw `Any` it arrived in (on 3.x, its typename as the type URL) | Python 2.2's untyped functions |
///
/// ```
/// use prost_types::Any;
/// use statefun_sync::{Context, StatefulFunctions};
///
/// fn greet(ctx: &mut Context, message: Any) -> anyhow::Result<()> {
///     ctx.reply(message)?;
///     Ok(())
/// }
///
/// let mut functions = StatefulFunctions::new();
/// functions.bind("example/greeter", greet)?.state("seen");
/// assert!(functions.is_bound("example/greeter"));
/// # Ok::<(), statefun_sync::Error>(())
/// ```
#[derive(Default)]
pub struct StatefulFunctions {
    // Few functions per process: a scan compares two short strings per entry, with no
    // hashing and no allocation for the request's typename. Bind order is kept for
    // `module_yaml`.
    entries: Vec<BoundFunction>,
}

/// One binding: the function and what it declares for the deployment.
pub(crate) struct BoundFunction {
    function_type: FunctionType,
    function: BoxedFunction,
    spec: FunctionSpec,
    /// Its series, once the handler has [metrics](crate::RequestReplyHandler::with_metrics).
    #[cfg(feature = "metrics")]
    metrics: Option<crate::metrics::FunctionMetrics>,
}

/// What a binding declares for the deployment: its states and its `module.yaml` settings.
#[derive(Debug, Clone, Default)]
struct FunctionSpec {
    states: Vec<StateSpec>,
    max_num_batch_requests: Option<u32>,
    timeout: Option<Duration>,
}

impl BoundFunction {
    pub(crate) fn function_type(&self) -> &FunctionType {
        &self.function_type
    }

    /// Runs the function on one invocation's argument.
    pub(crate) fn call(
        &self,
        ctx: &mut Context<'_>,
        argument: &RawArgument<'_>,
    ) -> anyhow::Result<()> {
        (self.function)(ctx, argument)
    }

    /// The states the binding declares, in declaration order.
    pub(crate) fn declared_states(&self) -> &[StateSpec] {
        &self.spec.states
    }

    pub(crate) fn max_num_batch_requests(&self) -> Option<u32> {
        self.spec.max_num_batch_requests
    }

    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.spec.timeout
    }

    /// Its series, when the handler has metrics.
    #[cfg(feature = "metrics")]
    pub(crate) fn metrics(&self) -> Option<&crate::metrics::FunctionMetrics> {
        self.metrics.as_ref()
    }
}

impl StatefulFunctions {
    /// An empty registry.
    pub fn new() -> Self {
        StatefulFunctions::default()
    }

    /// Binds `function` to the function type `typename` (`namespace/name`); it receives
    /// each message as the `Any` it arrived in.
    ///
    /// The returned [`Binding`] can declare the states the function uses; declaring is
    /// optional.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTypename`] if `typename` is not `namespace/name`, and
    /// [`Error::DuplicateFunction`] if a function is already bound to it (the Python SDK
    /// silently replaces it; here a second binding is almost always a mistake).
    pub fn bind<F>(&mut self, typename: &str, function: F) -> Result<Binding<'_>, Error>
    where
        F: Fn(&mut Context<'_>, Any) -> anyhow::Result<()> + Send + Sync + 'static,
    {
        self.insert(
            typename,
            Box::new(move |ctx: &mut Context<'_>, argument: &RawArgument<'_>| {
                function(ctx, argument.to_any())
            }),
        )
    }

    /// Binds `function` to `typename`, decoding each message into `M` first: one protobuf
    /// message type (the Python SDK's `def f(context, message: User)`), or an enum of
    /// several made with [`message_union!`](crate::message_union) (its
    /// `typing.Union[User, Admin]`).
    ///
    /// ```
    /// use statefun_sync::{Context, StatefulFunctions};
    ///
    /// // `prost_types::Duration` stands in for your own generated message type.
    /// fn wait(ctx: &mut Context, message: prost_types::Duration) -> anyhow::Result<()> {
    ///     let _ = message.seconds;
    ///     Ok(())
    /// }
    ///
    /// let mut functions = StatefulFunctions::new();
    /// functions.bind_typed("example/waiter", wait)?;
    /// # Ok::<(), statefun_sync::Error>(())
    /// ```
    ///
    /// A message of another type fails its batch with
    /// [`Error::UnexpectedMessageType`], naming the expected and the actual type; one of
    /// the right type whose bytes do not decode fails it with
    /// [`Error::MalformedArgument`].
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_typed<M, F>(&mut self, typename: &str, function: F) -> Result<Binding<'_>, Error>
    where
        M: FromAny,
        F: Fn(&mut Context<'_>, M) -> anyhow::Result<()> + Send + Sync + 'static,
    {
        self.insert(
            typename,
            Box::new(move |ctx: &mut Context<'_>, argument: &RawArgument<'_>| {
                // A 3.x message without a value decodes as the message type's empty bytes.
                let value = argument.value().unwrap_or_default();
                let message = match M::from_parts(argument.typename(), value) {
                    Some(Ok(message)) => message,
                    Some(Err(source)) => {
                        return Err(Error::MalformedArgument {
                            address: Box::new(ctx.address().clone()),
                            invocation: ctx.invocation_index(),
                            type_url: argument.typename().to_owned(),
                            source: source.into(),
                        }
                        .into())
                    }
                    None => {
                        return Err(Error::UnexpectedMessageType {
                            address: Box::new(ctx.address().clone()),
                            invocation: ctx.invocation_index(),
                            expected: M::type_names(),
                            actual: argument.typename().to_owned(),
                        }
                        .into())
                    }
                };
                function(ctx, message)
            }),
        )
    }

    /// Binds `function` to `typename`; it receives each message as a [`Message`], read as
    /// any [`Type`](crate::types::Type) on demand: the 3.x SDKs' way.
    ///
    /// ```
    /// use statefun_sync::{Context, Message, StatefulFunctions, ValueSpec};
    ///
    /// const SEEN: ValueSpec<i32> = ValueSpec::named("seen");
    ///
    /// fn greet(ctx: &mut Context, message: Message) -> anyhow::Result<()> {
    ///     let name: String = message.get()?.unwrap_or_default();
    ///     let seen = ctx.get(&SEEN)?.unwrap_or(0) + 1;
    ///     ctx.set(&SEEN, &seen)?;
    ///     ctx.send("example/printer", &name, &format!("Hello {name} #{seen}"))?;
    ///     Ok(())
    /// }
    ///
    /// let mut functions = StatefulFunctions::new();
    /// functions.bind_message("example/greeter", greet)?.state(&SEEN);
    /// # Ok::<(), statefun_sync::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_message<F>(&mut self, typename: &str, function: F) -> Result<Binding<'_>, Error>
    where
        F: Fn(&mut Context<'_>, Message<'_>) -> anyhow::Result<()> + Send + Sync + 'static,
    {
        self.insert(
            typename,
            Box::new(move |ctx: &mut Context<'_>, argument: &RawArgument<'_>| {
                let message = Message::new(
                    argument.typename(),
                    argument.value(),
                    ctx.address(),
                    ctx.invocation_index(),
                );
                function(ctx, message)
            }),
        )
    }

    fn insert(&mut self, typename: &str, function: BoxedFunction) -> Result<Binding<'_>, Error> {
        let function_type: FunctionType = typename.parse()?;
        if self.get(&function_type).is_some() {
            return Err(Error::DuplicateFunction { function_type });
        }
        self.entries.push(BoundFunction {
            function_type,
            function,
            spec: FunctionSpec::default(),
            #[cfg(feature = "metrics")]
            metrics: None,
        });
        let entry = self.entries.last_mut().expect("just pushed");
        Ok(Binding { entry })
    }

    /// Whether a function is bound to `typename` (`namespace/name`).
    pub fn is_bound(&self, typename: &str) -> bool {
        self.entries.iter().any(|e| e.function_type == *typename)
    }

    /// The bound function types, in the order they were bound.
    pub fn function_types(&self) -> impl Iterator<Item = &FunctionType> + '_ {
        self.entries.iter().map(|e| &e.function_type)
    }

    /// The states the function bound to `typename` declares, in declaration order; `None`
    /// when no function is bound to it.
    pub fn declared_states(&self, typename: &str) -> Option<&[StateSpec]> {
        self.entries
            .iter()
            .find(|e| e.function_type == *typename)
            .map(BoundFunction::declared_states)
    }

    /// The function bound to `function_type`.
    pub(crate) fn get(&self, function_type: &FunctionType) -> Option<&BoundFunction> {
        self.entries.iter().find(|e| {
            e.function_type
                .is(function_type.namespace(), function_type.name())
        })
    }

    /// Gives every binding its series in `metrics`.
    #[cfg(feature = "metrics")]
    pub(crate) fn measure(&mut self, metrics: &crate::metrics::Metrics) {
        for entry in &mut self.entries {
            entry.metrics = Some(metrics.function(entry.function_type.as_str()));
        }
    }

    /// Every binding, in the order they were bound.
    pub(crate) fn bindings(&self) -> impl Iterator<Item = &BoundFunction> + '_ {
        self.entries.iter()
    }
}

impl fmt::Debug for StatefulFunctions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.entries
                    .iter()
                    .map(|e| (e.function_type.to_string(), &e.spec)),
            )
            .finish()
    }
}

/// Declares what one bound function needs from the deployment; returned by
/// [`StatefulFunctions::bind`] and [`StatefulFunctions::bind_typed`].
///
/// Declared states go into [`StatefulFunctions::module_yaml_v2`], and a request that lacks
/// one fails with [`Error::MissingDeclaredState`] (400) before the function runs, naming
/// the state that `module.yaml` is missing. A function that declares nothing behaves
/// exactly as in the Python SDK.
pub struct Binding<'a> {
    entry: &'a mut BoundFunction,
}

impl Binding<'_> {
    /// Declares a state the function uses: a typed [`ValueSpec`](crate::ValueSpec) (`&SPEC`),
    /// or, for the 2.2 protocol's untyped states, a name or a [`StateSpec`].
    pub fn state(self, state: impl Into<StateSpec>) -> Self {
        self.entry.spec.states.push(state.into());
        self
    }

    /// Declares several states at once, in order, as [`state`](Self::state) declares one:
    /// specs of different types side by side, as Python's `specs=[A, B, C]`.
    ///
    /// ```
    /// use statefun_sync::{Context, Message, StatefulFunctions, ValueSpec};
    ///
    /// const SEEN: ValueSpec<i64> = ValueSpec::named("seen");
    /// const NAME: ValueSpec<String> = ValueSpec::named("name");
    /// const AWAY: ValueSpec<bool> = ValueSpec::named("away");
    ///
    /// let mut functions = StatefulFunctions::new();
    /// functions
    ///     .bind_message("example/greeter", |_: &mut Context, _: Message| Ok(()))?
    ///     .states(&[&SEEN, &NAME, &AWAY]);
    /// assert_eq!(functions.declared_states("example/greeter").unwrap().len(), 3);
    /// # Ok::<(), statefun_sync::Error>(())
    /// ```
    pub fn states(self, states: &[&dyn DeclaredState]) -> Self {
        self.entry
            .spec
            .states
            .extend(states.iter().map(|state| state.state_spec()));
        self
    }

    /// Sets `maxNumBatchRequests` in `module.yaml`: how many messages the runtime batches
    /// for one address (its default is 1000).
    pub fn max_num_batch_requests(self, max: u32) -> Self {
        self.entry.spec.max_num_batch_requests = Some(max);
        self
    }

    /// Sets `timeout` in `module.yaml`: how long the runtime waits for a reply, retries
    /// included (its default is 1 minute).
    pub fn timeout(self, timeout: Duration) -> Self {
        self.entry.spec.timeout = Some(timeout);
        self
    }
}

impl fmt::Debug for Binding<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Binding")
            .field("function_type", &self.entry.function_type)
            .field("spec", &self.entry.spec)
            .finish()
    }
}
