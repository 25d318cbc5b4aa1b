//! Text from plugins and files on its way to a person: what may be printed, and how the rest is
//! shown.
//!
//! A rule-error message, a panic message, a plugin's description, a case name or a CSV value is
//! written by someone else. Printed raw, a carriage return, an ANSI or OSC escape sequence, or a
//! bidirectional override can make a terminal show something the text does not say (a failing
//! case rendered as "ok"), and a zero-width or line-separator character can make two different
//! codes look alike on a printed bill. Human-readable output therefore goes through
//! [`terminal_safe`] (JSON output escapes control characters by itself), and texts that end up on
//! bills refuse [`is_unsafe`] characters outright.

pub use crate::contract::{is_invisible, is_unsafe};

/// `s` made safe for a terminal, on one line: every [unsafe](is_unsafe) character (newlines
/// included) written as its `\u{…}` escape, and at most `max` characters kept (then `…`).
pub fn terminal_safe(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max.saturating_mul(4)));
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if is_unsafe(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`terminal_safe`] without a length cap: for text whose length is already bounded (the
/// engine's limits bound every message a plugin can return).
pub fn safe(s: &str) -> String {
    terminal_safe(s, usize::MAX)
}

/// `s` escaped for HTML text and attribute values (`&`, `<`, `>`, `"`, `'`), with control
/// characters other than a line break or a tab shown as spaces: the one escape of every page
/// heatbill writes by hand (the printable notice, the console's generated forms and charts).
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A name or value quoted in an error message, cut to its first 80 bytes (at a character
/// boundary) with `…`, so that a message stays one readable line whatever it quotes. Escaping
/// is the printer's ([`terminal_safe`]).
pub(crate) fn shorten(s: &str) -> String {
    if s.len() <= 80 {
        return s.to_string();
    }
    let mut cut = 80;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_markup_and_blanks_controls() {
        assert_eq!(
            html("<a href='x'>\"&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&quot;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(html("a\u{1b}b\nc"), "a b\nc");
        assert_eq!(html("供热 ok"), "供热 ok");
    }

    #[test]
    fn escapes_what_could_rewrite_a_terminal() {
        assert_eq!(safe("费用 ok"), "费用 ok");
        assert_eq!(safe("a\rb"), "a\\u{d}b");
        assert_eq!(safe("\x1b[32mok"), "\\u{1b}[32mok");
        assert_eq!(safe("x\ny"), "x\\u{a}y");
        assert_eq!(safe("\u{202E}fee"), "\\u{202e}fee");
        assert_eq!(safe("a\u{200B}b\u{2028}"), "a\\u{200b}b\\u{2028}");
        assert_eq!(safe("\u{9b}"), "\\u{9b}");
        assert_eq!(terminal_safe("abcdef", 3), "abc…");
    }
}
