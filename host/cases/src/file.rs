//! The case-file model: a rule chain with its parameters, and the customer-days to run through
//! it with what they must produce. The format is documented in `docs/case-format.md`; every
//! table denies unknown keys, so a typo fails loudly instead of silently testing nothing.
//!
//! A case file is input from whoever wrote it (an integrator's upload, a repository someone
//! cloned), so every bound is checked before anything is allocated for it: the file's size
//! before it is read or parsed ([`MAX_FILE_BYTES`]), and the customer-days its cases bill, and
//! the memory they take, from the dates and the customers alone, before a single customer-day
//! is made ([`MAX_CUSTOMER_DAYS`], [`MAX_INPUT_BYTES`]).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;

/// The largest case file read, in bytes: 1 MiB (1,048,576). The reference files are a few KiB; a
/// file over it is refused before it is read whole or parsed.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The most customer-days one case file may bill: 100,000 (a whole year for 270 cases; the
/// reference files bill a few hundred). Counted from the cases' dates, before any is made: a
/// range of `0001-01-01..9999-12-31` is refused, not walked.
pub const MAX_CUSTOMER_DAYS: u64 = 100_000;

/// The most memory a case file's customer-days may take as a runner holds them, in bytes: 64
/// MiB (67,108,864). Each customer-day copies its customer, so a customer with many tags or
/// attributes costs as much on every day of its range: a case counts its days times
/// [`CustomerSpec::footprint`]. An ordinary customer is about 400 bytes, so
/// [`MAX_CUSTOMER_DAYS`] binds first; a customer carrying 100 KiB of tags may span a few hundred
/// days.
pub const MAX_INPUT_BYTES: u64 = 64 << 20;

/// The most chain entries a case file may have: 64.
pub const MAX_CHAIN_ENTRIES: usize = 64;

/// The most `[[chain.from]]` parameter versions a case file may have, all entries together:
/// 1,000. Each is one more chain version to build and configure.
pub const MAX_PARAMS_VERSIONS: usize = 1_000;

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
    /// When given, the file expects its chain to be refused when configured (a plugin's check
    /// of its parameters), not to bill: such a file has no cases.
    #[serde(default)]
    pub refused: Option<Refused>,
    /// Where the file was read from (set by [`CaseFile::load`]).
    #[serde(skip)]
    pub path: PathBuf,
}

/// A chain the file expects to be refused (`[refused]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refused {
    /// A text the refusal must contain.
    #[serde(default)]
    pub message: Option<String>,
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
    /// How many customer-days the case bills: the days of its range, or its one date (0 without
    /// either), counted without making them.
    pub fn day_count(&self) -> u64 {
        match (&self.dates, self.customer.date) {
            (Some(r), _) => r.len(),
            (None, Some(_)) => 1,
            (None, None) => 0,
        }
    }

    /// The bill dates of the case, in order: the range's days, or the customer's one date. A
    /// file read by [`CaseFile::load`] or [`CaseFile::parse`] has at most [`MAX_CUSTOMER_DAYS`]
    /// of them in all.
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
    /// How many dates the range has (0 when `to` is before `from`), counted, not walked.
    pub fn len(&self) -> u64 {
        u64::try_from((self.to - self.from).num_days() + 1).unwrap_or(0)
    }

    /// Whether the range has no date (`to` before `from`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

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
    /// About how many bytes one customer-day of this customer takes as a runner holds it: a
    /// fixed 256 for the numbers and flags, and for each text (id, class, special class,
    /// status, every tag, every attribute's key and value) its length and 32 of bookkeeping.
    /// The measure of [`MAX_INPUT_BYTES`].
    pub fn footprint(&self) -> u64 {
        let text = |s: &str| 32 + s.len() as u64;
        let mut n = 256 + text(&self.id) + text(&self.class) + text(&self.status);
        n += self.special_class.as_deref().map_or(0, text);
        n += self.tags.iter().map(|t| text(t)).sum::<u64>();
        n += self
            .attributes
            .iter()
            .map(|(k, v)| text(k) + text(v))
            .sum::<u64>();
        n
    }

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
    /// Reads and checks a case file. Errors name the file, and TOML errors the line. At most
    /// [`MAX_FILE_BYTES`] are read: a larger file (or a device that never ends) is refused
    /// without being read whole.
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_capped(path)
            .with_context(|| format!("cannot read case file {}", path.display()))?;
        let mut file: CaseFile = toml::from_str(&text)
            .with_context(|| format!("case file {} is not valid", path.display()))?;
        file.path = path.to_path_buf();
        file.check()
            .with_context(|| format!("case file {} is not valid", path.display()))?;
        Ok(file)
    }

    /// Reads and checks a case file's text, named `name` (an upload's case file). A text over
    /// [`MAX_FILE_BYTES`] is refused before it is parsed.
    pub fn parse(text: &str, name: &str) -> Result<Self> {
        if text.len() as u64 > MAX_FILE_BYTES {
            bail!(
                "case file {name} is {} bytes; a case file is at most {MAX_FILE_BYTES} bytes \
                 (split its cases over several files)",
                text.len()
            );
        }
        let mut file: CaseFile =
            toml::from_str(text).with_context(|| format!("case file {name} is not valid"))?;
        file.path = PathBuf::from(name);
        file.check()
            .with_context(|| format!("case file {name} is not valid"))?;
        Ok(file)
    }

    /// How many customer-days the file's cases bill, counted from their dates without making
    /// them (at most [`MAX_CUSTOMER_DAYS`] in a file that was read and checked).
    pub fn customer_days(&self) -> u64 {
        self.cases
            .iter()
            .fold(0u64, |n, c| n.saturating_add(c.day_count()))
    }

    /// About how many bytes the file's customer-days take as a runner holds them (at most
    /// [`MAX_INPUT_BYTES`] in a file that was read and checked): see
    /// [`CustomerSpec::footprint`].
    pub fn input_bytes(&self) -> u64 {
        self.cases.iter().fold(0u64, |n, c| {
            n.saturating_add(c.day_count().saturating_mul(c.customer.footprint()))
        })
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
        if self.chain.len() > MAX_CHAIN_ENTRIES {
            bail!(
                "the chain has {} entries; a case file's chain has at most {MAX_CHAIN_ENTRIES}",
                self.chain.len()
            );
        }
        let versions: usize = self.chain.iter().map(|e| e.from.len()).sum();
        if versions > MAX_PARAMS_VERSIONS {
            bail!(
                "the chain has {versions} [[chain.from]] parameter versions; a case file has at \
                 most {MAX_PARAMS_VERSIONS}"
            );
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
        if self.refused.is_some() && !self.cases.is_empty() {
            bail!(
                "the file expects its chain to be refused ([refused]) and also has [[case]]s: a \
                 refused chain bills nothing, so put the cases in a file of their own"
            );
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
        self.check_size()
    }

    /// The bounds of what running the file costs, from the dates and customers alone.
    fn check_size(&self) -> Result<()> {
        let days = self.customer_days();
        if days > MAX_CUSTOMER_DAYS {
            let widest = self
                .cases
                .iter()
                .max_by_key(|c| c.day_count())
                .expect("a file that bills days has cases");
            bail!(
                "the cases bill {days} customer-days; a case file bills at most \
                 {MAX_CUSTOMER_DAYS} (the largest case, {:?}, bills {}: narrow its dates, or \
                 split the cases over several files)",
                widest.name,
                widest.day_count()
            );
        }
        let bytes = self.input_bytes();
        if bytes > MAX_INPUT_BYTES {
            let heaviest = self
                .cases
                .iter()
                .max_by_key(|c| c.day_count().saturating_mul(c.customer.footprint()))
                .expect("a file that takes memory has cases");
            bail!(
                "the cases' customer-days take about {bytes} bytes; a case file's take at most \
                 {MAX_INPUT_BYTES} (the largest, case {:?}, is {} days of a customer of about {} \
                 bytes: fewer tags or attributes, or fewer days)",
                heaviest.name,
                heaviest.day_count(),
                heaviest.customer.footprint()
            );
        }
        Ok(())
    }
}

/// The text of the file at `path`, at most [`MAX_FILE_BYTES`] of it: a regular file's size is
/// checked before it is read, and whatever the path names is read no further than one byte past
/// the cap.
fn read_capped(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        bail!("it is a directory");
    }
    if meta.is_file() && meta.len() > MAX_FILE_BYTES {
        bail!(
            "it is {} bytes; a case file is at most {MAX_FILE_BYTES} bytes (split its cases over \
             several files)",
            meta.len()
        );
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        bail!("it is over {MAX_FILE_BYTES} bytes, the most a case file may be");
    }
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("it is not UTF-8 text"))
}

fn check_payer(case: &str, payer: &str) -> Result<()> {
    if !["customer", "government", "employer"].contains(&payer) {
        bail!(
            "case {case:?}: payer {payer:?} is not a payer; use customer, government or employer"
        );
    }
    Ok(())
}
