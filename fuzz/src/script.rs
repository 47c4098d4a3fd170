//! The script reader both kits share: the bytes of a message read front to back as
//! operations and their operands. What differs between the 2.2 and the 3.x kit (the
//! typenames and state names a script picks from, the step of a short delay) is passed
//! in, so the same bytes keep making the same choices in each kit's corpus.

use std::time::Duration;

use prost_types::Any;
use statefun_sync::Error;

/// The message of the scripted panic, so the panic hook can tell it from a real one.
pub(crate) const SCRIPTED_PANIC: &str = "scripted panic";

/// A script's bytes not read yet.
pub(crate) struct Script<'a> {
    bytes: &'a [u8],
}

impl<'a> Script<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Script { bytes }
    }

    /// The next byte; `None` once the script has run out.
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(first)
    }

    /// The next byte, 0 once the script has run out.
    pub(crate) fn byte_or_zero(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }

    /// The next `N` bytes, zeros past the end.
    pub(crate) fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.byte_or_zero();
        }
        out
    }

    /// Up to 7 bytes, as text. Control characters are kept: they are what the error
    /// messages must escape.
    pub(crate) fn text(&mut self) -> String {
        let n = usize::from(self.byte_or_zero() % 8).min(self.bytes.len());
        let (text, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        String::from_utf8_lossy(text).into_owned()
    }

    /// One of `fixed` (a byte modulo one more than their number), or else text.
    pub(crate) fn typename(&mut self, fixed: &[&str]) -> String {
        let i = usize::from(self.byte_or_zero()) % (fixed.len() + 1);
        match fixed.get(i) {
            Some(typename) => (*typename).into(),
            None => self.text(),
        }
    }

    /// Empty, `1`, or text.
    pub(crate) fn id(&mut self) -> String {
        match self.byte_or_zero() % 4 {
            0 => String::new(),
            1 => "1".into(),
            _ => self.text(),
        }
    }

    /// One of `names` (a byte modulo two more than their number), the empty name, or text.
    pub(crate) fn state_name(&mut self, names: &[&str]) -> String {
        let i = usize::from(self.byte_or_zero()) % (names.len() + 2);
        match names.get(i) {
            Some(name) => (*name).into(),
            None if i == names.len() => String::new(),
            None => self.text(),
        }
    }

    /// A cancellation token: empty, `t1`, `t2`, or text.
    pub(crate) fn token(&mut self) -> String {
        match self.byte_or_zero() % 4 {
            0 => String::new(),
            1 => "t1".into(),
            2 => "t2".into(),
            _ => self.text(),
        }
    }

    /// An `Any` with a text type URL and a text value.
    pub(crate) fn any(&mut self) -> Any {
        let type_url = self.text();
        let value = self.text().into_bytes();
        Any { type_url, value }
    }

    /// Zero, the longest, a byte times `nanos_step` nanoseconds, or a byte of seconds.
    pub(crate) fn delay(&mut self, nanos_step: u64) -> Duration {
        match self.byte_or_zero() % 4 {
            0 => Duration::ZERO,
            1 => Duration::MAX,
            2 => Duration::from_nanos(u64::from(self.byte_or_zero()) * nanos_step),
            _ => Duration::from_millis(u64::from(self.byte_or_zero()) * 1000),
        }
    }
}

/// What one operation of a script came to.
pub(crate) enum Step<E> {
    /// It ran: the effect to record, or the error it returned.
    Done(Result<E, Error>),
    /// The scripted failure: the function returns an error (a 500).
    Fail,
    /// The scripted panic (a 500).
    Panic,
}

/// Runs the script `bytes`: reads an operation byte, has `operation` run it (its low four
/// bits) with its operands, and hands each effect to `record`, until the bytes run out. An
/// error from an operation whose byte has the high bit clear is passed up (ending the
/// batch) after `failed` is told the status the batch must fail with; with the high bit
/// set it is ignored. The scripted failure and panic read their number from the script.
pub(crate) fn run<E>(
    bytes: &[u8],
    mut operation: impl FnMut(&mut Script<'_>, u8) -> Step<E>,
    mut record: impl FnMut(E),
    mut failed: impl FnMut(u16),
) -> anyhow::Result<()> {
    let mut s = Script::new(bytes);
    while let Some(op) = s.byte() {
        let pass_up = op & 0x80 == 0;
        match operation(&mut s, op & 0x0f) {
            Step::Done(Ok(effect)) => record(effect),
            Step::Done(Err(err)) if pass_up => {
                failed(passed_up_status(&err));
                return Err(err.into());
            }
            Step::Done(Err(_)) => {}
            Step::Fail => {
                failed(500);
                let n = s.byte_or_zero();
                return Err(anyhow::anyhow!("scripted failure {n}"));
            }
            Step::Panic => {
                failed(500);
                let n = s.byte_or_zero();
                panic!("{SCRIPTED_PANIC} {n}");
            }
        }
    }
    Ok(())
}

/// The status a batch fails with when a script passes `err` up with `?`. An error caused
/// by the request's data (a state not carried or unreadable, an argument of the wrong
/// type), passed up as it is, keeps its variant and its 400; any other is the function's
/// failure, a 500.
fn passed_up_status(err: &Error) -> u16 {
    match err {
        Error::UnknownState { .. }
        | Error::UnreadableState { .. }
        | Error::UnexpectedMessageType { .. }
        | Error::MalformedArgument { .. } => 400,
        _ => 500,
    }
}

/// Records the write of `value` to state `name` as the last one: a model keeps only the
/// last write of each state, in the order of the states' last writes.
pub(crate) fn last_write<V>(written: &mut Vec<(String, V)>, name: String, value: V) {
    written.retain(|(n, _)| *n != name);
    written.push((name, value));
}
