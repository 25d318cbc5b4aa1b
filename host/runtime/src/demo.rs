//! A generated heating company: the demo's, the benchmarks' and the load tests' data.
//!
//! Deterministic (the same customers on every run and machine) and shaped like a northern
//! city: mostly homes of 40–140 m², 12 % non-residential, 15 % metered, 4 % suspended, 5 %
//! low-income households, 12 % with arrears, 3 % with an indoor-temperature complaint. The
//! data leaves as the CSV files a company would import, so the demo and the benchmarks go
//! through the real import path.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use heatbill_engine::{CustomerClass, ServiceStatus};
use rust_decimal::Decimal;

use crate::model::CustomerState;

/// The demo company file: Harbin's figures through every reference plugin.
pub const COMPANY_FILE: &str = include_str!("../demo/harbin.toml");

/// The demo company's slug.
pub const COMPANY: &str = "harbin-demo";

/// A company file of the reference chain (season → area tariff → low-income subsidy → late
/// fee, Harbin's figures, as in `plugins/cases/reference-chain.toml`): what the benchmarks
/// bill, every day of the season without a reading to miss.
pub fn reference_company(slug: &str) -> String {
    format!(
        r#"slug = "{slug}"
name = "Benchmark company"
time_zone = "Asia/Harbin"
[[season]]
start = "2025-10-20"
end = "2026-04-20"
[[chain]]
effective_from = "2025-10-01"
[[chain.entry]]
plugin = "season"
params = {{ start = "2025-10-20", end = "2026-04-20" }}
[[chain.entry]]
plugin = "area-tariff"
params = {{ area_basis = "usable", prices = {{ residential = "38.32", non-residential = "43.3" }}, ceiling_surcharge = {{ classes = ["non-residential"], threshold = "3.2", step = "0.1", rate = "0.03", steps = "completed" }} }}
[[chain.entry]]
plugin = "low-income-subsidy"
params = {{ share = "1.00", area_cap = "45", area_basis = "usable" }}
[[chain.entry]]
plugin = "late-fee"
params = {{ daily_rate = "0.001", due_date = "2026-01-01" }}
"#
    )
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    /// A decimal in `[lo, hi)` with `scale` digits after the point.
    fn decimal(&mut self, lo: i64, hi: i64, scale: u32) -> Decimal {
        let span = (hi - lo) as u64 * 10u64.pow(scale);
        let units = lo * 10i64.pow(scale) + (self.next() % span) as i64;
        Decimal::new(units, scale)
    }
}

/// One generated customer and its data for a date.
#[derive(Debug, Clone)]
pub struct DemoCustomer {
    /// The customer as of the date.
    pub state: CustomerState,
    /// Metered heat of the date, GJ (metered customers).
    pub heat: Option<Decimal>,
    /// Indoor temperature of the date (complaints).
    pub temperature: Option<Decimal>,
    /// Arrears at the start of the date and since when.
    pub arrears: Option<(Decimal, NaiveDate)>,
}

/// The id of generated customer `i`.
pub fn customer_id(i: usize) -> String {
    format!("C{i:07}")
}

/// The generated company's customers and their data on `date`.
pub fn customers(n: usize, date: NaiveDate) -> impl Iterator<Item = DemoCustomer> {
    let mut rng = Rng(0x4845_4154_4249_4c4c);
    (0..n).map(move |i| {
        let residential = rng.chance(88);
        let building = if residential {
            rng.decimal(40, 140, 2)
        } else {
            rng.decimal(60, 2000, 2)
        };
        let ceiling = if residential {
            Decimal::new(28, 1)
        } else {
            rng.decimal(3, 5, 1)
        };
        let metered = rng.chance(15);
        let heat = metered
            .then(|| (building * rng.decimal(3, 12, 1) / Decimal::new(10_000, 0)).round_dp(3));
        let suspended = rng.chance(4);
        let low_income = residential && rng.chance(5);
        let arrears = rng
            .chance(12)
            .then(|| (rng.decimal(100, 5000, 2), date - chrono::Days::new(30)));
        let temperature = rng.chance(3).then(|| rng.decimal(14, 18, 1));
        DemoCustomer {
            state: CustomerState {
                customer_id: customer_id(i),
                valid_from: crate::import::BEGINNING,
                class: if residential {
                    CustomerClass::Residential
                } else {
                    CustomerClass::NonResidential
                },
                special_class: None,
                status: if suspended {
                    ServiceStatus::Suspended
                } else {
                    ServiceStatus::Active
                },
                metered,
                low_income,
                building_area: building,
                usable_area: Some((building * Decimal::new(80, 2)).round_dp(2)),
                ceiling_height: Some(ceiling),
                tags: Vec::new(),
                attributes: Vec::new(),
            },
            heat,
            temperature,
            arrears,
        }
    })
}

/// The CSV files of a generated company for one date.
#[derive(Debug, Clone)]
pub struct DemoFiles {
    /// customers.csv
    pub customers: PathBuf,
    /// readings.csv (the metered customers' heat of the date)
    pub readings: PathBuf,
    /// temperatures.csv
    pub temperatures: PathBuf,
    /// balances.csv (opening balances: the arrears)
    pub balances: PathBuf,
    /// payments.csv (a part of the arrears paid a week before the date)
    pub payments: PathBuf,
}

/// Writes the generated company's files for `date` into `dir`.
pub fn write_files(dir: &Path, n: usize, date: NaiveDate) -> std::io::Result<DemoFiles> {
    let files = DemoFiles {
        customers: dir.join("customers.csv"),
        readings: dir.join("readings.csv"),
        temperatures: dir.join("temperatures.csv"),
        balances: dir.join("balances.csv"),
        payments: dir.join("payments.csv"),
    };
    let open =
        |p: &Path| std::fs::File::create(p).map(|f| std::io::BufWriter::with_capacity(1 << 20, f));
    let mut cust = open(&files.customers)?;
    let mut read = open(&files.readings)?;
    let mut temp = open(&files.temperatures)?;
    let mut bal = open(&files.balances)?;
    let mut pay = open(&files.payments)?;
    writeln!(
        cust,
        "customer_id,class,status,metered,low_income,building_area,usable_area,ceiling_height"
    )?;
    writeln!(read, "customer_id,date,heat_gj")?;
    writeln!(temp, "customer_id,date,celsius")?;
    writeln!(bal, "customer_id,as_of,arrears,arrears_since")?;
    writeln!(pay, "payment_id,customer_id,paid_on,amount")?;
    let paid_on = date - chrono::Days::new(7);
    for (i, c) in customers(n, date).enumerate() {
        let s = &c.state;
        let opt = |d: Option<Decimal>| d.map(|d| d.to_string()).unwrap_or_default();
        writeln!(
            cust,
            "{},{},{},{},{},{},{},{}",
            s.customer_id,
            crate::model::class_str(s.class),
            crate::model::status_str(s.status),
            s.metered,
            s.low_income,
            s.building_area,
            opt(s.usable_area),
            opt(s.ceiling_height)
        )?;
        if let Some(h) = c.heat {
            writeln!(read, "{},{date},{h}", s.customer_id)?;
        }
        if let Some(t) = c.temperature {
            writeln!(temp, "{},{date},{t}", s.customer_id)?;
        }
        if let Some((arrears, since)) = c.arrears {
            // The opening balance a week before the date; a fifth of the debtors paid a part
            // of it since.
            writeln!(bal, "{},{paid_on},{arrears},{since}", s.customer_id)?;
            if i % 5 == 0 {
                let part = (arrears / Decimal::new(4, 0)).round_dp(2);
                writeln!(pay, "P{i:07},{},{paid_on},{part}", s.customer_id)?;
            }
        }
    }
    for mut w in [cust, read, temp, bal, pay] {
        w.flush()?;
    }
    Ok(files)
}

/// The customers of the generated company on `date`, as the engine takes them, for the
/// benchmarks that measure evaluation alone (`heatbill-bench`): the same customers the demo
/// imports, through the run's own translation
/// ([`CustomerState::day_input`](crate::model::CustomerState::day_input)), so a benchmark
/// evaluates what a night evaluates. The reference chain has its season plugin, so the run
/// passes no season preset, and neither does this.
pub fn day_inputs(n: usize, date: NaiveDate) -> Vec<heatbill_engine::DayInput> {
    customers(n, date)
        .map(|c| {
            let (arrears, arrears_since) = match c.arrears {
                Some((a, since)) => (a, Some(since)),
                None => (Default::default(), None),
            };
            let facts = crate::model::DayFacts {
                heat: c.heat,
                indoor_temperature: c.temperature,
                arrears,
                arrears_since,
            };
            c.state.day_input(date, &facts, None)
        })
        .collect()
}
