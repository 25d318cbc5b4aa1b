//! Test fixture: a `heatbill:rules` plugin whose `describe()` returns more than the engine
//! accepts, each excess just past a default limit, so that a test can reach every check by
//! raising the limits before it one at a time:
//!
//! | what | value | default limit |
//! |---|---|---|
//! | name | `bloated-describe`, 16 bytes | 64 bytes (`max_name_bytes`) |
//! | description | 4,097 bytes | 4,096 (`max_describe_bytes`) |
//! | parameters | 65 | 64 (`max_params`) |
//! | description of parameter `p1` | 5,000 bytes | 4,096 (`max_describe_bytes`) |
//! | parameter 64 | named `p0` again | declared once |
//!
//! The other functions are well-behaved; the host never gets to them.

use heatbill_sdk::bindings::exports::heatbill::rules::rules::Guest;
use heatbill_sdk::prelude::*;
use heatbill_sdk::{BatchOutput, DayBatch};

/// The fixture.
pub struct BloatedDescribe;

impl Guest for BloatedDescribe {
    fn describe() -> PluginInfo {
        let mut params: Vec<ParamSpec> = (0..64)
            .map(|i| param(&format!("p{i}"), ParamType::Text, false, "A parameter."))
            .collect();
        params[1].description = "d".repeat(5_000);
        params.push(param("p0", ParamType::Text, false, "Declared twice."));
        PluginInfo {
            name: "bloated-describe".into(),
            version: "1.0.0".into(),
            kind: PluginKind::Fee,
            description: "x".repeat(4_097),
            params,
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
        assert_eq!(info.params.len(), 65);
        assert_eq!(info.params[1].description.len(), 5_000);
        assert_eq!(info.params[64].name, info.params[0].name);
    }
}
