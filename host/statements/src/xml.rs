//! A small XML scanner for the parts of an XLSX workbook: elements, attributes, text, CDATA;
//! comments and processing instructions skipped; a DOCTYPE refused.
//!
//! Why hand-written rather than `quick-xml`: a workbook's parts use a small, fixed subset of XML
//! (no DTD, no custom entities, no mixed encodings), the scanner works over a `&str` already in
//! memory (the part, read through the ZIP budget), allocates nothing but its stack of open
//! elements (bounded by [`MAX_DEPTH`]), and checks what the readers rely on: end tags match
//! their start tags, the document is not cut short, nothing follows the root. That is about
//! 250 lines to read and test here, against a new dependency (quick-xml and its build) to
//! trust with hostile input and keep up with. The time is linear in the part's size: every byte
//! is looked at a bounded number of times.

use std::fmt;

/// The deepest nesting a workbook part may have (a sheet's is six: worksheet, sheetData, row,
/// c, is, r, t); deeper is not a workbook and could only exhaust the stack.
pub(crate) const MAX_DEPTH: usize = 64;

/// What is wrong with a part's XML and where (a byte offset in the part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct XmlError {
    pub offset: usize,
    pub problem: String,
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the XML is not well-formed at byte {}: {}",
            self.offset, self.problem
        )
    }
}

/// One thing the scanner found. An empty element (`<c r="A1"/>`) is a [`Event::Start`]
/// followed by its [`Event::End`], so that readers handle both forms alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// A start tag: its qualified name and its attributes.
    Start { name: &'a str, attrs: Attrs<'a> },
    /// An end tag (or the end of an empty element).
    End { name: &'a str },
    /// Text, as written: entities not decoded (see [`decode`]).
    Text(&'a str),
    /// A CDATA section's content, verbatim.
    CData(&'a str),
}

/// A start tag's attributes, as written (checked by the scanner, so reading them cannot fail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attrs<'a>(&'a str);

impl<'a> Attrs<'a> {
    /// The raw value (entities not decoded) of the attribute whose local name is `local`:
    /// `r` finds `r="A1"`, `id` finds `r:id="rId1"` whatever the prefix. Namespace
    /// declarations (`xmlns`, `xmlns:r`) are never found.
    pub(crate) fn get(&self, local: &str) -> Option<&'a str> {
        let mut rest = self.0;
        loop {
            rest = skip_blanks(rest);
            let eq = rest.bytes().position(|b| b == b'=')?;
            let name = rest[..eq].trim_end_matches(is_blank);
            let after = skip_blanks(&rest[eq + 1..]);
            let quote = after.chars().next()?;
            let value_len = after[1..].bytes().position(|b| char::from(b) == quote)?;
            let value = &after[1..1 + value_len];
            rest = &after[value_len + 2..];
            let (prefix, name_local) = match name.split_once(':') {
                Some((p, l)) => (Some(p), l),
                None => (None, name),
            };
            if name == "xmlns" || prefix == Some("xmlns") {
                continue;
            }
            if name_local == local {
                return Some(value);
            }
        }
    }
}

/// A qualified name's local part: `x:c` is `c`. (Names are short: a loop over the bytes is
/// quicker than a searcher.)
pub(crate) fn local(name: &str) -> &str {
    match name.bytes().rposition(|b| b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// XML's blanks: space, tab, CR, LF (and nothing else, unlike Unicode's whitespace).
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn skip_blanks(s: &str) -> &str {
    let n = s
        .bytes()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(s.len());
    &s[n..]
}

/// The scanner over one part's text.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    pos: usize,
    stack: Vec<&'a str>,
    root_seen: bool,
    /// An empty element was just started: its end comes next.
    pending_end: bool,
}

/// Where a name in `s` ends: at a blank or a delimiter (all ASCII, so the bytes of a UTF-8
/// character never end a name).
fn name_len(s: &str) -> usize {
    s.bytes()
        .position(|b| {
            matches!(
                b,
                b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>' | b'=' | b'<' | b'"' | b'\''
            )
        })
        .unwrap_or(s.len())
}

impl<'a> Scanner<'a> {
    /// A scanner of `text` (a leading BOM is skipped).
    pub(crate) fn new(text: &'a str) -> Scanner<'a> {
        let pos = if text.starts_with('\u{feff}') { 3 } else { 0 };
        Scanner {
            text,
            pos,
            stack: Vec::new(),
            root_seen: false,
            pending_end: false,
        }
    }

    /// The byte the scanner has reached.
    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    /// The open elements' qualified names, outermost first (after a [`Event::Start`], its own
    /// name is the last; after an [`Event::End`], it is gone).
    pub(crate) fn path(&self) -> &[&'a str] {
        &self.stack
    }

    fn error(&self, at: usize, problem: impl Into<String>) -> XmlError {
        XmlError {
            offset: at,
            problem: problem.into(),
        }
    }

    /// Where `pattern` ends, from `from`, or an error saying the part is cut short.
    fn find_end(&self, from: usize, pattern: &str, what: &str) -> Result<usize, XmlError> {
        self.text[from..]
            .find(pattern)
            .map(|i| from + i)
            .ok_or_else(|| {
                self.error(
                    self.pos,
                    format!("{what} is not closed: the part is cut short"),
                )
            })
    }

    /// The next event, `None` at the end of a complete document.
    pub(crate) fn next(&mut self) -> Result<Option<Event<'a>>, XmlError> {
        if self.pending_end {
            self.pending_end = false;
            let name = self.stack.pop().unwrap_or_default();
            return Ok(Some(Event::End { name }));
        }
        loop {
            let text = self.text;
            let start = self.pos;
            if start >= text.len() {
                if let Some(open) = self.stack.last() {
                    return Err(self.error(
                        start,
                        format!("the part ends inside <{open}>: it is cut short"),
                    ));
                }
                if !self.root_seen {
                    return Err(self.error(start, "the part has no XML element"));
                }
                return Ok(None);
            }
            let rest = &text[start..];
            if !rest.starts_with('<') {
                let end = rest.find('<').map_or(text.len(), |i| start + i);
                self.pos = end;
                let t = &text[start..end];
                if self.stack.is_empty() {
                    if t.trim().is_empty() {
                        continue;
                    }
                    return Err(self.error(start, "text outside the root element"));
                }
                return Ok(Some(Event::Text(t)));
            }
            match rest.as_bytes().get(1) {
                Some(b'?') => {
                    self.pos = self.find_end(start + 2, "?>", "a processing instruction")? + 2;
                    continue;
                }
                Some(b'!') if rest.starts_with("<!--") => {
                    self.pos = self.find_end(start + 4, "-->", "a comment")? + 3;
                    continue;
                }
                Some(b'!') if rest.starts_with("<![CDATA[") => {
                    let end = self.find_end(start + 9, "]]>", "a CDATA section")?;
                    self.pos = end + 3;
                    if self.stack.is_empty() {
                        return Err(self.error(start, "a CDATA section outside the root element"));
                    }
                    return Ok(Some(Event::CData(&text[start + 9..end])));
                }
                Some(b'!') => {
                    return Err(self.error(
                        start,
                        "a DOCTYPE or other declaration, which a workbook's XML never has (it \
                         could define entities that expand without bound): refused",
                    ));
                }
                Some(b'/') => {
                    let Some(len) = rest.bytes().position(|b| b == b'>') else {
                        return Err(
                            self.error(start, "an end tag is not closed: the part is cut short")
                        );
                    };
                    let name = rest[2..len].trim_end_matches(is_blank);
                    self.pos = start + len + 1;
                    return match self.stack.pop() {
                        Some(open) if open == name => Ok(Some(Event::End { name })),
                        Some(open) => Err(self.error(start, format!("</{name}> closes <{open}>"))),
                        None => Err(self.error(start, format!("</{name}> closes nothing"))),
                    };
                }
                _ => {}
            }
            return self.start_tag(start).map(Some);
        }
    }

    /// A start tag at `start` (its `<`).
    fn start_tag(&mut self, start: usize) -> Result<Event<'a>, XmlError> {
        let text = self.text;
        let name_end = start + 1 + name_len(&text[start + 1..]);
        let name = &text[start + 1..name_end];
        if name.is_empty() {
            return Err(self.error(start, "a '<' that starts no element"));
        }
        // The attributes: name = "value" (or 'value'), separated by blanks, up to > or />.
        let mut at = name_end;
        let attrs_start = name_end;
        let (attrs_end, empty) = loop {
            let rest = &text[at..];
            let blank = rest.len() - skip_blanks(rest).len();
            at += blank;
            let rest = &text[at..];
            if rest.starts_with("/>") {
                break (at, true);
            }
            if rest.starts_with('>') {
                break (at, false);
            }
            if rest.is_empty() {
                return Err(self.error(
                    start,
                    format!("the tag <{name}> is not closed: the part is cut short"),
                ));
            }
            if blank == 0 {
                return Err(self.error(
                    at,
                    format!("the tag <{name}> has no blank before an attribute"),
                ));
            }
            let attr_end = name_len(rest);
            if attr_end == 0 {
                return Err(self.error(at, format!("the tag <{name}> has a stray character")));
            }
            let after_name = skip_blanks(&rest[attr_end..]);
            let Some(after_eq) = after_name.strip_prefix('=') else {
                return Err(self.error(at, format!("an attribute of <{name}> has no value")));
            };
            let value = skip_blanks(after_eq);
            let quote = match value.chars().next() {
                Some(q @ ('"' | '\'')) => q,
                _ => {
                    return Err(
                        self.error(at, format!("an attribute of <{name}> has no quoted value"))
                    );
                }
            };
            let value_at = text.len() - value.len();
            let Some(len) = value[1..].bytes().position(|b| char::from(b) == quote) else {
                return Err(self.error(
                    at,
                    "an attribute's value is not closed: the part is cut short",
                ));
            };
            if value[1..1 + len].contains('<') {
                return Err(self.error(value_at, "an attribute's value holds a '<'"));
            }
            at = value_at + len + 2;
        };
        if self.stack.is_empty() && self.root_seen {
            return Err(self.error(start, format!("a second root element <{name}>")));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.error(
                start,
                format!("elements nested more than {MAX_DEPTH} deep, which a workbook never is"),
            ));
        }
        self.stack.push(name);
        self.root_seen = true;
        self.pending_end = empty;
        self.pos = attrs_end + if empty { 2 } else { 1 };
        Ok(Event::Start {
            name,
            attrs: Attrs(&text[attrs_start..attrs_end]),
        })
    }
}

/// Appends `raw` to `out` with its entities decoded: the five XML names (`&amp;` `&lt;` `&gt;`
/// `&quot;` `&apos;`) and character references (`&#38;`, `&#x26;`). Any other entity is an
/// error: without a DTD, XML has no others.
pub(crate) fn decode(raw: &str, out: &mut String) -> Result<(), String> {
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp + 1..];
        let Some(semi) = rest.find(';').filter(|&i| i <= 10) else {
            return Err(format!(
                "a '&' that starts no entity (\"{}\"): write &amp;",
                crate::text::escape(&rest[..rest.len().min(10)])
            ));
        };
        let entity = &rest[..semi];
        rest = &rest[semi + 1..];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    None
                };
                // `from_str_radix` and `parse` take a sign; a character reference does not.
                let digits_only = entity
                    .trim_start_matches("#x")
                    .trim_start_matches('#')
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit());
                match code
                    .filter(|&c| c != 0 && digits_only)
                    .and_then(char::from_u32)
                {
                    Some(c) => c,
                    None => {
                        return Err(format!(
                            "\"&{}\" is not an XML entity or character",
                            crate::text::escape(entity)
                        ));
                    }
                }
            }
        };
        out.push(c);
    }
    out.push_str(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(xml: &str) -> Result<Vec<String>, XmlError> {
        let mut s = Scanner::new(xml);
        let mut out = Vec::new();
        while let Some(e) = s.next()? {
            out.push(match e {
                Event::Start { name, attrs } => {
                    format!("<{name} r={:?} id={:?}>", attrs.get("r"), attrs.get("id"))
                }
                Event::End { name } => format!("</{name}>"),
                Event::Text(t) => format!("{t:?}"),
                Event::CData(t) => format!("cdata {t:?}"),
            });
        }
        Ok(out)
    }

    #[test]
    fn elements_attributes_and_text() {
        let got = events(
            "\u{feff}<?xml version=\"1.0\"?>\n<!-- c --><x:a xmlns:x='u' r = \"1\" \
             r:id='rId&amp;1'><b/>t&lt;<![CDATA[<raw>]]></x:a>\n",
        )
        .unwrap();
        assert_eq!(
            got,
            [
                "<x:a r=Some(\"1\") id=Some(\"rId&amp;1\")>",
                "<b r=None id=None>",
                "</b>",
                "\"t&lt;\"",
                "cdata \"<raw>\"",
                "</x:a>",
            ]
        );
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in [
            "",
            "<a>",
            "<a><b></a>",
            "<a></a><b/>",
            "</a>",
            "<a x></a>",
            "<a x=1></a>",
            "<a x='1></a>",
            "<a x='1'y='2'></a>",
            "<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>",
            "<a><!-- x </a>",
            "text<a/>",
            "<a/>tail",
            "<a",
            "< a/>",
        ] {
            assert!(events(bad).is_err(), "{bad:?} was taken");
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert!(events(&deep).unwrap_err().problem.contains("nested"));
    }

    #[test]
    fn entities_are_decoded_strictly() {
        let mut out = String::new();
        decode(
            "a&amp;b&lt;&gt;&quot;&apos;&#20013;&#x6587;&#x1F600;",
            &mut out,
        )
        .unwrap();
        assert_eq!(out, "a&b<>\"'中文😀");
        for bad in [
            "&",
            "&nbsp;",
            "&#0;",
            "&#xD800;",
            "&#x110000;",
            "&#-1;",
            "&#+9;",
            "& amp;",
        ] {
            assert!(decode(bad, &mut String::new()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn damaged_documents_never_panic() {
        let good = "<?xml version=\"1.0\"?><sst xmlns=\"u\"><si><t a='1'>x&amp;y</t></si>\
                    <!-- c --><si><r><t><![CDATA[<z>]]></t></r></si></sst>";
        const ALPHABET: &[u8] = b"<>/!?-[]\"'=&;# \xC3";
        let mut rng = crate::fixtures::Rng::new(7);
        for _ in 0..5_000 {
            let mut bytes = good.as_bytes().to_vec();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] = ALPHABET[rng.below(ALPHABET.len() as u64) as usize];
            }
            if rng.below(4) == 0 {
                bytes.truncate(rng.below(bytes.len() as u64) as usize);
            }
            let text = String::from_utf8_lossy(&bytes);
            let mut s = Scanner::new(&text);
            while let Ok(Some(e)) = s.next() {
                if let Event::Text(t) = e {
                    let _ = decode(t, &mut String::new());
                }
                if let Event::Start { attrs, .. } = e {
                    let _ = attrs.get("a");
                }
            }
        }
    }
}
