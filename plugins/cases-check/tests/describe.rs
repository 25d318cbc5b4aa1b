//! Every reference plugin's `describe()` gives a parameter schema whose properties are exactly
//! the keys its parameters accept, each described, whose `required` keys are the ones the
//! parser needs, and which refuses unknown keys (the host validates parameters against that
//! schema before `configure`); it names itself as its crate and is at version 1.0.0.

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
    let schema: Value = serde_json::from_str(&info.params_schema).unwrap();
    assert_eq!(schema["type"], "object", "{crate_name}");
    assert_eq!(schema["additionalProperties"], false, "{crate_name}");
    let properties = schema["properties"].as_object().unwrap();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().map(|k| k.as_str().unwrap()).collect())
        .unwrap_or_default();
    for (name, p) in properties {
        assert!(
            p["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{crate_name}.{name} has no description"
        );
        if required.contains(&name.as_str()) {
            assert!(
                object.contains_key(name),
                "{crate_name}: required {name} missing from the minimal params"
            );
            continue;
        }
        // An optional key with a value of the wrong type: refused, but not as unknown.
        let mut with = object.clone();
        with.insert(name.clone(), json!([[[]]]));
        match configure::<P>(&Value::Object(with).to_string()) {
            Err(RuleError::BadParams(m)) => {
                assert!(
                    !m.contains("unknown field"),
                    "{crate_name}: described key {name} is unknown: {m}"
                )
            }
            Ok(_) => panic!("{crate_name}: {name} accepted [[[]]]"),
            Err(e) => panic!("{crate_name}: {e:?}"),
        }
    }
    let mut with = object.clone();
    with.insert("not_a_key".into(), json!("x"));
    match configure::<P>(&Value::Object(with).to_string()) {
        Err(RuleError::BadParams(m)) => assert!(m.contains("unknown field `not_a_key`"), "{m}"),
        _ => panic!("{crate_name}: an unknown key was accepted"),
    }
    for key in object.keys() {
        assert!(
            properties.contains_key(key),
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
