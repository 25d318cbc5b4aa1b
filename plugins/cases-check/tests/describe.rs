//! Every reference plugin's `describe()` lists exactly the keys its parameters accept (the host
//! validates parameters against that list before `configure`), names itself as its crate, and
//! is at version 1.0.0.

use heatbill_sdk::native::{DynRule, configure};
use heatbill_sdk::{Plugin, RuleError};
use serde_json::{Value, json};

fn check<P: Plugin>(crate_name: &str, minimal: Value) {
    let info = P::describe();
    assert_eq!(info.name, crate_name);
    assert_eq!(info.version, "1.0.0");
    let ok = configure::<P>(&minimal.to_string())
        .unwrap_or_else(|e| panic!("{crate_name}: minimal params refused: {}", e.message()));
    assert_eq!(ok.info().name, crate_name);
    let object = minimal.as_object().unwrap();
    for p in &info.params {
        assert!(
            !p.description.is_empty(),
            "{crate_name}.{} has no description",
            p.name
        );
        if p.required {
            assert!(
                object.contains_key(&p.name),
                "{crate_name}: required {} missing from the minimal params",
                p.name
            );
            continue;
        }
        // An optional key with a value of the wrong type: refused, but not as unknown.
        let mut with = object.clone();
        with.insert(p.name.clone(), json!([[[]]]));
        match configure::<P>(&Value::Object(with).to_string()) {
            Err(RuleError::BadParams(m)) => {
                assert!(
                    !m.contains("unknown field"),
                    "{crate_name}: described key {} is unknown: {m}",
                    p.name
                )
            }
            Ok(_) => panic!("{crate_name}: {} accepted [[[]]]", p.name),
            Err(e) => panic!("{crate_name}: {e:?}"),
        }
    }
    let mut with = object.clone();
    with.insert("not_a_key".into(), json!("x"));
    match configure::<P>(&Value::Object(with).to_string()) {
        Err(RuleError::BadParams(m)) => assert!(m.contains("unknown field `not_a_key`"), "{m}"),
        _ => panic!("{crate_name}: an unknown key was accepted"),
    }
    let required: Vec<&str> = info
        .params
        .iter()
        .filter(|p| p.required)
        .map(|p| p.name.as_str())
        .collect();
    for key in object.keys() {
        assert!(
            info.params.iter().any(|p| &p.name == key),
            "{crate_name}: {key} not described"
        );
    }
    assert_eq!(
        required.len(),
        object.len(),
        "{crate_name}: the minimal params are the required keys"
    );
}

#[test]
fn describe_matches_the_parameters() {
    let prices = json!({"residential": "1", "non-residential": "2"});
    check::<season::Season>(
        "season",
        json!({"start": "2025-10-20", "end": "2026-04-20"}),
    );
    check::<area_tariff::AreaTariff>("area-tariff", json!({"prices": prices}));
    check::<metered_tariff::MeteredTariff>(
        "metered-tariff",
        json!({"prices": prices, "unit_prices": prices}),
    );
    check::<suspension_fee::SuspensionFee>(
        "suspension-fee",
        json!({"prices": prices, "share": "0.3"}),
    );
    check::<low_income_subsidy::LowIncomeSubsidy>("low-income-subsidy", json!({}));
    check::<temperature_refund::TemperatureRefund>(
        "temperature-refund",
        json!({"bands": [{"to": "18", "share": "0.3"}]}),
    );
    check::<late_fee::LateFee>(
        "late-fee",
        json!({"daily_rate": "0.001", "due_date": "2026-01-01"}),
    );
}
