//! The bits of a customer-day (`day-bits` in `wit/rules.wit`): how the host's columnar batch
//! carries class, status, flags and which optional values are present, and what a
//! [`DayFilter`](crate::DayFilter) tests.

use crate::{CustomerClass, CustomerDay, CustomerFlags, ServiceStatus};

/// Bit 0: non-residential (`day-bits.non-residential`).
pub const NON_RESIDENTIAL: u32 = 1 << 0;
/// Bit 1: suspended.
pub const SUSPENDED: u32 = 1 << 1;
/// Bit 2: metered.
pub const METERED: u32 = 1 << 2;
/// Bit 3: low-income.
pub const LOW_INCOME: u32 = 1 << 3;
/// Bit 4: `usable-area` present.
pub const HAS_USABLE_AREA: u32 = 1 << 4;
/// Bit 5: `ceiling-height` present.
pub const HAS_CEILING_HEIGHT: u32 = 1 << 5;
/// Bit 6: `heat` present.
pub const HAS_HEAT: u32 = 1 << 6;
/// Bit 7: `indoor-temperature` present.
pub const HAS_INDOOR_TEMPERATURE: u32 = 1 << 7;
/// Bit 8: `arrears-since` present.
pub const HAS_ARREARS_SINCE: u32 = 1 << 8;
/// Bit 9: the season columns present.
pub const HAS_SEASON: u32 = 1 << 9;
/// Bit 10: early and extended days charged.
pub const SEASON_CHARGED: u32 = 1 << 10;

/// The bits of a customer-day, as the host computes them for its batch.
pub fn of(day: &CustomerDay) -> u32 {
    let mut b = 0;
    let mut set = |on: bool, bit: u32| {
        if on {
            b |= bit;
        }
    };
    set(day.class == CustomerClass::NonResidential, NON_RESIDENTIAL);
    set(day.status == ServiceStatus::Suspended, SUSPENDED);
    set(day.flags.contains(CustomerFlags::METERED), METERED);
    set(day.flags.contains(CustomerFlags::LOW_INCOME), LOW_INCOME);
    set(day.usable_area.is_some(), HAS_USABLE_AREA);
    set(day.ceiling_height.is_some(), HAS_CEILING_HEIGHT);
    set(day.heat.is_some(), HAS_HEAT);
    set(day.indoor_temperature.is_some(), HAS_INDOOR_TEMPERATURE);
    set(day.arrears_since.is_some(), HAS_ARREARS_SINCE);
    set(day.season.is_some(), HAS_SEASON);
    set(day.season.is_some_and(|s| s.charged), SEASON_CHARGED);
    b
}
