//! Test fixture: a `heatbill:rules` plugin whose `describe()` panics.
//!
//! The host calls `describe()` once when it loads a component (upload, `plugin check`); a plugin
//! that traps there must be refused with a load error that says so and quotes the panic message,
//! and the engine must go on loading other plugins. The other functions are well-behaved; the
//! host never gets to them.

use heatbill_sdk::bindings::exports::heatbill::rules::rules::Guest;
use heatbill_sdk::prelude::*;
use heatbill_sdk::{BatchOutput, DayBatch};

/// The panic message, which the host's load error must quote.
pub const MESSAGE: &str = "broken-describe: describe panics on purpose";

/// The fixture.
pub struct BrokenDescribe;

impl Guest for BrokenDescribe {
    fn describe() -> PluginInfo {
        panic!("{MESSAGE}")
    }

    fn configure(_params: String) -> Result<heatbill_sdk::Configuration, RuleError> {
        Ok(heatbill_sdk::Configuration {
            lines: vec![line_spec(
                "broken",
                "Broken describe fixture",
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

heatbill_sdk::export_guest!(BrokenDescribe);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "describe panics on purpose")]
    fn describe_panics() {
        BrokenDescribe::describe();
    }
}
