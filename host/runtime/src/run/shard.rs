//! One shard's part of a run, on a pool thread: the customer-days built from the loaded data,
//! their balances and input digests, the comparison with the stored bills, the evaluation of
//! the ones that changed, and the rows to write.
//!
//! One file, though long: one shard's pipeline (build, digest, compare, evaluate, rows) is one
//! pass over the same arrays; split, each step would need the others' indexing explained again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;
use heatbill_engine::{
    Bill, BillError, DayInput, LineCategory, LineKind, Payer, ScheduleEvaluator, SeasonDay,
};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use crate::ledger::Allocation;
use crate::model::*;
use crate::run::terminal_safe;

/// What every part of every shard of one run shares.
#[derive(Debug)]
pub struct RunContext {
    /// The company's slug (named in errors).
    pub company: String,
    /// The company's id.
    pub company_id: i32,
    /// Its customer-data version (the cache's key).
    pub customers_version: i64,
    /// Whether shards' customers are read through the cache.
    pub use_cache: bool,
    /// The bill date.
    pub date: NaiveDate,
    /// The company's allocation order (`policies.allocation`).
    pub allocation: Allocation,
    /// The chain version in force on the date.
    pub chain_version_id: i32,
    /// The digest part of the chain (its definition's digest and the season preset).
    pub chain_part: [u8; 8],
    /// The season position the host supplies when the chain has no season plugin.
    pub season: Option<SeasonDay>,
    /// The chain version's line kinds, by content: (entry, index).
    pub kinds: HashMap<LineKind, (u16, u16)>,
    /// Customer-days per plugin call.
    pub batch: usize,
    /// Customer-days of each call re-billed alone and compared (`run.purity_sample`).
    pub purity_sample: usize,
    /// Bill every customer-day alone, from fresh instances: set when a plugin of the chain is
    /// quarantined for the company, or once any worker of this run catches one (every pool
    /// thread reads it before each call).
    pub strict: std::sync::atomic::AtomicBool,
    /// The company's billing policy on the date, when it has one (see [`crate::notices`]).
    pub billing: Option<Arc<RunBilling>>,
}

/// Which of the chain's line kinds go on a notice on the run's date, by customer class: the
/// rest of a bill's principal is due on its day.
#[derive(Debug, Default)]
pub struct RunBilling {
    /// (entry, index) → [residential, non-residential].
    pub noticed: HashMap<(u16, u16), [bool; 2]>,
}

impl RunBilling {
    /// The kinds of `kinds` that the policy puts on a notice on `date`.
    pub fn new(
        policy: &crate::notices::BillingPolicy,
        seasons: &[Season],
        date: NaiveDate,
        kinds: &HashMap<LineKind, (u16, u16)>,
    ) -> RunBilling {
        use heatbill_engine::CustomerClass as C;
        let noticed = kinds
            .iter()
            .map(|(k, at)| {
                let on = |c| policy.period_of(seasons, date, c, &k.code).is_some();
                (*at, [on(C::Residential), on(C::NonResidential)])
            })
            .collect();
        RunBilling { noticed }
    }

    fn is_noticed(&self, at: (u16, u16), class: heatbill_engine::CustomerClass) -> bool {
        let i = match class {
            heatbill_engine::CustomerClass::Residential => 0,
            heatbill_engine::CustomerClass::NonResidential => 1,
        };
        self.noticed.get(&at).is_some_and(|n| n[i])
    }
}

impl RunContext {
    fn strict(&self) -> bool {
        self.strict.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A pool thread's state: its evaluator (its own sandbox instances) and the line kinds it has
/// seen, by address, so a line's kind is found without hashing its strings.
pub struct Worker {
    /// The evaluator of the run's chain.
    pub evaluator: ScheduleEvaluator,
    by_ptr: HashMap<usize, (u16, u16)>,
    /// Keeps the kinds whose addresses are cached alive, so an address is never reused.
    keep: Vec<Arc<LineKind>>,
}

impl Worker {
    /// A worker around an evaluator.
    pub fn new(evaluator: ScheduleEvaluator) -> Worker {
        Worker {
            evaluator,
            by_ptr: HashMap::new(),
            keep: Vec::new(),
        }
    }

    fn kind_of(&mut self, ctx: &RunContext, k: &Arc<LineKind>) -> Option<(u16, u16)> {
        let p = Arc::as_ptr(k) as usize;
        if let Some(x) = self.by_ptr.get(&p) {
            return Some(*x);
        }
        let x = *ctx.kinds.get(&**k)?;
        self.by_ptr.insert(p, x);
        self.keep.push(k.clone());
        Some(x)
    }
}

/// What one part of a shard produced.
#[derive(Debug, Default)]
pub struct PartOutput {
    /// Rows to write.
    pub rows: Vec<BillRow>,
    /// Customers parked.
    pub parked: Vec<ParkedCustomer>,
    /// Counts.
    pub counts: ShardCounts,
    /// Amounts by code and payer.
    pub totals: BTreeMap<String, Decimal>,
    /// A plugin the purity check caught, to be quarantined (the first one found).
    pub caught: Option<Quarantine>,
}

impl PartOutput {
    /// Adds another part.
    pub fn merge(&mut self, o: PartOutput) {
        self.rows.extend(o.rows);
        self.parked.extend(o.parked);
        if self.caught.is_none() {
            self.caught = o.caught;
        }
        self.counts.add(&o.counts);
        for (k, v) in o.totals {
            *self.totals.entry(k).or_default() += v;
        }
    }
}

/// A customer's balance at the start of the date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    /// Principal billed before the date.
    pub charged_before: Decimal,
    /// The ledger's credits before the date (payments less what was taken back, adjustments,
    /// write-offs).
    pub paid_before: Decimal,
    /// Late fees billed before the date.
    pub fees_before: Decimal,
    /// Unpaid principal that has fallen due, after the credits are allocated in the company's
    /// order.
    pub arrears: Decimal,
    /// Overdue since.
    pub since: Option<NaiveDate>,
    /// Principal fallen due before the date (with a billing policy; else what was charged).
    pub due_before: Decimal,
    /// What the notices due on the date ask for (they fall due at its end).
    pub due_today: Decimal,
}

/// What a shard holds about one customer, found by walking every list once (they are all
/// sorted by customer id, like the customers).
#[derive(Debug, Clone, Copy, Default)]
pub struct Found<'a> {
    /// The previous day's row.
    pub previous: Option<&'a CarriedBalance>,
    /// The opening balance.
    pub opening: Option<&'a OpeningBalance>,
    /// Payments before the date.
    pub payments: &'a [Payment],
    /// Heat of the date.
    pub heat: Option<Decimal>,
    /// Indoor temperature of the date.
    pub temperature: Option<Decimal>,
    /// The date's current row.
    pub existing: Option<&'a ExistingBill>,
    /// What the notices due on the date ask for.
    pub due_today: Decimal,
}

/// Cursors over a shard's sorted lists: each moves forward only, so finding everything about
/// every customer of a part costs one pass over each list.
pub(crate) struct Cursors<'a> {
    data: &'a ShardData,
    at: [usize; 7],
}

fn seek<T>(v: &[T], at: &mut usize, id: &str, key: impl Fn(&T) -> &str) -> Option<usize> {
    while *at < v.len() && key(&v[*at]) < id {
        *at += 1;
    }
    (*at < v.len() && key(&v[*at]) == id).then_some(*at)
}

impl<'a> Cursors<'a> {
    pub(crate) fn new(data: &'a ShardData, first: Option<&str>) -> Cursors<'a> {
        let Some(id) = first else {
            return Cursors { data, at: [0; 7] };
        };
        Cursors {
            data,
            at: [
                data.previous
                    .partition_point(|x| x.customer_id.as_str() < id),
                data.openings
                    .partition_point(|x| x.customer_id.as_str() < id),
                data.payments
                    .partition_point(|x| x.customer_id.as_str() < id),
                data.readings.partition_point(|x| x.0.as_str() < id),
                data.temperatures.partition_point(|x| x.0.as_str() < id),
                data.existing
                    .partition_point(|x| x.customer_id.as_str() < id),
                data.notices_due.partition_point(|x| x.0.as_str() < id),
            ],
        }
    }

    pub(crate) fn find(&mut self, id: &str) -> Found<'a> {
        let d = self.data;
        let [p, o, pay, r, t, e, n] = &mut self.at;
        let previous = seek(&d.previous, p, id, |x| &x.customer_id).map(|i| &d.previous[i]);
        let opening = seek(&d.openings, o, id, |x| &x.customer_id).map(|i| &d.openings[i]);
        let payments = match seek(&d.payments, pay, id, |x| &x.customer_id) {
            Some(i) => {
                let n = d.payments[i..]
                    .iter()
                    .take_while(|x| x.customer_id == id)
                    .count();
                &d.payments[i..i + n]
            }
            None => &[],
        };
        let heat = seek(&d.readings, r, id, |x| &x.0).map(|i| d.readings[i].1);
        let temperature = seek(&d.temperatures, t, id, |x| &x.0).map(|i| d.temperatures[i].1);
        let existing = seek(&d.existing, e, id, |x| &x.customer_id).map(|i| &d.existing[i]);
        let due_today =
            seek(&d.notices_due, n, id, |x| &x.0).map_or(Decimal::ZERO, |i| d.notices_due[i].1);
        Found {
            previous,
            opening,
            payments,
            heat,
            temperature,
            existing,
            due_today,
        }
    }
}

/// The balance of a customer at the start of `date`: the principal and late fees the previous
/// day's row carries (or the opening balance, for a customer without one) against the ledger's
/// entries dated before the date (since the opening balance), allocated in the company's order
/// ([`crate::ledger::allocate`]). Late fees are never principal, so a late fee is never charged
/// on a late fee. The principal is overdue since the first day of the current stretch of days
/// that started owing (or the opening balance's date).
///
/// With a billing policy (`noticed`), the arrears are the unpaid part of what has fallen due
/// (the previous row's `due_through`: the opening balance, the principal due on its day, the
/// notices due before the date), not of everything billed: a charge on a notice not yet due is
/// not overdue. A previous row without `due_through` (written before the policy) had
/// everything due.
pub fn balance(found: &Found<'_>, date: NaiveDate, policy: Allocation, noticed: bool) -> Balance {
    let prev = found.previous;
    let opening = found.opening.filter(|o| o.as_of <= date);
    let charged_before = match (prev, opening) {
        (Some(p), _) => p.charged_before + p.principal,
        (None, Some(o)) => o.arrears,
        (None, None) => Decimal::ZERO,
    };
    let fees_before = prev.map_or(Decimal::ZERO, |p| p.fees_before + p.fees);
    let paid_before: Decimal = found
        .payments
        .iter()
        .filter(|p| p.paid_on < date && opening.is_none_or(|o| p.paid_on >= o.as_of))
        .map(|p| p.amount)
        .sum();
    let due_before = if noticed {
        match (prev, opening) {
            (Some(p), _) => p.due_through.unwrap_or(p.charged_before + p.principal),
            (None, Some(o)) => o.arrears,
            (None, None) => Decimal::ZERO,
        }
    } else {
        charged_before
    };
    let arrears = crate::ledger::allocate(policy, due_before, fees_before, paid_before).principal;
    let since = if arrears > Decimal::ZERO {
        match (prev, opening) {
            (Some(p), _) if p.arrears > Decimal::ZERO => p.arrears_since.or(Some(date)),
            (Some(_), _) => Some(date),
            (None, Some(o)) => o.arrears_since.or(Some(o.as_of)),
            (None, None) => Some(date),
        }
    } else {
        None
    };
    Balance {
        charged_before,
        paid_before,
        fees_before,
        arrears,
        since,
        due_before,
        due_today: if noticed {
            found.due_today
        } else {
            Decimal::ZERO
        },
    }
}

/// The engine's input for a customer on the run's date.
pub fn day_input(ctx: &RunContext, c: &CustomerState, changed: &Changed) -> DayInput {
    let facts = DayFacts {
        heat: changed.heat,
        indoor_temperature: changed.temperature,
        arrears: changed.bal.arrears,
        arrears_since: changed.bal.since,
    };
    c.day_input(ctx.date, &facts, ctx.season)
}

/// The input digest: 8 bytes of SHA-256 for each of the customer's data (stored with the
/// customer's version, see [`CustomerState::digest`]), its usage (reading and temperature),
/// its balance, and the chain. Two runs with the same digest bill the same (plugins are pure),
/// so a re-run compares digests instead of bills. Every value is hashed with its length or
/// presence, so no two inputs run together into the same bytes.
pub fn digest(ctx: &RunContext, customer: &[u8; 8], found: &Found<'_>, bal: &Balance) -> Vec<u8> {
    use chrono::Datelike;
    let mut out = Vec::with_capacity(INPUT_DIGEST_BYTES);
    out.extend_from_slice(customer);
    let mut h = Sha256::new();
    hash_opt_decimal(&mut h, found.heat);
    hash_opt_decimal(&mut h, found.temperature);
    out.extend_from_slice(&h.finalize_reset()[..8]);
    hash_decimal(&mut h, bal.charged_before);
    hash_decimal(&mut h, bal.paid_before);
    hash_decimal(&mut h, bal.fees_before);
    hash_decimal(&mut h, bal.arrears);
    h.update(
        bal.since
            .map_or(i32::MIN, |d| d.num_days_from_ce())
            .to_le_bytes(),
    );
    // What fell due before the date, and what falls due on it, are the balance's too (the
    // row carries them to the next day) when the company's charges fall due by notice.
    if ctx.billing.is_some() {
        hash_decimal(&mut h, bal.due_before);
        hash_decimal(&mut h, bal.due_today);
    }
    out.extend_from_slice(&h.finalize()[..8]);
    out.extend_from_slice(&ctx.chain_part);
    out
}

/// Why a new version replaces a bill: the parts of the input digest that differ.
pub fn reason(old: &ExistingBill, new_inputs: &[u8]) -> String {
    if old.status == BillStatus::Parked {
        return "billed after being parked".into();
    }
    const PARTS: [&str; 4] = [
        "customer data",
        "reading or indoor temperature",
        "balance (earlier bills or payments)",
        "rule chain",
    ];
    let changed: Vec<&str> = PARTS
        .iter()
        .enumerate()
        .filter(|(i, _)| old.inputs.get(i * 8..i * 8 + 8) != new_inputs.get(i * 8..i * 8 + 8))
        .map(|(_, p)| *p)
        .collect();
    if changed.is_empty() {
        "re-evaluated".into()
    } else {
        format!("changed: {}", changed.join(", "))
    }
}

/// The key of a line in a run's totals: its code, with the payer unless it is the customer (a
/// subsidy is −x for the customer and +x for the government, which would sum to 0.00 under
/// one code).
pub fn total_key(code: &str, payer: Payer) -> String {
    match payer {
        Payer::Customer => code.to_string(),
        p => format!("{code} ({})", p.as_str()),
    }
}

/// A customer whose bill must be computed: what the first pass found.
#[derive(Debug, Clone)]
pub struct Changed {
    /// The customer.
    pub customer_id: String,
    /// The input digest (its customer part from the stored version; recomputed from the data
    /// when the bill is computed).
    pub inputs: Vec<u8>,
    /// The balance at the start of the date.
    pub bal: Balance,
    /// Heat of the date.
    pub heat: Option<Decimal>,
    /// Indoor temperature of the date.
    pub temperature: Option<Decimal>,
    /// The date's current row.
    pub existing: Option<ExistingBill>,
}

/// The first pass over customers `range` of a shard: balances and input digests, and which
/// customers' bills must be computed (their digest differs from their current bill's, or they
/// have none, or it is a parked placeholder).
pub fn plan_part(
    ctx: &RunContext,
    data: &ShardData,
    range: std::ops::Range<usize>,
) -> (ShardCounts, Vec<Changed>) {
    let mut counts = ShardCounts::default();
    let mut changed = Vec::new();
    let customers = &data.customers[range];
    let mut cursors = Cursors::new(data, customers.first().map(|c| c.customer_id.as_str()));
    for c in customers {
        counts.customers += 1;
        let found = cursors.find(&c.customer_id);
        let bal = balance(&found, ctx.date, ctx.allocation, ctx.billing.is_some());
        let inputs = digest(ctx, &c.digest, &found, &bal);
        if let Some(e) = found.existing
            && e.status == BillStatus::Billed
            && e.inputs == inputs
        {
            counts.unchanged += 1;
            continue;
        }
        changed.push(Changed {
            customer_id: c.customer_id.clone(),
            inputs,
            bal,
            heat: found.heat,
            temperature: found.temperature,
            existing: found.existing.cloned(),
        });
    }
    (counts, changed)
}

/// The second pass: computes the bills of `changed` (sorted by customer id), whose data is in
/// `customers` (sorted too).
pub fn evaluate_part(
    worker: &mut Worker,
    ctx: &RunContext,
    customers: &[CustomerState],
    changed: &[Changed],
) -> PartOutput {
    let mut out = PartOutput::default();
    // Fresh instances for every part of every shard: whatever a plugin might keep in its memory
    // cannot carry from one shard to another, so a shard's bills do not depend on which worker
    // or host billed what before it. (Dropping is free; the instances are made on first use.)
    worker.evaluator.reset();
    let mut at = changed.first().map_or(0, |c| {
        customers.partition_point(|x| x.customer_id < c.customer_id)
    });
    let mut ready: Vec<(usize, &CustomerState, DayInput, Vec<u8>)> =
        Vec::with_capacity(changed.len());
    for (i, ch) in changed.iter().enumerate() {
        let Some(k) = seek(customers, &mut at, &ch.customer_id, |x| &x.customer_id) else {
            // The customer's versions changed between the shard's two reads (an import ran):
            // its current bill, if any, stays, and the next run bills it.
            out.counts.parked += 1;
            out.parked.push(ParkedCustomer {
                customer_id: ch.customer_id.clone(),
                kind: "input".into(),
                plugin: String::new(),
                plugin_version: String::new(),
                message: format!(
                    "company `{}`, customer `{}`, {}: the customer's data changed while the run \
                     read it; run the date again",
                    ctx.company, ch.customer_id, ctx.date
                ),
            });
            continue;
        };
        let c = &customers[k];
        let mut inputs = ch.inputs.clone();
        inputs[..8].copy_from_slice(&c.digest());
        ready.push((i, c, day_input(ctx, c, ch), inputs));
    }
    for batch in ready.chunks(ctx.batch.max(1)) {
        let days: Vec<DayInput> = batch.iter().map(|r| r.2.clone()).collect();
        let results = if ctx.strict() {
            alone_each(worker, &days)
        } else {
            let results = worker.evaluator.evaluate(&days);
            match purity_sample(worker, ctx, &days, &results) {
                None => results,
                Some(caught) => {
                    // Caught: none of this call's bills is kept. Every customer-day of it is
                    // billed alone, and so is every later call of the run, on every thread.
                    ctx.strict.store(true, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(
                        company = %ctx.company,
                        plugin = %caught.plugin,
                        version = %caught.plugin_version,
                        reason = %terminal_safe(&caught.reason, 600),
                        "purity: a plugin bills differently in a batch than alone; quarantined"
                    );
                    out.caught.get_or_insert(caught);
                    alone_each(worker, &days)
                }
            }
        };
        for ((i, c, input, inputs), r) in batch.iter().zip(results) {
            let ch = &changed[*i];
            let r = match r {
                Ok(bill) => encode(worker, ctx, input, c.class, bill),
                Err(e) => Err(Box::new(e)),
            };
            match r {
                Ok(mut row) => {
                    for (k, amount) in row.totals.drain(..) {
                        *out.totals.entry(k).or_default() += amount;
                    }
                    let (version, reason) = match &ch.existing {
                        Some(e) => (e.version + 1, Some(reason(e, inputs))),
                        None => (1, None),
                    };
                    if version == 1 {
                        out.counts.written += 1;
                    } else {
                        out.counts.revised += 1;
                    }
                    out.rows.push(BillRow {
                        customer_id: c.customer_id.clone(),
                        version,
                        status: BillStatus::Billed,
                        inputs: inputs.clone(),
                        total: row.bill.total,
                        customer_total: row.bill.by_payer.customer,
                        government_total: row.bill.by_payer.government,
                        employer_total: row.bill.by_payer.employer,
                        principal: row.principal,
                        charged_before: ch.bal.charged_before,
                        paid_before: ch.bal.paid_before,
                        fees_before: ch.bal.fees_before,
                        arrears: ch.bal.arrears,
                        arrears_since: ch.bal.since,
                        due_through: ctx.billing.as_ref().map(|_| {
                            ch.bal.due_before + (row.principal - row.noticed) + ch.bal.due_today
                        }),
                        lines: row.lines,
                        reason,
                        error: None,
                    });
                }
                Err(e) => park(&mut out, ctx, ch, inputs, &e),
            }
        }
    }
    out
}

/// Every customer-day billed alone, each from fresh instances: what the contract says a bill
/// is, and what a quarantined plugin's customers get (at the cost of an instantiation of the
/// chain per customer-day).
// The engine's results are `Result<Bill, BillError>` elements, not early returns.
#[allow(clippy::result_large_err)]
fn alone_each(worker: &mut Worker, days: &[DayInput]) -> Vec<Result<Bill, BillError>> {
    days.iter()
        .map(|d| {
            worker.evaluator.reset();
            worker.evaluator.evaluate(std::slice::from_ref(d)).remove(0)
        })
        .collect()
}

/// Re-bills `ctx.purity_sample` customer-days of one call alone, from fresh instances, and
/// compares: a bill that differs proves that a plugin's output for a customer-day depends on
/// the other customer-days of its call (a skim on the next customer, a price that changes with
/// the batch's mix), which the contract forbids. Returns the plugin to quarantine; the caller
/// then keeps none of the call's bills. Which customer-days are re-billed is pseudo-random but
/// fixed by the call's first customer and the date, so a re-run checks the same ones.
fn purity_sample(
    worker: &mut Worker,
    ctx: &RunContext,
    days: &[DayInput],
    results: &[Result<Bill, BillError>],
) -> Option<Quarantine> {
    if ctx.purity_sample == 0 || days.len() < 2 {
        return None;
    }
    // FNV-1a of the call's first customer id and the date.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in days[0]
        .customer
        .bytes()
        .chain(ctx.date.to_string().into_bytes())
    {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut caught = None;
    for s in 0..ctx.purity_sample.min(days.len()) {
        h = (h ^ s as u64).wrapping_mul(0x0100_0000_01b3);
        let k = (h % days.len() as u64) as usize;
        let Ok(bill) = &results[k] else {
            continue;
        };
        worker.evaluator.reset();
        // Only two bills that differ prove anything: an error alone may be the host's (a full
        // instance pool), and must not quarantine a good plugin.
        let Ok(alone) = worker.evaluator.evaluate(&days[k..=k]).remove(0) else {
            continue;
        };
        if alone == *bill {
            continue;
        }
        // Blame the plugin of the first line that differs.
        let n = alone.lines.len().max(bill.lines.len());
        let i = (0..n)
            .find(|&i| alone.lines.get(i) != bill.lines.get(i))
            .unwrap_or(0);
        let (plugin, plugin_version) = alone
            .lines
            .get(i)
            .or(bill.lines.get(i))
            .map_or_else(Default::default, |l| {
                (l.kind.plugin.clone(), l.kind.plugin_version.clone())
            });
        caught = Some(Quarantine {
            plugin,
            plugin_version,
            reason: format!(
                "customer {}, {}: billed in a call of {} customer-days, total {}; billed \
                 alone, total {} (the contract requires a bill to depend on its customer-day \
                 alone)",
                days[k].customer,
                days[k].date,
                days.len(),
                bill.total,
                alone.total
            ),
            run_id: None,
        });
        break;
    }
    caught
}

/// Records a customer the rules failed for. Its placeholder row carries its balance to the next
/// day; a current bill (from an earlier run, on other inputs) is never replaced by one.
fn park(out: &mut PartOutput, ctx: &RunContext, ch: &Changed, inputs: &[u8], e: &BillError) {
    out.counts.parked += 1;
    let message = e.to_string();
    out.parked.push(ParkedCustomer {
        customer_id: ch.customer_id.clone(),
        kind: e.kind.name().to_string(),
        plugin: e.plugin.clone(),
        plugin_version: e.plugin_version.clone(),
        message: message.clone(),
    });
    let version = match &ch.existing {
        None => 1,
        Some(x) if x.status == BillStatus::Billed => return,
        Some(x) if x.inputs == inputs && x.error.as_deref() == Some(message.as_str()) => return,
        Some(x) => x.version + 1,
    };
    out.rows.push(BillRow {
        customer_id: ch.customer_id.clone(),
        version,
        status: BillStatus::Parked,
        inputs: inputs.to_vec(),
        total: Decimal::ZERO,
        customer_total: Decimal::ZERO,
        government_total: Decimal::ZERO,
        employer_total: Decimal::ZERO,
        principal: Decimal::ZERO,
        charged_before: ch.bal.charged_before,
        paid_before: ch.bal.paid_before,
        fees_before: ch.bal.fees_before,
        arrears: ch.bal.arrears,
        arrears_since: ch.bal.since,
        due_through: ctx
            .billing
            .as_ref()
            .map(|_| ch.bal.due_before + ch.bal.due_today),
        lines: "[]".into(),
        reason: ch
            .existing
            .as_ref()
            .map(|_| "parked again with another error".into()),
        error: Some(message),
    });
}

struct Encoded {
    bill: Bill,
    lines: String,
    principal: Decimal,
    /// The part of the principal that goes on a notice (the rest is due today).
    noticed: Decimal,
    totals: Vec<(String, Decimal)>,
}

/// A bill's lines as stored (`[[entry, kind, "quantity", "unit_price", "amount", payer], …]`),
/// its principal and its amounts by total key.
fn encode(
    worker: &mut Worker,
    ctx: &RunContext,
    day: &DayInput,
    class: heatbill_engine::CustomerClass,
    bill: Bill,
) -> Result<Encoded, Box<BillError>> {
    use std::fmt::Write;
    let mut lines = String::with_capacity(2 + bill.lines.len() * 40);
    let mut principal = Decimal::ZERO;
    let mut noticed = Decimal::ZERO;
    let mut totals = Vec::with_capacity(bill.lines.len());
    lines.push('[');
    for (i, l) in bill.lines.iter().enumerate() {
        let Some((e, k)) = worker.kind_of(ctx, &l.kind) else {
            return Err(Box::new(BillError {
                company: ctx.company.clone(),
                customer: day.customer.clone(),
                date: day.date,
                plugin: l.plugin().to_string(),
                plugin_version: l.plugin_version().to_string(),
                kind: heatbill_engine::BillErrorKind::InvalidOutput {
                    message: format!(
                        "a line of kind {:?} that the plugin did not announce when the chain \
                         version was first run (its configure is not deterministic)",
                        l.code()
                    ),
                },
            }));
        };
        if i > 0 {
            lines.push(',');
        }
        let payer = match l.payer {
            Payer::Customer => 'c',
            Payer::Government => 'g',
            Payer::Employer => 'e',
        };
        let _ = write!(
            lines,
            "[{e},{k},\"{}\",\"{}\",\"{}\",\"{payer}\"]",
            l.quantity, l.unit_price, l.amount
        );
        if l.payer == Payer::Customer && l.category() != LineCategory::LateFee {
            principal += l.amount;
            if ctx
                .billing
                .as_ref()
                .is_some_and(|b| b.is_noticed((e, k), class))
            {
                noticed += l.amount;
            }
        }
        totals.push((total_key(l.code(), l.payer), l.amount));
    }
    lines.push(']');
    Ok(Encoded {
        bill,
        lines,
        principal,
        noticed,
        totals,
    })
}
