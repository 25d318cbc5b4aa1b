// The columnar fast path: read a `day-batch`'s columns and write a `batch-output` directly,
// without a row view or a `Decimal` per value.
//
// Why: every `s64` of the contract is a BigInt in JS, and reading one from a BigInt64Array
// allocates it; BigInt arithmetic is several times slower than number arithmetic. Realistic
// money and quantities are far below 2^53, so the fast path reads each s64 as its two 32-bit
// halves (an Int32Array over the same memory) and computes with exact JS numbers, falling back
// to BigInt only for a value that is not a safe integer. A rule that runs for every customer
// (a late fee, a tariff) should define `evaluateColumns(batch, out)` with these; a rule for a
// few customers can stay with rows.

import { Decimal } from './decimal.js';
import { RuleError } from './errors.js';


const TWO32 = 4294967296;
/** |hi| below this: hi × 2^32 + lo is a safe integer. */
const HI_SAFE = 0x200000;
const SAFE = Number.MAX_SAFE_INTEGER;

/** The 32-bit halves of a BigInt64Array (little-endian: entry i is words 2i, 2i+1). */
export function i64Words(a) {
  return new Int32Array(a.buffer, a.byteOffset, a.length * 2);
}

/**
 * The s64 at index i of an {@link i64Words} view as an exact number, or NaN when it is not a
 * safe integer (then read the BigInt).
 * @param {Int32Array} w @param {number} i
 */
export function numAt(w, i) {
  const hi = w[2 * i + 1];
  if (hi >= -HI_SAFE && hi < HI_SAFE) return hi * TWO32 + (w[2 * i] >>> 0);
  return NaN;
}

/** A `decimal-column` of the batch, read as numbers where exact. */
export class DecimalColumnReader {
  /** @param {{units: BigInt64Array, scales: Uint8Array}} col */
  constructor(col) {
    this.units = col.units;
    this.scales = col.scales;
    this.words = i64Words(col.units);
  }
  /** The units of entry i as an exact number, or NaN when not a safe integer. */
  num(i) {
    return numAt(this.words, i);
  }
  /** The units of entry i as a BigInt. */
  big(i) {
    return this.units[i];
  }
  /** The scale of entry i. */
  scale(i) {
    return this.scales[i];
  }
  /** Entry i as a Decimal (allocates: for the rare slow path). */
  decimal(i) {
    return new Decimal(this.units[i], this.scales[i]);
  }
}

/** Powers of ten that are exact numbers (10^0 ..= 10^22). */
export const POW10_NUM = Array.from({ length: 23 }, (_, i) => 10 ** i);

/**
 * round(a / 10^e) half away from zero, for a safe integer `a` and 0 ≤ e ≤ 22; exact.
 * @param {number} a @param {number} e
 */
export function roundPow10(a, e) {
  if (e === 0) return a;
  const d = POW10_NUM[e];
  const abs = a < 0 ? -a : a;
  let q = Math.floor(abs / d);
  let r = abs - q * d; // exact: q × d ≤ abs < 2^53
  // The float quotient may be one off; the remainder says which way.
  if (r < 0) {
    q -= 1;
    r += d;
  } else if (r >= d) {
    q += 1;
    r -= d;
  }
  if (2 * r >= d) q += 1;
  return a < 0 ? -q : q;
}

/** One output `decimal-column`, written entry by entry. */
class DecimalColumnWriter {
  constructor(cap) {
    this.words = new Int32Array(cap * 2);
    this.scales = new Uint8Array(cap);
  }
  grow(cap) {
    const w = new Int32Array(cap * 2);
    w.set(this.words);
    this.words = w;
    const s = new Uint8Array(cap);
    s.set(this.scales);
    this.scales = s;
  }
  /** Entry j = units × 10^-scale, `units` a safe integer number. */
  setNum(j, units, scale) {
    const hi = Math.floor(units / TWO32);
    this.words[2 * j] = units - hi * TWO32;
    this.words[2 * j + 1] = hi;
    this.scales[j] = scale;
  }
  /** Entry j = the contract's decimal (units a BigInt). */
  setBig(j, units, scale) {
    const n = Number(units);
    if (n >= -SAFE && n <= SAFE) {
      this.setNum(j, n, scale);
      return;
    }
    this.words[2 * j] = Number(BigInt.asIntN(32, units));
    this.words[2 * j + 1] = Number(BigInt.asIntN(32, units >> 32n));
    this.scales[j] = scale;
  }
  /** Entry j = a Decimal (converted with `toWit`). */
  setDecimal(j, d, what) {
    const w = d.toWit(what);
    this.setBig(j, w.units, w.scale);
  }
  /** Entry j = entry i of an input column, copied word for word (no conversion at all). */
  copy(j, reader, i) {
    this.words[2 * j] = reader.words[2 * i];
    this.words[2 * j + 1] = reader.words[2 * i + 1];
    this.scales[j] = reader.scales[i];
  }
  finish(n) {
    return { units: new BigInt64Array(this.words.buffer.slice(0, n * 8)), scales: this.scales.slice(0, n) };
  }
}

const PAYER_CODE = { customer: 0, government: 1, employer: 2 };
const PHASE_CODE = { outside: 0, regular: 1, early: 2, extended: 3 };

/**
 * Builds a `batch-output`: lines in row order, refusals, and a season plugin's positions.
 *
 * Fast path: `const j = out.add(row, kind, payerCode)`, then `out.quantity.setNum(j, units,
 * scale)` (or `.copy(j, reader, i)`), `out.unitPrice…`, `out.amount…`; the season amount is
 * none unless set. Row path: `out.push(row, result)` with what `evaluate` returned.
 */
export class BatchWriter {
  /** @param {number} len the number of rows of the batch */
  constructor(len) {
    this.len = len;
    this.n = 0;
    this.cap = Math.max(16, len);
    this.rows = new Uint32Array(this.cap);
    this.kinds = new Uint16Array(this.cap);
    this.payers = new Uint8Array(this.cap);
    this.quantity = new DecimalColumnWriter(this.cap);
    this.unitPrice = new DecimalColumnWriter(this.cap);
    this.amount = new DecimalColumnWriter(this.cap);
    this.seasonAmount = new DecimalColumnWriter(this.cap);
    /** @type {{row: number, error: {tag: string, val: string}}[]} */
    this.errors = [];
    this.season = undefined;
  }

  /**
   * Adds a line to row `row` (rows ascending) and returns its index for the column setters.
   * @param {number} row @param {number} kind the line kind's index @param {number} payer 0 customer, 1 government, 2 employer
   */
  add(row, kind, payer) {
    if (this.n === this.cap) this.grow();
    const j = this.n++;
    this.rows[j] = row;
    this.kinds[j] = kind;
    this.payers[j] = payer;
    return j;
  }

  /**
   * The raw fast path: makes room for `count` more lines and returns the index of the first.
   * Write line j's row, kind and payer into `rows`, `kinds`, `payers` and its decimals into the
   * columns' `words` (two int32 halves per s64, little-endian) and `scales`, in row order, then
   * call {@link commit} with the number of lines written. No call per line: in SpiderMonkey's
   * interpreter a call costs more than the arithmetic of a line.
   */
  reserve(count) {
    while (this.n + count > this.cap) this.grow();
    return this.n;
  }

  /** Ends a {@link reserve}: lines [0, end) are the output so far. */
  commit(end) {
    if (end > this.cap) throw new RangeError(`commit(${end}) past the reserved ${this.cap} lines`);
    this.n = end;
  }

  grow() {
    const cap = this.cap * 2;
    const r = new Uint32Array(cap);
    r.set(this.rows);
    this.rows = r;
    const k = new Uint16Array(cap);
    k.set(this.kinds);
    this.kinds = k;
    const p = new Uint8Array(cap);
    p.set(this.payers);
    this.payers = p;
    for (const c of [this.quantity, this.unitPrice, this.amount, this.seasonAmount]) c.grow(cap);
    this.cap = cap;
  }

  /**
   * Refuses row `row` (a RuleError, or a `rule-error` variant).
   * @param {number} row @param {RuleError | {tag: string, val: string}} error
   */
  error(row, error) {
    this.errors.push({ row, error: error instanceof RuleError ? error.toWit() : error });
  }

  /** A season plugin's position for row `row` (rows before the first one given are outside). */
  setSeason(row, s) {
    if (this.season === undefined) {
      this.season = {
        phase: new Uint8Array(this.len),
        dayIndex: new Uint32Array(this.len),
        seasonDays: new Uint32Array(this.len),
        charged: new Uint8Array(this.len),
      };
    }
    this.season.phase[row] = PHASE_CODE[s.phase] ?? 0;
    this.season.dayIndex[row] = s.dayIndex;
    this.season.seasonDays[row] = s.seasonDays;
    this.season.charged[row] = s.charged ? 1 : 0;
  }

  /**
   * Adds what the row method returned for row `row`: an array of lines, or `{lines, season}`.
   * A value the contract cannot carry fails the row alone.
   */
  push(row, result) {
    const lines = Array.isArray(result) ? result : result.lines ?? [];
    if (!Array.isArray(result) && result.season !== undefined) this.setSeason(row, result.season);
    const start = this.n;
    try {
      for (const l of lines) {
        const j = this.add(row, l.spec, PAYER_CODE[l.payer]);
        this.quantity.setDecimal(j, l.quantity, 'quantity');
        this.unitPrice.setDecimal(j, l.unitPrice, 'unit price');
        this.amount.setDecimal(j, l.amount, 'amount');
        if (l.seasonAmount !== undefined) this.seasonAmount.setDecimal(j, l.seasonAmount, 'season amount');
      }
    } catch (e) {
      if (!(e instanceof RuleError)) throw e;
      // Take back the row's lines (and the season amounts already written).
      for (let j = start; j < this.n; j++) this.seasonAmount.setNum(j, 0, 0);
      this.n = start;
      this.error(row, e);
    }
  }

  /**
   * Row `row` by the row method, as the adapter bills a plugin without a columnar path: the
   * lines `evaluate(view)` returns are added, or its refusal (a RuleError) is recorded; any
   * other exception is a bug and propagates. The slow path of an `evaluateColumns` (a value
   * beyond exact numbers, a refusal): call it after {@link commit}, and read `n` (and the
   * arrays, which a growth replaces) again afterwards.
   * @param {number} row @param {(view: any) => any} evaluate @param {any} view the row's view
   */
  evaluateRow(row, evaluate, view) {
    let result;
    try {
      result = evaluate(view);
    } catch (e) {
      if (!(e instanceof RuleError)) throw e;
      this.error(row, e);
      return;
    }
    this.push(row, result);
  }

  /** The `batch-output`. */
  finish() {
    const n = this.n;
    return {
      lines: {
        rows: this.rows.slice(0, n),
        kinds: this.kinds.slice(0, n),
        payers: this.payers.slice(0, n),
        quantity: this.quantity.finish(n),
        unitPrice: this.unitPrice.finish(n),
        amount: this.amount.finish(n),
        seasonAmount: this.seasonAmount.finish(n),
      },
      errors: this.errors,
      season: this.season,
    };
  }
}

/** The contract's `line` record of a {@link import('./day.js').Line}. */
export function lineToWit(l) {
  return {
    spec: l.spec,
    quantity: l.quantity.toWit('quantity'),
    unitPrice: l.unitPrice.toWit('unit price'),
    amount: l.amount.toWit('amount'),
    payer: l.payer,
    seasonAmount: l.seasonAmount === undefined || l.seasonAmount.isZero() ? undefined : l.seasonAmount.toWit('season amount'),
  };
}


