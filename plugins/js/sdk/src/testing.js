// Native tests of plugins (node --test), without building a component: build customer-days,
// encode them as the host's columnar batch, and run a plugin class through the same adapter the
// component exports.
//
//   import { configure, day } from '@heatbill/sdk/testing';
//   const fee = configure(LateFee, { daily_rate: '0.001', due_date: '2026-01-01' });
//   fee.evaluate(day('2026-01-01').arrears('1149.60', '2026-01-01').build())  // → {lines, season}
//   fee.evaluateBatch(toBatch([...]))                                        // → batch-output

import { exportRules } from './adapter.js';
import { parseDate, toDays } from './date.js';
import { Decimal } from './decimal.js';
import { bitsOf } from './bits.js';
import { PAYERS, PHASES, CATEGORY_NAMES } from './day.js';

const wit = (s) => Decimal.of(s).toWit();

/**
 * A configured instance of a plugin class, with the component's exports (describe, configure
 * already done, evaluate and evaluateBatch on WIT values). A refusal throws `{payload}` as the
 * component would return it: use {@link tryConfigure} / {@link result} to see it.
 * @param {any} Plugin
 * @param {object | string} params
 */
export function configure(Plugin, params = {}) {
  const rules = exportRules(Plugin, { name: 'test', version: '0.0.0', kind: 'fee', description: 'test' });
  rules.configuration = rules.configure(typeof params === 'string' ? params : JSON.stringify(params));
  return rules;
}

/** `{ok}` or `{err: {tag, val}}` of a call that may return a rule error. */
export function result(f) {
  try {
    return { ok: f() };
  } catch (e) {
    if (e && e.payload) return { err: e.payload };
    throw e;
  }
}

/** {@link configure}, as `{ok}` or `{err}`. */
export function tryConfigure(Plugin, params) {
  return result(() => configure(Plugin, params));
}

/** The amounts of an `evaluate` result's lines, as strings ("1.15"). */
export function amounts(out) {
  return out.lines.map((l) => new Decimal(l.amount.units, l.amount.scale).toString());
}

/** A builder of a WIT `customer-day` record for `date` ("YYYY-MM-DD"); every other field defaults. */
export function day(date) {
  const r = {
    date: parseDate(date),
    class: 'residential',
    specialClass: undefined,
    status: 'active',
    flags: { metered: false, lowIncome: false },
    buildingArea: wit('0'),
    usableArea: undefined,
    ceilingHeight: undefined,
    heat: undefined,
    indoorTemperature: undefined,
    arrears: wit('0'),
    arrearsSince: undefined,
    season: undefined,
    tags: [],
    attributes: [],
    priorLines: [],
  };
  const b = {
    nonResidential: () => ((r.class = 'non-residential'), b),
    specialClass: (s) => ((r.specialClass = s), b),
    suspended: () => ((r.status = 'suspended'), b),
    metered: () => ((r.flags = { ...r.flags, metered: true }), b),
    lowIncome: () => ((r.flags = { ...r.flags, lowIncome: true }), b),
    buildingArea: (a) => ((r.buildingArea = wit(a)), b),
    usableArea: (a) => ((r.usableArea = wit(a)), b),
    ceilingHeight: (h) => ((r.ceilingHeight = wit(h)), b),
    heat: (h) => ((r.heat = wit(h)), b),
    indoorTemperature: (t) => ((r.indoorTemperature = wit(t)), b),
    arrears: (a, since) => ((r.arrears = wit(a)), (r.arrearsSince = since ? parseDate(since) : undefined), b),
    tag: (t) => (r.tags.push(t), b),
    attribute: (key, value) => (r.attributes.push({ key, value }), b),
    regular: (k, n) => ((r.season = { phase: 'regular', dayIndex: k, seasonDays: n, charged: false }), b),
    early: (n, charged) => ((r.season = { phase: 'early', dayIndex: 1, seasonDays: n, charged }), b),
    extended: (n, charged) => ((r.season = { phase: 'extended', dayIndex: n, seasonDays: n, charged }), b),
    outside: (n) => ((r.season = { phase: 'outside', dayIndex: 0, seasonDays: n, charged: false }), b),
    /** A prior line: category, amount, payer, and optionally {code, entry, quantity, unitPrice, seasonAmount}. */
    prior: (category, amount, payer = 'customer', more = {}) => {
      r.priorLines.push({
        code: more.code ?? category,
        entry: more.entry ?? 0,
        category,
        quantity: wit(more.quantity ?? '1'),
        unitPrice: wit(more.unitPrice ?? amount),
        amount: wit(amount),
        payer,
        seasonAmount: more.seasonAmount === undefined ? undefined : wit(more.seasonAmount),
      });
      return b;
    },
    build: () => r,
  };
  return b;
}

/** Encodes WIT `customer-day` records as the host's columnar `day-batch`. */
export function toBatch(days) {
  const n = days.length;
  const texts = [];
  const textIndex = new Map();
  const text = (s) => {
    if (!textIndex.has(s)) {
      textIndex.set(s, texts.length);
      texts.push(s);
    }
    return textIndex.get(s);
  };
  const col = (get) => {
    const units = new BigInt64Array(n);
    const scales = new Uint8Array(n);
    days.forEach((d, i) => {
      const v = get(d);
      if (v !== undefined) {
        units[i] = v.units;
        scales[i] = v.scale;
      }
    });
    return { units, scales };
  };
  const kinds = [];
  const kindIndex = new Map();
  const lines = [];
  days.forEach((d, row) => {
    for (const l of d.priorLines) {
      const key = `${l.entry}\u0000${l.code}\u0000${l.category}`;
      if (!kindIndex.has(key)) {
        kindIndex.set(key, kinds.length);
        kinds.push({ code: l.code, entry: l.entry, category: l.category });
      }
      lines.push({ row, kind: kindIndex.get(key), l });
    }
  });
  const lineCol = (get) => {
    const units = new BigInt64Array(lines.length);
    const scales = new Uint8Array(lines.length);
    lines.forEach((x, j) => {
      const v = get(x.l);
      if (v !== undefined) {
        units[j] = v.units;
        scales[j] = v.scale;
      }
    });
    return { units, scales };
  };
  return {
    len: n,
    dates: Int32Array.from(days, (d) => toDays(d.date)),
    bits: Uint32Array.from(days, bitsOf),
    specialClass: Uint32Array.from(days, (d) => (d.specialClass === undefined ? 0 : text(d.specialClass) + 1)),
    buildingArea: col((d) => d.buildingArea),
    usableArea: col((d) => d.usableArea),
    ceilingHeight: col((d) => d.ceilingHeight),
    heat: col((d) => d.heat),
    indoorTemperature: col((d) => d.indoorTemperature),
    arrears: col((d) => d.arrears),
    arrearsSince: Int32Array.from(days, (d) => (d.arrearsSince ? toDays(d.arrearsSince) : 0)),
    seasonPhase: Uint8Array.from(days, (d) => (d.season ? PHASES.indexOf(d.season.phase) : 0)),
    seasonDayIndex: Uint32Array.from(days, (d) => d.season?.dayIndex ?? 0),
    seasonDays: Uint32Array.from(days, (d) => d.season?.seasonDays ?? 0),
    texts,
    tags: days.flatMap((d, row) => d.tags.map((t) => [row, text(t)])),
    attributes: days.flatMap((d, row) => d.attributes.map((a) => [row, text(a.key), text(a.value)])),
    priorLines: {
      rows: Uint32Array.from(lines, (x) => x.row),
      kinds: Uint16Array.from(lines, (x) => x.kind),
      payers: Uint8Array.from(lines, (x) => PAYERS.indexOf(x.l.payer)),
      quantity: lineCol((l) => l.quantity),
      unitPrice: lineCol((l) => l.unitPrice),
      amount: lineCol((l) => l.amount),
      seasonAmount: lineCol((l) => l.seasonAmount),
    },
    priorKinds: kinds,
  };
}

/** A `batch-output` as one `{lines}` or `{error}` per row (lines as WIT `line` records). */
export function fromBatchOutput(out, len) {
  const rows = Array.from({ length: len }, () => ({ lines: [] }));
  const l = out.lines;
  const d = (c, j) => ({ units: c.units[j], scale: c.scales[j] });
  for (let j = 0; j < l.rows.length; j++) {
    rows[l.rows[j]].lines.push({
      spec: l.kinds[j],
      quantity: d(l.quantity, j),
      unitPrice: d(l.unitPrice, j),
      amount: d(l.amount, j),
      payer: PAYERS[l.payers[j]],
      seasonAmount: l.seasonAmount.units[j] === 0n ? undefined : d(l.seasonAmount, j),
    });
  }
  for (const e of out.errors) rows[e.row] = { error: e.error };
  return rows;
}

export { CATEGORY_NAMES };
