// `late-fee` in JavaScript: the same rule, name, version and parameters as the Rust reference
// plugin (plugins/late-fee; docs/reference-plugins.md), so either component can sit in a chain.
//
// On every bill date from the due date on, a customer whose principal is overdue
// (`arrears-since` set and not after the bill date) pays round_fen(arrears × daily_rate):
// simple interest on the principal only (the host's `arrears` excludes earlier late fees),
// rounded per day. W6: 1149.60 × 0.001 → 1.15.
//
// It runs for every customer with arrears, so it has the columnar fast path: the batch's s64s
// are read as exact numbers, not BigInts (see README.md, "What is slow").

import { params, Decimal, BadParams, DayFilter, bits, line, NO_LINES, toDays, DecimalColumnReader, POW10_NUM } from '@heatbill/sdk';

const SAFE = Number.MAX_SAFE_INTEGER;
const TWO32 = 4294967296;

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
    // The rate as an exact number for the fast path (NaN: always the BigInt path).
    const r = Number(rate.units);
    this.rateNum = Number.isSafeInteger(r) ? r : NaN;
  }

  /** The row method: a dry run of one bill, and the reference for the columnar path. */
  evaluate(day) {
    const since = day.arrearsSinceDays;
    if (since === undefined || since > day.dateDays || day.dateDays < this.dueDays || day.arrears.units <= 0n) {
      return NO_LINES;
    }
    const fee = day.arrears.mul(this.rate).roundFen();
    if (fee.isZero()) return NO_LINES;
    return [line(this.kind, day.arrears, this.rate, fee)];
  }

  /**
   * The columnar path (the nightly run): the same rule over a whole `day-batch`, writing the
   * output columns directly. A principal is read as its two 32-bit halves and the fee computed
   * with exact numbers (every realistic principal and rate); beyond 2^53 it falls back to the
   * BigInt decimals of the row method. The loop makes no call on the common path: in the
   * interpreter a call costs more than the arithmetic.
   */
  evaluateColumns(batch, out) {
    const { len, bits: rowBits, dates, arrearsSince } = batch;
    const arrears = new DecimalColumnReader(batch.arrears);
    const aw = arrears.words;
    const as = arrears.scales;
    const rateNum = this.rateNum;
    const rateScale = this.rate.scale;
    const rateLo = rateNum % TWO32;
    const rateHi = (rateNum - rateLo) / TWO32;
    const due = this.dueDays;
    const kind = this.kind;
    const HAS_SINCE = bits.HAS_ARREARS_SINCE;
    let j = out.reserve(len); // at most one line per row
    const { rows, kinds, payers } = out;
    const qw = out.quantity.words, qs = out.quantity.scales;
    const pw = out.unitPrice.words, ps = out.unitPrice.scales;
    const mw = out.amount.words, ms = out.amount.scales;
    for (let i = 0; i < len; i++) {
      if ((rowBits[i] & HAS_SINCE) === 0) continue;
      const date = dates[i];
      if (arrearsSince[i] > date || date < due) continue;
      const hi = aw[2 * i + 1];
      const e = as[i] + rateScale - 2;
      // Fast path: a positive principal below 2^53 whose fee is computed exactly in numbers.
      if (hi >= 0 && hi < 0x200000 && e >= 0 && e <= 22) {
        const a = hi * TWO32 + (aw[2 * i] >>> 0);
        const p = a * rateNum; // NaN when the rate is not an exact number
        if (p < SAFE) {
          if (a === 0) continue;
          const d = POW10_NUM[e];
          const r = p % d; // exact for integers
          const fen = (p - r) / d + (2 * r >= d ? 1 : 0);
          if (fen === 0) continue;
          rows[j] = i;
          kinds[j] = kind;
          payers[j] = 0;
          qw[2 * j] = aw[2 * i];
          qw[2 * j + 1] = hi;
          qs[j] = as[i];
          pw[2 * j] = rateLo;
          pw[2 * j + 1] = rateHi;
          ps[j] = rateScale;
          const lo = fen % TWO32;
          mw[2 * j] = lo;
          mw[2 * j + 1] = (fen - lo) / TWO32;
          ms[j] = 2;
          j++;
          continue;
        }
      }
      // Anything else (no fee for a principal ≤ 0; huge values; a rate with more digits than a
      // number holds): the row method's BigInt decimals.
      const principal = arrears.decimal(i);
      if (principal.units <= 0n) continue;
      const fee = principal.mul(this.rate).roundFen();
      if (fee.isZero()) continue;
      out.commit(j);
      const k = out.add(i, kind, 0);
      out.quantity.copy(k, arrears, i);
      out.unitPrice.setDecimal(k, this.rate, 'unit price');
      out.amount.setDecimal(k, fee, 'amount');
      j = k + 1;
    }
    out.commit(j);
  }
}
