//! The case-file model: a rule chain with its parameters, and the customer-days to run through
//! it with what they must produce. The format is documented in `docs/case-format.md`; every
//! table denies unknown keys, so a typo fails loudly instead of silently testing nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;

/// A parsed case file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// What the file tests, shown in the report.
    #[serde(default)]
    pub description: Option<String>,
    /// The company name used in error messages (default: the file's stem).
    #[serde(default)]
    pub company: Option<String>,
    /// The rule chain, in order.
    pub chain: Vec<ChainEntrySpec>,
    /// The cases.
    #[serde(default, rename = "case")]
    pub cases: Vec<Case>,
    /// Where the file was read from (set by [`CaseFile::load`]).
    #[serde(skip)]
    pub path: PathBuf,
}

/// One entry of the chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainEntrySpec {
    /// The plugin's described name.
    pub plugin: String,
    /// When given, the plugin's described version must equal it.
    #[serde(default)]
    pub version: Option<String>,
    /// The parameter object.
    #[serde(default = "empty_object")]
    pub params: toml::Value,
    /// Later versions of the parameters, each in force from its date: a price change, as a
    /// company's chain versions have them. The days before the first are billed with `params`.
    #[serde(default)]
    pub from: Vec<ParamsVersion>,
}

impl ChainEntrySpec {
    /// The parameters in force on `date`: those of the last `[[chain.from]]` on or before it,
    /// else the first ones (`None`: the first ones).
    pub fn params_on(&self, date: Option<NaiveDate>) -> &toml::Value {
        date.and_then(|d| self.from.iter().rfind(|v| v.date <= d))
            .map_or(&self.params, |v| &v.params)
    }
}

/// Parameters of a chain entry in force from a date.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamsVersion {
    /// The first date they bill.
    pub date: NaiveDate,
    /// The parameter object.
    pub params: toml::Value,
}

fn empty_object() -> toml::Value {
    toml::Value::Table(Default::default())
}

/// One case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Its name in the report.
    pub name: String,
    /// The customer (and, without `dates`, the bill date).
    #[serde(default)]
    pub customer: CustomerSpec,
    /// A range of dates whose results are summed.
    #[serde(default)]
    pub dates: Option<DateRange>,
    /// What must come out.
    pub expect: Expect,
}

impl Case {
    /// The bill dates of the case, in order: the range's days, or the customer's one date.
    pub fn dates(&self) -> Vec<NaiveDate> {
        match (&self.dates, self.customer.date) {
            (Some(r), _) => r.days().collect(),
            (None, Some(d)) => vec![d],
            (None, None) => Vec::new(),
        }
    }
}

/// An inclusive range of bill dates.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateRange {
    /// The first date.
    pub from: NaiveDate,
    /// The last date (inclusive).
    pub to: NaiveDate,
}

impl DateRange {
    /// Every date of the range, in order.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.from.iter_days().take_while(move |d| *d <= self.to)
    }
}

/// The customer of a case. Defaults are those of `docs/case-format.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CustomerSpec {
    pub date: Option<NaiveDate>,
    pub id: String,
    pub class: String,
    pub special_class: Option<String>,
    pub status: String,
    pub metered: bool,
    pub low_income: bool,
    pub building_area: Decimal,
    pub usable_area: Option<Decimal>,
    pub ceiling_height: Option<Decimal>,
    pub heat: Option<Decimal>,
    /// The unit `heat` is read in (default GJ); converted to GJ exactly for the plugins.
    pub heat_unit: HeatUnit,
    pub indoor_temperature: Option<Decimal>,
    pub arrears: Decimal,
    pub arrears_since: Option<NaiveDate>,
    pub tags: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    pub season: Option<SeasonSpec>,
}

impl Default for CustomerSpec {
    fn default() -> Self {
        Self {
            date: None,
            id: "case".into(),
            class: "residential".into(),
            special_class: None,
            status: "active".into(),
            metered: false,
            low_income: false,
            building_area: Decimal::ZERO,
            usable_area: None,
            ceiling_height: None,
            heat: None,
            heat_unit: HeatUnit::Gj,
            indoor_temperature: None,
            arrears: Decimal::ZERO,
            arrears_since: None,
            tags: Vec::new(),
            attributes: BTreeMap::new(),
            season: None,
        }
    }
}

impl CustomerSpec {
    /// The heat reading in GJ, as the plugins see it: as written when read in GJ, else
    /// converted exactly and normalised. `None` without a reading (a reading that does not fit
    /// in GJ is refused when the file is read).
    pub fn heat_gj(&self) -> Option<Decimal> {
        self.heat.and_then(|h| self.heat_unit.to_gj(h))
    }
}

/// The unit metered heat is read in (`heat_unit`), the engine's own (one source file, included
/// here by path: this crate must not depend on the engine).
#[path = "../../engine/src/units.rs"]
mod units;
pub use units::HeatUnit;

/// A preset season position, for chains without a season plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeasonSpec {
    pub phase: String,
    pub day_index: u32,
    pub season_days: u32,
    #[serde(default = "yes")]
    pub charged: bool,
}

fn yes() -> bool {
    true
}

/// What a case expects.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The bill's lines, in order (single-day cases).
    #[serde(default)]
    pub lines: Option<Vec<ExpectLine>>,
    /// Totals (summed over the range for range cases).
    #[serde(default)]
    pub totals: Option<ExpectTotals>,
    /// A refusal: a rule-error kind (`bad-params`, `missing-input`, `invalid-input`,
    /// `unsupported`), or `trap`, `invalid-output`, `input`, `skipped`, `no-chain`.
    #[serde(default)]
    pub error: Option<String>,
    /// With `error`: a text the error's message must contain (e.g. the invariant an
    /// `invalid-output` names).
    #[serde(default)]
    pub message: Option<String>,
    /// Range cases: summed amount per line code.
    #[serde(default)]
    pub sum: Option<BTreeMap<String, Decimal>>,
    /// Range cases: the number of dates with at least one line.
    #[serde(default)]
    pub days: Option<u32>,
}

/// One expected line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectLine {
    pub code: String,
    pub amount: Decimal,
    #[serde(default = "customer")]
    pub payer: String,
    #[serde(default)]
    pub quantity: Option<Decimal>,
    #[serde(default)]
    pub unit_price: Option<Decimal>,
}

fn customer() -> String {
    "customer".into()
}

/// Expected totals; each is compared only when given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectTotals {
    pub total: Option<Decimal>,
    pub customer: Option<Decimal>,
    pub government: Option<Decimal>,
    pub employer: Option<Decimal>,
}

impl CaseFile {
    /// Reads and checks a case file. Errors name the file, and TOML errors the line.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read case file {}", path.display()))?;
        let mut file: CaseFile = toml::from_str(&text)
            .with_context(|| format!("case file {} is not valid", path.display()))?;
        file.path = path.to_path_buf();
        file.check()
            .with_context(|| format!("case file {} is not valid", path.display()))?;
        Ok(file)
    }

    /// Reads and checks a case file's text, named `name` (an upload's case file).
    pub fn parse(text: &str, name: &str) -> Result<Self> {
        let mut file: CaseFile =
            toml::from_str(text).with_context(|| format!("case file {name} is not valid"))?;
        file.path = PathBuf::from(name);
        file.check()
            .with_context(|| format!("case file {name} is not valid"))?;
        Ok(file)
    }

    /// The company name for error messages.
    pub fn company(&self) -> String {
        self.company.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "cases".into())
        })
    }

    /// The dates on which some entry's parameters change (its `[[chain.from]]` dates), in
    /// order, each once: the chain's later versions start on them.
    pub fn version_dates(&self) -> Vec<NaiveDate> {
        let mut dates: Vec<NaiveDate> = self
            .chain
            .iter()
            .flat_map(|e| e.from.iter().map(|v| v.date))
            .collect();
        dates.sort_unstable();
        dates.dedup();
        dates
    }

    /// The chain as one line: `season → area-tariff → …`.
    pub fn chain_summary(&self) -> String {
        self.chain
            .iter()
            .map(|e| e.plugin.as_str())
            .collect::<Vec<_>>()
            .join(" → ")
    }

    fn check(&self) -> Result<()> {
        if self.chain.is_empty() {
            bail!("the chain is empty: add at least one [[chain]] entry with a `plugin`");
        }
        for e in &self.chain {
            for w in e.from.windows(2) {
                if w[1].date <= w[0].date {
                    bail!(
                        "chain entry {:?}: its [[chain.from]] dates must increase ({} after {})",
                        e.plugin,
                        w[1].date,
                        w[0].date
                    );
                }
            }
        }
        for case in &self.cases {
            let c = &case.customer;
            if let Some(h) = c.heat
                && c.heat_unit.to_gj(h).is_none()
            {
                bail!(
                    "case {:?}: heat {h} {} does not fit a decimal in GJ",
                    case.name,
                    c.heat_unit.as_str()
                );
            }
            match (&case.dates, c.date) {
                (None, None) => bail!(
                    "case {:?}: give the bill date as customer.date, or a range as dates = {{ from, to }}",
                    case.name
                ),
                (Some(_), Some(_)) => bail!(
                    "case {:?}: give either customer.date or dates, not both",
                    case.name
                ),
                (Some(r), None) if r.to < r.from => {
                    bail!("case {:?}: dates.to is before dates.from", case.name)
                }
                _ => {}
            }
            let e = &case.expect;
            if case.dates.is_some() && e.lines.is_some() {
                bail!(
                    "case {:?}: a range case compares `sum`, `totals` and `days`, not `lines`",
                    case.name
                );
            }
            if case.dates.is_none() && (e.sum.is_some() || e.days.is_some()) {
                bail!(
                    "case {:?}: `sum` and `days` are for range cases (dates = {{ from, to }})",
                    case.name
                );
            }
            if e.error.is_some() && (e.lines.is_some() || e.totals.is_some() || e.sum.is_some()) {
                bail!(
                    "case {:?}: a case expects either an error or lines/totals, not both",
                    case.name
                );
            }
            if e.error.is_none()
                && e.lines.is_none()
                && e.totals.is_none()
                && e.sum.is_none()
                && e.days.is_none()
            {
                bail!(
                    "case {:?}: expect nothing? give expect.lines, expect.totals, expect.sum or expect.error",
                    case.name
                );
            }
            if let Some(kind) = &e.error
                && ![
                    "bad-params",
                    "missing-input",
                    "invalid-input",
                    "unsupported",
                    "trap",
                    "invalid-output",
                    "input",
                    "skipped",
                    "no-chain",
                ]
                .contains(&kind.as_str())
            {
                bail!(
                    "case {:?}: expect.error = {kind:?} is not a kind; use bad-params, missing-input, invalid-input, unsupported, trap, invalid-output, input, skipped or no-chain",
                    case.name
                );
            }
            if e.message.is_some() && e.error.is_none() {
                bail!(
                    "case {:?}: expect.message is the text of an expected error; give expect.error too",
                    case.name
                );
            }
            for l in e.lines.iter().flatten() {
                check_payer(&case.name, &l.payer)?;
            }
            if !["residential", "non-residential"].contains(&c.class.as_str()) {
                bail!(
                    "case {:?}: class {:?} is not a class; use \"residential\" or \"non-residential\" (special classes go in special_class)",
                    case.name,
                    c.class
                );
            }
            if !["active", "suspended"].contains(&c.status.as_str()) {
                bail!(
                    "case {:?}: status {:?} is not a status; use \"active\" or \"suspended\"",
                    case.name,
                    c.status
                );
            }
            if let Some(s) = &c.season
                && !["outside", "regular", "early", "extended"].contains(&s.phase.as_str())
            {
                bail!(
                    "case {:?}: season.phase {:?} is not a phase; use outside, regular, early or extended",
                    case.name,
                    s.phase
                );
            }
        }
        Ok(())
    }
}

fn check_payer(case: &str, payer: &str) -> Result<()> {
    if !["customer", "government", "employer"].contains(&payer) {
        bail!(
            "case {case:?}: payer {payer:?} is not a payer; use customer, government or employer"
        );
    }
    Ok(())
}
