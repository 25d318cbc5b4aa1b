//! E-invoices (数电票): the issuance request heatbill writes for each payment, and the
//! red-letter (红字) request for each refund or reversal of one.
//!
//! heatbill does not issue invoices: it writes a request (seller, buyer, item lines with their
//! tax treatment, totals) in the payment's own transaction, publishes it as an
//! `invoice_requested` event, and keeps the provider's answer (the invoice number and its PDF or
//! OFD link, or a refusal). Companies that issue by hand export a batch in the tax bureau's
//! item-import template ([`TEMPLATE_HEADER`]).
//!
//! - **Lines by charge type.** A payment settles principal (the heating fee), late fees, and
//!   what is left is paid ahead; the request has one line per charge type with an amount,
//!   computed with the company's allocation order from the account before and after the
//!   payment. Paid ahead is invoiced as heating fee (预收).
//! - **Tax treatment is configuration** ([`InvoicePolicy`], `policies.invoicing`): per customer
//!   class and charge type, the item's name, tax classification code (税收分类编码, 19 digits),
//!   unit, tax rate and preferential-policy flag (免税, 不征税, 简易征收). Nothing is
//!   hard-coded: residential heating is commonly exempt and non-residential taxed at 9 %, by
//!   the company's file.
//! - **Amounts add up to the fen.** A line's amount is tax-inclusive; its tax is
//!   `amount × rate / (1 + rate)` rounded half away from zero to the fen, its net amount the
//!   rest; the request's total is the payment. A red-letter request for part of a payment
//!   takes each line's share rounded to the fen, the last line taking the remainder.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// A charge type a payment settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Charge {
    /// Heating fee: principal, and what is paid ahead.
    Heat,
    /// Late fees (滞纳金).
    LateFee,
}

impl Charge {
    /// The name in the company file.
    pub fn as_str(self) -> &'static str {
        match self {
            Charge::Heat => "heat",
            Charge::LateFee => "late-fee",
        }
    }
}

/// The seller: the heating company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seller {
    /// Its registered name.
    pub name: String,
    /// Its unified social credit code (纳税人识别号), 15 to 20 characters.
    pub tax_id: String,
}

/// How one charge type is invoiced for one customer class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemRule {
    /// `residential`, `non-residential`, or `*` (any).
    pub class: String,
    /// `heat` or `late-fee`.
    pub charge: Charge,
    /// 项目名称, e.g. `*供热*采暖费`.
    pub name: String,
    /// 商品和服务税收分类编码: 19 digits.
    pub tax_code: String,
    /// 单位 (default `项`).
    #[serde(default = "unit")]
    pub unit: String,
    /// 税率, e.g. `0.09`; `0` for an exempt or non-taxable line.
    pub rate: Decimal,
    /// 优惠政策类型: `免税`, `不征税`, `简易征收`, or none.
    #[serde(default)]
    pub preference: Option<String>,
}

fn unit() -> String {
    "项".into()
}

/// The preferential-policy flags a line may carry.
pub const PREFERENCES: [&str; 3] = ["免税", "不征税", "简易征收"];

/// A company's invoicing policy (`policies.invoicing`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoicePolicy {
    /// `payment`: one request per payment (the only one today).
    #[serde(default = "per_payment")]
    pub per: String,
    /// The seller.
    pub seller: Seller,
    /// The item rules; the first that matches a line's class and charge wins.
    pub items: Vec<ItemRule>,
}

fn per_payment() -> String {
    "payment".into()
}

impl InvoicePolicy {
    /// The company's policy, if it has one; a malformed one says what to fix.
    pub fn of(policies: &serde_json::Value) -> Result<Option<InvoicePolicy>, String> {
        let Some(v) = policies.get("invoicing") else {
            return Ok(None);
        };
        let p: InvoicePolicy =
            serde_json::from_value(v.clone()).map_err(|e| format!("policies.invoicing: {e}"))?;
        if p.per != "payment" {
            return Err(format!(
                "policies.invoicing.per is {:?}: give \"payment\" (one invoice per payment; \
                 invoicing per paid period is not supported yet)",
                p.per
            ));
        }
        let id = &p.seller.tax_id;
        if !(15..=20).contains(&id.len()) || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "policies.invoicing.seller.tax_id {id:?}: give the 15 to 20 letters and digits \
                 of the seller's taxpayer id (统一社会信用代码)"
            ));
        }
        if p.seller.name.trim().is_empty() || p.seller.name.chars().count() > 100 {
            return Err("policies.invoicing.seller.name: give 1 to 100 characters".into());
        }
        if p.items.is_empty() || p.items.len() > 50 {
            return Err("policies.invoicing.items: give 1 to 50 item rules".into());
        }
        for (i, r) in p.items.iter().enumerate() {
            let at = format!("policies.invoicing.items[{i}]");
            if !["residential", "non-residential", "*"].contains(&r.class.as_str()) {
                return Err(format!(
                    "{at}.class is {:?}: give residential, non-residential or *",
                    r.class
                ));
            }
            if r.tax_code.len() != 19 || !r.tax_code.chars().all(|c| c.is_ascii_digit()) {
                return Err(format!(
                    "{at}.tax_code is {:?}: give the 19 digits of the tax classification code \
                     (税收分类编码)",
                    r.tax_code
                ));
            }
            if r.rate < Decimal::ZERO || r.rate >= Decimal::ONE {
                return Err(format!(
                    "{at}.rate is {}: give a fraction from 0 to below 1 (0.09 for 9 %)",
                    r.rate
                ));
            }
            if let Some(f) = &r.preference
                && !PREFERENCES.contains(&f.as_str())
            {
                return Err(format!(
                    "{at}.preference is {f:?}: give one of {}, or leave it out",
                    PREFERENCES.join(", ")
                ));
            }
            if r.preference
                .as_deref()
                .is_some_and(|f| f == "免税" || f == "不征税")
                && r.rate != Decimal::ZERO
            {
                return Err(format!(
                    "{at}: a {} line has rate 0",
                    r.preference.as_deref().unwrap_or("")
                ));
            }
            if r.name.trim().is_empty()
                || r.name.chars().count() > 100
                || r.unit.chars().count() > 20
            {
                return Err(format!(
                    "{at}: give a name of 1 to 100 characters and a unit of at most 20"
                ));
            }
        }
        for class in ["residential", "non-residential"] {
            if p.rule(class, Charge::Heat).is_none() {
                return Err(format!(
                    "policies.invoicing.items has no rule for the heating fee of {class} \
                     customers: add one with class = \"{class}\" (or \"*\") and charge = \"heat\""
                ));
            }
        }
        Ok(Some(p))
    }

    /// The rule for a class's charge: the first that matches.
    pub fn rule(&self, class: &str, charge: Charge) -> Option<&ItemRule> {
        self.items
            .iter()
            .find(|r| r.charge == charge && (r.class == class || r.class == "*"))
    }
}

/// One item line of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// The charge type.
    pub charge: Charge,
    /// 项目名称.
    pub name: String,
    /// 商品和服务税收分类编码.
    pub tax_code: String,
    /// 单位.
    pub unit: String,
    /// 商品数量.
    pub quantity: Decimal,
    /// 商品单价 (net of tax).
    pub unit_price: Decimal,
    /// 金额 (net of tax).
    pub amount: Decimal,
    /// 税率.
    pub rate: Decimal,
    /// 税额.
    pub tax: Decimal,
    /// 优惠政策类型.
    pub preference: Option<String>,
}

impl Line {
    /// The line's tax-inclusive amount.
    pub fn gross(&self) -> Decimal {
        self.amount + self.tax
    }
}

fn fen(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// One line for a tax-inclusive `gross` amount under `rule`.
pub fn line(rule: &ItemRule, charge: Charge, gross: Decimal) -> Line {
    let tax = fen(gross * rule.rate / (Decimal::ONE + rule.rate));
    let amount = gross - tax;
    Line {
        charge,
        name: rule.name.clone(),
        tax_code: rule.tax_code.clone(),
        unit: rule.unit.clone(),
        quantity: Decimal::ONE,
        unit_price: amount,
        amount,
        rate: rule.rate,
        tax,
        preference: rule.preference.clone(),
    }
}

/// The lines of a payment of a customer of `class`: one per charge type with an amount.
pub fn lines(
    policy: &InvoicePolicy,
    class: &str,
    parts: &[(Charge, Decimal)],
) -> Result<Vec<Line>, String> {
    let mut out = Vec::new();
    for (charge, gross) in parts {
        if *gross == Decimal::ZERO {
            continue;
        }
        let rule = policy
            .rule(class, *charge)
            .or_else(|| policy.rule(class, Charge::Heat))
            .ok_or_else(|| format!("no invoicing rule for {class} {}", charge.as_str()))?;
        out.push(line(rule, *charge, *gross));
    }
    Ok(out)
}

/// The red-letter lines for `refund` (positive) of an invoice of `original` lines: each line's
/// share of the refund, negative, the last line taking what rounding left so the total is
/// exactly `-refund`.
pub fn red_lines(original: &[Line], refund: Decimal) -> Vec<Line> {
    let total: Decimal = original.iter().map(Line::gross).sum();
    if total <= Decimal::ZERO {
        return Vec::new();
    }
    let mut left = refund.min(total);
    let mut out = Vec::new();
    for (i, l) in original.iter().enumerate() {
        let share = if i + 1 == original.len() {
            left
        } else {
            fen(refund.min(total) * l.gross() / total).min(left)
        };
        left -= share;
        let rule = ItemRule {
            class: "*".into(),
            charge: l.charge,
            name: l.name.clone(),
            tax_code: l.tax_code.clone(),
            unit: l.unit.clone(),
            rate: l.rate,
            preference: l.preference.clone(),
        };
        let mut r = line(&rule, l.charge, share);
        r.quantity = -Decimal::ONE;
        r.amount = -r.amount;
        r.tax = -r.tax;
        out.push(r);
    }
    out
}

/// The tax bureau's item-import template's columns (项目名称 … 优惠政策类型), with the request's
/// number first so a row can be traced back.
pub const TEMPLATE_HEADER: &str = "请求号,购买方名称,购买方纳税人识别号,项目名称,商品和服务税收分类编码,规格型号,单位,商品数量,商品单价,金额,税率,折扣金额,优惠政策类型\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn policy() -> InvoicePolicy {
        InvoicePolicy::of(&serde_json::json!({"invoicing": {
        "seller": {"name": "哈尔滨热力有限公司", "tax_id": "91230100MA1BXXXX0X"},
        "items": [
            {"class": "residential", "charge": "heat", "name": "*供热*居民采暖费",
             "tax_code": "1100301030000000000", "unit": "平方米", "rate": "0",
             "preference": "免税"},
            {"class": "non-residential", "charge": "heat", "name": "*供热*非居民采暖费",
             "tax_code": "1100301030000000000", "rate": "0.09"},
            {"class": "*", "charge": "late-fee", "name": "*供热*滞纳金",
             "tax_code": "1100301030000000000", "rate": "0", "preference": "不征税"}
        ]}}))
        .unwrap()
        .unwrap()
    }

    #[test]
    fn lines_add_up_to_the_fen_under_the_configured_treatment() {
        let p = policy();
        let l = lines(
            &p,
            "non-residential",
            &[
                (Charge::Heat, dec("1000.00")),
                (Charge::LateFee, dec("1.15")),
            ],
        )
        .unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(
            (l[0].amount, l[0].tax, l[0].rate),
            (dec("917.43"), dec("82.57"), dec("0.09"))
        );
        assert_eq!(l[1].preference.as_deref(), Some("不征税"));
        assert_eq!(l.iter().map(Line::gross).sum::<Decimal>(), dec("1001.15"));
        let r = lines(&p, "residential", &[(Charge::Heat, dec("2299.20"))]).unwrap();
        assert_eq!(
            (r[0].tax, r[0].preference.as_deref(), r[0].unit.as_str()),
            (dec("0"), Some("免税"), "平方米")
        );
    }

    #[test]
    fn red_letter_lines_take_the_refund_exactly() {
        let p = policy();
        let l = lines(
            &p,
            "non-residential",
            &[
                (Charge::Heat, dec("100.00")),
                (Charge::LateFee, dec("0.01")),
            ],
        )
        .unwrap();
        let red = red_lines(&l, dec("33.33"));
        assert_eq!(red.iter().map(Line::gross).sum::<Decimal>(), dec("-33.33"));
        assert!(
            red.iter()
                .all(|x| x.amount <= Decimal::ZERO && x.quantity == -Decimal::ONE)
        );
        let all = red_lines(&l, dec("100.01"));
        assert_eq!(all.iter().map(Line::gross).sum::<Decimal>(), dec("-100.01"));
    }

    #[test]
    fn bad_policies_say_what_to_fix() {
        let bad = |v: serde_json::Value| {
            InvoicePolicy::of(&serde_json::json!({"invoicing": v})).unwrap_err()
        };
        let seller = serde_json::json!({"name": "X", "tax_id": "91230100MA1BXXXX0X"});
        assert!(
            bad(serde_json::json!({"seller": {"name": "X", "tax_id": "1"}, "items": []}))
                .contains("tax_id")
        );
        assert!(bad(serde_json::json!({"seller": seller, "items": [{"class": "*", "charge": "heat", "name": "n", "tax_code": "12", "rate": "0"}]})).contains("19 digits"));
        assert!(bad(serde_json::json!({"seller": seller, "items": [{"class": "*", "charge": "heat", "name": "n", "tax_code": "1100301030000000000", "rate": "9"}]})).contains("0.09"));
        assert!(bad(serde_json::json!({"seller": seller, "items": [{"class": "residential", "charge": "heat", "name": "n", "tax_code": "1100301030000000000", "rate": "0"}]})).contains("non-residential"));
        assert!(
            bad(serde_json::json!({"seller": seller, "per": "period", "items": []}))
                .contains("not supported yet")
        );
    }
}
