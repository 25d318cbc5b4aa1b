//! The contract's limits and text rules, written once for the host and the SDK.
//!
//! This file is compiled into both: the SDK (`heatbill_sdk::contract`), so a plugin refuses a
//! line spec in `configure` with the message the host would give, and the host's engine (by
//! path), which enforces the same rules on whatever a component returns. It depends on nothing
//! but `core`, so both sides build it as it is. The numbers are the ones `wit/rules.wit` states
//! on `line-spec` and `rule-error`.

/// The longest line code, in bytes (codes are 1 to 32 bytes of printable ASCII without spaces).
pub const MAX_CODE_BYTES: usize = 32;
/// The longest line description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 200;
/// The longest line unit, in bytes.
pub const MAX_UNIT_BYTES: usize = 16;
/// The longest rule-error message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1_000;
/// The most line kinds a whole chain may announce: a prior line names its kind by a `u16`.
pub const MAX_CHAIN_LINE_KINDS: usize = 1 << 16;

/// Characters that change how text renders without being control characters: bidirectional
/// marks, embeddings, overrides and isolates, zero-width characters and joiners, line and
/// paragraph separators, the byte-order mark, interlinear annotation marks and tag characters.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// A control character (C0, DEL, C1) or an [invisible](is_invisible) one: never printed raw,
/// and refused in texts that are printed on bills.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || is_invisible(c)
}

/// What is wrong with one line spec (`code`, `description`, `unit` of line kind `n`), as the
/// host says it; `None` when it keeps the contract.
///
/// Codes are keys (stored, exported, compared): 1 to 32 bytes of printable ASCII without
/// spaces, so no database column, CSV export or terminal chokes on one. Descriptions and units
/// are printed on bills: no control characters, and no bidirectional override, zero-width
/// character or line separator that would make the printed text say something other than the
/// stored one.
pub fn line_spec_problem(n: usize, code: &str, description: &str, unit: &str) -> Option<String> {
    for (what, v, lo, hi) in [
        ("code", code, 1, MAX_CODE_BYTES),
        ("description", description, 0, MAX_DESCRIPTION_BYTES),
        ("unit", unit, 0, MAX_UNIT_BYTES),
    ] {
        if v.len() < lo || v.len() > hi {
            return Some(format!(
                "configure: line kind {n}: the {what} is {} bytes; it must be {lo} to {hi} bytes",
                v.len()
            ));
        }
    }
    if !code.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Some(format!(
            "configure: line kind {n}: the code {code:?} must be printable ASCII without spaces"
        ));
    }
    for (what, text) in [("description", description), ("unit", unit)] {
        if let Some(c) = text.chars().find(|&c| is_unsafe(c)) {
            let shown: String = text
                .chars()
                .flat_map(|c| {
                    if is_unsafe(c) {
                        c.escape_unicode().collect::<Vec<_>>()
                    } else {
                        vec![c]
                    }
                })
                .collect();
            return Some(format!(
                "configure: line kind {n}: the {what} \"{shown}\" contains {}, a control or \
                 invisible character (bidirectional controls, zero-width characters and line \
                 separators are refused on bills)",
                c.escape_unicode()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_specs_keep_the_contract_or_say_why_not() {
        assert_eq!(line_spec_problem(0, "heat", "采暖费", "m2"), None);
        assert_eq!(line_spec_problem(0, "a.b/c:d", "", ""), None);
        fn p(code: &str, description: &str, unit: &str) -> String {
            line_spec_problem(3, code, description, unit).unwrap()
        }
        assert!(p("", "x", "m2").contains("the code is 0 bytes; it must be 1 to 32"));
        assert!(p(&"c".repeat(33), "x", "m2").contains("it must be 1 to 32 bytes"));
        assert!(p("two words", "x", "m2").contains("printable ASCII without spaces"));
        assert!(p("heat", &"d".repeat(201), "m2").contains("description is 201 bytes"));
        assert!(p("heat", "x", "cubic metres of heat").contains("unit is 20 bytes"));
        let e = p("heat", "采暖\u{202E}费", "m2");
        assert!(
            e.contains("\\u{202e}") && e.starts_with("configure: line kind 3:"),
            "{e}"
        );
        assert!(p("heat", "x", "m\n2").contains("unit"));
    }
}
