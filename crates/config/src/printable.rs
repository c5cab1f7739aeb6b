//! Names read from an input (tensor names, config keys, file names) shown safely in messages: a
//! checkpoint must not be able to move the cursor, clear the screen, reorder text or start a
//! line of its own (a fake `error:` line) in what the user reads.

use std::borrow::Cow;

/// What happens to a newline.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Newlines {
    Escape,
    Keep,
}

/// Whether `c` must not reach a terminal as is: C0 and C1 controls (newlines included unless
/// kept), DEL, and the bidirectional overrides and isolates that reorder text.
fn unsafe_char(c: char, newlines: Newlines) -> bool {
    (c.is_control() && !(newlines == Newlines::Keep && c == '\n'))
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape(text: &str, newlines: Newlines) -> Cow<'_, str> {
    if !text.chars().any(|c| unsafe_char(c, newlines)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !unsafe_char(c, newlines) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// `text` on one line with every control character escaped (`\n`, `\t`, `\u{1b}`, ...): how a
/// name from an input is shown.
pub fn printable(text: &str) -> Cow<'_, str> {
    escape(text, Newlines::Escape)
}

/// `text` with every control character but the newline escaped: the last filter before a
/// message reaches the terminal (its own lines stay lines; names were made one-line by
/// [`printable`] where they were put in).
pub fn printable_lines(text: &str) -> Cow<'_, str> {
    escape(text, Newlines::Keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_plain_text_is_borrowed() {
        assert!(matches!(printable("model.layers.0.weight ↔ ü"), Cow::Borrowed(_)));
        assert_eq!(printable("a\u{1b}[2J\nerror: fake"), "a\\u{1b}[2J\\nerror: fake");
        assert_eq!(printable("tab\there\r\u{7f}\u{9b}"), "tab\\there\\r\\u{7f}\\u{9b}");
        assert_eq!(printable("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(printable_lines("line 1\n  line \u{1b}2"), "line 1\n  line \\u{1b}2");
    }
}
