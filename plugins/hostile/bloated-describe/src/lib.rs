//! Test fixture: a `heatbill:rules` plugin whose `describe()` returns more than the engine
//! accepts, each excess just past a default limit, so that a test can reach every check by
//! raising the limits before it one at a time:
//!
//! | what | value | default limit |
//! |---|---|---|
//! | name | `bloated-describe`, 16 bytes | 64 bytes (`max_name_bytes`) |
//! | description | 4,097 bytes | 4,096 (`max_describe_bytes`) |
//! | parameter schema | about 71,000 bytes | 65,536 (`max_params_schema_bytes`) |
//! | the schema with its `$ref`s expanded | more than 100,000 nodes: `p2` refers to a chain of 16 `$defs` each referring twice to the next (a "billion laughs" of references) | 20,000 nodes (`max_params_schema_nodes`) |
//! | parameters (top-level properties) | 65 | 64 (`max_params`) |
//! | description of parameter `p1` | 70,000 bytes | 4,096 (`max_describe_bytes`) |
//!
//! The other functions are well-behaved; the host never gets to them.

use heatbill_sdk::bindings::exports::heatbill::rules::rules::Guest;
use heatbill_sdk::prelude::*;
use heatbill_sdk::{BatchOutput, DayBatch};
use serde_json::{Map, Value, json};

/// The schema: 65 properties, `p1` with a 70,000-byte description, `p2` a reference bomb.
fn schema() -> Value {
    let mut properties = Map::new();
    for i in 0..65 {
        properties.insert(
            format!("p{i}"),
            json!({"type": "string", "description": "A parameter."}),
        );
    }
    properties["p1"]["description"] = Value::String("d".repeat(70_000));
    properties["p2"] = json!({"$ref": "#/$defs/d0"});
    let mut defs = Map::new();
    for i in 0..16 {
        let next = format!("#/$defs/d{}", i + 1);
        defs.insert(
            format!("d{i}"),
            json!({"anyOf": [{"$ref": next}, {"$ref": next}]}),
        );
    }
    defs.insert("d16".into(), json!({"type": "string"}));
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
        "$defs": defs,
    })
}

/// The fixture.
pub struct BloatedDescribe;

impl Guest for BloatedDescribe {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "bloated-describe".into(),
            version: "1.0.0".into(),
            kind: PluginKind::Fee,
            description: "x".repeat(4_097),
            params_schema: schema().to_string(),
        }
    }

    fn configure(_params: String) -> Result<heatbill_sdk::Configuration, RuleError> {
        Ok(heatbill_sdk::Configuration {
            lines: vec![line_spec(
                "bloated",
                "Bloated describe fixture",
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

heatbill_sdk::export_guest!(BloatedDescribe);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_excess_is_one_past_the_default() {
        let info = BloatedDescribe::describe();
        assert_eq!(info.name.len(), 16);
        assert_eq!(info.description.len(), 4_097);
        assert!(info.params_schema.len() > 65_536);
        let schema: Value = serde_json::from_str(&info.params_schema).unwrap();
        assert_eq!(schema["properties"].as_object().unwrap().len(), 65);
        assert_eq!(
            schema["properties"]["p1"]["description"]
                .as_str()
                .unwrap()
                .len(),
            70_000
        );
    }
}
