//! Test fixture: a `heatbill:rules` plugin whose parameter schema has a `pattern` that compiles
//! to a huge automaton: `(?:a|b)*a(?:a|b){5000}c` ("an `a` 5,001 characters before a `c`").
//!
//! The pattern is valid and runs on a linear-time engine, but no small automaton recognises it
//! (it must remember the last 5,001 characters), so the engine falls back to a search whose
//! time is the pattern's compiled size times the text's length: the security review measured
//! 11.7 s to validate a 100 KB parameter against it, with the admin API frozen meanwhile. The
//! host must refuse the plugin when it loads, naming `limits.max_params_pattern_bytes`. The
//! other functions are well-behaved; the host never gets to them.

use heatbill_sdk::bindings::exports::heatbill::rules::rules::Guest;
use heatbill_sdk::prelude::*;
use heatbill_sdk::{BatchOutput, DayBatch};
use serde_json::{Value, json};

/// The pattern.
pub const PATTERN: &str = "(?:a|b)*a(?:a|b){5000}c";

/// The schema: one string parameter, `code`, with the pattern.
fn schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "code": {
                "type": "string",
                "pattern": PATTERN,
                "description": "A code with an `a` 5,001 characters before a `c`.",
            },
        },
    })
}

/// The fixture.
pub struct RegexSchema;

impl Guest for RegexSchema {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "regex-schema".into(),
            version: "1.0.0".into(),
            kind: PluginKind::Fee,
            description: "A fee whose parameter schema has a pattern with a huge automaton.".into(),
            params_schema: schema().to_string(),
        }
    }

    fn configure(_params: String) -> Result<heatbill_sdk::Configuration, RuleError> {
        Ok(heatbill_sdk::Configuration {
            lines: vec![line_spec(
                "regex",
                "Regex schema fixture",
                "CNY",
                LineCategory::Other,
            )],
            applies_to: DayFilter::ALL,
        })
    }

    fn evaluate(_day: CustomerDay) -> Result<DayOutput, RuleError> {
        Ok(DayOutput::empty())
    }

    fn evaluate_batch(batch: DayBatch) -> BatchOutput {
        heatbill_sdk::batch::encode(vec![Ok(DayOutput::empty()); batch.len as usize])
    }
}

heatbill_sdk::export_guest!(RegexSchema);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_carries_the_pattern() {
        let info = RegexSchema::describe();
        let schema: Value = serde_json::from_str(&info.params_schema).unwrap();
        assert_eq!(schema["properties"]["code"]["pattern"], PATTERN);
        assert_eq!(schema["additionalProperties"], false);
    }
}
