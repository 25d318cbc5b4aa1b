//! A plugin's parameters as an HTML form, generated from its JSON Schema (the `params_schema`
//! its `describe()` gives, schemars-shaped for the Rust SDK), and the form read back into
//! parameters. What the form cannot say exactly it does not guess:
//!
//! | schema | field |
//! |---|---|
//! | an object with `properties` | a fieldset, each property a field (recursively); optional properties may be left empty, and are then left out |
//! | an object with `additionalProperties` only (a map, e.g. prices by customer class) | one field per key present, and a row to add a key |
//! | `enum`, or `oneOf` of `const`s | a select (with an empty choice when optional) |
//! | a string of `format: date` | a date input |
//! | a string (decimals are strings: exact text, never a float) | a text input with the schema's `pattern` |
//! | an integer or a number | a text input, read as a JSON number |
//! | a boolean | a select: true or false |
//! | an array of an enum | a checkbox per value |
//! | anything else (other arrays, `anyOf` of objects) | a JSON text area |
//!
//! The parameters read back are checked by the same validator as the API's (the chain's
//! resolution, which validates them against the schema and configures the plugin), so the form
//! never is the only check. Hostile schemas are bounded: at most [`MAX_DEPTH`] levels and
//! [`MAX_FIELDS`] fields; beyond, the part is a JSON text area.

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::{Map, Value};

/// How deep the form follows a schema.
pub const MAX_DEPTH: usize = 8;
/// How many fields a form holds.
pub const MAX_FIELDS: usize = 400;

use heatbill_engine::text::html as esc;

/// A field's name: the path of keys, each escaped as in a JSON pointer, under `p`.
fn child(path: &str, key: &str) -> String {
    format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// The field's HTML id (names may hold any character; ids are made of the path's bytes).
fn id_of(path: &str) -> String {
    let mut s = String::from("f");
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() {
            s.push(b as char);
        } else {
            let _ = write!(s, "_{b:02x}");
        }
    }
    s
}

/// A schema with its `$ref` followed (within the document's `$defs` or `definitions`) and its
/// nullability: `(schema, optional)`.
fn resolve<'a>(root: &'a Value, mut s: &'a Value) -> (&'a Value, bool) {
    let mut nullable = false;
    for _ in 0..MAX_DEPTH {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let target = r
                .strip_prefix("#/$defs/")
                .and_then(|n| root.get("$defs").and_then(|d| d.get(n)))
                .or_else(|| {
                    r.strip_prefix("#/definitions/")
                        .and_then(|n| root.get("definitions").and_then(|d| d.get(n)))
                });
            match target {
                Some(t) => {
                    s = t;
                    continue;
                }
                None => break,
            }
        }
        // `anyOf: [X, {"type": "null"}]`: an optional X.
        if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
            let non_null: Vec<&Value> = any
                .iter()
                .filter(|v| v.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            if non_null.len() == 1 && any.len() == 2 {
                nullable = true;
                s = non_null[0];
                continue;
            }
        }
        break;
    }
    (s, nullable)
}

/// The schema's type, without `null`: `("string", nullable)`.
fn kind(s: &Value) -> (Option<&str>, bool) {
    match s.get("type") {
        Some(Value::String(t)) => (Some(t.as_str()), false),
        Some(Value::Array(ts)) => {
            let nullable = ts.iter().any(|t| t == "null");
            let t = ts.iter().filter_map(Value::as_str).find(|t| *t != "null");
            (t, nullable)
        }
        _ => (None, false),
    }
}

/// The values of an enum: `enum`, or `oneOf` of `const`s.
fn choices(s: &Value) -> Option<Vec<(String, String)>> {
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return Some(
            e.iter()
                .filter_map(|v| v.as_str().map(|x| (x.to_string(), x.to_string())))
                .collect(),
        );
    }
    let one = s.get("oneOf").and_then(Value::as_array)?;
    let mut out = Vec::new();
    for v in one {
        let c = v.get("const")?.as_str()?;
        let d = v
            .get("description")
            .and_then(Value::as_str)
            .map(|d| format!("{c} — {}", first_line(d)))
            .unwrap_or_else(|| c.to_string());
        out.push((c.to_string(), d));
    }
    Some(out)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim()
}

/// The form's own words, in the page's language.
#[derive(Debug, Clone, Copy)]
pub struct Words<'a> {
    /// After an optional field's name.
    pub optional: &'a str,
    /// The whole parameters' legend.
    pub parameters: &'a str,
    /// A map's row to add a key: the key's label.
    pub new_key: &'a str,
    /// Its value's label.
    pub its_value: &'a str,
}

/// The words in English.
pub const ENGLISH: Words<'static> = Words {
    optional: "optional",
    parameters: "parameters",
    new_key: "new key",
    its_value: "its value",
};

/// Renders the form's fields for `schema` holding `value`.
pub fn render(schema: &Value, value: &Value, words: Words<'_>) -> String {
    let mut out = String::new();
    let mut fields = 0;
    field(
        schema,
        schema,
        "p",
        "",
        value,
        true,
        0,
        &mut fields,
        &mut out,
        words,
    );
    out
}

#[allow(clippy::too_many_arguments)]
fn field(
    root: &Value,
    schema: &Value,
    path: &str,
    label: &str,
    value: &Value,
    required: bool,
    depth: usize,
    fields: &mut usize,
    out: &mut String,
    words: Words<'_>,
) {
    *fields += 1;
    let (s, nullable_ref) = resolve(root, schema);
    let (t, nullable_type) = kind(s);
    let optional = !required || nullable_ref || nullable_type;
    let help = schema
        .get("description")
        .or_else(|| s.get("description"))
        .and_then(Value::as_str)
        .map(first_line)
        .unwrap_or("");
    let id = id_of(path);
    let name = esc(path);
    let opt_mark = if optional {
        format!(" ({})", esc(words.optional))
    } else {
        String::new()
    };
    let label_html = format!(
        r#"<label for="{id}">{}{opt_mark}{}</label>"#,
        esc(label),
        if help.is_empty() {
            String::new()
        } else {
            format!(r#" <span class="muted">{}</span>"#, esc(help))
        }
    );
    if depth >= MAX_DEPTH || *fields > MAX_FIELDS {
        json_area(path, &label_html, value, out);
        return;
    }
    if let Some(options) = choices(s) {
        let _ = write!(out, r#"<p>{label_html}<select id="{id}" name="{name}">"#);
        if optional {
            out.push_str(r#"<option value=""></option>"#);
        }
        for (v, shown) in options {
            let sel = if value.as_str() == Some(v.as_str()) {
                " selected"
            } else {
                ""
            };
            let _ = write!(
                out,
                r#"<option value="{}"{sel}>{}</option>"#,
                esc(&v),
                esc(&shown)
            );
        }
        out.push_str("</select></p>");
        return;
    }
    match t {
        Some("object") => {
            let props = s.get("properties").and_then(Value::as_object);
            let extra = s.get("additionalProperties").filter(|a| a.is_object());
            let empty = Map::new();
            let current = value.as_object().unwrap_or(&empty);
            match (props, extra) {
                (Some(props), _) => {
                    let req: Vec<&str> = s
                        .get("required")
                        .and_then(Value::as_array)
                        .map(|r| r.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let _ = write!(
                        out,
                        r#"<fieldset><legend>{}{opt_mark}</legend>"#,
                        esc(if label.is_empty() {
                            "parameters"
                        } else {
                            label
                        })
                    );
                    for (k, sub) in props {
                        // A part required inside an optional object is not required of the
                        // form: leaving the whole object empty leaves it out.
                        field(
                            root,
                            sub,
                            &child(path, k),
                            k,
                            current.get(k).unwrap_or(&Value::Null),
                            req.contains(&k.as_str()) && !optional,
                            depth + 1,
                            fields,
                            out,
                            words,
                        );
                    }
                    out.push_str("</fieldset>");
                }
                (None, Some(items)) => {
                    let _ = write!(
                        out,
                        r#"<fieldset><legend>{}{opt_mark}</legend>"#,
                        esc(label)
                    );
                    for (k, v) in current {
                        field(
                            root,
                            items,
                            &child(path, k),
                            k,
                            v,
                            false,
                            depth + 1,
                            fields,
                            out,
                            words,
                        );
                    }
                    let (kid, vid) = (
                        id_of(&format!("{path}/+key")),
                        id_of(&format!("{path}/+value")),
                    );
                    let _ = write!(
                        out,
                        r#"<p class="inline"><label for="{kid}">{}<input id="{kid}" name="{}"></label> <label for="{vid}">{}<input id="{vid}" name="{}"></label></p></fieldset>"#,
                        esc(words.new_key),
                        esc(&format!("{path}/+key")),
                        esc(words.its_value),
                        esc(&format!("{path}/+value"))
                    );
                }
                (None, None) => json_area(path, &label_html, value, out),
            }
        }
        Some("array") => {
            let items = s.get("items").map(|i| resolve(root, i).0);
            match items.and_then(choices) {
                Some(options) => {
                    let have: Vec<&str> = value
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let _ = write!(
                        out,
                        r#"<fieldset><legend>{}{opt_mark}</legend><input type="hidden" name="{}" value="">"#,
                        esc(label),
                        esc(&format!("{path}/+list"))
                    );
                    for (i, (v, shown)) in options.iter().enumerate() {
                        let cid = id_of(&format!("{path}/{i}"));
                        let checked = if have.contains(&v.as_str()) {
                            " checked"
                        } else {
                            ""
                        };
                        let _ = write!(
                            out,
                            r#"<label for="{cid}"><input type="checkbox" id="{cid}" name="{name}" value="{}"{checked}> {}</label>"#,
                            esc(v),
                            esc(shown)
                        );
                    }
                    out.push_str("</fieldset>");
                }
                None => json_area(path, &label_html, value, out),
            }
        }
        Some("boolean") => {
            let _ = write!(out, r#"<p>{label_html}<select id="{id}" name="{name}">"#);
            if optional {
                out.push_str(r#"<option value=""></option>"#);
            }
            for b in ["true", "false"] {
                let sel = if value.as_bool().map(|v| v.to_string()).as_deref() == Some(b) {
                    " selected"
                } else {
                    ""
                };
                let _ = write!(out, r#"<option value="{b}"{sel}>{b}</option>"#);
            }
            out.push_str("</select></p>");
        }
        Some("string") | Some("integer") | Some("number") => {
            let shown = match value {
                Value::String(v) => v.clone(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            let input_type = if s.get("format").and_then(Value::as_str) == Some("date") {
                "date"
            } else {
                "text"
            };
            let mut attrs = String::new();
            if let Some(p) = s.get("pattern").and_then(Value::as_str) {
                let _ = write!(attrs, r#" pattern="{}""#, esc(p));
            }
            if t != Some("string") || s.get("format").and_then(Value::as_str) == Some("decimal") {
                attrs.push_str(r#" inputmode="decimal""#);
            }
            if !optional {
                attrs.push_str(" required");
            }
            let _ = write!(
                out,
                r#"<p>{label_html}<input type="{input_type}" id="{id}" name="{name}" value="{}"{attrs}></p>"#,
                esc(&shown)
            );
        }
        _ => json_area(path, &label_html, value, out),
    }
}

fn json_area(path: &str, label_html: &str, value: &Value, out: &mut String) {
    let id = id_of(path);
    let text = if value.is_null() {
        String::new()
    } else {
        serde_json::to_string_pretty(value).unwrap_or_default()
    };
    let _ = write!(
        out,
        r#"<p>{label_html} (JSON)<textarea id="{id}" name="{}" rows="4" cols="60">{}</textarea></p>"#,
        esc(&format!("{path}/+json")),
        esc(&text)
    );
}

/// Reads the parameters back from the posted fields (`name → value`; a checkbox group's values
/// joined by `\n`). `Err` says which field is wrong and why.
pub fn read(schema: &Value, form: &HashMap<String, String>) -> Result<Value, String> {
    Ok(read_field(schema, schema, "p", form, true, 0)?.unwrap_or(Value::Object(Map::new())))
}

fn read_field(
    root: &Value,
    schema: &Value,
    path: &str,
    form: &HashMap<String, String>,
    required: bool,
    depth: usize,
) -> Result<Option<Value>, String> {
    let shown = path.trim_start_matches("p/");
    if let Some(text) = form.get(&format!("{path}/+json")) {
        if text.trim().is_empty() {
            return Ok(None);
        }
        return serde_json::from_str(text)
            .map(Some)
            .map_err(|e| format!("{shown}: not JSON ({e})"));
    }
    if depth > MAX_DEPTH {
        return Ok(None);
    }
    let (s, _) = resolve(root, schema);
    let (t, _) = kind(s);
    if choices(s).is_some() {
        return Ok(form
            .get(path)
            .filter(|v| !v.is_empty())
            .map(|v| Value::String(v.clone())));
    }
    match t {
        Some("object") => {
            let mut out = Map::new();
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                let req: Vec<&str> = s
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                for (k, sub) in props {
                    if let Some(v) = read_field(
                        root,
                        sub,
                        &child(path, k),
                        form,
                        req.contains(&k.as_str()),
                        depth + 1,
                    )? {
                        out.insert(k.clone(), v);
                    }
                }
            } else if let Some(items) = s.get("additionalProperties").filter(|a| a.is_object()) {
                let prefix = format!("{path}/");
                let mut keys: Vec<String> = form
                    .keys()
                    .filter_map(|k| k.strip_prefix(&prefix))
                    .filter(|k| !k.starts_with('+') && !k.contains('/'))
                    .map(|k| k.replace("~1", "/").replace("~0", "~"))
                    .collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    if let Some(v) =
                        read_field(root, items, &child(path, &k), form, false, depth + 1)?
                    {
                        out.insert(k, v);
                    }
                }
                let new_key = form.get(&format!("{path}/+key")).map(|k| k.trim());
                let new_value = form.get(&format!("{path}/+value")).map(|v| v.trim());
                if let (Some(k), Some(v)) = (new_key, new_value)
                    && !k.is_empty()
                {
                    let (is, _) = resolve(root, items);
                    let value = match kind(is).0 {
                        Some("string") | Some("integer") | Some("number") | Some("boolean") => {
                            scalar(kind(is).0, v, shown)?
                        }
                        // A structured value is typed as JSON.
                        _ => serde_json::from_str(v)
                            .map_err(|e| format!("{shown}/{k}: not JSON ({e})"))?,
                    };
                    out.insert(k.to_string(), value);
                }
            }
            if out.is_empty() && !required {
                return Ok(None);
            }
            Ok(Some(Value::Object(out)))
        }
        Some("array") => {
            if !form.contains_key(&format!("{path}/+list")) {
                return Ok(None);
            }
            let items: Vec<Value> = form
                .get(path)
                .map(|v| {
                    v.split('\n')
                        .filter(|x| !x.is_empty())
                        .map(|x| Value::String(x.to_string()))
                        .collect()
                })
                .unwrap_or_default();
            // An optional list left empty is left out (its default), so that an optional
            // object around it is not made up of an empty list alone.
            if items.is_empty() && !required {
                return Ok(None);
            }
            Ok(Some(Value::Array(items)))
        }
        Some("boolean") => match form.get(path).map(String::as_str) {
            Some("true") => Ok(Some(Value::Bool(true))),
            Some("false") => Ok(Some(Value::Bool(false))),
            _ => Ok(None),
        },
        _ => match form.get(path).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => scalar(t, v, shown).map(Some),
        },
    }
}

/// A scalar typed by its schema: a string stays text (decimals exactly as typed); a number
/// must be a JSON number.
fn scalar(t: Option<&str>, v: &str, shown: &str) -> Result<Value, String> {
    match t {
        Some("integer") => v
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("{shown}: {v:?} is not a whole number")),
        Some("number") => serde_json::from_str::<serde_json::Number>(v)
            .map(Value::Number)
            .map_err(|_| format!("{shown}: {v:?} is not a number")),
        _ => Ok(Value::String(v.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "$defs": {
                "Basis": {"oneOf": [{"const": "building", "type": "string"},
                                     {"const": "usable", "type": "string"}]},
                "Prices": {"type": "object", "additionalProperties": false,
                    "properties": {
                        "residential": {"type": "string", "format": "decimal", "pattern": "^[0-9.]+$"},
                        "non-residential": {"type": "string", "format": "decimal"}},
                    "required": ["residential", "non-residential"]}
            },
            "type": "object",
            "properties": {
                "area_basis": {"$ref": "#/$defs/Basis"},
                "prices": {"$ref": "#/$defs/Prices"},
                "max_steps": {"type": ["integer", "null"]},
                "free": {"type": "boolean"},
                "classes": {"type": "array", "items": {"enum": ["residential", "non-residential"], "type": "string"}},
                "by_class": {"type": "object", "additionalProperties": {"type": "string"}},
                "start": {"type": "string", "format": "date"},
                "odd": {"type": "array", "items": {"type": "object"}}
            },
            "required": ["area_basis", "prices"]
        })
    }

    fn posted(html: &str) -> HashMap<String, String> {
        // What a browser posts: every named input's value (checked boxes only), selects'
        // selected options, text areas' text.
        let mut out: HashMap<String, String> = HashMap::new();
        let mut rest = html;
        while let Some(at) = rest.find("name=\"") {
            let tag_start = rest[..at].rfind('<').unwrap();
            let tag = &rest[tag_start..];
            let name_start = at + 6;
            let name = &rest[name_start..name_start + rest[name_start..].find('"').unwrap()];
            let name = name.replace("&quot;", "\"").replace("&amp;", "&");
            let value = if tag.starts_with("<select") {
                let end = tag.find("</select>").unwrap();
                tag[..end]
                    .split("<option")
                    .find(|o| o.contains(" selected"))
                    .and_then(|o| o.split("value=\"").nth(1))
                    .map(|v| v[..v.find('"').unwrap()].to_string())
            } else if tag.starts_with("<textarea") {
                let s = tag.find('>').unwrap() + 1;
                Some(tag[s..tag.find("</textarea>").unwrap()].replace("&quot;", "\""))
            } else if tag[..tag.find('>').unwrap()].contains("type=\"checkbox\"")
                && !tag[..tag.find('>').unwrap()].contains(" checked")
            {
                None
            } else {
                tag[..tag.find('>').unwrap()]
                    .split("value=\"")
                    .nth(1)
                    .map(|v| v[..v.find('"').unwrap()].to_string())
            };
            if let Some(v) = value {
                out.entry(name)
                    .and_modify(|e| {
                        e.push('\n');
                        e.push_str(&v)
                    })
                    .or_insert(v);
            }
            rest = &rest[name_start..];
        }
        out
    }

    #[test]
    fn a_form_round_trips_its_parameters() {
        let params = json!({
            "area_basis": "usable",
            "prices": {"residential": "38.32", "non-residential": "43.3"},
            "max_steps": 3,
            "free": false,
            "classes": ["non-residential"],
            "by_class": {"residential": "1.5"},
            "start": "2025-10-20",
            "odd": [{"a": 1}]
        });
        let html = render(&schema(), &params, ENGLISH);
        assert!(
            html.contains(r#"pattern="^[0-9.]+$" inputmode="decimal" required"#),
            "{html}"
        );
        assert!(html.contains(r#"type="date""#), "{html}");
        assert!(html.contains("<textarea"), "{html}");
        let back = read(&schema(), &posted(&html)).unwrap();
        assert_eq!(back, params);
    }

    #[test]
    fn optional_parts_left_empty_are_left_out_and_bad_numbers_said() {
        let params = json!({"area_basis": "building",
                            "prices": {"residential": "1", "non-residential": "2"}});
        let html = render(&schema(), &params, ENGLISH);
        let mut form = posted(&html);
        assert_eq!(read(&schema(), &form).unwrap(), params);
        form.insert("p/max_steps".into(), "three".into());
        let e = read(&schema(), &form).unwrap_err();
        assert!(e.contains("max_steps") && e.contains("whole number"), "{e}");
        form.remove("p/max_steps");
        form.insert("p/by_class/+key".into(), "non-residential".into());
        form.insert("p/by_class/+value".into(), "2.25".into());
        assert_eq!(
            read(&schema(), &form).unwrap()["by_class"],
            json!({"non-residential": "2.25"})
        );
    }

    #[test]
    fn text_from_the_schema_is_escaped_and_depth_is_bounded() {
        let mut s = json!({"type": "object", "properties": {
            "x<script>": {"type": "string", "description": "<b>bold</b>"}}});
        let html = render(&s, &json!({"x<script>": "\"><img>"}), ENGLISH);
        assert!(
            !html.contains("<script>") && !html.contains("<b>") && !html.contains("<img>"),
            "{html}"
        );
        // A schema nested beyond MAX_DEPTH ends in a JSON area.
        for _ in 0..20 {
            s = json!({"type": "object", "properties": {"n": s}});
        }
        let html = render(&s, &Value::Null, ENGLISH);
        assert!(html.contains("<textarea"), "{html}");
    }
}
