//! A plugin's parameters: the JSON Schema its `describe()` gives, checked when the plugin loads
//! and compiled once, then used to validate every chain entry's parameters before the plugin's
//! `configure` sees them.
//!
//! Contract 0.2.0 plugins give a schema (the SDK derives it from the plugin's `Params` struct);
//! a 0.1.0 plugin's list of top-level keys is turned into one by the adapter
//! ([`schema_of_specs`]), so every plugin is validated the same way.
//!
//! The schema comes from an uploaded component, so it is hostile input like the component:
//! - its size is capped (`limits.max_params_schema_bytes`) and its JSON nesting by serde_json's
//!   recursion limit;
//! - it must be one self-contained document: `$ref`s only to `#/$defs/…` of the same document,
//!   none recursive, no `$id`, `$anchor` or dynamic references, so nothing is fetched and
//!   nothing outside it is read;
//! - its size with every `$ref` expanded is capped (`limits.max_params_schema_nodes`), counted
//!   without expanding (each definition's size is computed once), so a "billion laughs" of
//!   references is refused in microseconds; validating a parameter object then costs at most
//!   (schema nodes × parameter nodes);
//! - its `pattern`s run on the `regex` engine (linear time, no backtracking), and what they
//!   compile to is bounded: all of them together, each counted for every place it applies with
//!   the `$ref`s expanded (`limits.max_params_pattern_bytes`), so a pattern such as
//!   `(?:a|b)*a(?:a|b){5000}c`, which compiles to megabytes, is refused at load, naming the
//!   limit;
//! - a parameter object is held to `limits.max_params_bytes` and its strings to
//!   `limits.max_params_string_bytes` before any pattern sees them, so validating one costs at
//!   most (pattern size × parameter bytes): milliseconds.
//!
//! The validator is [`jsonschema`] (draft 2020-12, with the `date` format and heatbill's
//! `decimal` format checked).

use std::collections::HashMap;

use jsonschema::JsonType;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use crate::config::Limits;
use crate::model::{ParamSpec, ParamType};
use crate::text::shorten;

/// The draft every parameter schema is written in.
pub const SCHEMA_DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

/// A plugin's parameter schema, checked and compiled.
pub(crate) struct ParamsSchema {
    validator: jsonschema::Validator,
    /// `limits.max_params_string_bytes`, checked before the validator runs.
    max_string_bytes: usize,
}

impl std::fmt::Debug for ParamsSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ParamsSchema")
    }
}

/// One problem with a parameter object: the key path (`prices.residential`, or none for the
/// object itself) and what is wrong, with what to write instead where that can be said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParamProblem {
    pub key: Option<String>,
    pub problem: String,
}

/// Checks a plugin's parameter schema (text, as `describe()` returned it) against the limits
/// and the conventions above, and compiles it. Returns the schema, the summary of its top-level
/// properties, and the compiled validator; the error says what to fix.
pub(crate) fn load(
    text: &str,
    limits: &Limits,
) -> Result<(Value, Vec<ParamSpec>, ParamsSchema), String> {
    if text.len() > limits.max_params_schema_bytes {
        return Err(format!(
            "the parameter schema is {} bytes; the limit is {} (limits.max_params_schema_bytes)",
            text.len(),
            limits.max_params_schema_bytes
        ));
    }
    let schema: Value =
        serde_json::from_str(text).map_err(|e| format!("the parameter schema is not JSON: {e}"))?;
    let Value::Object(root) = &schema else {
        return Err("the parameter schema must be a JSON object (a JSON Schema)".into());
    };
    if let Some(draft) = root.get("$schema")
        && draft.as_str() != Some(SCHEMA_DRAFT)
    {
        return Err(format!(
            "the parameter schema's $schema is {}; heatbill reads draft 2020-12 ({SCHEMA_DRAFT:?}): \
             leave $schema out or give that",
            shorten(&draft.to_string())
        ));
    }
    if root.get("type").and_then(Value::as_str) != Some("object") {
        return Err(
            "the parameter schema must say \"type\": \"object\" at the top: the \
                    parameters are a JSON object"
                .into(),
        );
    }
    if root.get("additionalProperties") != Some(&Value::Bool(false)) {
        return Err(
            "the parameter schema must say \"additionalProperties\": false at the top, \
                    so that a misspelt key is refused (in Rust: #[serde(deny_unknown_fields)] \
                    on the Params struct)"
                .into(),
        );
    }
    expanded_size(
        &schema,
        limits.max_params_schema_nodes,
        limits.max_params_pattern_bytes,
    )?;
    let specs = summary(&schema, limits)?;
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .should_ignore_unknown_formats(true)
        .with_format("decimal", |s: &str| Decimal::from_str_exact(s).is_ok())
        // A backstop in the engine that runs them, each pattern alone: its own measure of a
        // pattern is larger than the one checked above (which decides, with a message naming
        // the limit), hence the margin. The lazy DFA's cache is the regex crate's default.
        .with_pattern_options(
            jsonschema::PatternOptions::regex()
                .size_limit(limits.max_params_pattern_bytes.saturating_mul(4).max(1))
                .dfa_size_limit(2 << 20),
        )
        .build(&schema)
        .map_err(|e| {
            format!(
                "the parameter schema is not a valid JSON Schema (draft 2020-12): {}",
                clip(e.to_string())
            )
        })?;
    Ok((
        schema,
        specs,
        ParamsSchema {
            validator,
            max_string_bytes: limits.max_params_string_bytes,
        },
    ))
}

impl ParamsSchema {
    /// The problems of a parameter object, at most `max` of them (none: it is valid).
    pub(crate) fn problems(
        &self,
        params: &Value,
        specs: &[ParamSpec],
        max: usize,
    ) -> Vec<ParamProblem> {
        // Strings are measured before any pattern runs on them: a pattern's time grows with
        // the length of the text it checks.
        if let Some(p) = long_string(params, self.max_string_bytes, &mut Vec::new()) {
            return vec![p];
        }
        self.validator
            .iter_errors(params)
            .take(max)
            .map(|e| problem(&e, specs))
            .collect()
    }
}

/// The first string (value or key) of `v` longer than `max` bytes, as a problem naming its
/// key path (`path`: the keys and indices above `v`).
fn long_string(v: &Value, max: usize, path: &mut Vec<String>) -> Option<ParamProblem> {
    let over = |path: &[String], what: &str, len: usize| ParamProblem {
        key: (!path.is_empty()).then(|| path.join(".")),
        problem: format!(
            "{what} is {len} bytes; the limit is {max} (limits.max_params_string_bytes)"
        ),
    };
    match v {
        Value::String(s) if s.len() > max => Some(over(path, "the string", s.len())),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            path.push(i.to_string());
            let found = long_string(item, max, path);
            path.pop();
            found
        }),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            if k.len() > max {
                return Some(over(path, "a key", k.len()));
            }
            path.push(shorten(k));
            let found = long_string(item, max, path);
            path.pop();
            found
        }),
        _ => None,
    }
}

/// What one validation error means for the integrator.
fn problem(e: &jsonschema::ValidationError<'_>, specs: &[ParamSpec]) -> ParamProblem {
    use jsonschema::error::ValidationErrorKind as Kind;
    let path: Vec<String> = e
        .instance_path()
        .segments()
        .map(|s| s.to_string())
        .collect();
    let key = (!path.is_empty()).then(|| path.join("."));
    let takes = || {
        if specs.is_empty() {
            "no parameters".to_string()
        } else {
            specs
                .iter()
                .map(|s| format!("`{}`", s.name))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    match e.kind() {
        // An optional object (`anyOf: [{$ref}, {type: null}]` for a Rust `Option<Struct>`) or
        // an enum of shapes: say what is wrong inside the one branch that matched the value's
        // type, not only that no branch matched.
        Kind::AnyOf { context } | Kind::OneOfNotValid { context } => {
            let here = e.instance_path().as_str();
            let near: Vec<&Vec<jsonschema::ValidationError<'static>>> = context
                .iter()
                .filter(|branch| {
                    !branch.is_empty()
                        && !branch.iter().all(|b| {
                            matches!(b.kind(), Kind::Type { .. })
                                && b.instance_path().as_str() == here
                        })
                })
                .collect();
            match near.as_slice() {
                [branch] => problem(&branch[0], specs),
                _ => ParamProblem {
                    key,
                    problem: clip(e.to_string()),
                },
            }
        }
        Kind::AdditionalProperties { unexpected } if key.is_none() => ParamProblem {
            key: unexpected.first().cloned(),
            problem: format!("unknown parameter; the plugin takes {}", takes()),
        },
        Kind::AdditionalProperties { unexpected } => ParamProblem {
            problem: format!(
                "unknown key{} {}",
                if unexpected.len() == 1 { "" } else { "s" },
                unexpected
                    .iter()
                    .map(|k| format!("`{}`", shorten(k)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            key,
        },
        Kind::Required { property } => {
            let name = property.as_str().unwrap_or_default().to_string();
            let about = if key.is_none() {
                specs
                    .iter()
                    .find(|s| s.name == name)
                    .map(|s| format!(" ({}: {})", s.ty, shorten(&s.description)))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            ParamProblem {
                key: Some(match &key {
                    Some(k) => format!("{k}.{name}"),
                    None => name,
                }),
                problem: format!("missing; it is required{about}"),
            }
        }
        Kind::Type { .. } if key.is_none() => ParamProblem {
            key,
            problem: format!(
                "the parameters must be a JSON object (of keys {}), not {}",
                takes(),
                json_kind(e.instance())
            ),
        },
        Kind::Type { kind } if expects(kind, JsonType::Boolean) => ParamProblem {
            key,
            problem: format!("expected true or false, found {}", json_kind(e.instance())),
        },
        Kind::Type { kind } if e.instance().is_number() && expects(kind, JsonType::String) => {
            ParamProblem {
                key,
                problem: format!(
                    "expected a JSON string; found the number {n}: a decimal is written in \
                     quotes, \"{n}\" (a JSON number may be read as a float, and money is never \
                     a float)",
                    n = shorten(&e.instance().to_string())
                ),
            }
        }
        Kind::Format { format } if format == "decimal" => ParamProblem {
            key,
            problem: format!(
                "{} is not an exact decimal number; write it like \"38.32\"",
                shorten(&e.instance().to_string())
            ),
        },
        Kind::Format { format } if format == "date" => ParamProblem {
            key,
            problem: format!(
                "{} is not a date; write it as \"YYYY-MM-DD\", e.g. \"2025-10-20\"",
                shorten(&e.instance().to_string())
            ),
        },
        _ => ParamProblem {
            key,
            problem: clip(e.to_string()),
        },
    }
}

/// Whether a type error's expected types include `ty`.
fn expects(kind: &jsonschema::error::TypeKind, ty: JsonType) -> bool {
    match kind {
        jsonschema::error::TypeKind::Single(t) => *t == ty,
        jsonschema::error::TypeKind::Multiple(set) => set.contains(ty),
    }
}

/// A JSON value as a message names it.
fn json_kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.len() <= 40 => format!("the string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// `message` cut to 300 bytes on a character boundary: a validation message quotes the value,
/// which may be a long string from the parameters.
fn clip(mut message: String) -> String {
    if message.len() > 300 {
        let mut cut = 300;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

/// The number of nodes of `schema` with every `$ref` expanded, or an error if it is over
/// `max_nodes`, or a reference is not local, not found or recursive, or its `pattern`s compile
/// to more than `max_pattern_bytes` all together (each counted for every place it applies).
/// Each definition's size is computed once and each distinct pattern compiled once, so this is
/// linear in the document whatever the expansion.
fn expanded_size(
    schema: &Value,
    max_nodes: usize,
    max_pattern_bytes: usize,
) -> Result<usize, String> {
    /// A subtree's size: nodes, and bytes of compiled patterns.
    #[derive(Clone, Copy, Default)]
    struct Size {
        nodes: usize,
        patterns: usize,
    }
    impl Size {
        fn add(&mut self, other: Size) {
            self.nodes = self.nodes.saturating_add(other.nodes);
            self.patterns = self.patterns.saturating_add(other.patterns);
        }
    }
    struct Walk<'a> {
        root: &'a Value,
        max_nodes: usize,
        max_pattern_bytes: usize,
        /// Expanded sizes of the references seen; `None` while one is being computed.
        sizes: HashMap<&'a str, Option<Size>>,
        /// The compiled size of each distinct pattern.
        patterns: HashMap<&'a str, usize>,
    }
    impl<'a> Walk<'a> {
        fn size(&mut self, v: &'a Value) -> Result<Size, String> {
            let mut n = Size {
                nodes: 1,
                patterns: 0,
            };
            match v {
                Value::Array(items) => {
                    for item in items {
                        n.add(self.size(item)?);
                    }
                }
                Value::Object(map) => {
                    for key in [
                        "$id",
                        "$anchor",
                        "$dynamicRef",
                        "$dynamicAnchor",
                        "$recursiveRef",
                    ] {
                        if map.get(key).is_some_and(Value::is_string) {
                            return Err(format!(
                                "the parameter schema uses {key}: it must be one self-contained \
                                 document, with $ref only to \"#/$defs/...\""
                            ));
                        }
                    }
                    if let Some(Value::String(r)) = map.get("$ref") {
                        n.add(self.reference(r)?);
                    }
                    if let Some(Value::String(p)) = map.get("pattern") {
                        n.patterns = n.patterns.saturating_add(self.pattern(p)?);
                    }
                    if let Some(Value::Object(by_pattern)) = map.get("patternProperties") {
                        for p in by_pattern.keys() {
                            n.patterns = n.patterns.saturating_add(self.pattern(p)?);
                        }
                    }
                    for (_, item) in map {
                        n.add(self.size(item)?);
                    }
                }
                _ => {}
            }
            if n.nodes > self.max_nodes {
                return Err(format!(
                    "the parameter schema expands to more than {} nodes with its $refs \
                     (limits.max_params_schema_nodes): refer to each definition fewer times",
                    self.max_nodes
                ));
            }
            if n.patterns > self.max_pattern_bytes {
                return Err(format!(
                    "the parameter schema's patterns compile to more than {} bytes, each \
                     counted for every place it applies with the $refs expanded \
                     (limits.max_params_pattern_bytes): use fewer or simpler patterns (a \
                     repetition such as {{1000}} compiles to that many copies of what it \
                     repeats)",
                    self.max_pattern_bytes
                ));
            }
            Ok(n)
        }

        fn reference(&mut self, r: &'a str) -> Result<Size, String> {
            match self.sizes.get(r) {
                Some(Some(n)) => return Ok(*n),
                Some(None) => {
                    return Err(format!(
                        "the parameter schema's $ref {:?} is recursive: parameters are a finite \
                         object, describe them without recursion",
                        shorten(r)
                    ));
                }
                None => {}
            }
            let target = r
                .strip_prefix("#/$defs/")
                .and_then(|_| self.root.pointer(&r[1..]))
                .ok_or_else(|| {
                    format!(
                        "the parameter schema's $ref {:?} is not a definition of the same \
                         document: use \"#/$defs/<name>\"",
                        shorten(r)
                    )
                })?;
            self.sizes.insert(r, None);
            let n = self.size(target)?;
            self.sizes.insert(r, Some(n));
            Ok(n)
        }

        /// The compiled size of `pattern`, compiled once however often it appears.
        fn pattern(&mut self, pattern: &'a str) -> Result<usize, String> {
            if let Some(n) = self.patterns.get(pattern) {
                return Ok(*n);
            }
            let n = pattern_size(pattern, self.max_pattern_bytes)?;
            self.patterns.insert(pattern, n);
            Ok(n)
        }
    }
    Walk {
        root: schema,
        max_nodes,
        max_pattern_bytes,
        sizes: HashMap::new(),
        patterns: HashMap::new(),
    }
    .size(schema)
    .map(|n| n.nodes)
}

/// What `pattern` (ECMA-262, as a schema writes it) compiles to on the engine the validator
/// uses, in bytes (its automata, as the engine measures them), or an error naming the limit if
/// it is over `max`. A pattern that does not compile for another reason counts 0 here: the
/// validator's build refuses it and says why.
fn pattern_size(pattern: &str, max: usize) -> Result<usize, String> {
    // Translated as the validator translates it (`\d` is ASCII in ECMA-262, and so on).
    let Ok(translated) = jsonschema_regex::to_rust_regex(pattern) else {
        return Ok(0);
    };
    // What the validator compiles: nothing for `^X{m,n}$` over one class (it counts
    // characters), the collapsed form of a repetition it can collapse, else the pattern.
    let compiled = match jsonschema_regex::search_form(pattern, &translated) {
        Some(jsonschema_regex::Search::RepeatedClass(_)) => return Ok(0),
        Some(jsonschema_regex::Search::Collapsed(c)) => c,
        None => translated.into_owned(),
    };
    let config = regex_automata::meta::Config::new().nfa_size_limit(Some(max));
    match regex_automata::meta::Regex::builder()
        .configure(config)
        .build(&compiled)
    {
        Ok(re) => Ok(re.memory_usage()),
        Err(e) if e.size_limit().is_some() => Err(format!(
            "the parameter schema's pattern {:?} compiles to more than {max} bytes \
             (limits.max_params_pattern_bytes): a pattern's checks take time in proportion to \
             its compiled size; write a simpler one (a repetition such as {{1000}} compiles to \
             that many copies of what it repeats)",
            shorten(pattern)
        )),
        Err(_) => Ok(0),
    }
}

/// The top-level properties as [`ParamSpec`]s: what `plugin check`, the admin API and the
/// guide's tables list.
fn summary(schema: &Value, limits: &Limits) -> Result<Vec<ParamSpec>, String> {
    let empty = Map::new();
    let properties = match schema.get("properties") {
        None => &empty,
        Some(Value::Object(p)) => p,
        Some(_) => return Err("the parameter schema's \"properties\" must be an object".into()),
    };
    if properties.len() > limits.max_params {
        return Err(format!(
            "{} parameters are declared; the limit is {} (limits.max_params)",
            properties.len(),
            limits.max_params
        ));
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut specs = Vec::with_capacity(properties.len());
    for (name, property) in properties {
        if name.is_empty() || name.len() > limits.max_name_bytes {
            return Err(format!(
                "a parameter has a name of {} bytes; names are 1 to {} bytes",
                name.len(),
                limits.max_name_bytes
            ));
        }
        let description = property
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if description.len() > limits.max_describe_bytes {
            return Err(format!(
                "the description of parameter `{}` is {} bytes; the limit is {}",
                shorten(name),
                description.len(),
                limits.max_describe_bytes
            ));
        }
        specs.push(ParamSpec {
            name: name.clone(),
            ty: type_of(schema, property, 0),
            required: required.contains(&name.as_str()),
            description: description.to_string(),
        });
    }
    Ok(specs)
}

/// The summary type of a property's schema: its `type` (the first that is not null), through a
/// `$ref` or the first branch of `anyOf`/`oneOf` that is not null.
fn type_of(root: &Value, s: &Value, depth: u8) -> ParamType {
    if depth > 8 {
        return ParamType::Json;
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str)
        && let Some(target) = r.strip_prefix('#').and_then(|p| root.pointer(p))
    {
        return type_of(root, target, depth + 1);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = s.get(key).and_then(Value::as_array) {
            let not_null = branches
                .iter()
                .find(|b| b.get("type").and_then(Value::as_str) != Some("null"));
            if let Some(b) = not_null {
                return type_of(root, b, depth + 1);
            }
        }
    }
    let ty = match s.get("type") {
        Some(Value::String(t)) => Some(t.as_str()),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    };
    match (ty, s.get("format").and_then(Value::as_str)) {
        (Some("string"), Some("decimal")) => ParamType::Decimal,
        (Some("string"), Some("date")) => ParamType::Date,
        (Some("string"), _) => ParamType::Text,
        (Some("integer"), _) => ParamType::Integer,
        (Some("boolean"), _) => ParamType::Boolean,
        _ => ParamType::Json,
    }
}

/// The schema of a contract 0.1.0 plugin's parameter list: its keys as properties, closed, the
/// required ones required. 0.1.0's host checked exactly this (the type of each top-level key;
/// a `json` key's inner shape is the plugin's own to check), so a 0.1.0 plugin's parameters
/// are accepted and refused as before.
pub(crate) fn schema_of_specs(specs: &[ParamSpec]) -> Value {
    let mut properties = Map::new();
    for s in specs {
        let mut p = match s.ty {
            ParamType::Decimal => json!({"type": "string", "format": "decimal"}),
            ParamType::Integer => json!({"type": "integer"}),
            ParamType::Boolean => json!({"type": "boolean"}),
            ParamType::Date => json!({"type": "string", "format": "date"}),
            ParamType::Text => json!({"type": "string"}),
            ParamType::Json => json!({"type": ["object", "array"]}),
        };
        p["description"] = Value::String(s.description.clone());
        properties.insert(s.name.clone(), p);
    }
    let required: Vec<&str> = specs
        .iter()
        .filter(|s| s.required)
        .map(|s| s.name.as_str())
        .collect();
    json!({
        "$schema": SCHEMA_DRAFT,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_ok(schema: Value) -> (Vec<ParamSpec>, ParamsSchema) {
        let (_, specs, s) = load(&schema.to_string(), &Limits::default()).unwrap();
        (specs, s)
    }

    fn refused(schema: Value) -> String {
        load(&schema.to_string(), &Limits::default()).unwrap_err()
    }

    #[test]
    fn a_reference_bomb_is_refused_without_expanding_it() {
        let mut defs = Map::new();
        for i in 0..60 {
            let next = format!("#/$defs/d{}", i + 1);
            defs.insert(
                format!("d{i}"),
                json!({"anyOf": [{"$ref": next}, {"$ref": next}]}),
            );
        }
        defs.insert("d60".into(), json!({"type": "string"}));
        let e = refused(json!({
            "type": "object", "additionalProperties": false,
            "properties": {"p": {"$ref": "#/$defs/d0"}}, "$defs": defs,
        }));
        assert!(e.contains("expands to more than 20000 nodes"), "{e}");
    }

    /// The review's pattern: valid and linear-time, but its automaton explodes, so a check
    /// costs its compiled size times the text's length (11.7 s for a 100 KB parameter). It is
    /// refused at load, naming the limit; the same shape ten times smaller loads.
    #[test]
    fn a_pattern_that_compiles_to_a_huge_automaton_is_refused_at_load() {
        let schema = |pattern: &str| {
            json!({"type": "object", "additionalProperties": false,
                "properties": {"code": {"type": "string", "pattern": pattern}}})
        };
        let e = refused(schema("(?:a|b)*a(?:a|b){5000}c"));
        assert!(
            e.contains("compiles to more than 131072 bytes (limits.max_params_pattern_bytes)"),
            "{e}"
        );
        let (specs, s) = load_ok(schema("(?:a|b)*a(?:a|b){500}c"));
        let p = s.problems(&json!({"code": "abc"}), &specs, 5);
        assert_eq!(p.len(), 1, "{p:?}");
        // Honest patterns are far inside the limit.
        for pattern in [
            "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            "^(residential|non-residential|commercial|industrial)$",
            "^-?[0-9]{1,18}(\\.[0-9]{1,10})?$",
            "^.{1,100}$",
        ] {
            let size = pattern_size(pattern, usize::MAX).unwrap();
            assert!(
                size * 8 < Limits::default().max_params_pattern_bytes,
                "{pattern}: {size}"
            );
        }
    }

    /// Patterns are counted for every place they apply: one definition referred to from many
    /// properties (or `patternProperties`) costs as many checks.
    #[test]
    fn patterns_are_counted_for_every_place_they_apply() {
        let one = pattern_size("(?:a|b)*a(?:a|b){500}c", usize::MAX).unwrap();
        let limit = Limits::default().max_params_pattern_bytes;
        let places = limit / one + 1;
        let mut properties = Map::new();
        for i in 0..places {
            properties.insert(format!("p{i}"), json!({"$ref": "#/$defs/code"}));
        }
        let e = refused(json!({"type": "object", "additionalProperties": false,
            "properties": properties,
            "$defs": {"code": {"type": "string", "pattern": "(?:a|b)*a(?:a|b){500}c"}}}));
        assert!(e.contains("patterns compile to more than"), "{e}");
        assert!(e.contains("limits.max_params_pattern_bytes"), "{e}");
        let each = pattern_size("^x0(?:a|b){500}$", usize::MAX).unwrap();
        let mut by_pattern = Map::new();
        for i in 0..limit / each + 1 {
            by_pattern.insert(format!("^x{i}(?:a|b){{500}}$"), json!({"type": "string"}));
        }
        let e = refused(json!({"type": "object", "additionalProperties": false,
            "properties": {"p": {"type": "object", "patternProperties": by_pattern}}}));
        assert!(e.contains("limits.max_params_pattern_bytes"), "{e}");
    }

    /// A long string is refused by its length, naming where it is, before any pattern sees it.
    #[test]
    fn long_strings_are_refused_by_length_before_validation() {
        let (specs, s) = load_ok(json!({"type": "object", "additionalProperties": false,
        "properties": {
            "code": {"type": "string", "pattern": "(?:a|b)*a(?:a|b){500}c"},
            "list": {"type": "array", "items": {"type": "string"}},
            "map": {"type": "object"},
        }}));
        let max = Limits::default().max_params_string_bytes;
        let long = "ab".repeat(max / 2 + 1);
        let p = s.problems(&json!({"code": long}), &specs, 5);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key.as_deref(), Some("code"));
        assert!(
            p[0].problem.contains(&format!(
                "is {} bytes; the limit is {max} (limits.max_params_string_bytes)",
                long.len()
            )),
            "{}",
            p[0].problem
        );
        let p = s.problems(&json!({"list": ["a", long]}), &specs, 5);
        assert_eq!(p[0].key.as_deref(), Some("list.1"), "{p:?}");
        let p = s.problems(&json!({"map": {long.clone(): 1}}), &specs, 5);
        assert_eq!(p[0].key.as_deref(), Some("map"), "{p:?}");
        assert!(p[0].problem.starts_with("a key is"), "{p:?}");
        // At the limit, the string is validated (and the pattern says no).
        let at = "ab".repeat(max / 2);
        let p = s.problems(&json!({"code": at}), &specs, 5);
        assert_eq!(p.len(), 1);
        assert!(!p[0].problem.contains("max_params_string_bytes"), "{p:?}");
    }

    #[test]
    fn references_must_be_local_and_finite() {
        let base = |p: Value| {
            json!({"type": "object", "additionalProperties": false,
            "properties": {"p": p}, "$defs": {"a": {"type": "array", "items": {"$ref": "#/$defs/b"}},
                "b": {"type": "string"}}})
        };
        let (specs, _) = load_ok(base(json!({"$ref": "#/$defs/a"})));
        assert_eq!(specs[0].ty, ParamType::Json);
        let mut recursive = base(json!({"$ref": "#/$defs/a"}));
        recursive["$defs"]["b"] = json!({"$ref": "#/$defs/a"});
        let e = refused(recursive);
        assert!(e.contains("is recursive"), "{e}");
        let e = refused(base(json!({"$ref": "https://example.com/s.json"})));
        assert!(e.contains("not a definition of the same document"), "{e}");
        let e = refused(base(json!({"$ref": "#/$defs/missing"})));
        assert!(e.contains("not a definition"), "{e}");
        let e = refused(json!({"type": "object", "additionalProperties": false, "$id": "x"}));
        assert!(e.contains("$id"), "{e}");
    }

    #[test]
    fn the_top_must_be_a_closed_object() {
        assert!(refused(json!({"type": "array"})).contains("\"type\": \"object\""));
        assert!(refused(json!({"type": "object"})).contains("additionalProperties"));
        assert!(refused(json!([])).contains("must be a JSON object"));
        let e = refused(json!({"$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object", "additionalProperties": false}));
        assert!(e.contains("draft 2020-12"), "{e}");
        let e = refused(json!({"type": "object", "additionalProperties": false,
            "properties": {"p": {"type": 12}}}));
        assert!(e.contains("not a valid JSON Schema"), "{e}");
    }

    #[test]
    fn problems_name_the_key_and_say_what_to_write() {
        let (specs, s) = load_ok(json!({
            "type": "object", "additionalProperties": false,
            "required": ["price", "due"],
            "properties": {
                "price": {"type": "string", "format": "decimal", "description": "元 per m²"},
                "due": {"type": "string", "format": "date"},
                "nested": {"type": "object", "additionalProperties": false,
                    "properties": {"rate": {"type": "string", "format": "decimal"}}},
            },
        }));
        assert_eq!(specs.len(), 3);
        let one = |v: Value| {
            let p = s.problems(&v, &specs, 5);
            assert_eq!(p.len(), 1, "{p:?}");
            p.into_iter().next().unwrap()
        };
        let p = one(json!({"price": 38.32, "due": "2026-01-01"}));
        assert_eq!(p.key.as_deref(), Some("price"));
        assert!(p.problem.contains("\"38.32\""), "{}", p.problem);
        let p = one(json!({"price": "38,32", "due": "2026-01-01"}));
        assert!(p.problem.contains("not an exact decimal"), "{}", p.problem);
        let p = one(json!({"price": "1", "due": "2026-02-30"}));
        assert_eq!(p.key.as_deref(), Some("due"));
        assert!(p.problem.contains("YYYY-MM-DD"), "{}", p.problem);
        let p = one(json!({"price": "1", "due": "2026-01-01", "prise": "1"}));
        assert_eq!(p.key.as_deref(), Some("prise"));
        assert!(
            p.problem.contains("`price`") && p.problem.contains("`nested`"),
            "{}",
            p.problem
        );
        let p = one(json!({"due": "2026-01-01"}));
        assert_eq!(p.key.as_deref(), Some("price"));
        assert!(
            p.problem.contains("required (decimal: 元 per m²)"),
            "{}",
            p.problem
        );
        let p = one(json!({"price": "1", "due": "2026-01-01", "nested": {"rate": 1}}));
        assert_eq!(p.key.as_deref(), Some("nested.rate"));
        assert!(
            s.problems(&json!({"price": "-1.5", "due": "2026-01-01"}), &specs, 5)
                .is_empty()
        );
        // A boolean where a string belongs is not told to write true or false.
        let p = one(json!({"price": "1", "due": true}));
        assert!(!p.problem.contains("true or false"), "{}", p.problem);
    }

    #[test]
    fn a_0_1_0_list_becomes_a_schema_that_checks_what_0_1_0_checked() {
        let specs = vec![
            ParamSpec {
                name: "rate".into(),
                ty: ParamType::Decimal,
                required: true,
                description: "r".into(),
            },
            ParamSpec {
                name: "bands".into(),
                ty: ParamType::Json,
                required: false,
                description: "b".into(),
            },
        ];
        let (summary, s) = load_ok(schema_of_specs(&specs));
        let mut got: Vec<_> = summary
            .iter()
            .map(|p| (p.name.as_str(), p.ty, p.required))
            .collect();
        got.sort_by_key(|g| g.0);
        assert_eq!(
            got,
            [
                ("bands", ParamType::Json, false),
                ("rate", ParamType::Decimal, true)
            ]
        );
        assert!(
            s.problems(&json!({"rate": "0.05", "bands": [1]}), &summary, 5)
                .is_empty()
        );
        assert_eq!(
            s.problems(&json!({"rate": "0.05", "bands": "x"}), &summary, 5)
                .len(),
            1
        );
        assert_eq!(s.problems(&json!({"rate": 0.05}), &summary, 5).len(), 1);
    }
}
