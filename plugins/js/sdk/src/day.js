// Customer-days as plugin code sees them, whichever way the host sent them: one `customer-day`
// record (`evaluate`, a dry run) or one row of a columnar `day-batch` (`evaluate-batch`, the
// nightly run). Both views have the same fields, with exact decimals as `Decimal`s:
//
//   date {year, month, day}, dateDays (days since 1970-01-01), class, specialClass, status,
//   flags {metered, lowIncome}, bits (`day-bits`), buildingArea, usableArea?, ceilingHeight?,
//   heat?, indoorTemperature?, arrears, arrearsSince?, arrearsSinceDays?, season?
//   {phase, dayIndex, seasonDays, charged}, tags, attributes [{key, value}], priorLines
//   [{code, entry, category, quantity, unitPrice, amount, payer, seasonAmount?}].
//
// A batch row is a view over the columns, moved from row to row (`at(i)`): a field costs
// something only when the plugin reads it, and each decimal read converts an s64 (a BigInt in
// JS). Rules that run for every customer should use the columnar path instead (see columns.js).

import { Decimal } from './decimal.js';
import { bitsOf, HAS_USABLE_AREA, HAS_CEILING_HEIGHT, HAS_HEAT, HAS_INDOOR_TEMPERATURE, HAS_ARREARS_SINCE, HAS_SEASON, SEASON_CHARGED, NON_RESIDENTIAL, SUSPENDED, METERED, LOW_INCOME } from './bits.js';
import { toDays, fromDays } from './date.js';

/** WIT enum case names by case index (the batch carries enums as indices). */
export const PAYERS = ['customer', 'government', 'employer'];
export const PHASES = ['outside', 'regular', 'early', 'extended'];
export const CATEGORY_NAMES = ['heating', 'consumption', 'base-fee', 'subsidy', 'refund', 'late-fee', 'other'];

const dec = (w) => (w === undefined ? undefined : new Decimal(w.units, w.scale));

/**
 * @typedef {object} PriorLine
 * @property {string} code
 * @property {number} entry
 * @property {string} category
 * @property {Decimal} quantity
 * @property {Decimal} unitPrice
 * @property {Decimal} amount
 * @property {'customer' | 'government' | 'employer'} payer
 * @property {Decimal | undefined} seasonAmount
 */

/** One `customer-day` record, with decimals as `Decimal`s (read once, eagerly). */
export class RecordDay {
  /** @param {any} r the WIT `customer-day` record */
  constructor(r) {
    this.date = r.date;
    this.dateDays = toDays(r.date);
    this.class = r.class;
    this.specialClass = r.specialClass;
    this.status = r.status;
    this.flags = r.flags;
    this.bits = bitsOf(r);
    this.buildingArea = dec(r.buildingArea);
    this.usableArea = dec(r.usableArea);
    this.ceilingHeight = dec(r.ceilingHeight);
    this.heat = dec(r.heat);
    this.indoorTemperature = dec(r.indoorTemperature);
    this.arrears = dec(r.arrears);
    this.arrearsSince = r.arrearsSince;
    this.arrearsSinceDays = r.arrearsSince === undefined ? undefined : toDays(r.arrearsSince);
    this.season = r.season;
    this.tags = r.tags;
    this.attributes = r.attributes;
    /** @type {PriorLine[]} */
    this.priorLines = r.priorLines.map((l) => ({
      code: l.code,
      entry: l.entry,
      category: l.category,
      quantity: dec(l.quantity),
      unitPrice: dec(l.unitPrice),
      amount: dec(l.amount),
      payer: l.payer,
      seasonAmount: l.seasonAmount === undefined || l.seasonAmount.units === 0n ? undefined : dec(l.seasonAmount),
    }));
  }
}

/** Offsets of each row's entries in a column listed in row order (`rows[j]` ascending). */
function rowStarts(rows, len, rowOf) {
  const starts = new Uint32Array(len + 1);
  for (let j = 0; j < rows.length; j++) starts[rowOf(rows[j]) + 1]++;
  for (let r = 0; r < len; r++) starts[r + 1] += starts[r];
  return starts;
}

const decimalAt = (col, i) => new Decimal(col.units[i], col.scales[i]);

/** A row of a `day-batch`, as a view over its columns; `at(i)` moves it. */
export class BatchRow {
  /** @param {any} batch the WIT `day-batch` */
  constructor(batch) {
    this.batch = batch;
    this.i = 0;
    this._tags = undefined;
    this._attrs = undefined;
    this._lines = undefined;
  }

  /** Moves the view to row `i`. */
  at(i) {
    this.i = i;
    return this;
  }

  get bits() {
    return this.batch.bits[this.i];
  }
  get dateDays() {
    return this.batch.dates[this.i];
  }
  get date() {
    return fromDays(this.batch.dates[this.i]);
  }
  get class() {
    return this.bits & NON_RESIDENTIAL ? 'non-residential' : 'residential';
  }
  get specialClass() {
    const s = this.batch.specialClass[this.i];
    return s === 0 ? undefined : this.batch.texts[s - 1];
  }
  get status() {
    return this.bits & SUSPENDED ? 'suspended' : 'active';
  }
  get flags() {
    const b = this.bits;
    return { metered: (b & METERED) !== 0, lowIncome: (b & LOW_INCOME) !== 0 };
  }
  get buildingArea() {
    return decimalAt(this.batch.buildingArea, this.i);
  }
  get usableArea() {
    return this.bits & HAS_USABLE_AREA ? decimalAt(this.batch.usableArea, this.i) : undefined;
  }
  get ceilingHeight() {
    return this.bits & HAS_CEILING_HEIGHT ? decimalAt(this.batch.ceilingHeight, this.i) : undefined;
  }
  get heat() {
    return this.bits & HAS_HEAT ? decimalAt(this.batch.heat, this.i) : undefined;
  }
  get indoorTemperature() {
    return this.bits & HAS_INDOOR_TEMPERATURE ? decimalAt(this.batch.indoorTemperature, this.i) : undefined;
  }
  get arrears() {
    return decimalAt(this.batch.arrears, this.i);
  }
  get arrearsSinceDays() {
    return this.bits & HAS_ARREARS_SINCE ? this.batch.arrearsSince[this.i] : undefined;
  }
  get arrearsSince() {
    return this.bits & HAS_ARREARS_SINCE ? fromDays(this.batch.arrearsSince[this.i]) : undefined;
  }
  get season() {
    const b = this.bits;
    if (!(b & HAS_SEASON)) return undefined;
    const { seasonPhase, seasonDayIndex, seasonDays } = this.batch;
    return {
      phase: PHASES[seasonPhase[this.i]] ?? 'outside',
      dayIndex: seasonDayIndex[this.i],
      seasonDays: seasonDays[this.i],
      charged: (b & SEASON_CHARGED) !== 0,
    };
  }
  /** @returns {string[]} */
  get tags() {
    const { tags, texts, len } = this.batch;
    if (tags.length === 0) return [];
    this._tags ??= rowStarts(tags, len, (t) => t[0]);
    const out = [];
    for (let j = this._tags[this.i]; j < this._tags[this.i + 1]; j++) out.push(texts[tags[j][1]]);
    return out;
  }
  /** @returns {{key: string, value: string}[]} */
  get attributes() {
    const { attributes, texts, len } = this.batch;
    if (attributes.length === 0) return [];
    this._attrs ??= rowStarts(attributes, len, (a) => a[0]);
    const out = [];
    for (let j = this._attrs[this.i]; j < this._attrs[this.i + 1]; j++) {
      out.push({ key: texts[attributes[j][1]], value: texts[attributes[j][2]] });
    }
    return out;
  }
  /** @returns {PriorLine[]} */
  get priorLines() {
    const p = this.batch.priorLines;
    if (p.rows.length === 0) return [];
    this._lines ??= rowStarts(p.rows, this.batch.len, (r) => r);
    const kinds = this.batch.priorKinds;
    const out = [];
    for (let j = this._lines[this.i]; j < this._lines[this.i + 1]; j++) {
      const kind = kinds[p.kinds[j]];
      out.push({
        code: kind.code,
        entry: kind.entry,
        category: kind.category,
        quantity: decimalAt(p.quantity, j),
        unitPrice: decimalAt(p.unitPrice, j),
        amount: decimalAt(p.amount, j),
        payer: PAYERS[p.payers[j]] ?? 'customer',
        seasonAmount: p.seasonAmount.units[j] === 0n ? undefined : decimalAt(p.seasonAmount, j),
      });
    }
    return out;
  }
}

/**
 * One line a plugin adds (`line` in the contract), with `Decimal` values; the adapter converts.
 * @typedef {object} Line
 * @property {number} spec the index of its kind ({@link LineKinds.add})
 * @property {Decimal} quantity
 * @property {Decimal} unitPrice
 * @property {Decimal} amount whole fen (round with `roundFen`)
 * @property {'customer' | 'government' | 'employer'} payer
 * @property {Decimal | undefined} seasonAmount
 */

/**
 * A line of kind `kind`.
 * @param {number} kind
 * @param {Decimal} quantity
 * @param {Decimal} unitPrice
 * @param {Decimal} amount
 * @param {'customer' | 'government' | 'employer'} [payer]
 * @param {Decimal} [seasonAmount] when the line is one day's part of a season fee
 * @returns {Line}
 */
export function line(kind, quantity, unitPrice, amount, payer = 'customer', seasonAmount = undefined) {
  return { spec: kind, quantity, unitPrice, amount, payer, seasonAmount };
}

/** No lines: what `evaluate` returns when the rule does not apply (shared, never mutate). */
export const NO_LINES = Object.freeze([]);

/**
 * The kinds of line a plugin announces in `configure`, in order; `add` gives each its index,
 * which its lines name.
 */
export class LineKinds {
  constructor() {
    /** @type {{code: string, description: string, unit: string, category: string}[]} */
    this.specs = [];
  }
  /**
   * Announces a kind of line.
   * @param {{code: string, description: string, unit: string, category: 'heating' | 'consumption' | 'base-fee' | 'subsidy' | 'refund' | 'late-fee' | 'other'}} spec
   * @returns {number}
   */
  add(spec) {
    this.specs.push({ code: spec.code, description: spec.description, unit: spec.unit, category: spec.category });
    return this.specs.length - 1;
  }
}
