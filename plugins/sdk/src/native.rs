//! Configured plugins run natively, alone or as a rule chain evaluated exactly as the host
//! evaluates it.
//!
//! Used by the plugins' unit tests and by the host's benchmark, which links the reference
//! plugins natively to compare sandboxed against native speed:
//!
//! ```
//! use heatbill_sdk::native::{NativeChain, configure};
//! # use heatbill_sdk::prelude::*;
//! # struct Flat(LineKindId);
//! # impl Plugin for Flat {
//! #     type Params = serde_json::Value;
//! #     fn describe() -> PluginInfo { PluginInfo { name: "flat".into(), version: "1.0.0".into(),
//! #         kind: PluginKind::Tariff, description: String::new(), params_schema: "{}".into() } }
//! #     fn configure(_: serde_json::Value) -> Result<(Self, Vec<LineSpec>), RuleError> {
//! #         let mut kinds = LineKinds::new();
//! #         let flat = kinds.add(line_spec("flat", "", "", LineCategory::Heating));
//! #         Ok((Flat(flat), kinds.into_specs())) }
//! #     fn evaluate(&self, _: &CustomerDay) -> Result<DayOutput, RuleError> {
//! #         Ok(DayOutput::lines(vec![Line::new(self.0, Decimal::ONE, Decimal::ONE, Decimal::ONE, Payer::Customer)?])) }
//! # }
//! let chain = NativeChain::new().with(configure::<Flat>("{}").unwrap());
//! let days = vec![heatbill_sdk::testing::day("2026-01-01").build()];
//! let bills = chain.evaluate(&days);
//! assert_eq!(bills[0].as_ref().unwrap().total(), Decimal::ONE);
//! ```
//!
//! About 450 lines of code and 200 of tests: the native chain must mirror the host's evaluator
//! (filters, checks, errors), and its tests are the proof it does.

use std::fmt;

use rust_decimal::Decimal;

use crate::instance::limit_message;
use crate::{
    CustomerDay, DayFilter, DayOutput, Line, LineCategory, LineSpec, Payer, Plugin, PluginInfo,
    PluginKind, PriorLine, RuleError, SeasonDay,
};

/// A configured plugin behind a trait object: what a [`NativeChain`] holds.
pub trait DynRule: Send + Sync {
    /// The plugin's `describe()`.
    fn info(&self) -> PluginInfo;
    /// The line kinds its configuration produces.
    fn line_specs(&self) -> &[LineSpec];
    /// The customer-days it bills ([`Plugin::applies_to`]).
    fn applies_to(&self) -> DayFilter;
    /// Evaluates a batch as the host does, pushing exactly one result per day: a day outside
    /// [`DynRule::applies_to`] gets an empty output without a call.
    fn evaluate_batch(&self, days: &[CustomerDay], out: &mut Vec<Result<DayOutput, RuleError>>);
    /// Evaluates every day of a batch, whether the filter admits it or not (for
    /// [`NativeChain::verified`]).
    fn evaluate_all(&self, days: &[CustomerDay], out: &mut Vec<Result<DayOutput, RuleError>>);
}

/// A plugin configured natively, with its line specs.
pub struct Configured<P: Plugin> {
    plugin: P,
    specs: Vec<LineSpec>,
    filter: DayFilter,
}

/// Configures a plugin natively from its JSON parameters, exactly as the component's
/// `configure` does (same parsing, same checks, same errors).
pub fn configure<P: Plugin>(params: &str) -> Result<Configured<P>, RuleError> {
    let (plugin, specs) = crate::instance::configure::<P>(params)?;
    let filter = plugin.applies_to();
    Ok(Configured {
        plugin,
        specs,
        filter,
    })
}

impl<P: Plugin> Configured<P> {
    /// The configured plugin.
    pub fn plugin(&self) -> &P {
        &self.plugin
    }

    /// The line kinds `configure` returned.
    pub fn specs(&self) -> &[LineSpec] {
        &self.specs
    }

    /// Evaluates one customer-day.
    pub fn evaluate(&self, day: &CustomerDay) -> Result<DayOutput, RuleError> {
        self.plugin.evaluate(day)
    }

    /// Boxes it for a [`NativeChain`].
    pub fn boxed(self) -> Box<dyn DynRule> {
        Box::new(self)
    }
}

impl<P: Plugin> DynRule for Configured<P> {
    fn info(&self) -> PluginInfo {
        P::describe()
    }

    fn line_specs(&self) -> &[LineSpec] {
        &self.specs
    }

    fn applies_to(&self) -> DayFilter {
        self.filter
    }

    fn evaluate_batch(&self, days: &[CustomerDay], out: &mut Vec<Result<DayOutput, RuleError>>) {
        out.extend(days.iter().map(|day| {
            if self.filter.matches(crate::bits::of(day)) {
                self.plugin.evaluate(day).map_err(limit_message)
            } else {
                Ok(DayOutput::empty())
            }
        }));
    }

    fn evaluate_all(&self, days: &[CustomerDay], out: &mut Vec<Result<DayOutput, RuleError>>) {
        out.extend(
            days.iter()
                .map(|day| self.plugin.evaluate(day).map_err(limit_message)),
        );
    }
}

/// One line of a bill produced by a [`NativeChain`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NativeLine {
    /// The index of the rule (in the chain) that produced it.
    pub rule: usize,
    /// The line as the plugin returned it.
    pub line: Line,
    /// The category of its line spec.
    pub category: LineCategory,
}

/// The lines a chain produced for one customer-day, and its season position.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NativeBill {
    /// The lines, in chain order.
    pub lines: Vec<NativeLine>,
    /// The season position the season plugin set (or the input's).
    pub season: Option<SeasonDay>,
}

impl NativeBill {
    /// The bill's total: the sum of its lines.
    pub fn total(&self) -> Decimal {
        self.lines.iter().map(|l| amount(&l.line)).sum()
    }

    /// The total of the lines `payer` pays.
    pub fn total_for(&self, payer: Payer) -> Decimal {
        self.lines
            .iter()
            .filter(|l| l.line.payer == payer)
            .map(|l| amount(&l.line))
            .sum()
    }
}

fn amount(l: &Line) -> Decimal {
    // Lines in a NativeBill passed the chain's checks, so their amounts convert.
    l.amount.to_decimal().unwrap_or_default()
}

/// Why a chain did not bill a customer-day.
#[derive(Debug, Clone, PartialEq)]
pub enum NativeChainError {
    /// A plugin refused (its rule error).
    Rule {
        /// The rule's index in the chain.
        rule: usize,
        /// The plugin's described name.
        plugin: String,
        /// The refusal.
        error: RuleError,
    },
    /// A plugin broke the contract (a line spec out of range, an amount that is not whole fen,
    /// a wrong number of results).
    Contract {
        /// The rule's index in the chain.
        rule: usize,
        /// The plugin's described name.
        plugin: String,
        /// What it did wrong.
        message: String,
    },
}

impl fmt::Display for NativeChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NativeChainError::Rule {
                rule,
                plugin,
                error,
            } => write!(
                f,
                "rule {rule} ({plugin}) refused: {}: {}",
                error.kind(),
                error.message()
            ),
            NativeChainError::Contract {
                rule,
                plugin,
                message,
            } => write!(f, "rule {rule} ({plugin}) broke the contract: {message}"),
        }
    }
}

impl std::error::Error for NativeChainError {}

struct Rule {
    rule: Box<dyn DynRule>,
    name: String,
    kind: PluginKind,
}

/// A rule chain run natively: an ordered list of configured plugins.
///
/// [`NativeChain::evaluate`] does what the host does with a batch: each rule evaluates the days still
/// alive; a season-kind rule's `season` output fills the `season` of later rules' input; each
/// line becomes a `prior-line` of later rules, with the category of its line spec; a rule error
/// parks that day (later rules do not see it); outputs are checked against the contract.
#[derive(Default)]
pub struct NativeChain {
    rules: Vec<Rule>,
    verified: bool,
}

impl NativeChain {
    /// An empty chain.
    pub fn new() -> Self {
        NativeChain::default()
    }

    /// The chain with `rule` appended.
    pub fn with(mut self, rule: impl DynRule + 'static) -> Self {
        self.push(Box::new(rule));
        self
    }

    /// Appends a rule.
    pub fn push(&mut self, rule: Box<dyn DynRule>) {
        let info = rule.info();
        self.rules.push(Rule {
            rule,
            name: info.name,
            kind: info.kind,
        });
    }

    /// The chain in checking mode: every rule is also called for the days its
    /// [`DynRule::applies_to`] filter excludes, and a non-empty output there is a
    /// [`NativeChainError::Contract`] (the filter would drop a line in the sandbox). The case-file
    /// checks run every case this way.
    pub fn verified(mut self) -> Self {
        self.verified = true;
        self
    }

    /// A chain of the given rules, in order.
    pub fn from_rules(rules: Vec<Box<dyn DynRule>>) -> Self {
        let mut chain = NativeChain::new();
        for r in rules {
            chain.push(r);
        }
        chain
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the chain has no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The described name of rule `rule`.
    pub fn name(&self, rule: usize) -> Option<&str> {
        self.rules.get(rule).map(|r| r.name.as_str())
    }

    /// The spec of a bill line (its code, description, unit and category).
    pub fn spec(&self, line: &NativeLine) -> Option<&LineSpec> {
        self.rules
            .get(line.rule)?
            .rule
            .line_specs()
            .get(usize::from(line.line.spec))
    }

    /// Evaluates a batch of customer-days through the chain: one result per day, in order.
    pub fn evaluate(&self, days: &[CustomerDay]) -> Vec<Result<NativeBill, NativeChainError>> {
        let mut bills: Vec<Result<NativeBill, NativeChainError>> = days
            .iter()
            .map(|d| {
                Ok(NativeBill {
                    lines: Vec::new(),
                    season: d.season,
                })
            })
            .collect();
        // The days still alive, as the next rule sees them, and their index in `days`.
        let mut work: Vec<CustomerDay> = days.to_vec();
        let mut alive: Vec<usize> = (0..days.len()).collect();
        let mut out = Vec::with_capacity(days.len());
        let mut keep = Vec::with_capacity(days.len());
        for (r, rule) in self.rules.iter().enumerate() {
            if work.is_empty() {
                break;
            }
            out.clear();
            if self.verified {
                rule.rule.evaluate_all(&work, &mut out);
                let filter = rule.rule.applies_to();
                for (j, r) in out.iter_mut().enumerate() {
                    let empty = matches!(r, Ok(o) if o.lines.is_empty() && o.season.is_none());
                    if !empty && !filter.matches(crate::bits::of(&work[j])) {
                        *r = Err(RuleError::Unsupported(format!(
                            "contract: the plugin's applies_to filter (all-of {:#x}, none-of \
                             {:#x}) excludes this customer-day (bits {:#x}), yet it returned \
                             lines, an error or a season for it",
                            filter.all_of,
                            filter.none_of,
                            crate::bits::of(&work[j])
                        )));
                    }
                }
            } else {
                rule.rule.evaluate_batch(&work, &mut out);
            }
            if out.len() != work.len() {
                let message = format!("{} results for {} days", out.len(), work.len());
                for &i in &alive {
                    bills[i] = Err(NativeChainError::Contract {
                        rule: r,
                        plugin: rule.name.clone(),
                        message: message.clone(),
                    });
                }
                break;
            }
            let specs = rule.rule.line_specs();
            keep.clear();
            for (j, result) in out.drain(..).enumerate() {
                let i = alive[j];
                let outcome = result
                    .map_err(|error| NativeChainError::Rule {
                        rule: r,
                        plugin: rule.name.clone(),
                        error,
                    })
                    .and_then(|o| {
                        check(&o, specs).map_err(|message| NativeChainError::Contract {
                            rule: r,
                            plugin: rule.name.clone(),
                            message,
                        })?;
                        Ok(o)
                    });
                match outcome {
                    Ok(o) => {
                        let day = &mut work[j];
                        let Ok(bill) = &mut bills[i] else {
                            unreachable!("a parked day is not evaluated again")
                        };
                        if rule.kind == PluginKind::Season && o.season.is_some() {
                            day.season = o.season;
                            bill.season = o.season;
                        }
                        for line in o.lines {
                            let spec = &specs[usize::from(line.spec)];
                            let category = spec.category;
                            day.prior_lines.push(PriorLine {
                                code: spec.code.clone(),
                                entry: r as u32,
                                category,
                                quantity: line.quantity,
                                unit_price: line.unit_price,
                                amount: line.amount,
                                payer: line.payer,
                                season_amount: line.season_amount,
                            });
                            bill.lines.push(NativeLine {
                                rule: r,
                                line,
                                category,
                            });
                        }
                        keep.push(true);
                    }
                    Err(e) => {
                        bills[i] = Err(e);
                        keep.push(false);
                    }
                }
            }
            if keep.iter().any(|k| !k) {
                let mut it = keep.iter();
                work.retain(|_| *it.next().unwrap_or(&false));
                let mut it = keep.iter();
                alive.retain(|_| *it.next().unwrap_or(&false));
            }
        }
        bills
    }
}

/// The host's checks on one output: line specs in range, amounts in whole fen.
fn check(o: &DayOutput, specs: &[LineSpec]) -> Result<(), String> {
    for line in &o.lines {
        if usize::from(line.spec) >= specs.len() {
            return Err(format!(
                "a line names spec {} but the plugin announced {}",
                line.spec,
                specs.len()
            ));
        }
        for (what, d) in [
            ("amount", line.amount),
            ("quantity", line.quantity),
            ("unit price", line.unit_price),
        ] {
            if d.to_decimal().is_err() {
                return Err(format!("the {what} has scale {} (at most 18)", d.scale));
            }
        }
        if !line.amount.is_whole_fen() {
            return Err(format!(
                "the amount {} is not a whole number of fen",
                line.amount
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::line_spec;
    use crate::testing::{day, dec};
    use crate::{Instance, LineCategory, LineKindId, LineKinds, SeasonPhase, WitDecimal};
    use serde::Deserialize;

    /// A season stub: day k of 10 = the day of the month.
    struct Seasonish;
    /// Bills `amount` on heating days; refuses customers tagged "refuse".
    struct Fixed {
        amount: WitDecimal,
        kind: LineKindId,
    }
    /// Bills the sum of the prior heating lines, with payer government (its second kind).
    struct Echo(LineKindId);

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct FixedParams {
        amount: String,
    }

    fn info(name: &str, kind: PluginKind) -> PluginInfo {
        PluginInfo {
            name: name.into(),
            version: "1.0.0".into(),
            kind,
            description: String::new(),
            params_schema: r#"{"type": "object", "additionalProperties": false}"#.into(),
        }
    }

    impl Plugin for Seasonish {
        type Params = serde_json::Value;
        fn describe() -> PluginInfo {
            info("seasonish", PluginKind::Season)
        }
        fn configure(_: serde_json::Value) -> Result<(Self, Vec<LineSpec>), RuleError> {
            Ok((Seasonish, Vec::new()))
        }
        fn evaluate(&self, d: &CustomerDay) -> Result<DayOutput, RuleError> {
            Ok(DayOutput {
                lines: Vec::new(),
                season: Some(SeasonDay {
                    phase: SeasonPhase::Regular,
                    day_index: u32::from(d.date.day),
                    season_days: 31,
                    charged: true,
                }),
            })
        }
    }

    impl Plugin for Fixed {
        type Params = FixedParams;
        fn describe() -> PluginInfo {
            info("fixed", PluginKind::Tariff)
        }
        fn configure(p: FixedParams) -> Result<(Self, Vec<LineSpec>), RuleError> {
            let amount = p.amount.parse().map_err(RuleError::BadParams)?;
            let mut kinds = LineKinds::new();
            let kind = kinds.add(line_spec("fixed", "Fixed", "CNY", LineCategory::Heating));
            Ok((Fixed { amount, kind }, kinds.into_specs()))
        }
        fn evaluate(&self, d: &CustomerDay) -> Result<DayOutput, RuleError> {
            if d.tags.iter().any(|t| t == "refuse") {
                return Err(RuleError::MissingInput("refused".into()));
            }
            if !crate::season::is_heating_day(d) {
                return Ok(DayOutput::empty());
            }
            let a = self.amount.to_decimal().unwrap();
            Ok(DayOutput::lines(vec![Line::new(
                self.kind,
                Decimal::ONE,
                a,
                a,
                Payer::Customer,
            )?]))
        }
    }

    impl Plugin for Echo {
        type Params = serde_json::Value;
        fn describe() -> PluginInfo {
            info("echo", PluginKind::Subsidy)
        }
        fn configure(_: serde_json::Value) -> Result<(Self, Vec<LineSpec>), RuleError> {
            let mut kinds = LineKinds::new();
            kinds.add(line_spec("unused", "", "", LineCategory::Other));
            let echo = kinds.add(line_spec("echo", "", "", LineCategory::Subsidy));
            Ok((Echo(echo), kinds.into_specs()))
        }
        fn evaluate(&self, d: &CustomerDay) -> Result<DayOutput, RuleError> {
            let sum: Decimal = d
                .prior_lines
                .iter()
                .filter(|l| l.category == LineCategory::Heating)
                .map(|l| l.amount.to_decimal().unwrap())
                .sum();
            Ok(DayOutput::lines(vec![Line::new(
                self.0,
                Decimal::ONE,
                sum,
                sum,
                Payer::Government,
            )?]))
        }
    }

    fn chain(amount: &str) -> NativeChain {
        NativeChain::new()
            .with(configure::<Seasonish>("{}").unwrap())
            .with(configure::<Fixed>(&format!(r#"{{"amount": "{amount}"}}"#)).unwrap())
            .with(configure::<Echo>("").unwrap())
    }

    #[test]
    fn season_and_prior_lines_flow_down_the_chain() {
        let c = chain("2.50");
        let bills = c.evaluate(&[day("2026-01-03").build(), day("2026-01-04").build()]);
        let b = bills[0].as_ref().unwrap();
        assert_eq!(b.season.unwrap().day_index, 3);
        assert_eq!(b.lines.len(), 2);
        assert_eq!(c.spec(&b.lines[1]).unwrap().code, "echo");
        assert_eq!(b.lines[1].category, LineCategory::Subsidy);
        assert_eq!(b.lines[1].line.amount, dec("2.50"));
        assert_eq!(b.total(), Decimal::new(500, 2));
        assert_eq!(b.total_for(Payer::Government), Decimal::new(250, 2));
        assert_eq!(c.name(2), Some("echo"));
    }

    #[test]
    fn a_refusal_parks_that_day_only() {
        let c = chain("1");
        let days = [
            day("2026-01-03").build(),
            day("2026-01-03").tag("refuse").build(),
            day("2026-01-05").build(),
        ];
        let bills = c.evaluate(&days);
        assert!(bills[0].is_ok() && bills[2].is_ok());
        assert_eq!(bills[2].as_ref().unwrap().season.unwrap().day_index, 5);
        match &bills[1] {
            Err(NativeChainError::Rule {
                rule,
                plugin,
                error,
            }) => {
                assert_eq!(
                    (*rule, plugin.as_str(), error.kind()),
                    (1, "fixed", "missing-input")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn amounts_that_are_not_whole_fen_break_the_contract() {
        let c = chain("1.005");
        let bills = c.evaluate(&[day("2026-01-03").build()]);
        assert!(
            matches!(&bills[0], Err(NativeChainError::Contract { rule: 1, .. })),
            "{bills:?}"
        );
    }

    #[test]
    fn instance_lifecycle() {
        let i = Instance::<Fixed>::new();
        assert_eq!(i.describe().name, "fixed");
        let before = i.evaluate(&[day("2026-01-01").build()]);
        assert!(matches!(&before[0], Err(RuleError::Unsupported(_))));
        assert!(matches!(
            i.configure(r#"{"amount": 1}"#),
            Err(RuleError::BadParams(_))
        ));
        assert!(matches!(
            i.configure(r#"{"amont": "1"}"#),
            Err(RuleError::BadParams(_))
        ));
        assert_eq!(
            i.configure(r#"{"amount": "1"}"#).unwrap().lines[0].code,
            "fixed"
        );
        assert!(matches!(
            i.configure(r#"{"amount": "2"}"#),
            Err(RuleError::BadParams(_))
        ));
        let out = i.evaluate(&[
            day("2026-01-01").build(),
            day("2026-01-01").tag("refuse").build(),
        ]);
        assert_eq!(out.len(), 2);
        assert!(out[0].as_ref().unwrap().lines.is_empty());
        assert!(out[1].is_err());
    }

    #[test]
    fn long_messages_are_cut_to_the_contract() {
        let e = limit_message(RuleError::Unsupported("x".repeat(5000)));
        assert!(e.message().len() <= 1000);
        let short = limit_message(RuleError::MissingInput("no reading".into()));
        assert_eq!(short.message(), "no reading");
    }
}
