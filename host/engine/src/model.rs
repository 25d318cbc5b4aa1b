//! The host's view of the contract's data: what goes into a chain, what comes out of it.
//!
//! These types mirror `wit/rules.wit` but belong to the host: they use `rust_decimal` and `chrono`,
//! derive `serde` (the harness reads them from case files, the runtime writes them to the
//! database), and never change when a new contract version is added next to 0.1.0.

use std::fmt;
use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A customer's class, which chooses the price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CustomerClass {
    /// Homes (居民).
    #[default]
    Residential,
    /// Businesses, offices and public buildings (非居民).
    NonResidential,
}

/// Whether the customer takes heat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceStatus {
    /// Heated as normal.
    #[default]
    Active,
    /// Heating stopped at the customer's request (报停).
    Suspended,
}

/// Who pays a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Payer {
    /// The customer.
    #[default]
    Customer,
    /// The government (subsidies, the state's share of a price).
    Government,
    /// The customer's employer or another third party.
    Employer,
}

impl Payer {
    /// The contract's name for it: `customer`, `government`, `employer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Payer::Customer => "customer",
            Payer::Government => "government",
            Payer::Employer => "employer",
        }
    }
}

/// What kind of charge a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LineCategory {
    /// A fee for heat service by area (采暖费), including the basic part of a two-part tariff.
    Heating,
    /// A charge for metered heat (计量热费).
    Consumption,
    /// The base fee of a suspended customer (报停基本费).
    BaseFee,
    /// A subsidy.
    Subsidy,
    /// A refund.
    Refund,
    /// A late fee (滞纳金).
    LateFee,
    /// Anything else.
    Other,
}

impl LineCategory {
    /// The contract's name for it: `heating`, `consumption`, `base-fee`, `subsidy`, `refund`,
    /// `late-fee`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            LineCategory::Heating => "heating",
            LineCategory::Consumption => "consumption",
            LineCategory::BaseFee => "base-fee",
            LineCategory::Subsidy => "subsidy",
            LineCategory::Refund => "refund",
            LineCategory::LateFee => "late-fee",
            LineCategory::Other => "other",
        }
    }
}

/// Where the bill date stands in the heating season.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeasonPhase {
    /// Not a heating day.
    Outside,
    /// A day of the regular season.
    Regular,
    /// An early-start day (提前供热).
    Early,
    /// An extension day (延长供热).
    Extended,
}

/// The bill date's place in the heating season (the contract's `season-day`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeasonDay {
    /// Regular, early, extended or outside.
    pub phase: SeasonPhase,
    /// The 1-based index k of the date in the regular season (0 outside).
    pub day_index: u32,
    /// The number of days N of the regular season.
    pub season_days: u32,
    /// Whether early and extended days are charged.
    pub charged: bool,
}

/// What a plugin is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// Decides the bill date's place in the season.
    Season,
    /// Prices heat.
    Tariff,
    /// Subsidies and refunds.
    Subsidy,
    /// Fees such as late fees.
    Fee,
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginKind::Season => "season",
            PluginKind::Tariff => "tariff",
            PluginKind::Subsidy => "subsidy",
            PluginKind::Fee => "fee",
        })
    }
}

/// The type of a plugin parameter as a summary shows it: the type of its schema (contract
/// 0.1.0's `param-type`, which the host turns into a schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamType {
    /// A decimal written as a JSON string, e.g. `"38.32"`.
    Decimal,
    /// A JSON integer.
    Integer,
    /// A JSON boolean.
    Boolean,
    /// A date written as a JSON string `"YYYY-MM-DD"`.
    Date,
    /// A JSON string.
    Text,
    /// A JSON object or array (or anything else its schema allows: the schema has the shape).
    Json,
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamType::Decimal => "decimal",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
            ParamType::Date => "date",
            ParamType::Text => "text",
            ParamType::Json => "json",
        })
    }
}

/// One parameter a plugin declares: a top-level property of its parameter schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// The key in the parameter object.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: ParamType,
    /// Whether it must be present.
    pub required: bool,
    /// What it means, its unit and its default.
    pub description: String,
}

/// Who a plugin is and what it takes: its `describe()`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// The plugin's name, e.g. `area-tariff`.
    pub name: String,
    /// Its semantic version, e.g. `1.0.0`.
    pub version: String,
    /// Its kind.
    pub kind: PluginKind,
    /// What it bills.
    pub description: String,
    /// Its parameters: the top-level properties of `params_schema`, summarised (what `plugin
    /// check` and the guide's tables list).
    pub params: Vec<ParamSpec>,
    /// The JSON Schema (draft 2020-12) of its parameter object, as `describe()` gave it
    /// (a contract 0.1.0 plugin's parameter list converted). Chain entries' parameters are
    /// validated against it.
    pub params_schema: serde_json::Value,
}

/// The kind of a rule error: the plugin's refusal, which is data, not a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleErrorKind {
    /// The parameters are invalid.
    BadParams,
    /// An input the rule needs is missing.
    MissingInput,
    /// An input is present but unusable.
    InvalidInput,
    /// The rule does not handle this case.
    Unsupported,
}

impl RuleErrorKind {
    /// The contract's name: `bad-params`, `missing-input`, `invalid-input`, `unsupported`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleErrorKind::BadParams => "bad-params",
            RuleErrorKind::MissingInput => "missing-input",
            RuleErrorKind::InvalidInput => "invalid-input",
            RuleErrorKind::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for RuleErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a plugin crashed: the host-side error layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrapKind {
    /// The call ran past its deadline (epoch interruption).
    Deadline,
    /// The plugin tried to grow its memory past the limit.
    MemoryLimit,
    /// The plugin panicked (Rust's panic aborts with `unreachable`; the panic message is kept).
    Panic,
    /// The plugin executed `unreachable` without a panic message.
    Unreachable,
    /// The plugin called `exit`.
    Exit,
    /// The plugin exhausted its call stack.
    StackOverflow,
    /// Any other trap or canonical-ABI error (bad pointer, invalid UTF-8, out-of-bounds access).
    Other,
}

impl TrapKind {
    /// A short stable name: `deadline`, `memory-limit`, `panic`, `unreachable`, `exit`,
    /// `stack-overflow`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            TrapKind::Deadline => "deadline",
            TrapKind::MemoryLimit => "memory-limit",
            TrapKind::Panic => "panic",
            TrapKind::Unreachable => "unreachable",
            TrapKind::Exit => "exit",
            TrapKind::StackOverflow => "stack-overflow",
            TrapKind::Other => "other",
        }
    }
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One customer on one bill date: the input of a chain.
///
/// Build it with [`DayInput::new`] and set what the customer has; every other field has the
/// default shown there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayInput {
    /// The customer's id; never passed to plugins (pricing does not depend on it), printed in
    /// every error.
    pub customer: String,
    /// The bill date.
    pub date: NaiveDate,
    /// Residential or non-residential. Default: residential.
    pub class: CustomerClass,
    /// A special class within it, e.g. `garage`. Default: none.
    pub special_class: Option<String>,
    /// Active or suspended. Default: active.
    pub status: ServiceStatus,
    /// Whether the customer's heat is metered. Default: false.
    pub metered: bool,
    /// Whether the customer is a low-income household. Default: false.
    pub low_income: bool,
    /// The building area in m². Default: 0.
    pub building_area: Decimal,
    /// The usable area in m². Default: none.
    pub usable_area: Option<Decimal>,
    /// The ceiling height in m. Default: none.
    pub ceiling_height: Option<Decimal>,
    /// The heat metered on the date, in GJ. Default: none.
    pub heat: Option<Decimal>,
    /// The measured indoor temperature of the date, in °C. Default: none.
    pub indoor_temperature: Option<Decimal>,
    /// The unpaid principal at the start of the date, in yuan. Default: 0.
    pub arrears: Decimal,
    /// Since when that principal is overdue. Default: none.
    pub arrears_since: Option<NaiveDate>,
    /// Free tags, e.g. `district:nangang`. Default: none.
    pub tags: Vec<String>,
    /// Free attributes (key, value). Default: none.
    pub attributes: Vec<(String, String)>,
    /// The date's place in the season, for chains without a season plugin. Default: none.
    pub season: Option<SeasonDay>,
}

impl DayInput {
    /// A residential, active, unmetered customer with no area, no arrears and no tags.
    pub fn new(customer: impl Into<String>, date: NaiveDate) -> Self {
        Self {
            customer: customer.into(),
            date,
            class: CustomerClass::Residential,
            special_class: None,
            status: ServiceStatus::Active,
            metered: false,
            low_income: false,
            building_area: Decimal::ZERO,
            usable_area: None,
            ceiling_height: None,
            heat: None,
            indoor_temperature: None,
            arrears: Decimal::ZERO,
            arrears_since: None,
            tags: Vec::new(),
            attributes: Vec::new(),
            season: None,
        }
    }
}

/// A kind of line as one configured plugin announced it, with the plugin that announced it.
///
/// Built once per instance when `configure` returns; every [`BillLine`] of that kind shares it,
/// so a line on the hot path costs one reference count, not five strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LineKind {
    /// The producing plugin's name.
    pub plugin: String,
    /// The producing plugin's version.
    pub plugin_version: String,
    /// The line's stable code, e.g. `heat`.
    pub code: String,
    /// The text printed on the bill.
    pub description: String,
    /// The unit of the quantity, e.g. `m2`.
    pub unit: String,
    /// What kind of charge it is.
    pub category: LineCategory,
    /// The chain entry that announced it (0-based position in the chain).
    #[serde(default)]
    pub entry: u32,
    /// Its index in the list that entry's `configure` returned.
    #[serde(default)]
    pub index: u16,
}

/// One line of a bill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillLine {
    /// The line's kind: plugin, version, code, description, unit, category.
    pub kind: Arc<LineKind>,
    /// The quantity billed.
    pub quantity: Decimal,
    /// The price per unit (informative).
    pub unit_price: Decimal,
    /// The amount in yuan, whole fen, always with scale 2 (`12.50`).
    pub amount: Decimal,
    /// Who pays it.
    pub payer: Payer,
    /// When the line is one day's share of a season fee (contract 0.2.0): the season amount it
    /// is spread from, whole fen. Later plugins see it on the prior line; it is not stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub season_amount: Option<Decimal>,
}

impl BillLine {
    /// The line's code, e.g. `heat`.
    pub fn code(&self) -> &str {
        &self.kind.code
    }
    /// The line's description.
    pub fn description(&self) -> &str {
        &self.kind.description
    }
    /// The unit of its quantity.
    pub fn unit(&self) -> &str {
        &self.kind.unit
    }
    /// Its category.
    pub fn category(&self) -> LineCategory {
        self.kind.category
    }
    /// The name of the plugin that produced it.
    pub fn plugin(&self) -> &str {
        &self.kind.plugin
    }
    /// The version of the plugin that produced it.
    pub fn plugin_version(&self) -> &str {
        &self.kind.plugin_version
    }
}

/// A bill's totals by payer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PayerTotals {
    /// What the customer pays.
    pub customer: Decimal,
    /// What the government pays.
    pub government: Decimal,
    /// What an employer or other third party pays.
    pub employer: Decimal,
}

impl PayerTotals {
    /// The total of one payer.
    pub fn get(&self, payer: Payer) -> Decimal {
        match payer {
            Payer::Customer => self.customer,
            Payer::Government => self.government,
            Payer::Employer => self.employer,
        }
    }
}

/// One customer's bill for one date: the output of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bill {
    /// The bill date.
    pub date: NaiveDate,
    /// The lines, in chain order, each plugin's in the order it returned them.
    pub lines: Vec<BillLine>,
    /// The sum of the lines' amounts.
    pub total: Decimal,
    /// The sum of the lines' amounts by payer.
    pub by_payer: PayerTotals,
    /// The date's place in the season, as the season plugin (or the input preset) gave it.
    pub season: Option<SeasonDay>,
}

pub use crate::units::HeatUnit;

impl std::str::FromStr for HeatUnit {
    type Err = String;

    /// "GJ", "kWh" or "MWh", in any letter case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "gj" => Ok(HeatUnit::Gj),
            "kwh" => Ok(HeatUnit::Kwh),
            "mwh" => Ok(HeatUnit::Mwh),
            _ => Err("a heat unit is \"GJ\", \"kWh\" or \"MWh\"".to_string()),
        }
    }
}
