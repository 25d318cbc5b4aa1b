// `late-fee` 1.0.0-rows: the kit's late fee (plugins/js/late-fee) through the row method only.
//
// A benchmark fixture for `heatbill-bench-kits` (BENCHMARKS.md, "Python and JavaScript plugins:
// the kits side by side"): the same rule, parameters and bills as late-fee 1.0.0 without
// `evaluateColumns`, so the SDK calls `evaluate(day)` per row view and the row path and the
// columnar path are measured side by side. Not built by `build.mjs --all` (its component would
// overwrite late-fee's): `./dev bench-kits` builds it into plugins/js/target/bench/.

import { params, BadParams, DayFilter, bits, line, NO_LINES, toDays } from '@heatbill/sdk';

export default class LateFee {
  static params = params.object(
    {
      daily_rate: params.decimal({ description: 'The fee per day as a share of the overdue principal, e.g. "0.001" (1‰, Harbin).' }),
      due_date: params.date({ description: 'The first day a late fee accrues, e.g. "2026-01-01" (Harbin: January 1st).' }),
      max_daily_rate: params.decimal({
        description: 'The legal cap on the daily rate, e.g. "0.002" (Tianjin 2‰): a daily_rate above it is refused. Default none.',
        optional: true,
      }),
      code: params.string({ description: 'The code of the late-fee line (default "late-fee").', default: 'late-fee' }),
      description: params.string({ description: 'Its text on the bill (default "滞纳金").', default: '滞纳金' }),
    },
    { description: 'The parameters of `late-fee`.' },
  );

  /**
   * @param {{daily_rate: Decimal, due_date: {year: number, month: number, day: number}, max_daily_rate?: Decimal, code: string, description: string}} p
   * @param {import('@heatbill/sdk').LineKinds} kinds
   */
  static configure(p, kinds) {
    if (p.daily_rate.isNegative()) {
      throw new BadParams(`\`daily_rate\` is ${p.daily_rate}: give a share per day, e.g. "0.001" for 1‰`);
    }
    if (p.max_daily_rate !== undefined && p.daily_rate.gt(p.max_daily_rate)) {
      throw new BadParams(`\`daily_rate\` ${p.daily_rate} is above the legal cap max_daily_rate ${p.max_daily_rate}: lower the rate`);
    }
    const kind = kinds.add({ code: p.code, description: p.description, unit: 'CNY', category: 'late-fee' });
    return new LateFee(p.daily_rate, toDays(p.due_date), kind);
  }

  /** @param {Decimal} rate @param {number} dueDays @param {number} kind */
  constructor(rate, dueDays, kind) {
    this.rate = rate;
    this.dueDays = dueDays;
    this.kind = kind;
    /** Customers with overdue arrears only: without `arrears-since`, no late fee. */
    this.appliesTo = DayFilter.ALL.require(bits.HAS_ARREARS_SINCE);
  }

  /** The row method, for every customer-day of a batch. */
  evaluate(day) {
    const since = day.arrearsSinceDays;
    if (since === undefined || since > day.dateDays || day.dateDays < this.dueDays || day.arrears.units <= 0n) {
      return NO_LINES;
    }
    const fee = day.arrears.mul(this.rate).roundFen();
    if (fee.isZero()) return NO_LINES;
    return [line(this.kind, day.arrears, this.rate, fee)];
  }
}
