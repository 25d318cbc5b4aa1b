//! Test fixture: a plugin for `heatbill:rules@0.3.0`, a contract version newer than the host
//! serves.
//!
//! `wit/rules.wit` is an early copy of the contract with only the package version changed, so
//! the component exports `heatbill:rules/rules@0.3.0` (and imports the types interface
//! `heatbill:rules/types@0.3.0`). A host that serves 0.1.x and 0.2.x must refuse it as built
//! for another contract version, naming 0.3.0 and the versions it serves, rather than as a
//! component for some other world. The bindings are plain `wit-bindgen` (the SDK is bound to
//! the newest served version).

#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "rules-plugin" });
}

use bindings::exports::heatbill::rules::rules::Guest;
use bindings::heatbill::rules::types::{
    BatchOutput, CustomerDay, DayBatch, DayOutput, DecimalColumn, LineCategory, LineColumn,
    LineSpec, PluginInfo, PluginKind, RuleError,
};

/// The fixture.
pub struct FutureContract;

impl Guest for FutureContract {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "future-contract".into(),
            version: "1.0.0".into(),
            kind: PluginKind::Tariff,
            description: "Test fixture built against contract 0.3.0; bills nothing.".into(),
            params: Vec::new(),
        }
    }

    fn configure(_params: String) -> Result<Vec<LineSpec>, RuleError> {
        Ok(vec![LineSpec {
            code: "future".into(),
            description: "Future contract fixture".into(),
            unit: "CNY".into(),
            category: LineCategory::Other,
        }])
    }

    fn evaluate(_day: CustomerDay) -> Result<DayOutput, RuleError> {
        Ok(DayOutput {
            lines: Vec::new(),
            season: None,
        })
    }

    fn evaluate_batch(_batch: DayBatch) -> BatchOutput {
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
    bindings::export!(FutureContract with_types_in bindings);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_itself() {
        assert_eq!(FutureContract::describe().name, "future-contract");
    }
}
