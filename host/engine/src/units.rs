//! The unit metered heat is read in, and its exact conversion to GJ.
//!
//! One source file for the host's two readers of readings: the engine's model (imports go
//! through it) and the case files' crate (`host/cases`, which includes this file by path
//! because it must not depend on the engine). It depends on `rust_decimal` and `serde` alone.
//! The SDK's `units::HeatUnit` is the plugin side: it converts GJ back to a price's unit.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A unit metered heat is read in. Readings are converted to GJ, exactly, where they enter the
/// host (an import, a case file): plugins see GJ (`customer-day.heat`) and convert to the unit a
/// price is in with the SDK's `units::HeatUnit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum HeatUnit {
    /// Gigajoule, the contract's unit.
    #[default]
    #[serde(rename = "GJ", alias = "gj")]
    Gj,
    /// Kilowatt-hour: 0.0036 GJ.
    #[serde(rename = "kWh", alias = "kwh", alias = "KWH")]
    Kwh,
    /// Megawatt-hour: 3.6 GJ.
    #[serde(rename = "MWh", alias = "mwh", alias = "MWH")]
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

    /// `heat` of this unit in GJ: exact (a product of two exact decimals), `None` on overflow.
    /// A converted value is normalised (120 kWh is 0.432 GJ, not 0.4320).
    pub fn to_gj(self, heat: Decimal) -> Option<Decimal> {
        match self {
            HeatUnit::Gj => Some(heat),
            _ => heat.checked_mul(self.in_gj()).map(|d| d.normalize()),
        }
    }

    /// "GJ", "kWh" or "MWh".
    pub fn as_str(self) -> &'static str {
        match self {
            HeatUnit::Gj => "GJ",
            HeatUnit::Kwh => "kWh",
            HeatUnit::Mwh => "MWh",
        }
    }
}
