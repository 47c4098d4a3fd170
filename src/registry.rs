//! The registry: which function answers which function type, and what it declares.

use std::fmt::{self, Write as _};
use std::time::Duration;

use prost_types::Any;

use crate::address::{parse_typename, Address};
use crate::context::Context;
use crate::error::Error;
use crate::message::FromAny;
use crate::protocol::RawArgument;

/// A bound function, type-erased: every binding becomes one of these.
/// It takes the argument as the request carries it, so a typed binding decodes its message
/// type straight from the request body.
pub(crate) type BoxedFunction =
    Box<dyn Fn(&mut Context<'_>, RawArgument<'_>) -> anyhow::Result<()> + Send + Sync + 'static>;

/// The functions of one application, each bound under its function type
/// (`namespace/name`). Hand it to [`RequestReplyHandler::new`](crate::RequestReplyHandler::new).
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
    entries: Vec<FunctionEntry>,
}

pub(crate) struct FunctionEntry {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) function: BoxedFunction,
    pub(crate) spec: FunctionSpec,
}

/// What a binding declares for the deployment: its states and its `module.yaml` settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct FunctionSpec {
    pub(crate) states: Vec<StateSpec>,
    pub(crate) max_num_batch_requests: Option<u32>,
    pub(crate) timeout: Option<Duration>,
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
            Box::new(move |ctx: &mut Context<'_>, argument: RawArgument<'_>| {
                function(ctx, argument.into_any())
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
            Box::new(move |ctx: &mut Context<'_>, argument: RawArgument<'_>| {
                let message = match M::from_parts(argument.type_url(), argument.value()) {
                    Some(Ok(message)) => message,
                    Some(Err(source)) => {
                        return Err(Error::MalformedArgument {
                            address: Box::new(ctx.address().clone()),
                            invocation: ctx.invocation_index(),
                            type_url: argument.type_url().to_owned(),
                            source,
                        }
                        .into())
                    }
                    None => {
                        return Err(Error::UnexpectedMessageType {
                            address: Box::new(ctx.address().clone()),
                            invocation: ctx.invocation_index(),
                            expected: M::type_names(),
                            actual: argument.type_url().to_owned(),
                        }
                        .into())
                    }
                };
                function(ctx, message)
            }),
        )
    }

    fn insert(&mut self, typename: &str, function: BoxedFunction) -> Result<Binding<'_>, Error> {
        let (namespace, name) = parse_typename(typename)?;
        if self.find(namespace, name).is_some() {
            return Err(Error::DuplicateFunction {
                function_type: typename.to_owned(),
            });
        }
        self.entries.push(FunctionEntry {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            function,
            spec: FunctionSpec::default(),
        });
        let entry = self.entries.last_mut().expect("just pushed");
        Ok(Binding { entry })
    }

    /// Whether a function is bound to `typename`.
    pub fn is_bound(&self, typename: &str) -> bool {
        parse_typename(typename).is_ok_and(|(namespace, name)| self.find(namespace, name).is_some())
    }

    /// The bound function types, in the order they were bound.
    pub fn typenames(&self) -> impl Iterator<Item = String> + '_ {
        self.entries
            .iter()
            .map(|e| format!("{}/{}", e.namespace, e.name))
    }

    /// The states the function bound to `typename` declares, in declaration order; `None`
    /// when no function is bound to it.
    pub fn declared_states(&self, typename: &str) -> Option<&[StateSpec]> {
        let (namespace, name) = parse_typename(typename).ok()?;
        self.find(namespace, name).map(|e| e.spec.states.as_slice())
    }

    pub(crate) fn find(&self, namespace: &str, name: &str) -> Option<&FunctionEntry> {
        self.entries
            .iter()
            .find(|e| e.name == name && e.namespace == namespace)
    }

    pub(crate) fn find_target(&self, target: &Address) -> Option<&FunctionEntry> {
        self.entries
            .iter()
            .find(|e| target.is_type(&e.namespace, &e.name))
    }

    /// The `module.yaml` (format version `2.0`) that deploys every bound function as a
    /// remote function at `endpoint`, e.g. `http://functions:8000/statefun`, with the
    /// states and settings each [`Binding`] declares.
    ///
    /// ```
    /// use std::time::Duration;
    /// use statefun_sync::{Expiration, StateSpec, StatefulFunctions};
    ///
    /// let mut functions = StatefulFunctions::new();
    /// functions
    ///     .bind("example/greeter", |_, _| Ok(()))?
    ///     .state("seen")
    ///     .state(StateSpec::new("session").expire(Expiration::AfterInvoke(Duration::from_secs(300))))
    ///     .max_num_batch_requests(500);
    /// let yaml = functions.module_yaml("http://functions:8000/statefun");
    /// assert!(yaml.contains("type: example/greeter"));
    /// assert!(yaml.contains("expireAfter: 5min"));
    /// # Ok::<(), statefun_sync::Error>(())
    /// ```
    pub fn module_yaml(&self, endpoint: &str) -> String {
        let mut yaml = String::from(
            "version: \"2.0\"\n\nmodule:\n  meta:\n    type: remote\n  spec:\n    functions:\n",
        );
        for entry in &self.entries {
            let spec = &entry.spec;
            // `write!` to a String cannot fail.
            let _ = write!(
                yaml,
                "      - function:\n          meta:\n            kind: http\n            type: {}\n          spec:\n            endpoint: {}\n",
                yaml_scalar(&format!("{}/{}", entry.namespace, entry.name)),
                yaml_scalar(endpoint),
            );
            if !spec.states.is_empty() {
                yaml.push_str("            states:\n");
                for state in &spec.states {
                    let _ = writeln!(yaml, "              - name: {}", yaml_scalar(&state.name));
                    match state.expiration {
                        Some(Expiration::AfterInvoke(after)) => {
                            let _ = writeln!(
                                yaml,
                                "                expireAfter: {}",
                                FlinkDuration(after)
                            );
                        }
                        Some(Expiration::AfterWrite(after)) => {
                            let _ = writeln!(
                                yaml,
                                "                expireAfter: {}\n                expireMode: after-write",
                                FlinkDuration(after)
                            );
                        }
                        None => {}
                    }
                }
            }
            if let Some(max) = spec.max_num_batch_requests {
                let _ = writeln!(yaml, "            maxNumBatchRequests: {max}");
            }
            if let Some(timeout) = spec.timeout {
                let _ = writeln!(yaml, "            timeout: {}", FlinkDuration(timeout));
            }
        }
        yaml
    }
}

impl fmt::Debug for StatefulFunctions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.entries
                    .iter()
                    .map(|e| (format!("{}/{}", e.namespace, e.name), &e.spec)),
            )
            .finish()
    }
}

/// Declares what one bound function needs from the deployment; returned by
/// [`StatefulFunctions::bind`] and [`StatefulFunctions::bind_typed`].
///
/// Declared states go into [`StatefulFunctions::module_yaml`], and a request that lacks
/// one fails with [`Error::MissingDeclaredState`] (400) before the function runs, naming
/// the state that `module.yaml` is missing. A function that declares nothing behaves
/// exactly as in the Python SDK.
pub struct Binding<'a> {
    entry: &'a mut FunctionEntry,
}

impl Binding<'_> {
    /// Declares a state the function uses: a name, or a [`StateSpec`] with an expiration.
    pub fn state(self, state: impl Into<StateSpec>) -> Self {
        self.entry.spec.states.push(state.into());
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
            .field("namespace", &self.entry.namespace)
            .field("name", &self.entry.name)
            .field("spec", &self.entry.spec)
            .finish()
    }
}

/// A state a function declares: its name and, optionally, when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSpec {
    name: String,
    expiration: Option<Expiration>,
}

impl StateSpec {
    /// A state that never expires.
    pub fn new(name: impl Into<String>) -> Self {
        StateSpec {
            name: name.into(),
            expiration: None,
        }
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

/// A duration in the largest whole unit Flink's `TimeUtils.parseDuration` reads.
struct FlinkDuration(Duration);

impl fmt::Display for FlinkDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit_ms, unit) in [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "min"),
            (1_000, "s"),
        ] {
            if ms > 0 && ms % unit_ms == 0 {
                return write!(f, "{}{unit}", ms / unit_ms);
            }
        }
        write!(f, "{ms}ms")
    }
}

/// A YAML plain scalar when that reads back as the same string, a quoted one otherwise.
fn yaml_scalar(text: &str) -> String {
    // Plain only when no YAML 1.1 reader (the runtime's is one) could take it for
    // anything but this string: not a keyword in any case, nothing number-like, no
    // indicator at either end.
    let keyword = [
        "true", "false", "yes", "no", "y", "n", "on", "off", "null", "~",
    ]
    .iter()
    .any(|k| text.eq_ignore_ascii_case(k));
    let number_like = text
        .trim_start_matches(['+', '-', '.'])
        .starts_with(|c: char| c.is_ascii_digit());
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c))
        && !text.starts_with(['-', ':', '.'])
        && !text.ends_with(':')
        && !keyword
        && !number_like;
    if plain {
        return text.to_owned();
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            // YAML 1.1 also breaks lines at U+2028 and U+2029.
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(quoted, "\\u{:04x}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink_durations_use_the_largest_whole_unit() {
        let cases = [
            (Duration::from_secs(300), "5min"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_secs(86_400), "1d"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::ZERO, "0ms"),
        ];
        for (duration, expected) in cases {
            assert_eq!(
                FlinkDuration(duration).to_string(),
                expected,
                "{duration:?}"
            );
        }
    }

    #[test]
    fn yaml_scalars_are_quoted_when_plain_would_change_them() {
        let cases = [
            ("example/greeter", "example/greeter"),
            ("http://h:8000/statefun", "http://h:8000/statefun"),
            ("true", "\"true\""),
            ("12", "\"12\""),
            ("a b", "\"a b\""),
            ("", "\"\""),
            ("- x", "\"- x\""),
            ("True", "\"True\""),
            ("NULL", "\"NULL\""),
            ("Yes", "\"Yes\""),
            ("0x1F", "\"0x1F\""),
            ("1_000", "\"1_000\""),
            ("-1", "\"-1\""),
            (".5", "\".5\""),
            ("seen:", "\"seen:\""),
            ("seen_count", "seen_count"),
            ("a\"b\\c", "\"a\\\"b\\\\c\""),
            ("tab\there", "\"tab\\u0009here\""),
        ];
        for (input, expected) in cases {
            assert_eq!(yaml_scalar(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn module_yaml_lists_every_function_with_its_states() {
        let mut functions = StatefulFunctions::new();
        functions
            .bind("example/greeter", |_, _| Ok(()))
            .unwrap()
            .state("seen")
            .state(StateSpec::new("visit").expire(Expiration::AfterWrite(Duration::from_secs(60))))
            .timeout(Duration::from_secs(120));
        functions.bind("example/other", |_, _| Ok(())).unwrap();
        let declared: Vec<_> = functions
            .declared_states("example/greeter")
            .unwrap()
            .iter()
            .map(StateSpec::name)
            .collect();
        assert_eq!(declared, ["seen", "visit"]);
        assert_eq!(functions.declared_states("example/other"), Some(&[][..]));
        assert_eq!(functions.declared_states("example/none"), None);
        let yaml = functions.module_yaml("http://localhost:8000/statefun");
        let expected = "\
version: \"2.0\"

module:
  meta:
    type: remote
  spec:
    functions:
      - function:
          meta:
            kind: http
            type: example/greeter
          spec:
            endpoint: http://localhost:8000/statefun
            states:
              - name: seen
              - name: visit
                expireAfter: 1min
                expireMode: after-write
            timeout: 2min
      - function:
          meta:
            kind: http
            type: example/other
          spec:
            endpoint: http://localhost:8000/statefun
";
        assert_eq!(yaml, expected);
    }
}
