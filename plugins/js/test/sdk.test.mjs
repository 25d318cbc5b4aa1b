// The SDK's and the JS reference plugins' native tests: `node --test test/` in plugins/js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Decimal, cumulativeShare, dailyRate, params, RecordDay, BatchRow, BatchWriter, DecimalColumnReader, roundPow10, divRound, toDays, fromDays, Unsupported } from '@heatbill/sdk';
import { exportRules } from '@heatbill/sdk/adapter';
import { configure, tryConfigure, day, amounts, toBatch, fromBatchOutput } from '@heatbill/sdk/testing';
import LateFee from '../late-fee/plugin.js';
import LowIncomeSubsidy from '../low-income-subsidy/plugin.js';

const d = (s) => Decimal.of(s);
const str = (w) => new Decimal(w.units, w.scale).toString();

test('decimals round half away from zero, on both signs', () => {
  assert.equal(d('3.768').roundFen().toString(), '3.77');
  assert.equal(d('1.005').roundFen().toString(), '1.01');
  assert.equal(d('-1.005').roundFen().toString(), '-1.01');
  assert.equal(d('-0.125').roundFen().toString(), '-0.13');
  assert.equal(d('1.0049').roundFen().toString(), '1.00');
  assert.equal(d('-1.0049').roundFen().toString(), '-1.00');
  assert.equal(d('1.1496').roundFen().toString(), '1.15');
  assert.equal(d('12.5').roundFen().toString(), '12.5'); // never adds decimals
  assert.equal(d('-0.125').toFen(), -13n);
  assert.equal(d('1149.60').mul(d('0.001')).roundFen().toString(), '1.15');
});

test('decimals: parsing, comparison, division and the contract record', () => {
  assert.equal(Decimal.parse('38.32').units, 3832n);
  assert.equal(Decimal.parse('-0.001').toString(), '-0.001');
  for (const bad of ['1e3', '.5', '1.', '', '0x10', '1,5']) assert.equal(Decimal.parse(bad), undefined, bad);
  assert.ok(d('1.5').eq(d('1.50')) && d('-2').lt(d('1')) && d('0.10').gt(d('0.09')));
  assert.equal(d('1').div(d('3'), 4).toString(), '0.3333');
  assert.equal(d('2').div(d('3'), 2).toString(), '0.67');
  assert.equal(d('-2').div(d('3'), 2).toString(), '-0.67');
  assert.equal(d('45').div(d('60')).normalize().toString(), '0.75');
  assert.deepEqual(d('38.32').toWit(), { units: 3832n, scale: 2 });
  // More than 18 decimals: the same number at 18 (exact when the digits past 18 are zeros), else rounded.
  const w = new Decimal(5n * 10n ** 20n, 22).toWit();
  assert.ok(w.scale <= 18 && Decimal.fromWit(w).eq(d('0.05')));
  assert.deepEqual(new Decimal(15n, 19).toWit(), { units: 2n, scale: 18 });
  assert.deepEqual(new Decimal(-15n, 19).toWit(), { units: -2n, scale: 18 });
  assert.equal(d('1').div(d('3')).toWit().scale, 18);
  assert.throws(() => new Decimal(1n << 64n, 0).toWit('amount'), (e) => e.kind === 'invalid-input');
  for (const [a, e] of [[12345, 2], [-12345, 2], [5, 1], [-5, 1], [2 ** 52 + 7, 3], [-(2 ** 52) - 5, 1], [149, 2], [150, 2], [-150, 2]]) {
    assert.equal(roundPow10(a, e), Number(divRound(BigInt(a), 10n ** BigInt(e))), `${a} / 10^${e}`);
  }
});

test('the season spread adds up exactly (W1: 2299.20 over 183 days)', () => {
  const t = d('2299.20');
  const days = Array.from({ length: 183 }, (_, k) => cumulativeShare(t, k + 1, 183));
  assert.deepEqual(days.slice(0, 3).map(String), ['12.56', '12.57', '12.56']);
  assert.equal(days.reduce((a, b) => a.add(b)).toString(), '2299.20');
  assert.equal(dailyRate(d('-0.05'), 2).toString(), '-0.03');
});

test('dates: day numbers both ways', () => {
  assert.equal(toDays({ year: 1970, month: 1, day: 1 }), 0);
  assert.equal(toDays({ year: 2026, month: 1, day: 1 }), 20454);
  for (const n of [-1000, 0, 59, 20381, 20454, 50000]) assert.equal(toDays(fromDays(n)), n);
});

test('the JSON Schema is derived from the params declaration, as the Rust plugin has it', () => {
  const s = JSON.parse(LateFee.params.schemaText());
  assert.equal(s.$schema, 'https://json-schema.org/draft/2020-12/schema');
  assert.equal(s.type, 'object');
  assert.equal(s.additionalProperties, false);
  assert.deepEqual(s.required, ['daily_rate', 'due_date']);
  assert.deepEqual(s.properties.daily_rate.type, 'string');
  assert.equal(s.properties.daily_rate.format, 'decimal');
  assert.equal(s.properties.due_date.format, 'date');
  assert.deepEqual(s.properties.max_daily_rate.type, ['string', 'null']);
  assert.equal(s.properties.code.default, 'late-fee');
  const l = JSON.parse(LowIncomeSubsidy.params.schemaText());
  assert.equal(l.required, undefined);
  assert.deepEqual(l.properties.categories.type, ['array', 'null']);
  assert.equal(l.properties.categories.uniqueItems, true);
  assert.deepEqual(l.properties.area_basis.enum, ['building', 'usable']);
  assert.equal(params.none().schemaText(), '{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","additionalProperties":false,"properties":{}}');
});

test('parameters parse to typed values, and refusals name the key', () => {
  const p = LateFee.params.parseJson('{"daily_rate": "0.001", "due_date": "2026-01-01"}');
  assert.ok(p.daily_rate instanceof Decimal && p.daily_rate.toString() === '0.001');
  assert.deepEqual(p.due_date, { year: 2026, month: 1, day: 1 });
  assert.equal(p.max_daily_rate, undefined);
  assert.equal(p.code, 'late-fee');
  const l = LowIncomeSubsidy.params.parseJson('{"categories": ["heating", "consumption"]}');
  assert.deepEqual([...l.categories], ['heating', 'consumption']);
  assert.equal(l.area_basis, 'building');
  const err = (json) => {
    try {
      LateFee.params.parseJson(json);
    } catch (e) {
      assert.equal(e.kind, 'bad-params');
      return e.message;
    }
    assert.fail(`accepted ${json}`);
  };
  assert.match(err('{"daily_rate": 0.001, "due_date": "2026-01-01"}'), /^`daily_rate`: .*JSON string/);
  assert.match(err('{"daily_rate": "0.001"}'), /missing field `due_date`/);
  assert.match(err('{"daily_rate": "0.001", "due_date": "2026-02-30"}'), /^`due_date`:/);
  assert.match(err('{"daily_rate": "0.001", "due_date": "2026-01-01", "x": 1}'), /unknown field `x`/);
  assert.match(err('{"daily_rate": "0.001", "due_date": "2026-01-01", "code": null}'), /^`code`:/);
  assert.match(err('{"daily_rate":'), /not JSON/);
});

test('a batch row reads back the customer-day it was encoded from', () => {
  const days = [
    day('2025-10-20').lowIncome().usableArea('60.00').buildingArea('75.5').regular(1, 183).tag('district:nangang').build(),
    day('2026-01-01').nonResidential().specialClass('garage').suspended().metered().heat('1.20').indoorTemperature('-17.5')
      .ceilingHeight('3.81').arrears('1149.60', '2025-12-01').early(183, true).attribute('building', '7')
      .prior('heating', '12.56', 'customer', { code: 'heat', entry: 1, quantity: '60', unitPrice: '38.32', seasonAmount: '2299.20' })
      .prior('late-fee', '1.15', 'government').build(),
    day('2026-04-21').build(),
  ];
  const batch = toBatch(days);
  const row = new BatchRow(batch);
  const fields = ['date', 'dateDays', 'class', 'specialClass', 'status', 'flags', 'bits', 'buildingArea', 'usableArea', 'ceilingHeight', 'heat', 'indoorTemperature', 'arrears', 'arrearsSince', 'arrearsSinceDays', 'season', 'tags', 'attributes', 'priorLines'];
  days.forEach((r, i) => {
    const want = new RecordDay(r);
    row.at(i);
    for (const f of fields) assert.deepEqual(row[f], want[f], `row ${i} ${f}`);
  });
  assert.equal(row.at(1).priorLines[0].seasonAmount.toString(), '2299.20');
});

test('the batch writer keeps every value exactly, numbers and BigInts alike', () => {
  const out = new BatchWriter(3);
  out.push(0, [{ spec: 0, quantity: d('60'), unitPrice: d('38.32'), amount: d('12.56'), payer: 'customer', seasonAmount: d('2299.20') }]);
  out.error(1, new Unsupported('no'));
  const j = out.add(2, 1, 1);
  out.quantity.setNum(j, -(2 ** 40) - 3, 0);
  out.unitPrice.setBig(j, -(1n << 62n), 18);
  out.amount.setNum(j, -5, 2);
  const col = { units: BigInt64Array.from([7n, -(2n ** 45n)]), scales: Uint8Array.from([1, 2]) };
  const r = new DecimalColumnReader(col);
  out.seasonAmount.copy(j, r, 1);
  assert.equal(r.num(1), -(2 ** 45));
  assert.ok(Number.isNaN(new DecimalColumnReader({ units: BigInt64Array.from([1n << 60n]), scales: Uint8Array.from([0]) }).num(0)));
  const rows = fromBatchOutput(out.finish(), 3);
  assert.equal(str(rows[0].lines[0].seasonAmount), '2299.20');
  assert.equal(rows[1].error.tag, 'unsupported');
  const l = rows[2].lines[0];
  assert.equal(l.quantity.units, -(2n ** 40n) - 3n);
  assert.equal(l.unitPrice.units, -(1n << 62n));
  assert.equal(str(l.amount), '-0.05');
  assert.equal(str(l.seasonAmount), (-(2 ** 45) / 100).toFixed(2));
  assert.equal(l.payer, 'government');
});

const HARBIN_LATE = { daily_rate: '0.001', due_date: '2026-01-01' };

test('late fee on W6: 1149.60 × 0.001 → 1.15, row and columnar paths alike', () => {
  const f = configure(LateFee, HARBIN_LATE);
  assert.deepEqual(f.configuration.appliesTo, { allOf: 256, noneOf: 0 });
  const w6 = day('2026-01-01').usableArea('60.00').arrears('1149.60', '2026-01-01').build();
  const out = f.evaluate(w6);
  assert.deepEqual(amounts(out), ['1.15']);
  assert.equal(str(out.lines[0].quantity), '1149.60');
  assert.equal(str(out.lines[0].unitPrice), '0.001');
  // January, day by day, through the columnar path: 31 × 1.15 = 35.65.
  const january = Array.from({ length: 31 }, (_, i) => day(`2026-01-${String(i + 1).padStart(2, '0')}`).arrears('1149.60', '2026-01-01').build());
  const rows = fromBatchOutput(f.evaluateBatch(toBatch(january)), 31);
  const sum = rows.flatMap((r) => r.lines).reduce((a, l) => a.add(new Decimal(l.amount.units, l.amount.scale)), Decimal.ZERO);
  assert.equal(sum.toString(), '35.65');
  // No fee before the due date, when not yet overdue, without arrears-since, when paid, or when it rounds to 0.00.
  for (const c of [
    day('2025-12-31').arrears('1149.60', '2025-12-01'),
    day('2026-01-05').arrears('1149.60', '2026-01-06'),
    day('2026-01-05').arrears('1149.60'),
    day('2026-01-05').arrears('0', '2025-12-01'),
    day('2026-01-05').arrears('4.99', '2025-12-01'),
  ]) {
    const r = c.build();
    assert.deepEqual(f.evaluate(r).lines, []);
    assert.deepEqual(fromBatchOutput(f.evaluateBatch(toBatch([r])), 1)[0].lines, []);
  }
});

test('late fee: the columnar path equals the row path, beyond exact numbers too', () => {
  const f = configure(LateFee, { daily_rate: '0.00123456789', due_date: '2025-01-01' });
  const days = ['1149.60', '0.01', '99999999999.99', '92233720368547758.07', '405.0000', '-3', '812.5'].map((a) =>
    day('2026-01-01').arrears(a, '2025-12-01').build());
  const batch = fromBatchOutput(f.evaluateBatch(toBatch(days)), days.length);
  days.forEach((r, i) => assert.deepEqual(batch[i], { lines: f.evaluate(r).lines.map((l) => ({ ...l, payer: 'customer' })) }, `row ${i}`));
});

test('late fee: the legal cap and bad parameters', () => {
  assert.ok(tryConfigure(LateFee, { ...HARBIN_LATE, daily_rate: '0.002', max_daily_rate: '0.002' }).ok);
  const e = tryConfigure(LateFee, { ...HARBIN_LATE, daily_rate: '0.003', max_daily_rate: '0.002' }).err;
  assert.equal(e.tag, 'bad-params');
  assert.match(e.val, /max_daily_rate/);
  for (const p of [{ daily_rate: '-0.001', due_date: '2026-01-01' }, { daily_rate: '0.001' }, { daily_rate: '0.001', due_date: '2026-1-1' }]) {
    assert.equal(tryConfigure(LateFee, p).err.tag, 'bad-params', JSON.stringify(p));
  }
});

const HARBIN_LOW = { share: '1.00', area_cap: '45', area_basis: 'usable' };

test('low-income subsidy on W5: heat 12.56 → −9.42 / +9.42', () => {
  const t = configure(LowIncomeSubsidy, HARBIN_LOW);
  const w5 = day('2025-10-20').lowIncome().usableArea('60.00').regular(1, 183).prior('heating', '12.56').build();
  const out = t.evaluate(w5);
  assert.deepEqual(amounts(out), ['-9.42', '9.42']);
  assert.deepEqual(out.lines.map((l) => l.payer), ['customer', 'government']);
  assert.deepEqual(fromBatchOutput(t.evaluateBatch(toBatch([w5])), 1)[0].lines, out.lines);
  // Not low-income, other payers or categories: nothing; no usable area: missing-input.
  assert.deepEqual(t.evaluate(day('2025-10-20').usableArea('40').prior('heating', '8').build()).lines, []);
  assert.throws(() => t.evaluate(day('2025-10-20').lowIncome().prior('heating', '8').build()), (e) => e.payload.tag === 'missing-input');
});

test('low-income subsidy covers a season fee exactly over the season (1724.40)', () => {
  const t = configure(LowIncomeSubsidy, HARBIN_LOW);
  let total = Decimal.ZERO;
  for (let k = 1; k <= 183; k++) {
    const heat = cumulativeShare(d('2299.20'), k, 183).toString();
    // A 0.1.0 tariff's line: no season amount; the convention finds it.
    const r = day('2025-10-20').lowIncome().usableArea('60.00').regular(k, 183).prior('heating', heat, 'customer', { quantity: '60.00', unitPrice: '38.32' }).build();
    const g = t.evaluate(r).lines[1].amount;
    if (k === 1) assert.equal(str(g), '9.42');
    total = total.add(new Decimal(g.units, g.scale));
  }
  assert.equal(total.toString(), '1724.40');
});

test('low-income subsidy spreads from the season amount (Shenyang: day 2 is 6.95)', () => {
  const t = configure(LowIncomeSubsidy, { share: '1.00', area_cap: '45' });
  const r = day('2025-11-02').lowIncome().buildingArea('80.15').regular(2, 151)
    .prior('heating', cumulativeShare(d('1867.49'), 2, 151).toString(), 'customer', { quantity: '80.15', unitPrice: '23.30', seasonAmount: '1867.49' }).build();
  assert.deepEqual(amounts(t.evaluate(r)), ['-6.95', '6.95']);
});

test('a bug traps (stderr, rethrow); a rule error is data', () => {
  class Buggy {
    static configure() {
      return new Buggy();
    }
    evaluate(day) {
      if (day.dateDays > 0) throw new TypeError('x is undefined');
      throw new Unsupported('not this one');
    }
  }
  const rules = exportRules(Buggy, { name: 'buggy', version: '1.0.0', kind: 'fee', description: 'buggy' });
  assert.throws(() => rules.evaluate(day('2026-01-01').build()), (e) => e.payload?.tag === 'unsupported'); // not configured
  rules.configure('{}');
  assert.throws(() => rules.evaluate(day('1970-01-01').build()), (e) => e.payload?.tag === 'unsupported');
  const logged = [];
  const original = console.error;
  console.error = (m) => logged.push(m);
  try {
    assert.throws(() => rules.evaluate(day('2026-01-01').build()), TypeError);
    assert.throws(() => rules.evaluateBatch(toBatch([day('2026-01-01').build()])), TypeError);
  } finally {
    console.error = original;
  }
  assert.match(logged[0], /buggy 1\.0\.0: evaluate: uncaught TypeError: x is undefined/);
  assert.throws(() => rules.configure('{}'), (e) => e.payload?.tag === 'bad-params'); // configured once per instance
});

// The low-income subsidy's columnar path against its row method: the same batch-output (lines
// with their scales, refusals) as the adapter gives a plugin without `evaluateColumns`, and the
// same lines as the single-day `evaluate`.
const rowsOnly = (Plugin) => ({
  params: Plugin.params,
  configure(p, kinds) {
    const c = Plugin.configure(p, kinds);
    return { appliesTo: c.appliesTo, evaluate: (day) => c.evaluate(day) };
  },
});

function sameAsRows(Plugin, params, days, what) {
  const fast = configure(Plugin, params);
  const slow = configure(rowsOnly(Plugin), params);
  assert.ok(typeof Plugin.configure(Plugin.params.parseJson(JSON.stringify(params)), { add: () => 0 }).evaluateColumns === 'function');
  const batch = toBatch(days);
  const got = fast.evaluateBatch(batch);
  const want = slow.evaluateBatch(batch);
  assert.deepEqual(got, want, `${what}: columnar ≠ rows`);
  // And the single-day entry point, row by row.
  const rows = fromBatchOutput(got, days.length);
  days.forEach((r, i) => {
    let single;
    try {
      single = { lines: fast.evaluate(r).lines };
    } catch (e) {
      if (!e.payload) throw e;
      single = { error: e.payload };
    }
    assert.deepEqual(rows[i], single, `${what}: row ${i}: batch ≠ evaluate`);
  });
  return rows;
}

test('low-income subsidy: the columnar path bills as the row method (named cases)', () => {
  const heat = (k, n, t = '2299.20') => cumulativeShare(d(t), k, n).toString();
  const days = [
    // W5 through a 0.1.0 line (no season amount: the convention's guess) and a 0.2.0 one.
    day('2025-10-20').lowIncome().usableArea('60.00').buildingArea('75.5').regular(1, 183).prior('heating', '12.56', 'customer', { quantity: '60.00', unitPrice: '38.32' }),
    day('2025-10-21').lowIncome().usableArea('60.00').buildingArea('75.5').regular(2, 183).prior('heating', heat(2, 183), 'customer', { quantity: '60.00', unitPrice: '38.32', seasonAmount: '2299.20' }),
    // Not low-income: nothing, whatever else.
    day('2025-10-21').usableArea('60.00').regular(2, 183).prior('heating', heat(2, 183), 'customer', { seasonAmount: '2299.20' }),
    day('2025-10-21').regular(0, 183).prior('heating', '3.00'),
    // Under the cap: the whole fee; a per-day line (no season, or a guess that misses).
    day('2025-10-22').lowIncome().usableArea('40.00').regular(3, 183).prior('heating', heat(3, 183, '1532.80'), 'customer', { quantity: '40.00', unitPrice: '38.32', seasonAmount: '1532.80' }),
    day('2025-10-22').lowIncome().usableArea('60.00').prior('heating', '12.57'),
    day('2025-10-22').lowIncome().usableArea('60.00').regular(5, 183).prior('heating', '12.99', 'customer', { quantity: '60.00', unitPrice: '38.32' }),
    // Shenyang: a government share of the price in the prior lines (not covered again).
    day('2025-11-02').lowIncome().usableArea('60.00').buildingArea('80.15').regular(2, 151)
      .prior('heating', heat(2, 151, '1867.49'), 'customer', { code: 'heat', entry: 1, quantity: '80.15', unitPrice: '23.30', seasonAmount: '1867.49' })
      .prior('heating', heat(2, 151, '216.41'), 'government', { code: 'heat-government', entry: 1, quantity: '80.15', unitPrice: '2.70', seasonAmount: '216.41' }),
    // Early and extended days, charged and free; outside the season.
    day('2025-10-15').lowIncome().usableArea('60.00').early(183, true).prior('heating', heat(1, 1, '12.56'), 'customer', { seasonAmount: '2299.20' }),
    day('2025-10-15').lowIncome().usableArea('60.00').early(183, false).prior('heating', '0.00', 'customer', { seasonAmount: '2299.20' }),
    day('2026-04-25').lowIncome().usableArea('60.00').extended(183, true).prior('heating', '12.56', 'customer', { quantity: '60.00', unitPrice: '38.32' }),
    day('2026-05-01').lowIncome().usableArea('60.00').outside(183).prior('heating', '5.00', 'customer', { seasonAmount: '2299.20' }),
    // Other categories and payers, several lines, a zero and a negative base.
    day('2026-01-01').lowIncome().usableArea('60.00').regular(74, 183).prior('heating', heat(74, 183), 'customer', { seasonAmount: '2299.20' })
      .prior('consumption', '3.21').prior('late-fee', '1.15').prior('heating', '2.00', 'employer'),
    day('2026-01-01').lowIncome().usableArea('60.00').regular(74, 183),
    day('2026-01-01').lowIncome().usableArea('60.00').regular(74, 183).prior('heating', '0.00'),
    // Missing usable area: missing-input; a negative one: invalid-input; an invalid season position.
    day('2025-10-20').lowIncome().buildingArea('60.00').regular(1, 183).prior('heating', '12.56', 'customer', { seasonAmount: '2299.20' }),
    day('2025-10-20').lowIncome().usableArea('-1').regular(1, 183).prior('heating', '12.56'),
    day('2025-10-20').lowIncome().usableArea('60.00').regular(0, 183).prior('heating', '12.56'),
    day('2025-10-20').lowIncome().usableArea('60.00').regular(184, 183),
    day('2025-10-20').lowIncome().usableArea('60.00').early(0, true),
    // Beyond exact numbers: the row method's BigInts.
    day('2026-01-01').lowIncome().usableArea('60.00').prior('heating', '90000000000000000.00'),
    day('2026-01-01').lowIncome().usableArea('92233720368547.75807').regular(3, 183).prior('heating', '12.56', 'customer', { seasonAmount: '2299.20' }),
    day('2026-01-01').lowIncome().usableArea('1234567.891').regular(3, 183).prior('heating', '12.56', 'customer', { seasonAmount: '2299.20' }),
  ].map((b) => b.build());
  const harbin = sameAsRows(LowIncomeSubsidy, HARBIN_LOW, days, 'Harbin');
  assert.deepEqual(harbin[0].lines.map((l) => str(l.amount)), ['-9.42', '9.42']);
  assert.deepEqual(harbin[2].lines, []);
  assert.equal(harbin[15].error.tag, 'missing-input');
  assert.equal(harbin[16].error.tag, 'invalid-input');
  assert.equal(harbin[17].error.tag, 'invalid-input');
  const shenyang = sameAsRows(LowIncomeSubsidy, { share: '1.00', area_cap: '45' }, days, 'Shenyang');
  assert.deepEqual(shenyang[7].lines.map((l) => str(l.amount)), ['-6.95', '6.95']);
  assert.deepEqual(shenyang[15].lines.map((l) => str(l.amount)), ['-9.42', '9.42']); // building area: no refusal
  // A unit price that is exactly half-way at 18 decimals: 1 / 2^19 = 0.0000019073486328125.
  const tie = [day('2026-01-01').lowIncome().buildingArea('524288').prior('heating', '600000.00').build(), day('2026-01-01').lowIncome().buildingArea('1572864').prior('heating', '600000.00').build()];
  const half = sameAsRows(LowIncomeSubsidy, { share: '1', area_cap: '1' }, tie, 'tie');
  assert.equal(str(half[0].lines[0].unitPrice), '0.000001907348632813');
  sameAsRows(LowIncomeSubsidy, { share: '1', area_cap: '3' }, tie, 'tie');
  // A row refused while its lines were being written (a subsidy beyond the contract's s64), then
  // a row of the fast path.
  const refusedThenFast = [
    day('2026-01-01').lowIncome().buildingArea('40').regular(1, 1).prior('heating', '1.000', 'customer', { seasonAmount: '90000000000000000.00' })
      .prior('heating', '1.000', 'customer', { seasonAmount: '90000000000000000.00' }).build(),
    day('2026-01-01').lowIncome().buildingArea('40').regular(1, 183).prior('heating', '12.56', 'customer', { seasonAmount: '2299.20' }).build(),
  ];
  const refused = sameAsRows(LowIncomeSubsidy, { share: '1.00' }, refusedThenFast, 'refused, then fast');
  assert.equal(refused[0].error.tag, 'invalid-input');
  assert.deepEqual(refused[1].lines.map((l) => [str(l.quantity), str(l.amount)]), [['12.56', '-12.56'], ['12.56', '12.56']]);
  for (const p of [{}, { share: '0.75' }, { share: '0.5', area_cap: '45.5', categories: ['heating', 'consumption', 'late-fee'] }, { share: '0', area_cap: '45' }, { share: '1', area_cap: '0.001', area_basis: 'usable' }]) {
    sameAsRows(LowIncomeSubsidy, p, days, JSON.stringify(p));
  }
});

test('low-income subsidy: the columnar path bills as the row method (random days)', () => {
  let seed = 20260101;
  const rnd = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
  const fen = (max) => (Math.floor(rnd() * max) / 100).toFixed(2);
  const shares = [undefined, '1.00', '1', '0.75', '0.5', '0.333', '0', '0.999999999999999999999'];
  const caps = [undefined, '45', '45.5', '60.00', '0.001', '1000000', '45.0000000000000000000', '1', '3'];
  const areas = ['60.00', '80.15', '45', '44.99', '45.00', '123.4567', '0', '0.00', '-5', '75.5', '1234567.891', '92233720368547.75807', '3000000000000.00', '524288', '1572864'];
  const categories = [undefined, ['heating', 'consumption'], ['other', 'refund', 'heating'], ['base-fee']];
  const cats = ['heating', 'heating', 'heating', 'consumption', 'other', 'refund', 'base-fee', 'late-fee'];
  for (let round = 0; round < 40; round++) {
    const p = {};
    const share = pick(shares);
    if (share !== undefined) p.share = share;
    const cap = pick(caps);
    if (cap !== undefined) p.area_cap = cap;
    p.area_basis = pick(['building', 'usable']);
    const c = pick(categories);
    if (c !== undefined) p.categories = c;
    const days = Array.from({ length: 60 }, () => {
      const b = day('2026-01-01');
      if (rnd() < 0.85) b.lowIncome();
      b.buildingArea(pick(areas));
      if (rnd() < 0.85) b.usableArea(pick(areas));
      const n = pick([183, 151, 1, 0, 7]);
      const k = Math.floor(rnd() * (n + 2));
      const s = rnd();
      if (s < 0.6) b.regular(k, n);
      else if (s < 0.7) b.early(n, rnd() < 0.5);
      else if (s < 0.8) b.extended(n, rnd() < 0.5);
      else if (s < 0.9) b.outside(n);
      const lines = Math.floor(rnd() * 4);
      for (let l = 0; l < lines; l++) {
        const payer = rnd() < 0.75 ? 'customer' : pick(['government', 'employer']);
        const category = pick(cats);
        const t = s < 0.6 && n > 0 && k >= 1 && k <= n ? pick(['2299.20', '1867.49', '0.05', '-3.77', fen(1e7)]) : fen(1e6);
        const kind = rnd();
        if (kind < 0.4) {
          // A 0.2.0 line: its season amount.
          const amount = s < 0.6 && n > 0 && k >= 1 && k <= n ? cumulativeShare(d(t), k, n).toString() : fen(5000);
          b.prior(category, amount, payer, { seasonAmount: rnd() < 0.9 ? t : '0', quantity: '60.00', unitPrice: '38.32' });
        } else if (kind < 0.7) {
          // A 0.1.0 line whose amount is (or is not) the day's part of quantity × unit price.
          const q = pick(['60.00', '80.15', '1', '12.345']);
          const up = pick(['38.32', '23.30', '0.5', '26']);
          const total = d(q).mul(d(up)).roundFen();
          const amount = s < 0.6 && n > 0 && k >= 1 && k <= n && rnd() < 0.8 ? cumulativeShare(total, k, n).toString() : fen(3000);
          b.prior(category, amount, payer, { quantity: q, unitPrice: up });
        } else {
          b.prior(category, pick([fen(10000), '-2.50', '3.210', '7', '0.00', '90000000000000000.00', '12.5']), payer);
        }
      }
      return b.build();
    });
    sameAsRows(LowIncomeSubsidy, p, days, `round ${round} ${JSON.stringify(p)}`);
  }
});

test('a map keyed by customer class, and hyphenated keys', () => {
  const p = params.object({
    prices: params.object({
      residential: params.decimal({ description: 'Homes' }),
      'non-residential': params.decimal({ description: 'Businesses' }),
    }),
    surcharge: params.byClass(params.decimal(), { default: {} }),
  });
  const s = JSON.parse(p.schemaText());
  assert.deepEqual(s.properties.prices.required, ['residential', 'non-residential']);
  assert.deepEqual(Object.keys(s.properties.surcharge.properties), ['residential', 'non-residential']);
  assert.equal(s.properties.surcharge.additionalProperties, false);
  assert.equal(s.properties.surcharge.properties['non-residential'].format, 'decimal');
  const v = p.parseJson('{"prices": {"residential": "38.32", "non-residential": "43.3"}, "surcharge": {"non-residential": "0.03"}}');
  assert.equal(v.prices['non-residential'].toString(), '43.3');
  assert.equal(v.surcharge['non-residential'].toString(), '0.03');
  assert.equal(v.surcharge.residential, undefined);
  assert.deepEqual(p.parseJson('{"prices": {"residential": "1", "non-residential": "2"}}').surcharge, {});
  assert.throws(
    () => p.parseJson('{"prices": {"residential": "1", "non-residential": "2"}, "surcharge": {"garage": "1"}}'),
    /`surcharge`: unknown customer class `garage`/,
  );
  assert.throws(
    () => p.parseJson('{"prices": {"residential": "1", "non-residential": "2"}, "surcharge": {"residential": 1}}'),
    /`surcharge.residential`/,
  );
});
