// Exact money: a BigInt-based decimal, `units × 10^-scale`, the contract's `decimal` record
// ({units: bigint, scale}) and rounding to the fen.
//
// Rounding is ROUND_HALF_UP (四舍五入) for signed amounts, i.e. half away from zero:
// 0.125 → 0.13 and −0.125 → −0.13, so a refund of a charge is exactly the negated charge.
// Money is never a JS number: a float cannot hold 0.1, and an s64 does not fit one.

import { InvalidInput } from './errors.js';

/** The largest scale the contract allows. */
export const MAX_SCALE = 18;

const POW10 = [1n];
for (let i = 1; i <= 80; i++) POW10.push(POW10[i - 1] * 10n);

/** 10^n as a BigInt. @param {number} n */
export function pow10(n) {
  return n < POW10.length ? POW10[n] : 10n ** BigInt(n);
}

const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

/**
 * `round(a / b)` half away from zero, for `b > 0`.
 * @param {bigint} a @param {bigint} b
 */
export function divRound(a, b) {
  const neg = a < 0n;
  const q = ((neg ? -a : a) * 2n + b) / (2n * b);
  return neg ? -q : q;
}

const DECIMAL_TEXT = /^-?[0-9]+(\.[0-9]+)?$/;

/** An exact decimal number `units × 10^-scale` (immutable). */
export class Decimal {
  /**
   * @param {bigint} units the digits, as a signed integer
   * @param {number} [scale] how many of them are behind the decimal point (≥ 0)
   */
  constructor(units, scale = 0) {
    /** @readonly @type {bigint} */
    this.units = units;
    /** @readonly @type {number} */
    this.scale = scale;
  }

  /**
   * A decimal from a string ("38.32"), a BigInt or integer number (whole units), a Decimal, or
   * the contract's record `{units, scale}`.
   * @param {string | bigint | number | Decimal | {units: bigint, scale: number}} x
   * @returns {Decimal}
   */
  static of(x) {
    if (x instanceof Decimal) return x;
    if (typeof x === 'string') {
      const d = Decimal.parse(x);
      if (d === undefined) throw new TypeError(`${JSON.stringify(x)} is not a decimal number`);
      return d;
    }
    if (typeof x === 'bigint') return new Decimal(x, 0);
    if (typeof x === 'number') {
      if (!Number.isSafeInteger(x)) {
        throw new TypeError(`${x} is not a safe integer: write money as a string, e.g. "38.32"`);
      }
      return new Decimal(BigInt(x), 0);
    }
    if (x && typeof x.units === 'bigint') return new Decimal(x.units, x.scale);
    throw new TypeError(`${String(x)} is not a decimal`);
  }

  /**
   * Parses "12.56", "-3.77", "0" exactly (no exponent, no float); `undefined` when it is not one.
   * @param {string} s
   * @returns {Decimal | undefined}
   */
  static parse(s) {
    const t = s.trim();
    if (!DECIMAL_TEXT.test(t)) return undefined;
    const dot = t.indexOf('.');
    if (dot < 0) return new Decimal(BigInt(t), 0);
    return new Decimal(BigInt(t.slice(0, dot) + t.slice(dot + 1)), t.length - dot - 1);
  }

  /** The contract's record, exactly as it came (scale checked by the caller). */
  static fromWit(w) {
    return new Decimal(w.units, w.scale);
  }

  /** A whole number of fen as a decimal with two decimals (1256 → 12.56). @param {bigint | number} fen */
  static fen(fen) {
    return new Decimal(BigInt(fen), 2);
  }

  /**
   * The contract's `decimal` record. More than 18 decimals are first normalised (trailing zeros
   * dropped) and then rounded half away from zero to 18 (only informative values, such as a unit
   * price from a division, have them). Units beyond an s64 are an `invalid-input` error naming
   * `what`.
   * @param {string} [what]
   * @returns {{units: bigint, scale: number}}
   */
  toWit(what = 'value') {
    let d = this;
    if (d.scale > MAX_SCALE) {
      // Numerically the same as normalising and then rounding, in one division.
      const p = pow10(d.scale - MAX_SCALE);
      d = new Decimal(d.units % p === 0n ? d.units / p : divRound(d.units, p), MAX_SCALE);
    }
    if (d.units < I64_MIN || d.units > I64_MAX) {
      throw new InvalidInput(`the ${what} ${d} is too large for the contract's decimal`);
    }
    return { units: d.units, scale: d.scale };
  }

  /** This value at `scale` decimals: exact when scaling up, rounded half away from zero when down. */
  rescale(scale) {
    if (scale === this.scale) return this;
    if (scale > this.scale) return new Decimal(this.units * pow10(scale - this.scale), scale);
    return new Decimal(divRound(this.units, pow10(this.scale - scale)), scale);
  }

  /** Rounded half away from zero to `dp` decimals (never adds decimals). */
  round(dp) {
    return this.scale <= dp ? this : this.rescale(dp);
  }

  /** Rounded to the fen (0.01), ROUND_HALF_UP. */
  roundFen() {
    return this.round(2);
  }

  /** Rounded to the fen, as a whole number of fen (12.555 → 1256n). */
  toFen() {
    return this.rescale(2).units;
  }

  /** Trailing zeros dropped (1.500 → 1.5). */
  normalize() {
    let { units, scale } = this;
    if (units === 0n) return new Decimal(0n, 0);
    while (scale > 0 && units % 10n === 0n) {
      units /= 10n;
      scale--;
    }
    return new Decimal(units, scale);
  }

  /** @param {Decimal} o */
  add(o) {
    if (this.scale === o.scale) return new Decimal(this.units + o.units, this.scale);
    const s = Math.max(this.scale, o.scale);
    return new Decimal(this.rescale(s).units + o.rescale(s).units, s);
  }

  /** @param {Decimal} o */
  sub(o) {
    return this.add(o.neg());
  }

  /** Exact product. @param {Decimal} o */
  mul(o) {
    return new Decimal(this.units * o.units, this.scale + o.scale);
  }

  /**
   * The quotient rounded half away from zero to `dp` decimals (default 28, more than any amount
   * needs before it is rounded to the fen). Division by zero throws a RangeError (a bug).
   * @param {Decimal} o @param {number} [dp]
   */
  div(o, dp = 28) {
    if (o.units === 0n) throw new RangeError(`division of ${this} by zero`);
    // this / o = (u1 / 10^s1) / (u2 / 10^s2) = u1 × 10^(s2 - s1) / u2; scaled by 10^dp.
    let num = this.units * pow10(dp + o.scale);
    let den = o.units * pow10(this.scale);
    if (den < 0n) {
      num = -num;
      den = -den;
    }
    return new Decimal(divRound(num, den), dp);
  }

  neg() {
    return new Decimal(-this.units, this.scale);
  }

  abs() {
    return this.units < 0n ? this.neg() : this;
  }

  /** -1, 0 or 1. */
  sign() {
    return this.units < 0n ? -1 : this.units > 0n ? 1 : 0;
  }

  isZero() {
    return this.units === 0n;
  }

  isNegative() {
    return this.units < 0n;
  }

  /** -1, 0 or 1 as this is less than, equal to or greater than `o` (numerically: 1.5 = 1.50). */
  cmp(o) {
    const a = this.scale >= o.scale ? this.units : this.units * pow10(o.scale - this.scale);
    const b = o.scale >= this.scale ? o.units : o.units * pow10(this.scale - o.scale);
    return a < b ? -1 : a > b ? 1 : 0;
  }

  /** Numeric equality (1.5 equals 1.50). */
  eq(o) {
    return this.cmp(o) === 0;
  }
  lt(o) {
    return this.cmp(o) < 0;
  }
  le(o) {
    return this.cmp(o) <= 0;
  }
  gt(o) {
    return this.cmp(o) > 0;
  }
  ge(o) {
    return this.cmp(o) >= 0;
  }

  /** "12.56", "-0.005", "60" (all the digits of the scale). */
  toString() {
    const neg = this.units < 0n;
    let digits = (neg ? -this.units : this.units).toString();
    if (this.scale > 0) {
      digits = digits.padStart(this.scale + 1, '0');
      digits = `${digits.slice(0, digits.length - this.scale)}.${digits.slice(digits.length - this.scale)}`;
    }
    return neg ? `-${digits}` : digits;
  }

  toJSON() {
    return this.toString();
  }
}

Decimal.ZERO = new Decimal(0n, 0);
Decimal.ONE = new Decimal(1n, 0);

/** Rounded to the fen, ROUND_HALF_UP. @param {Decimal} d */
export function roundFen(d) {
  return d.roundFen();
}

/**
 * The share of day `k` (1-based) of a season fee of `total` fen spread over `n` days by
 * cumulative rounding, `round(T·k/N) − round(T·(k−1)/N)`, in fen (docs/domain.md, "Money and
 * rounding"): the `n` shares add up to `total` exactly.
 * @param {bigint} total @param {number} k @param {number} n
 */
export function cumulativeShareFen(total, k, n) {
  if (n === 0 || k === 0 || k > n) {
    throw new InvalidInput(`the season day index ${k} is not within 1..=${n}`);
  }
  const N = BigInt(n);
  const K = BigInt(k);
  return divRound(total * K, N) - divRound(total * (K - 1n), N);
}

/** The season's daily rate `round(T/N)` in fen. @param {bigint} total @param {number} n */
export function dailyRateFen(total, n) {
  if (n === 0) throw new InvalidInput('the season has 0 days: no daily rate');
  return divRound(total, BigInt(n));
}

/** {@link cumulativeShareFen} on a decimal total (rounded to the fen first). @param {Decimal} total */
export function cumulativeShare(total, k, n) {
  return Decimal.fen(cumulativeShareFen(total.toFen(), k, n));
}

/** {@link dailyRateFen} on a decimal total (rounded to the fen first). @param {Decimal} total */
export function dailyRate(total, n) {
  return Decimal.fen(dailyRateFen(total.toFen(), n));
}
