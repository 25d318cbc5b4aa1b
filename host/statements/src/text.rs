//! Decoding (strict: an invalid byte is an error with its line) and escaping for messages.

use std::borrow::Cow;

use encoding_rs::{DecoderResult, GBK};

use crate::StatementError;

/// The longest value quoted in a message, in characters.
const SHOWN: usize = 40;

/// A value as a message shows it: control characters (and the other invisible ones a file can
/// hide: BOMs, bidirectional marks) written `\u{..}`, backslashes doubled, cut at 40 characters
/// with `…`.
pub fn escape(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == SHOWN {
            out.push('…');
            break;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control()
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}') =>
            {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// The 1-based line of a byte offset.
pub(crate) fn line_of(bytes: &[u8], offset: usize) -> u64 {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64
        + 1
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Strict UTF-8 (a leading BOM dropped). `what` names the file in the hint.
pub(crate) fn utf8<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, StatementError> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(body) {
        Ok(s) => Ok(s),
        Err(e) => {
            let at = e.valid_up_to();
            let bad_len = e.error_len().unwrap_or(body.len() - at).clamp(1, 4);
            let offset = at + (bytes.len() - body.len());
            let hint = if gbk_strict(body).is_ok() {
                format!(
                    "the bytes read as GBK: the file was re-saved in another encoding (a \
                     spreadsheet or an editor does that); {what} is UTF-8, upload the file as \
                     downloaded"
                )
            } else {
                format!("the file is damaged or is not {what}; download it again")
            };
            Err(StatementError::Encoding {
                expected: "UTF-8",
                line_no: line_of(bytes, offset),
                offset: offset as u64,
                bytes: hex_bytes(&body[at..(at + bad_len).min(body.len())]),
                hint,
            })
        }
    }
}

/// Strict GBK (GB18030's decoder, which reads every GBK file): the offset of the first invalid
/// sequence on failure.
fn gbk_strict(bytes: &[u8]) -> Result<String, (usize, usize)> {
    let mut decoder = GBK.new_decoder_without_bom_handling();
    let Some(capacity) = decoder.max_utf8_buffer_length_without_replacement(bytes.len()) else {
        return Err((0, 0));
    };
    let mut out = String::with_capacity(capacity);
    let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut out, true);
    match result {
        DecoderResult::InputEmpty => Ok(out),
        DecoderResult::Malformed(bad, extra) => {
            let bad = bad as usize;
            let start = read.saturating_sub(bad + extra as usize);
            Err((start, bad.max(1)))
        }
        // The capacity was enough for any input, so this does not happen; say so if it does.
        DecoderResult::OutputFull => Err((read, 1)),
    }
}

/// UTF-8 when the bytes are valid UTF-8 (with or without a BOM), else strict GBK. `what` names
/// the file in the hint. GBK text is almost never valid UTF-8, so the guess is safe.
pub(crate) fn utf8_or_gbk<'a>(bytes: &'a [u8], what: &str) -> Result<Cow<'a, str>, StatementError> {
    let bom = bytes.len() - bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes).len();
    let utf8_error = match std::str::from_utf8(&bytes[bom..]) {
        Ok(s) => return Ok(Cow::Borrowed(s)),
        Err(e) => e,
    };
    match gbk_strict(bytes) {
        Ok(s) => Ok(Cow::Owned(s)),
        // Neither: the encoding that reads further is the file's, and its first invalid byte is
        // the one to show.
        Err((offset, _)) if bom > 0 || bom + utf8_error.valid_up_to() >= offset => {
            let offset = bom + utf8_error.valid_up_to();
            let len = utf8_error
                .error_len()
                .unwrap_or(bytes.len() - offset)
                .clamp(1, 4);
            Err(StatementError::Encoding {
                expected: "UTF-8 or GBK",
                line_no: line_of(bytes, offset),
                offset: offset as u64,
                bytes: hex_bytes(&bytes[offset..(offset + len).min(bytes.len())]),
                hint: format!(
                    "the file is UTF-8 up to this byte, which is not: the file is damaged or is \
                     not {what}; download it again"
                ),
            })
        }
        Err((offset, len)) => Err(StatementError::Encoding {
            expected: "UTF-8 or GBK",
            line_no: line_of(bytes, offset),
            offset: offset as u64,
            bytes: hex_bytes(&bytes[offset.min(bytes.len())..(offset + len).min(bytes.len())]),
            hint: format!(
                "the bytes are neither UTF-8 nor GBK: the file is damaged or is not {what}; \
                 download it again"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_controls_and_cuts() {
        assert_eq!(escape("a\u{0}b\tc\u{1b}"), "a\\u{0}b\\u{9}c\\u{1b}");
        assert_eq!(escape("\u{feff}x"), "\\u{feff}x");
        let long = "九".repeat(50);
        let shown = escape(&long);
        assert_eq!(shown.chars().count(), 41);
        assert!(shown.ends_with('…'));
        assert_eq!(escape("a\"b\\"), "a\\\"b\\\\");
    }

    #[test]
    fn gbk_decodes_and_reports_offsets() {
        let (bytes, _, _) = GBK.encode("交易,退款\n");
        assert_eq!(utf8_or_gbk(&bytes, "x").unwrap(), "交易,退款\n");
        let mut bad = b"abc\nde".to_vec();
        bad.extend_from_slice(&[0x81, 0x20]);
        match utf8_or_gbk(&bad, "x") {
            Err(StatementError::Encoding {
                line_no, offset, ..
            }) => {
                assert_eq!(line_no, 2);
                assert_eq!(offset, 6);
            }
            other => panic!("{other:?}"),
        }
    }
}
