//! Parameters: parsed once per instance from JSON, with errors that name the key and say what to
//! fix.
//!
//! A plugin's parameter struct is the one source of its parameters: `#[derive(Deserialize,
//! JsonSchema)]` makes both the parser and the JSON Schema `describe()` returns ([`schema`]); the
//! host validates every chain entry's parameters against that schema before `configure` sees
//! them, and shows it to integrators. The field doc comments become the schema's descriptions,
//! so write them for the integrator: meaning, unit, an example, the default.
//!
//! Conventions:
//! - decimals are JSON strings (`"38.32"`, never `38.32`): use `#[serde(with =
//!   "heatbill_sdk::params::decimal")]` with `#[schemars(with =
//!   "heatbill_sdk::params::DecimalText")]`, or [`opt_decimal`] with `#[serde(default)]` and
//!   `#[schemars(with = "Option<heatbill_sdk::params::DecimalText>")]`;
//! - dates are JSON strings `"YYYY-MM-DD"` ([`Date`](crate::Date) implements `Deserialize`
//!   and `JsonSchema`);
//! - customer classes, payers and line categories are their WIT names (`"non-residential"`,
//!   `"government"`, `"base-fee"`), and implement `Deserialize` and `JsonSchema`;
//! - every parameter struct has `#[serde(deny_unknown_fields)]` (its schema then refuses
//!   unknown keys too).

use std::fmt;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error as _, Unexpected, Visitor};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::{CustomerClass, LineCategory, LineSpec, Payer, RuleError};

/// The longest rule-error message the contract allows, in bytes.
pub use crate::contract::MAX_MESSAGE_BYTES;

/// Parses a parameter object. An empty string counts as `{}`.
///
/// Errors are [`RuleError::BadParams`] naming the offending key path, e.g.
/// `` `prices.residential`: invalid type: floating point `38.32`, expected a decimal written as
/// a JSON string, e.g. "38.32" at line 1 column 34 ``.
pub fn parse<T: DeserializeOwned>(json: &str) -> Result<T, RuleError> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    let mut de = serde_json::Deserializer::from_str(json);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            bad_params(format!("{inner}"))
        } else {
            bad_params(format!("`{path}`: {inner}"))
        }
    })?;
    de.end().map_err(|e| {
        bad_params(format!(
            "trailing characters after the parameter object: {e}"
        ))
    })?;
    Ok(value)
}

/// A [`RuleError::BadParams`] with the message cut to the contract's 1,000 bytes.
pub fn bad_params(message: impl Into<String>) -> RuleError {
    RuleError::BadParams(truncate(message.into()))
}

/// Cuts a message to [`MAX_MESSAGE_BYTES`] on a character boundary, marking the cut with "…".
pub fn truncate(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES - '…'.len_utf8();
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

/// The JSON Schema of the parameter struct `T`, as `describe()` returns it in
/// [`PluginInfo`](crate::PluginInfo)`::params_schema`: draft 2020-12, compact JSON, without the
/// struct's Rust name as a title.
///
/// ```
/// # use heatbill_sdk::{Decimal, params};
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// #[serde(deny_unknown_fields)]
/// struct Params {
///     /// 元 per day, e.g. "1.50".
///     #[serde(with = "heatbill_sdk::params::decimal")]
///     #[schemars(with = "heatbill_sdk::params::DecimalText")]
///     amount: Decimal,
/// }
/// let schema: serde_json::Value = serde_json::from_str(&params::schema::<Params>()).unwrap();
/// assert_eq!(schema["properties"]["amount"]["format"], "decimal");
/// assert_eq!(schema["additionalProperties"], false);
/// ```
pub fn schema<T: JsonSchema>() -> String {
    let mut schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    schema.remove("title");
    schema.to_value().to_string()
}

/// The JSON Schema of a decimal written as a JSON string, for `#[schemars(with = ...)]` on a
/// `Decimal` field (see the module docs): `{"type": "string", "format": "decimal"}` with the
/// pattern of a plain decimal. The host checks the `decimal` format (an exact decimal number),
/// and a form can show the field as a number without ever holding a float.
pub struct DecimalText;

impl JsonSchema for DecimalText {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Decimal".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "decimal",
            "pattern": "^-?[0-9]+(\\.[0-9]+)?$",
        })
    }
}

/// A [`LineSpec`].
pub fn line_spec(code: &str, description: &str, unit: &str, category: LineCategory) -> LineSpec {
    LineSpec {
        code: code.into(),
        description: description.into(),
        unit: unit.into(),
        category,
    }
}

/// Checks line specs against the contract (`crate::contract::line_spec_problem`, the same code
/// the host runs, so a code taken from the parameters fails in `configure` with the host's
/// message instead of at the host), and their number (at most 65,536 in a chain).
pub fn check_line_specs(specs: &[LineSpec]) -> Result<(), RuleError> {
    if specs.len() > crate::contract::MAX_CHAIN_LINE_KINDS {
        return Err(bad_params(format!(
            "{} line kinds: at most {}",
            specs.len(),
            crate::contract::MAX_CHAIN_LINE_KINDS
        )));
    }
    for (n, s) in specs.iter().enumerate() {
        if let Some(problem) =
            crate::contract::line_spec_problem(n, &s.code, &s.description, &s.unit)
        {
            return Err(bad_params(problem));
        }
    }
    Ok(())
}

struct DecimalVisitor;

impl Visitor<'_> for DecimalVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal written as a JSON string, e.g. \"38.32\"")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Decimal, E> {
        Decimal::from_str_exact(s.trim()).map_err(|_| E::invalid_value(Unexpected::Str(s), &self))
    }
}

/// `#[serde(with = "heatbill_sdk::params::decimal")]`: a decimal written as a JSON string.
/// A JSON number is refused (it may have gone through a float on its way).
pub mod decimal {
    use super::*;

    /// Deserializes a decimal from a JSON string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        d.deserialize_str(DecimalVisitor)
    }

    /// Serializes a decimal as a JSON string (a schema's default values are written this way).
    pub fn serialize<S: serde::Serializer>(v: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
}

/// `#[serde(default, with = "heatbill_sdk::params::opt_decimal")]`: an optional decimal written
/// as a JSON string (absent or `null` is `None`).
pub mod opt_decimal {
    use super::*;

    /// Deserializes an optional decimal from a JSON string or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super::decimal")] Decimal);
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }

    /// Serializes an optional decimal as a JSON string or null.
    pub fn serialize<S: serde::Serializer>(v: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }
}

/// Implements `Deserialize` from the WIT names of an enum's cases, and `JsonSchema` as the enum
/// of those names.
macro_rules! deserialize_wit_enum {
    ($ty:ty, $what:literal, { $($name:literal => $case:expr),+ $(,)? }) => {
        impl JsonSchema for $ty {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "description": concat!("A ", $what, ": ", $("\"", $name, "\" "),+),
                    "type": "string",
                    "enum": [$($name),+],
                })
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                match s.as_str() {
                    $($name => Ok($case),)+
                    other => Err(D::Error::custom(format!(
                        concat!("unknown ", $what, " {:?}: expected one of ", $("\"", $name, "\" "),+),
                        other
                    ))),
                }
            }
        }
    };
}

deserialize_wit_enum!(CustomerClass, "customer class", {
    "residential" => CustomerClass::Residential,
    "non-residential" => CustomerClass::NonResidential,
});

deserialize_wit_enum!(Payer, "payer", {
    "customer" => Payer::Customer,
    "government" => Payer::Government,
    "employer" => Payer::Employer,
});

deserialize_wit_enum!(LineCategory, "line category", {
    "heating" => LineCategory::Heating,
    "consumption" => LineCategory::Consumption,
    "base-fee" => LineCategory::BaseFee,
    "subsidy" => LineCategory::Subsidy,
    "refund" => LineCategory::Refund,
    "late-fee" => LineCategory::LateFee,
    "other" => LineCategory::Other,
});

/// The WIT name of a line category ("heating", "base-fee", …).
pub fn category_name(c: LineCategory) -> &'static str {
    match c {
        LineCategory::Heating => "heating",
        LineCategory::Consumption => "consumption",
        LineCategory::BaseFee => "base-fee",
        LineCategory::Subsidy => "subsidy",
        LineCategory::Refund => "refund",
        LineCategory::LateFee => "late-fee",
        LineCategory::Other => "other",
    }
}

/// A set of line categories (a bit per category): which prior lines a subsidy or a refund acts
/// on. Deserializes from a list of WIT names, `["heating", "consumption"]`.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct CategorySet(u8);

impl CategorySet {
    /// The empty set.
    pub const EMPTY: CategorySet = CategorySet(0);

    /// A set of the given categories.
    pub fn of(categories: &[LineCategory]) -> CategorySet {
        categories
            .iter()
            .fold(CategorySet::EMPTY, |s, c| s.with(*c))
    }

    /// This set plus `c`.
    pub const fn with(self, c: LineCategory) -> CategorySet {
        CategorySet(self.0 | 1 << c as u8)
    }

    /// Whether `c` is in the set.
    #[inline]
    pub const fn contains(self, c: LineCategory) -> bool {
        self.0 & (1 << c as u8) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for CategorySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = [
            LineCategory::Heating,
            LineCategory::Consumption,
            LineCategory::BaseFee,
            LineCategory::Subsidy,
            LineCategory::Refund,
            LineCategory::LateFee,
            LineCategory::Other,
        ];
        f.debug_set()
            .entries(
                all.into_iter()
                    .filter(|c| self.contains(*c))
                    .map(category_name),
            )
            .finish()
    }
}

impl JsonSchema for CategorySet {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CategorySet".into()
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let item = g.subschema_for::<LineCategory>();
        json_schema!({
            "type": "array",
            "items": item,
            "uniqueItems": true,
        })
    }
}

impl<'de> Deserialize<'de> for CategorySet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<LineCategory>::deserialize(d)?;
        Ok(CategorySet::of(&list))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct P {
        #[serde(with = "decimal")]
        price: Decimal,
        #[serde(default, with = "opt_decimal")]
        cap: Option<Decimal>,
        #[serde(default)]
        nested: Option<N>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct N {
        #[serde(with = "decimal")]
        rate: Decimal,
        class: CustomerClass,
        categories: CategorySet,
    }

    fn err(json: &str) -> String {
        match parse::<P>(json) {
            Err(RuleError::BadParams(m)) => m,
            other => panic!("expected bad-params, got {other:?}"),
        }
    }

    #[test]
    fn parses_strings_and_defaults() {
        let p: P = parse(r#"{"price": "38.32"}"#).unwrap();
        assert_eq!(p.price, Decimal::new(3832, 2));
        assert_eq!(p.cap, None);
        let p: P = parse(r#"{"price": "1", "cap": "45", "nested": {"rate": "0.03", "class": "non-residential", "categories": ["heating"]}}"#).unwrap();
        assert_eq!(p.cap, Some(Decimal::from(45)));
        let n = p.nested.unwrap();
        assert!(n.categories.contains(LineCategory::Heating));
        assert!(!n.categories.contains(LineCategory::Consumption));
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let m = err(r#"{"price": 38.32}"#);
        assert!(m.starts_with("`price`:"), "{m}");
        assert!(m.contains("JSON string"), "{m}");
        let m = err(
            r#"{"price": "1", "nested": {"rate": "x", "class": "residential", "categories": []}}"#,
        );
        assert!(m.starts_with("`nested.rate`:"), "{m}");
        let m = err(r#"{"price": "1", "pricee": "2"}"#);
        assert!(m.contains("unknown field `pricee`"), "{m}");
        let m = err(r#"{}"#);
        assert!(m.contains("missing field `price`"), "{m}");
        let m =
            err(r#"{"price": "1", "nested": {"rate": "1", "class": "shop", "categories": []}}"#);
        assert!(
            m.contains("nested.class") && m.contains("\"non-residential\""),
            "{m}"
        );
        let m = err(r#"{"price": "1"} x"#);
        assert!(m.contains("trailing"), "{m}");
    }

    #[test]
    fn messages_are_cut_to_the_limit() {
        let m = truncate("é".repeat(1000));
        assert!(m.len() <= MAX_MESSAGE_BYTES);
        assert!(m.ends_with('…'));
        assert_eq!(truncate("short".into()), "short");
    }

    #[test]
    fn line_spec_limits() {
        assert!(
            check_line_specs(&[line_spec("heat", "采暖费", "m2", LineCategory::Heating)]).is_ok()
        );
        assert!(check_line_specs(&[line_spec("", "x", "m2", LineCategory::Heating)]).is_err());
        assert!(
            check_line_specs(&[line_spec("has space", "x", "m2", LineCategory::Heating)]).is_err()
        );
        assert!(
            check_line_specs(&[line_spec(&"x".repeat(33), "x", "m2", LineCategory::Heating)])
                .is_err()
        );
    }
}
