//! Units of metered heat: GJ, kWh and MWh, converted exactly.
//!
//! The host hands every reading to a plugin in GJ (`customer-day.heat`), converted exactly from
//! the unit it was read in when it was imported (1 kWh = 0.0036 GJ, 1 MWh = 3.6 GJ: both exact
//! decimals). A tariff priced in another unit (Xuchang: 0.158 元/kWh) converts the day's heat
//! back with [`HeatUnit::from_gj`]; a reading taken in kWh comes back exactly as it was read
//! (120 kWh → 0.432 GJ → 120 kWh), and the bill line shows the unit the price is in.
//!
//! One conversion is not a finite decimal: a reading taken in GJ billed per kWh (1 GJ =
//! 277.77… kWh). [`HeatUnit::from_gj`] then keeps 28 significant digits, and the line's amount,
//! rounded once to the fen, is the same as with the exact quotient for any reading and price a
//! bill can hold.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

use crate::RuleError;

/// A unit of heat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HeatUnit {
    /// Gigajoule, the contract's unit.
    #[default]
    Gj,
    /// Kilowatt-hour: 0.0036 GJ.
    Kwh,
    /// Megawatt-hour: 3.6 GJ.
    Mwh,
}

impl HeatUnit {
    /// How many GJ one of this unit is (exact).
    pub fn in_gj(self) -> Decimal {
        match self {
            HeatUnit::Gj => Decimal::ONE,
            HeatUnit::Kwh => Decimal::new(36, 4),
            HeatUnit::Mwh => Decimal::new(36, 1),
        }
    }

    /// `heat_gj` in this unit: exact when the heat was read in this unit (or when the quotient
    /// is a finite decimal), else to 28 significant digits.
    pub fn from_gj(self, heat_gj: Decimal) -> Result<Decimal, RuleError> {
        heat_gj.checked_div(self.in_gj()).ok_or_else(|| {
            RuleError::InvalidInput(format!("{heat_gj} GJ cannot be expressed in {self}"))
        })
    }

    /// What `heat_gj` GJ cost at `unit_price` per one of this unit, exactly: the product
    /// first, then the division by the unit's size in GJ, so that an amount that is exactly a
    /// half fen stays exact for the one rounding that follows (5.097 GJ at 0.198 元/kWh is
    /// 280.335; dividing the heat first gives 1415.8333… kWh, and a product a hair under it).
    pub fn cost(self, heat_gj: Decimal, unit_price: Decimal) -> Result<Decimal, RuleError> {
        heat_gj
            .checked_mul(unit_price)
            .and_then(|x| x.checked_div(self.in_gj()))
            .ok_or_else(|| {
                RuleError::InvalidInput(format!(
                    "{heat_gj} GJ at {unit_price} per {self} is out of range"
                ))
            })
    }

    /// `heat` of this unit in GJ (exact, unless it overflows 28 digits).
    pub fn to_gj(self, heat: Decimal) -> Result<Decimal, RuleError> {
        heat.checked_mul(self.in_gj())
            .ok_or_else(|| RuleError::InvalidInput(format!("{heat} {self} is out of range in GJ")))
    }

    /// The unit as a bill line shows it: "GJ", "kWh", "MWh".
    pub fn as_str(self) -> &'static str {
        match self {
            HeatUnit::Gj => "GJ",
            HeatUnit::Kwh => "kWh",
            HeatUnit::Mwh => "MWh",
        }
    }
}

impl fmt::Display for HeatUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HeatUnit {
    type Err = String;

    /// "GJ", "kWh" or "MWh", in any letter case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "gj" => Ok(HeatUnit::Gj),
            "kwh" => Ok(HeatUnit::Kwh),
            "mwh" => Ok(HeatUnit::Mwh),
            _ => Err(format!(
                "unknown heat unit {s:?}: use \"GJ\", \"kWh\" or \"MWh\""
            )),
        }
    }
}

/// "GJ", "kWh" or "MWh", in any letter case (the pattern spells the cases out: JSON Schema's
/// regular expressions have no case-insensitive flag).
impl schemars::JsonSchema for HeatUnit {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HeatUnit".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A unit of heat: \"GJ\", \"kWh\" or \"MWh\" (any letter case).",
            "type": "string",
            "pattern": "^([Gg][Jj]|[Kk][Ww][Hh]|[Mm][Ww][Hh])$",
            "examples": ["GJ", "kWh", "MWh"],
        })
    }
}

impl<'de> Deserialize<'de> for HeatUnit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn a_reading_comes_back_in_its_own_unit_exactly() {
        let gj = HeatUnit::Kwh.to_gj(dec("120")).unwrap();
        assert_eq!(gj, dec("0.432"));
        assert_eq!(HeatUnit::Kwh.from_gj(gj).unwrap(), dec("120"));
        assert_eq!(HeatUnit::Mwh.to_gj(dec("1.5")).unwrap(), dec("5.4"));
        assert_eq!(HeatUnit::Mwh.from_gj(dec("5.4")).unwrap(), dec("1.5"));
        assert_eq!(HeatUnit::Gj.from_gj(dec("1.2")).unwrap(), dec("1.2"));
    }

    #[test]
    fn gj_billed_per_kwh_rounds_once_to_the_fen() {
        // 1.2 GJ = 333.33… kWh; × 0.158 = 52.666… → 52.67.
        let kwh = HeatUnit::Kwh.from_gj(dec("1.2")).unwrap();
        assert_eq!(crate::round_fen(kwh * dec("0.158")), dec("52.67"));
    }

    #[test]
    fn units_parse_in_any_case() {
        assert_eq!("kWh".parse::<HeatUnit>(), Ok(HeatUnit::Kwh));
        assert_eq!("GJ".parse::<HeatUnit>(), Ok(HeatUnit::Gj));
        assert_eq!("mwh".parse::<HeatUnit>(), Ok(HeatUnit::Mwh));
        assert!("kJ".parse::<HeatUnit>().unwrap_err().contains("\"kWh\""));
    }
}
