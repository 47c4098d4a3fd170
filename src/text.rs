//! Quoting text that came from a request or a user: escaped and bounded, so that an
//! error message, an error body or a log line never carries raw control bytes or
//! megabytes of input.

use std::fmt;

/// Quotes text that came from a request or a user, escaped and bounded, so that an error
/// message or a log line never carries raw control bytes or megabytes of input.
pub(crate) struct Shown<'a>(pub(crate) &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX_CHARS: usize = 200;
        f.write_str("`")?;
        for (i, c) in self.0.chars().enumerate() {
            if i == MAX_CHARS {
                return write!(f, "...` ({} bytes)", self.0.len());
            }
            if c == '`' {
                f.write_str("\\`")?;
            } else if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        f.write_str("`")
    }
}

/// Cuts `text` to at most `max` bytes (`max` ≥ 3), at a character boundary, ending in
/// `...` when it was cut: how the crate bounds every text it quotes.
pub(crate) fn cut_with_ellipsis(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max - 3;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_escapes_control_characters_and_backticks() {
        assert_eq!(Shown("a\nb`c").to_string(), "`a\\nb\\`c`");
    }

    #[test]
    fn shown_bounds_long_input() {
        let long = "x".repeat(10_000);
        let shown = Shown(&long).to_string();
        assert!(shown.len() < 260, "{shown}");
        assert!(shown.ends_with("(10000 bytes)"), "{shown}");
    }

    #[test]
    fn cutting_keeps_whole_characters_and_says_so() {
        let mut text = "é".repeat(10);
        cut_with_ellipsis(&mut text, 8);
        assert_eq!(text, "éé...");
        let mut short = String::from("abc");
        cut_with_ellipsis(&mut short, 8);
        assert_eq!(short, "abc");
    }
}
