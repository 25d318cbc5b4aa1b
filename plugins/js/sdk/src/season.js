// How a customer-day accrues a season-based charge, from the `season` a season plugin set
// (docs/domain.md): regular days get the cumulative share of the season fee, early-start and
// extension days the season's daily rate when charged or 0.00 when free, other days nothing.

import { Decimal, cumulativeShareFen, dailyRateFen } from './decimal.js';
import { InvalidInput } from './errors.js';

/** How the bill date accrues a heating charge. */
export class Accrual {
  /**
   * @param {'none' | 'regular' | 'charged' | 'free'} type
   * @param {number} [k] the 1-based day index (regular)
   * @param {number} [n] the number of regular days (regular, charged)
   */
  constructor(type, k = 0, n = 0) {
    this.type = type;
    this.k = k;
    this.n = n;
  }

  /**
   * The day's accrual, from its `season` (a `season-day` record, or undefined when no season
   * plugin ran). An inconsistent position is an `invalid-input` error.
   * @param {{season?: {phase: string, dayIndex: number, seasonDays: number, charged: boolean}}} day
   */
  static of(day) {
    const s = day.season;
    if (s === undefined) return Accrual.NONE;
    switch (s.phase) {
      case 'regular':
        if (s.dayIndex === 0 || s.dayIndex > s.seasonDays) {
          throw new InvalidInput(`season day index ${s.dayIndex} is not within 1..=${s.seasonDays}`);
        }
        return new Accrual('regular', s.dayIndex, s.seasonDays);
      case 'early':
      case 'extended':
        if (!s.charged) return Accrual.FREE;
        if (s.seasonDays === 0) throw new InvalidInput('a charged early or extension day in a season of 0 days');
        return new Accrual('charged', 0, s.seasonDays);
      default:
        return Accrual.NONE;
    }
  }

  /** Whether heat is provided on this day (charged or free). */
  isHeatingDay() {
    return this.type !== 'none';
  }

  /**
   * The day's part of a season fee of `total` fen, in fen: the cumulative share on regular days,
   * the daily rate on charged early/extension days, 0 on free ones, undefined on days that are
   * not heating days.
   * @param {bigint} total
   * @returns {bigint | undefined}
   */
  seasonShareFen(total) {
    switch (this.type) {
      case 'regular':
        return cumulativeShareFen(total, this.k, this.n);
      case 'charged':
        return dailyRateFen(total, this.n);
      case 'free':
        return 0n;
      default:
        return undefined;
    }
  }

  /**
   * {@link seasonShareFen} on a decimal season fee (rounded to the fen first).
   * @param {Decimal} total
   * @returns {Decimal | undefined}
   */
  seasonShare(total) {
    const fen = this.seasonShareFen(total.toFen());
    return fen === undefined ? undefined : Decimal.fen(fen);
  }
}

Accrual.NONE = new Accrual('none');
Accrual.FREE = new Accrual('free');

/** Whether the bill date is a heating day (regular, early or extended; charged or free). */
export function isHeatingDay(day) {
  return day.season !== undefined && day.season.phase !== 'outside';
}
