//! The generated company's customers as engine input, for benchmarks that measure evaluation
//! alone (`heatbill-bench`). The demo itself (`heatbill demo`) runs the whole runtime: see
//! `commands/demo.rs`.

use chrono::NaiveDate;
use heatbill_engine::DayInput;
use heatbill_runtime::demo;

/// The customers of the generated company on `date`, as the engine takes them (the same
/// customers the demo imports).
pub fn generate(customers: usize, date: NaiveDate) -> Vec<DayInput> {
    demo::customers(customers, date)
        .map(|c| {
            let s = c.state;
            let mut d = DayInput::new(s.customer_id, date);
            d.class = s.class;
            d.special_class = s.special_class;
            d.status = s.status;
            d.metered = s.metered;
            d.low_income = s.low_income;
            d.building_area = s.building_area;
            d.usable_area = s.usable_area;
            d.ceiling_height = s.ceiling_height;
            d.heat = c.heat;
            d.indoor_temperature = c.temperature;
            if let Some((arrears, since)) = c.arrears {
                d.arrears = arrears;
                d.arrears_since = Some(since);
            }
            d
        })
        .collect()
}
