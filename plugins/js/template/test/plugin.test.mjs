// Native tests: the plugin runs through the SDK's adapter in node, no component needed.
// `node --test test/` (after `npm install`, which links the vendored SDK).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configure, tryConfigure, day, amounts } from '@heatbill/sdk/testing';
import Plugin from '../plugin.js';

test('a heating day bills the daily amount, other days nothing', () => {
  const p = configure(Plugin, { daily_amount: '0.50' });
  assert.deepEqual(amounts(p.evaluate(day('2025-11-15').regular(27, 183).build())), ['0.50']);
  assert.deepEqual(amounts(p.evaluate(day('2025-07-01').build())), []);
});

test('bad parameters are refused with bad-params', () => {
  assert.equal(tryConfigure(Plugin, { daily_amount: '-1' }).err.tag, 'bad-params');
  assert.equal(tryConfigure(Plugin, { daily_amount: 0.5 }).err.tag, 'bad-params');
  assert.equal(tryConfigure(Plugin, {}).err.tag, 'bad-params');
});
