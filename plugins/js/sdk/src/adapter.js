// The component's exports: the WIT `rules` interface (describe, configure, evaluate,
// evaluateBatch) implemented for a plugin class. build.mjs generates the entry module:
//
//   import Plugin from './plugin.js';
//   import { exportRules } from '@heatbill/sdk/adapter';
//   export const rules = exportRules(Plugin, { name, version, kind, description });
//
// A plugin class has `static params` (a `params.object`), `static configure(params, kinds)`
// returning the configured plugin, and on that: `evaluate(day)` (required), `appliesTo` (a
// DayFilter, default every customer-day) and optionally `evaluateColumns(batch, out)`.
//
// Errors: a RuleError becomes the WIT `rule-error` (of the call, or of the row in a batch). Any
// other exception is a bug: its message and stack go to stderr (the host keeps the plugin's
// stderr in its log) and it is rethrown, which traps the instance, as a Rust panic does.

import { RuleError, BadParams, Unsupported } from './errors.js';
import { DayFilter } from './bits.js';
import { RecordDay, BatchRow, LineKinds } from './day.js';
import { BatchWriter, lineToWit } from './columns.js';

const KINDS = ['season', 'tariff', 'subsidy', 'fee'];

function notConfigured() {
  return new Unsupported('the plugin is not configured: the host must call `configure` before `evaluate`');
}

/**
 * The `rules` export for a plugin class.
 * @param {any} Plugin the plugin class (or object) with `params` and `configure`
 * @param {{name: string, version: string, kind: 'season' | 'tariff' | 'subsidy' | 'fee', description: string}} meta
 */
export function exportRules(Plugin, meta) {
  if (!KINDS.includes(meta.kind)) {
    throw new Error(`heatbill: kind ${JSON.stringify(meta.kind)} is not one of ${KINDS.join(', ')}`);
  }
  if (typeof Plugin?.configure !== 'function') {
    throw new Error('heatbill: the plugin module must export by default a class with `static configure(params, kinds)`');
  }
  let plugin;
  let info;

  /** Runs `f`; a RuleError is thrown as the WIT error payload, anything else is a bug. */
  function call(what, f) {
    try {
      return f();
    } catch (e) {
      if (e instanceof RuleError) throw { payload: e.toWit() };
      bug(what, e);
    }
  }

  function bug(what, e) {
    const message = e instanceof Error ? `${e.name}: ${e.message}` : `thrown value ${String(e)}`;
    console.error(`${meta.name} ${meta.version}: ${what}: uncaught ${message}\n${e?.stack ?? ''}`);
    throw e;
  }

  return {
    describe() {
      info ??= call('describe', () => ({
        name: meta.name,
        version: meta.version,
        kind: meta.kind,
        description: meta.description,
        paramsSchema: Plugin.params ? Plugin.params.schemaText() : '{"type":"object","additionalProperties":false}',
      }));
      return info;
    },

    configure(json) {
      return call('configure', () => {
        if (plugin !== undefined) {
          throw new BadParams('this instance is already configured: instantiate the plugin again to configure it differently');
        }
        const p = Plugin.params ? Plugin.params.parseJson(json) : {};
        const kinds = new LineKinds();
        const configured = Plugin.configure(p, kinds);
        if (configured === undefined || typeof configured.evaluate !== 'function') {
          throw new Error('configure must return the configured plugin, with an `evaluate(day)` method');
        }
        const filter = configured.appliesTo ?? DayFilter.ALL;
        plugin = configured;
        return { lines: kinds.specs, appliesTo: { allOf: filter.allOf >>> 0, noneOf: filter.noneOf >>> 0 } };
      });
    },

    evaluate(record) {
      return call('evaluate', () => {
        if (plugin === undefined) throw notConfigured();
        const out = plugin.evaluate(new RecordDay(record));
        const lines = Array.isArray(out) ? out : out?.lines ?? [];
        return { lines: lines.map(lineToWit), season: Array.isArray(out) ? undefined : out?.season };
      });
    },

    evaluateBatch(batch) {
      const len = batch.len;
      const out = new BatchWriter(len);
      if (plugin === undefined) {
        const e = notConfigured();
        for (let i = 0; i < len; i++) out.error(i, e);
        return out.finish();
      }
      if (typeof plugin.evaluateColumns === 'function') {
        try {
          plugin.evaluateColumns(batch, out);
          return out.finish();
        } catch (e) {
          if (!(e instanceof RuleError)) bug('evaluateColumns', e);
          // A refusal of the whole batch: every row gets it.
          const failed = new BatchWriter(len);
          for (let i = 0; i < len; i++) failed.error(i, e);
          return failed.finish();
        }
      }
      const row = new BatchRow(batch);
      for (let i = 0; i < len; i++) {
        let result;
        try {
          result = plugin.evaluate(row.at(i));
        } catch (e) {
          if (!(e instanceof RuleError)) bug('evaluate', e);
          out.error(i, e);
          continue;
        }
        out.push(i, result);
      }
      return out.finish();
    },
  };
}
