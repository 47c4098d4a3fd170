//! The `module.yaml` that deploys a registry's functions, written from what the bindings
//! declare.

use std::fmt::{self, Write as _};
use std::time::Duration;

use crate::registry::{Expiration, StatefulFunctions};

/// The `module.yaml` (format version `2.0`) for the functions of a registry, served at one
/// endpoint; from [`StatefulFunctions::module_yaml`]. It is written when displayed:
/// `print!("{yaml}")`, or `yaml.to_string()`.
#[derive(Debug, Clone, Copy)]
pub struct ModuleYaml<'a> {
    functions: &'a StatefulFunctions,
    endpoint: &'a str,
}

/// Written here rather than in `registry.rs`, so that the registry knows nothing of the
/// deployment format.
impl StatefulFunctions {
    /// The `module.yaml` (format version `2.0`) that deploys every bound function as a
    /// remote function at `endpoint`, e.g. `http://functions:8000/statefun`, with the
    /// states and settings each [`Binding`](crate::Binding) declares. Print it, or `to_string()` it.
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
    /// let yaml = functions.module_yaml("http://functions:8000/statefun").to_string();
    /// assert!(yaml.contains("type: example/greeter"));
    /// assert!(yaml.contains("expireAfter: 5min"));
    /// # Ok::<(), statefun_sync::Error>(())
    /// ```
    pub fn module_yaml<'a>(&'a self, endpoint: &'a str) -> ModuleYaml<'a> {
        ModuleYaml {
            functions: self,
            endpoint,
        }
    }
}

impl fmt::Display for ModuleYaml<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "version: \"2.0\"\n\nmodule:\n  meta:\n    type: remote\n  spec:\n    functions:\n",
        )?;
        let endpoint = yaml_scalar(self.endpoint);
        for binding in self.functions.bindings() {
            write!(
                f,
                "      - function:\n          meta:\n            kind: http\n            type: {}\n          spec:\n            endpoint: {endpoint}\n",
                yaml_scalar(&binding.function_type().to_string()),
            )?;
            let states = binding.declared_states();
            if !states.is_empty() {
                f.write_str("            states:\n")?;
                for state in states {
                    writeln!(f, "              - name: {}", yaml_scalar(state.name()))?;
                    match state.expiration() {
                        Some(Expiration::AfterInvoke(after)) => {
                            writeln!(f, "                expireAfter: {}", FlinkDuration(after))?;
                        }
                        Some(Expiration::AfterWrite(after)) => writeln!(
                            f,
                            "                expireAfter: {}\n                expireMode: after-write",
                            FlinkDuration(after)
                        )?,
                        None => {}
                    }
                }
            }
            if let Some(max) = binding.max_num_batch_requests() {
                writeln!(f, "            maxNumBatchRequests: {max}")?;
            }
            if let Some(timeout) = binding.timeout() {
                writeln!(f, "            timeout: {}", FlinkDuration(timeout))?;
            }
        }
        Ok(())
    }
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
    use crate::registry::StateSpec;

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
        let yaml = functions
            .module_yaml("http://localhost:8000/statefun")
            .to_string();
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
