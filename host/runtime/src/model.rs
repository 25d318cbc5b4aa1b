//! The records the runtime keeps: what crosses the [`Store`](crate::store::Store) trait.
//!
//! The engine's own types (`DayInput`, `Bill`, …) describe one evaluation; these describe what is
//! stored around it: companies, customers as of a date, chain versions, shards and bills as the
//! system of record.
//!
//! One file, though long: it is data definitions only (records, their documented fields and
//! their conversions), the vocabulary the store, the runs and the API share; splitting it would
//! make every user import from several places.

use std::fmt;

use chrono::NaiveDate;
use heatbill_engine::{CustomerClass, ServiceStatus};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A heating company (a tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Company {
    /// The internal id (what rows reference).
    pub id: i32,
    /// The company's short name, e.g. `harbin`: what operators type.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// Its IANA time zone, e.g. `Asia/Harbin` (when its nightly run starts; local meter times).
    pub time_zone: String,
    /// Company policies (free JSON; the rules read theirs through chain parameters).
    pub policies: serde_json::Value,
    /// Bumped by every write of the company's data (imports, company and chain changes).
    pub data_version: i64,
    /// Bumped by imports that change customers, and only them: caches of customer data key on
    /// it.
    pub customers_version: i64,
    /// Regular heating seasons, by start date.
    pub seasons: Vec<Season>,
}

/// One regular heating season, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Season {
    /// The first day.
    pub start: NaiveDate,
    /// The last day.
    pub end: NaiveDate,
}

/// What a company is created or updated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanySpec {
    /// Short name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// IANA time zone.
    pub time_zone: String,
    /// Policies (JSON object).
    pub policies: serde_json::Value,
    /// Heating seasons (replace the stored ones).
    pub seasons: Vec<Season>,
}

/// A stored component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRecord {
    /// SHA-256 of the bytes, hex.
    pub digest: String,
    /// Described name.
    pub name: String,
    /// Described version.
    pub version: String,
    /// Described kind (`tariff`, …).
    pub kind: String,
    /// The contract version it implements, e.g. `0.1.0`.
    pub contract_version: String,
    /// Its whole `describe()`, as JSON.
    pub info: serde_json::Value,
    /// The component's bytes.
    pub component: Vec<u8>,
}

/// One entry of a stored chain definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainEntryDef {
    /// The component's digest.
    pub plugin: String,
    /// Its described name (for people; the digest is what counts).
    pub name: String,
    /// Its described version.
    pub version: String,
    /// The parameters.
    pub params: serde_json::Value,
}

/// A stored chain version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainVersion {
    /// Its id (bills reference it).
    pub id: i32,
    /// The first date it bills.
    pub effective_from: NaiveDate,
    /// SHA-256 of the canonical definition.
    pub digest: String,
    /// The entries, in order.
    pub entries: Vec<ChainEntryDef>,
}

/// A line kind as a chain version's entry announced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineKindRecord {
    /// The chain entry (0-based).
    pub entry: u16,
    /// The kind's index in the entry's announced list.
    pub kind: u16,
    /// The plugin.
    pub plugin: String,
    /// Its version.
    pub plugin_version: String,
    /// Line code.
    pub code: String,
    /// Text on the bill.
    pub description: String,
    /// Unit of the quantity.
    pub unit: String,
    /// Category (contract name, e.g. `heating`).
    pub category: String,
}

/// A customer as of a date: the version of its data in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerState {
    /// The company's id for the customer.
    pub customer_id: String,
    /// The date this version took effect.
    pub valid_from: NaiveDate,
    /// Residential or not.
    pub class: CustomerClass,
    /// Special class, e.g. `garage`.
    pub special_class: Option<String>,
    /// Active or suspended (报停).
    pub status: ServiceStatus,
    /// Metered heat.
    pub metered: bool,
    /// Low-income household (低保).
    pub low_income: bool,
    /// Building area, m².
    pub building_area: Decimal,
    /// Usable area, m².
    pub usable_area: Option<Decimal>,
    /// Ceiling height, m.
    pub ceiling_height: Option<Decimal>,
    /// Tags.
    pub tags: Vec<String>,
    /// Attributes (key, value), sorted by key.
    pub attributes: Vec<(String, String)>,
}

/// What a customer's day adds to its stored data: the day's usage and the balance it starts
/// with.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DayFacts {
    /// Metered heat of the date, GJ.
    pub heat: Option<Decimal>,
    /// Indoor temperature of the date.
    pub indoor_temperature: Option<Decimal>,
    /// Arrears at the start of the date.
    pub arrears: Decimal,
    /// Since when they have been owed.
    pub arrears_since: Option<NaiveDate>,
}

impl CustomerState {
    /// The customer's day as the rules engine takes it: the one translation from stored
    /// customer data to a plugin's input. The run, the dry run, the harness's case runner and
    /// the benchmarks all call it, so what a benchmark or a case file bills is what a night
    /// bills. `season` is the company's season preset for the date when the chain has no
    /// season plugin (see `run::season_preset`), else `None`.
    pub fn day_input(
        &self,
        date: NaiveDate,
        facts: &DayFacts,
        season: Option<heatbill_engine::SeasonDay>,
    ) -> heatbill_engine::DayInput {
        let mut d = heatbill_engine::DayInput::new(self.customer_id.as_str(), date);
        d.class = self.class;
        d.special_class = self.special_class.clone();
        d.status = self.status;
        d.metered = self.metered;
        d.low_income = self.low_income;
        d.building_area = self.building_area;
        d.usable_area = self.usable_area;
        d.ceiling_height = self.ceiling_height;
        d.heat = facts.heat;
        d.indoor_temperature = facts.indoor_temperature;
        d.arrears = facts.arrears;
        d.arrears_since = facts.arrears_since;
        d.tags = self.tags.clone();
        d.attributes = self.attributes.clone();
        d.season = season;
        d
    }

    /// The customer part of a bill's input digest: 8 bytes of SHA-256 over every field a bill
    /// depends on (not the id, not `valid_from`: a new version with the same data bills the
    /// same). Computed once when the version is imported and stored with it, so a run compares
    /// a customer's bill with its data without reading the data.
    pub fn digest(&self) -> [u8; 8] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        hash_str(&mut h, class_str(self.class));
        match &self.special_class {
            Some(s) => {
                h.update([1]);
                hash_str(&mut h, s);
            }
            None => h.update([0]),
        }
        hash_str(&mut h, status_str(self.status));
        h.update([u8::from(self.metered), u8::from(self.low_income)]);
        hash_decimal(&mut h, self.building_area);
        hash_opt_decimal(&mut h, self.usable_area);
        hash_opt_decimal(&mut h, self.ceiling_height);
        h.update((self.tags.len() as u32).to_le_bytes());
        for t in &self.tags {
            hash_str(&mut h, t);
        }
        h.update((self.attributes.len() as u32).to_le_bytes());
        for (k, v) in &self.attributes {
            hash_str(&mut h, k);
            hash_str(&mut h, v);
        }
        h.finalize()[..8].try_into().expect("8 bytes")
    }
}

/// Feeds a decimal to a digest: mantissa and scale (60.0 and 60.00 differ, as a bill would
/// print them differently; the sign of a zero does not count).
pub fn hash_decimal(h: &mut sha2::Sha256, d: Decimal) {
    use sha2::Digest;
    h.update(d.mantissa().to_le_bytes());
    h.update([d.scale() as u8]);
}

/// Feeds an optional decimal to a digest (its presence first).
pub fn hash_opt_decimal(h: &mut sha2::Sha256, d: Option<Decimal>) {
    use sha2::Digest;
    match d {
        Some(d) => {
            h.update([1]);
            hash_decimal(h, d);
        }
        None => h.update([0]),
    }
}

/// Feeds a string to a digest (its length first, so no two strings run together).
pub fn hash_str(h: &mut sha2::Sha256, s: &str) {
    use sha2::Digest;
    h.update((s.len() as u32).to_le_bytes());
    h.update(s.as_bytes());
}

/// A customer in force on a date, as a run first reads it: its id and its data's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerKey {
    /// The customer.
    pub customer_id: String,
    /// [`CustomerState::digest`] of the version in force.
    pub digest: [u8; 8],
}

/// A customer's opening balance (what it owed when the company moved to heatbill).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpeningBalance {
    /// The customer.
    pub customer_id: String,
    /// The date at whose start the balance holds.
    pub as_of: NaiveDate,
    /// Unpaid principal.
    pub arrears: Decimal,
    /// Overdue since.
    pub arrears_since: Option<NaiveDate>,
}

/// What a ledger entry does to a customer's balance, as a run reads it: a payment (positive),
/// a reversal or a refund (negative), an adjustment (either) or a write-off (positive). See
/// [`crate::ledger`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// The customer.
    pub customer_id: String,
    /// The entry's value date.
    pub paid_on: NaiveDate,
    /// Its effect, signed from the customer's side.
    pub amount: Decimal,
}

/// The balance a bill carries to the next day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedBalance {
    /// The customer.
    pub customer_id: String,
    /// Principal billed before the bill's date.
    pub charged_before: Decimal,
    /// Principal the bill added.
    pub principal: Decimal,
    /// Late fees billed before the bill's date.
    pub fees_before: Decimal,
    /// Late fees the bill added (its customer lines that are late fees).
    pub fees: Decimal,
    /// Arrears at the start of the bill's date.
    pub arrears: Decimal,
    /// Overdue since (at the start of the bill's date).
    pub arrears_since: Option<NaiveDate>,
    /// Principal fallen due by the end of the bill's date (a company with a billing policy;
    /// `None`: every charge was due on its day, so it is `charged_before + principal`).
    pub due_through: Option<Decimal>,
}

/// Whether a stored bill row is a bill or a parked customer's placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BillStatus {
    /// A bill.
    Billed,
    /// The rules failed for the customer on this date: no lines; the row carries its balance.
    Parked,
}

impl BillStatus {
    /// `billed` or `parked`.
    pub fn as_str(self) -> &'static str {
        match self {
            BillStatus::Billed => "billed",
            BillStatus::Parked => "parked",
        }
    }
    /// The status named `s`.
    pub fn parse(s: &str) -> Option<BillStatus> {
        match s {
            "billed" => Some(BillStatus::Billed),
            "parked" => Some(BillStatus::Parked),
            _ => None,
        }
    }
}

impl fmt::Display for BillStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The current row of a customer and date, as a run compares it with its new inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingBill {
    /// The customer.
    pub customer_id: String,
    /// Its version.
    pub version: i32,
    /// Billed or parked.
    pub status: BillStatus,
    /// Its input digest.
    pub inputs: Vec<u8>,
    /// A parked row's error.
    pub error: Option<String>,
}

/// The size of a bill's input digest: four parts of 8 bytes.
pub const INPUT_DIGEST_BYTES: usize = 32;

/// A bill row as a run writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillRow {
    /// The customer.
    pub customer_id: String,
    /// 1 for the first bill of the customer and date, then +1 per change.
    pub version: i32,
    /// Billed or parked.
    pub status: BillStatus,
    /// The digest of the inputs (customer, usage, balance, chain: 8 bytes each).
    pub inputs: Vec<u8>,
    /// Sum of the lines.
    pub total: Decimal,
    /// What the customer pays.
    pub customer_total: Decimal,
    /// What the government pays.
    pub government_total: Decimal,
    /// What an employer pays.
    pub employer_total: Decimal,
    /// Principal this bill adds to the customer's balance (its customer lines but late fees).
    pub principal: Decimal,
    /// Principal billed before the date (opening balance included).
    pub charged_before: Decimal,
    /// The account's credits before the date: payments less what was taken back, adjustments
    /// and write-offs (the ledger's entries).
    pub paid_before: Decimal,
    /// Late fees billed before the date.
    pub fees_before: Decimal,
    /// Arrears at the start of the date (what the plugins saw).
    pub arrears: Decimal,
    /// Overdue since.
    pub arrears_since: Option<NaiveDate>,
    /// Principal fallen due by the end of the date: the opening balance, the principal due on
    /// its day, and the notices due on or before the date (see [`crate::notices`]). `None` for
    /// a company without a billing policy (everything billed is due).
    #[serde(default)]
    pub due_through: Option<Decimal>,
    /// The lines: a JSON array of `[entry, kind, "quantity", "unit_price", "amount", payer]`
    /// with payer `c`, `g` or `e`.
    pub lines: String,
    /// Why this version replaced the previous one.
    pub reason: Option<String>,
    /// A parked row's error.
    pub error: Option<String>,
}

/// A customer a run could not bill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedCustomer {
    /// The customer.
    pub customer_id: String,
    /// The error's kind (`rule`, `trap`, `invalid-output`, …).
    pub kind: String,
    /// The plugin that failed (empty if none).
    pub plugin: String,
    /// Its version.
    pub plugin_version: String,
    /// The engine's message (names company, customer, date, plugin, version).
    pub message: String,
}

/// How many customers of a run one plugin parked, with one kind of error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedGroup {
    /// The plugin (empty when no plugin was at fault, e.g. `input`).
    pub plugin: String,
    /// Its version.
    pub plugin_version: String,
    /// The error's kind; `skipped` means the plugin was cut off (its retry budget was spent).
    pub kind: String,
    /// Customers.
    pub count: u64,
}

/// One line of a stored bill, with its kind resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLine {
    /// Line code.
    pub code: String,
    /// Text on the bill.
    pub description: String,
    /// Category.
    pub category: String,
    /// Unit of the quantity.
    pub unit: String,
    /// The plugin that produced it.
    pub plugin: String,
    /// Its version.
    pub plugin_version: String,
    /// Quantity.
    pub quantity: Decimal,
    /// Price per unit.
    pub unit_price: Decimal,
    /// Amount, whole fen.
    pub amount: Decimal,
    /// `customer`, `government` or `employer`.
    pub payer: String,
}

/// A stored bill, read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBill {
    /// The customer.
    pub customer_id: String,
    /// The bill date.
    pub bill_date: NaiveDate,
    /// The row as written.
    pub row: BillRow,
    /// The run that wrote it.
    pub run_id: i64,
    /// The chain version that produced it.
    pub chain_version_id: i32,
    /// The lines with their kinds.
    pub lines: Vec<StoredLine>,
}

/// A shard of a run: a range of customer ids, `first..end` (`end` exclusive, `None` = to the
/// last customer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRange {
    /// The shard's number in its run (0-based).
    pub shard_no: i32,
    /// The first customer id of the shard.
    pub first: String,
    /// The first customer id of the next shard.
    pub end: Option<String>,
}

/// Everything a shard's bills depend on, read in a few set-based queries. Every list is sorted
/// by customer id.
#[derive(Debug, Clone, Default)]
pub struct ShardData {
    /// The customers with a version in force on the date (ids and data digests; the data
    /// itself is read only for the customers whose bills must be computed).
    pub customers: Vec<CustomerKey>,
    /// Metered heat of the date, GJ.
    pub readings: Vec<(String, Decimal)>,
    /// Indoor temperature of the date, °C.
    pub temperatures: Vec<(String, Decimal)>,
    /// The balances the previous date's rows carry.
    pub previous: Vec<CarriedBalance>,
    /// The ledger's entries dated before the date.
    pub payments: Vec<Payment>,
    /// Opening balances.
    pub openings: Vec<OpeningBalance>,
    /// The current rows of the date.
    pub existing: Vec<ExistingBill>,
    /// What the notices due on the date ask for, by customer (a company with a billing
    /// policy).
    pub notices_due: Vec<(String, Decimal)>,
}

/// Counts of one shard (or a whole run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCounts {
    /// Customers with a version in force on the date.
    pub customers: u64,
    /// Bills written as version 1.
    pub written: u64,
    /// Bills written as a new version of an earlier one.
    pub revised: u64,
    /// Bills whose inputs had not changed (nothing written).
    pub unchanged: u64,
    /// Customers parked.
    pub parked: u64,
}

impl ShardCounts {
    /// Adds another's counts.
    pub fn add(&mut self, o: &ShardCounts) {
        self.customers += o.customers;
        self.written += o.written;
        self.revised += o.revised;
        self.unchanged += o.unchanged;
        self.parked += o.parked;
    }
}

/// What one shard's transaction writes.
#[derive(Debug, Clone)]
pub struct ShardWrite {
    /// The run.
    pub run_id: i64,
    /// The shard.
    pub shard_no: i32,
    /// The claim's fencing token.
    pub token: i64,
    /// The claim's lease: the write's transaction may not sit idle (or one statement run)
    /// longer, so a writer paused inside its transaction cannot hold the shard's row lock
    /// against the worker that takes the shard over (PostgreSQL ends the paused session).
    pub lease: std::time::Duration,
    /// The company.
    pub company_id: i32,
    /// The bill date.
    pub date: NaiveDate,
    /// The chain version that produced the rows.
    pub chain_version_id: i32,
    /// Rows to write: new bills, new versions, parked placeholders.
    pub rows: Vec<BillRow>,
    /// The run's parked customers of this shard.
    pub parked: Vec<ParkedCustomer>,
    /// Counts.
    pub counts: ShardCounts,
    /// Amounts by "code" / "code (payer)", decimal strings.
    pub totals: std::collections::BTreeMap<String, Decimal>,
    /// For the fault tests: the writer stops its own process half-way through the COPY of
    /// this shard's bills (`run.fault_stop_in_copy`; PostgreSQL only).
    pub stop_in_copy: bool,
}

/// One customer's superseded versions of a date, summed up ([`Store::history_summary`]).
///
/// [`Store::history_summary`]: crate::store::BillStore::history_summary
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySummary {
    /// The customer.
    pub customer_id: String,
    /// How many versions the history keeps.
    pub versions: i64,
    /// The lowest version kept.
    pub lowest: i32,
    /// The highest version kept.
    pub highest: i32,
    /// Versions after the first that do not say why they replaced the one before.
    pub unexplained: i64,
}

/// A shard whose lease lapsed while its row stayed locked ([`Store::end_stalled_writers`]).
///
/// [`Store::end_stalled_writers`]: crate::store::RunStore::end_stalled_writers
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StalledShard {
    /// The shard.
    pub shard_no: i32,
    /// The worker that holds its claim.
    pub claimed_by: Option<String>,
    /// Milliseconds since its lease lapsed.
    pub lapsed_ms: i64,
    /// The database session that was writing it, when one was found (PostgreSQL).
    pub session: Option<i32>,
    /// Whether that session was ended.
    pub ended: bool,
}

/// A plugin version quarantined for a company: a run caught it billing a customer-day
/// differently inside its batch than alone. Its customer-days are billed one per call, from a
/// fresh instance, from then on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    /// The plugin.
    pub plugin: String,
    /// Its version.
    pub plugin_version: String,
    /// What was caught (the customer-day, the two totals).
    pub reason: String,
    /// The run that caught it.
    pub run_id: Option<i64>,
}

/// A run as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// Its id.
    pub id: i64,
    /// The company.
    pub company_id: i32,
    /// The date.
    pub bill_date: NaiveDate,
    /// 1 for the first run of the date, then +1 per re-run.
    pub attempt: i32,
    /// `running`, `completed` or `failed`.
    pub state: String,
    /// The chain version in force on the date when the run started.
    pub chain_version_id: i32,
    /// Shards.
    pub shard_count: i32,
    /// Customers per shard.
    pub shard_size: i32,
    /// The run's inputs as a whole (see the `runs` table).
    pub stamp: String,
    /// The final report (completed runs).
    pub report: Option<serde_json::Value>,
}

/// A shard claimed by one worker: its range and the fencing token its write must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The shard.
    pub shard: ShardRange,
    /// The claim's fencing token: unique and increasing across every claim of every run; the
    /// shard can be written only with the token of its latest claim.
    pub token: i64,
}

/// What `open_run` found or made.
#[derive(Debug, Clone)]
pub struct OpenedRun {
    /// The run.
    pub run: RunRecord,
    /// True when an unfinished run of the same company and date was picked up.
    pub resumed: bool,
    /// Its shards still to do.
    pub pending: Vec<ShardRange>,
    /// Shards already done (by an earlier process).
    pub done: usize,
}

/// A run's progress and totals, summed over its done shards.
#[derive(Debug, Clone, Default)]
pub struct RunTotals {
    /// Shards.
    pub shard_count: u64,
    /// Shards done.
    pub shards_done: u64,
    /// Counts over the done shards.
    pub counts: ShardCounts,
    /// Amounts by code and payer.
    pub totals: std::collections::BTreeMap<String, Decimal>,
    /// Parked customers (the first `limit` by customer id).
    pub parked: Vec<ParkedCustomer>,
    /// All parked customers, counted by plugin and kind of error (most first).
    pub parked_by: Vec<ParkedGroup>,
}

/// The state of the previous date's runs, which carry every customer's balance to the date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviousDay {
    /// The company has no completed run before the date: its balances start from the opening
    /// balances.
    FirstRun,
    /// A run of the previous date completed.
    Completed,
    /// Earlier dates were billed, but the previous date was not (or its run did not finish).
    Missing,
}

/// The kinds of file `heatbill import` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportKind {
    /// Customers and their effective-dated versions.
    Customers,
    /// Meter readings, daily or hourly (summed per day).
    Readings,
    /// Indoor temperatures.
    Temperatures,
    /// Payments.
    Payments,
    /// Opening balances.
    Balances,
    /// Customers' profiles: account number, name, phone, address (the directory).
    Profiles,
}

impl ImportKind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Customers => "customers",
            ImportKind::Readings => "readings",
            ImportKind::Temperatures => "temperatures",
            ImportKind::Payments => "payments",
            ImportKind::Balances => "balances",
            ImportKind::Profiles => "profiles",
        }
    }
}

impl fmt::Display for ImportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a merged import changed the stored data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportCounts {
    /// Rows in the file.
    pub rows: u64,
    /// Records added.
    pub inserted: u64,
    /// Records changed.
    pub updated: u64,
    /// Records that were already stored as the file has them.
    pub unchanged: u64,
}

/// A row the import refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    /// The row's line number in the file (the header is line 1).
    pub row: u64,
    /// The column (empty for the row as a whole).
    pub column: String,
    /// The value as found (escaped, shortened).
    pub value: String,
    /// What is wrong and what to write instead.
    pub problem: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.column.is_empty() {
            write!(f, "row {}: {}", self.row, self.problem)
        } else {
            write!(
                f,
                "row {}, column {}: {} (found \"{}\")",
                self.row, self.column, self.problem, self.value
            )
        }
    }
}

/// A customer row of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRow {
    /// Line number.
    pub row: u64,
    /// The version's data (its `valid_from` is the version's date).
    pub state: CustomerState,
}

/// A reading row: daily (`hour` none) or one hour's reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadingRow {
    /// Line number.
    pub row: u64,
    /// Customer.
    pub customer_id: String,
    /// Day (local).
    pub day: NaiveDate,
    /// Hour 0–23 of an hourly reading.
    pub hour: Option<u8>,
    /// Heat, GJ.
    pub heat_gj: Decimal,
}

/// An indoor temperature row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemperatureRow {
    /// Line number.
    pub row: u64,
    /// Customer.
    pub customer_id: String,
    /// Day.
    pub day: NaiveDate,
    /// °C.
    pub celsius: Decimal,
}

/// A payment row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    /// Line number.
    pub row: u64,
    /// The company's id of the payment (makes re-upload idempotent).
    pub payment_id: String,
    /// The payment.
    pub payment: Payment,
}

/// An opening-balance row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceRow {
    /// Line number.
    pub row: u64,
    /// The balance.
    pub balance: OpeningBalance,
}

/// A profile row (the directory: [`crate::directory`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRow {
    /// Line number.
    pub row: u64,
    /// Customer.
    pub customer_id: String,
    /// The first date it is in force ([`crate::import::BEGINNING`] when the file leaves it
    /// empty).
    pub valid_from: NaiveDate,
    /// The profile, normalized.
    pub profile: crate::directory::Profile,
    /// Why (the row's `reason`; the import names the file when it is empty).
    pub reason: Option<String>,
}

/// A chunk of parsed rows of one kind.
#[derive(Debug, Clone)]
pub enum ImportRows {
    /// Customers.
    Customers(Vec<CustomerRow>),
    /// Readings.
    Readings(Vec<ReadingRow>),
    /// Temperatures.
    Temperatures(Vec<TemperatureRow>),
    /// Payments.
    Payments(Vec<PaymentRow>),
    /// Opening balances.
    Balances(Vec<BalanceRow>),
    /// Profiles.
    Profiles(Vec<ProfileRow>),
}

impl ImportRows {
    /// Rows in the chunk.
    pub fn len(&self) -> usize {
        match self {
            ImportRows::Customers(v) => v.len(),
            ImportRows::Readings(v) => v.len(),
            ImportRows::Temperatures(v) => v.len(),
            ImportRows::Payments(v) => v.len(),
            ImportRows::Balances(v) => v.len(),
            ImportRows::Profiles(v) => v.len(),
        }
    }
    /// Whether the chunk is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Serializes tags as the stored canonical JSON array.
pub fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).expect("strings serialize")
}

/// Serializes attributes as the stored canonical JSON object (keys sorted).
pub fn attributes_json(attrs: &[(String, String)]) -> String {
    let map: std::collections::BTreeMap<&str, &str> = attrs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    serde_json::to_string(&map).expect("strings serialize")
}

/// Parses stored tags.
pub fn parse_tags(s: &str) -> Vec<String> {
    if s == "[]" {
        return Vec::new();
    }
    serde_json::from_str(s).unwrap_or_default()
}

/// Parses stored attributes.
pub fn parse_attributes(s: &str) -> Vec<(String, String)> {
    if s == "{}" {
        return Vec::new();
    }
    serde_json::from_str::<std::collections::BTreeMap<String, String>>(s)
        .map(|m| m.into_iter().collect())
        .unwrap_or_default()
}

/// The contract's name of a class.
pub fn class_str(c: CustomerClass) -> &'static str {
    match c {
        CustomerClass::Residential => "residential",
        CustomerClass::NonResidential => "non-residential",
    }
}

/// The class named `s`.
pub fn parse_class(s: &str) -> Option<CustomerClass> {
    match s {
        "residential" => Some(CustomerClass::Residential),
        "non-residential" => Some(CustomerClass::NonResidential),
        _ => None,
    }
}

/// The contract's name of a status.
pub fn status_str(s: ServiceStatus) -> &'static str {
    match s {
        ServiceStatus::Active => "active",
        ServiceStatus::Suspended => "suspended",
    }
}

/// The status named `s`.
pub fn parse_status(s: &str) -> Option<ServiceStatus> {
    match s {
        "active" => Some(ServiceStatus::Active),
        "suspended" => Some(ServiceStatus::Suspended),
        _ => None,
    }
}

/// A plugin a company uploaded (its component is in [`PluginRecord`], by digest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompanyPlugin {
    /// SHA-256 of the component, hex.
    pub digest: String,
    /// Its described name.
    pub name: String,
    /// Its described version.
    pub version: String,
    /// Its kind (tariff, season, subsidy, fee).
    pub kind: String,
    /// The contract version it was built for.
    pub contract_version: String,
    /// Its `describe()` as JSON.
    pub info: serde_json::Value,
    /// When the company uploaded it (UTC, RFC 3339).
    pub uploaded_at: String,
}

/// A case file attached to a company's plugin, with the result of running it at upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginCases {
    /// The plugin's digest.
    pub digest: String,
    /// The file's name.
    pub name: String,
    /// The case file (TOML).
    pub body: String,
    /// Whether every case passed.
    pub passed: bool,
    /// The runner's report (JSON).
    pub report: serde_json::Value,
}

/// A company API token, as stored: its SHA-256, never the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The token's id.
    pub id: i64,
    /// The company it acts for.
    pub company_id: i32,
    /// `integrator`, `staff` or `read-only`.
    pub role: String,
    /// What the token is for (a person, a system).
    pub label: String,
    /// When it was issued (UTC, RFC 3339).
    pub created_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// A run request recorded under its idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The request's canonical form (what makes two requests the same).
    pub request: String,
    /// The run it started or joined.
    pub run_id: i64,
    /// Seconds since it was recorded.
    pub age_s: i64,
}

/// The value as a report shows it: control characters escaped, at most 40 characters.
pub fn shown(s: &str) -> String {
    heatbill_engine::text::terminal_safe(s, 40)
}

/// The previous-day run id a stamp names (`run::stamp_of`); `None` for a stamp without one.
pub fn stamp_previous_day(stamp: &str) -> Option<i64> {
    stamp
        .split("; ")
        .find_map(|part| part.strip_prefix("previous day "))
        .and_then(|id| id.parse().ok())
}

/// The company data version a stamp names (`run::stamp_of`).
pub fn stamp_data_version(stamp: &str) -> Option<i64> {
    stamp
        .split("; ")
        .find_map(|part| part.strip_prefix("data "))
        .and_then(|v| v.parse().ok())
}

/// A company's stale dates ([`crate::store::RunStore::stale_dates`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleDates {
    /// The first billed date a correction reached since its last run.
    pub from: Option<NaiveDate>,
    /// Every billed date from it on, in order (at most 1,000).
    pub dates: Vec<NaiveDate>,
}
