// Parameters: declared once with a small schema builder, from which come both the JSON Schema
// `describe` returns (draft 2020-12; the host validates every chain entry's parameters against
// it before `configure`) and the parsed, typed parameter object `configure` receives.
//
//   static params = params.object({
//     daily_rate: params.decimal({ description: 'The fee per day, e.g. "0.001".' }),
//     due_date: params.date({ description: 'The first day a fee accrues.' }),
//     max_daily_rate: params.decimal({ description: '…', optional: true }),
//     code: params.string({ description: '…', default: 'late-fee' }),
//   }, { description: 'The parameters of `late-fee`.' });
//
// Conventions (the same as the Rust SDK's): decimals are JSON strings ("38.32"; a JSON number is
// refused: it may have gone through a float), dates "YYYY-MM-DD", unknown keys are refused.
// A parameter is required unless it has `optional: true` (absent or null → undefined) or a
// `default` (absent → the default). Errors are `bad-params` naming the key path and the fix.
// The host has already validated the JSON against the schema; the parser still checks, because
// the same code runs in native tests where no host did.

import { Decimal } from './decimal.js';
import { BadParams } from './errors.js';
import { parseDate } from './date.js';

const DECIMAL_PATTERN = '^-?[0-9]+(\\.[0-9]+)?$';

/** The WIT names of the line categories. */
export const CATEGORIES = ['heating', 'consumption', 'base-fee', 'subsidy', 'refund', 'late-fee', 'other'];

function describeValue(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a sequence';
  if (typeof v === 'object') return 'a map';
  if (typeof v === 'number') return Number.isInteger(v) ? `integer \`${v}\`` : `floating point \`${v}\``;
  if (typeof v === 'string') return `string ${JSON.stringify(v)}`;
  return `${typeof v} \`${v}\``;
}

function fail(path, message) {
  return new BadParams(path ? `\`${path}\`: ${message}` : message);
}

/**
 * One parameter: its JSON Schema and its parser.
 * @template T
 */
export class Param {
  /**
   * @param {object} schema the JSON Schema of a present, non-null value
   * @param {(value: unknown, path: string) => T} parse
   * @param {{description?: string, optional?: boolean, default?: unknown, examples?: unknown[]}} [opts]
   */
  constructor(schema, parse, opts = {}) {
    this.base = schema;
    this.parseValue = parse;
    this.description = opts.description;
    this.optional = Boolean(opts.optional);
    this.hasDefault = opts.default !== undefined;
    this.defaultValue = opts.default;
    this.examples = opts.examples;
  }

  /** Whether the key must be given. */
  get required() {
    return !this.optional && !this.hasDefault;
  }

  /** The JSON Schema of this parameter (a plain object). */
  jsonSchema() {
    const s = { ...this.base };
    if (this.description !== undefined) s.description = this.description;
    if (this.examples !== undefined) s.examples = this.examples;
    if (this.optional) {
      s.type = [s.type, 'null'];
      s.default = null;
    } else if (this.hasDefault) {
      s.default = this.defaultValue instanceof Decimal ? this.defaultValue.toString() : this.defaultValue;
    }
    return s;
  }

  /** The typed value of the key at `path`, present or not. */
  parse(value, path) {
    if (value === undefined || (value === null && this.optional)) {
      if (this.optional) return undefined;
      if (this.hasDefault) return this.parseValue(this.defaultValue instanceof Decimal ? this.defaultValue.toString() : this.defaultValue, path);
      throw fail('', `missing field \`${path}\``);
    }
    return this.parseValue(value, path);
  }
}

/**
 * An exact decimal written as a JSON string ("38.32"), parsed to a {@link Decimal}.
 * @param {{description?: string, optional?: boolean, default?: string}} [opts]
 * @returns {Param<Decimal>}
 */
export function decimal(opts) {
  return new Param({ type: 'string', format: 'decimal', pattern: DECIMAL_PATTERN }, (v, path) => {
    const d = typeof v === 'string' ? Decimal.parse(v) : undefined;
    if (d === undefined) {
      throw fail(path, `invalid ${typeof v === 'string' ? 'value' : 'type'}: ${describeValue(v)}, expected a decimal written as a JSON string, e.g. "38.32"`);
    }
    return d;
  }, opts);
}

/**
 * A date "YYYY-MM-DD", parsed to the contract's record {year, month, day}.
 * @param {{description?: string, optional?: boolean, default?: string, examples?: string[]}} [opts]
 * @returns {Param<{year: number, month: number, day: number}>}
 */
export function date(opts) {
  return new Param({ type: 'string', format: 'date' }, (v, path) => {
    const d = typeof v === 'string' ? parseDate(v) : undefined;
    if (d === undefined) {
      throw fail(path, `invalid ${typeof v === 'string' ? 'value' : 'type'}: ${describeValue(v)}, expected a date "YYYY-MM-DD", e.g. "2025-10-20"`);
    }
    return d;
  }, { examples: ['2025-10-20'], ...opts });
}

/**
 * A string, e.g. a line's code or description.
 * @param {{description?: string, optional?: boolean, default?: string}} [opts]
 * @returns {Param<string>}
 */
export function string(opts) {
  return new Param({ type: 'string' }, (v, path) => {
    if (typeof v !== 'string') throw fail(path, `invalid type: ${describeValue(v)}, expected a string`);
    return v;
  }, opts);
}

/**
 * true or false.
 * @param {{description?: string, optional?: boolean, default?: boolean}} [opts]
 * @returns {Param<boolean>}
 */
export function boolean(opts) {
  return new Param({ type: 'boolean' }, (v, path) => {
    if (typeof v !== 'boolean') throw fail(path, `invalid type: ${describeValue(v)}, expected a boolean`);
    return v;
  }, opts);
}

/**
 * One of the given strings (e.g. "building" / "usable").
 * @template {string} S
 * @param {S[]} values
 * @param {{description?: string, optional?: boolean, default?: S}} [opts]
 * @returns {Param<S>}
 */
export function oneOf(values, opts) {
  const expected = values.map((v) => JSON.stringify(v)).join(', ');
  return new Param({ type: 'string', enum: [...values] }, (v, path) => {
    if (typeof v !== 'string') throw fail(path, `invalid type: ${describeValue(v)}, expected one of ${expected}`);
    if (!values.includes(/** @type {S} */ (v))) throw fail(path, `unknown variant ${JSON.stringify(v)}, expected one of ${expected}`);
    return /** @type {S} */ (v);
  }, opts);
}

/**
 * A list of line categories by their WIT names (["heating", "consumption"]), parsed to a Set.
 * @param {{description?: string, optional?: boolean, default?: string[]}} [opts]
 * @returns {Param<Set<string>>}
 */
export function categories(opts) {
  const item = oneOf(CATEGORIES, {
    description: `A line category: ${CATEGORIES.map((c) => JSON.stringify(c)).join(' ')}`,
  });
  return array(item, { uniqueItems: true, ...opts }, (list) => new Set(list));
}

/**
 * A JSON array of `item`s.
 * @template T, R
 * @param {Param<T>} item
 * @param {{description?: string, optional?: boolean, default?: unknown[], uniqueItems?: boolean}} [opts]
 * @param {(list: T[]) => R} [finish] turns the parsed list into the value (default: the list)
 * @returns {Param<R>}
 */
export function array(item, opts = {}, finish = (l) => /** @type {any} */ (l)) {
  const schema = { type: 'array', items: item.jsonSchema() };
  if (opts.uniqueItems) schema.uniqueItems = true;
  return new Param(schema, (v, path) => {
    if (!Array.isArray(v)) throw fail(path, `invalid type: ${describeValue(v)}, expected a sequence`);
    return finish(v.map((x, i) => item.parseValue(x, `${path}[${i}]`)));
  }, opts);
}

/**
 * A JSON object of the given keys, no others; the root of a plugin's parameters, or a nested
 * object. Its value is a plain object with a typed value per key.
 * @template {Record<string, Param<any>>} P
 * @param {P} props
 * @param {{description?: string, optional?: boolean}} [opts]
 * @returns {ObjectParam<P>}
 */
export function object(props, opts) {
  return new ObjectParam(props, opts);
}

/**
 * @template {Record<string, Param<any>>} P
 * @extends {Param<{[K in keyof P]: P[K] extends Param<infer T> ? T : never}>}
 */
export class ObjectParam extends Param {
  /** @param {P} props @param {{description?: string, optional?: boolean}} [opts] */
  constructor(props, opts = {}) {
    const keys = Object.keys(props);
    const schema = { type: 'object', additionalProperties: false, properties: {} };
    for (const k of keys) schema.properties[k] = props[k].jsonSchema();
    const required = keys.filter((k) => props[k].required);
    if (required.length) schema.required = required;
    const expected = keys.map((k) => `\`${k}\``).join(', ');
    super(schema, (v, path) => {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) {
        throw fail(path, `invalid type: ${describeValue(v)}, expected a map`);
      }
      for (const k of Object.keys(v)) {
        if (!Object.hasOwn(props, k)) {
          throw fail(path ? `${path}.${k}` : k, `unknown field \`${k}\`, expected ${keys.length ? `one of ${expected}` : 'no fields'}`);
        }
      }
      const out = {};
      for (const k of keys) out[k] = props[k].parse(v[k], path ? `${path}.${k}` : k);
      return out;
    }, opts);
    this.props = props;
  }

  /**
   * The JSON Schema text of a plugin's root parameter object, as `describe` returns it.
   * @returns {string}
   */
  schemaText() {
    return JSON.stringify({ $schema: 'https://json-schema.org/draft/2020-12/schema', ...this.jsonSchema() });
  }

  /**
   * Parses the parameter JSON `configure` receives (an empty string counts as `{}`).
   * @param {string} json
   */
  parseJson(json) {
    let value;
    try {
      value = json.trim() === '' ? {} : JSON.parse(json);
    } catch (e) {
      throw new BadParams(`the parameters are not JSON: ${e.message}`);
    }
    return this.parse(value, '');
  }
}

/** The customer classes, as parameters name them. */
export const CLASSES = ['residential', 'non-residential'];

/**
 * A map keyed by customer class, `{"residential": …, "non-residential": …}`: each class may be
 * left out (it is then absent from the value), no other key is taken. The schema names both
 * classes, so the API's and the console's forms show a field per class. (A key that is not a
 * JavaScript identifier needs nothing special in `object`: `{'non-residential': decimal()}`.)
 * @template T
 * @param {Param<T>} item
 * @param {{description?: string, optional?: boolean, default?: object}} [opts]
 * @returns {Param<{residential?: T, 'non-residential'?: T}>}
 */
export function byClass(item, opts) {
  const schema = { type: 'object', additionalProperties: false, properties: {} };
  for (const c of CLASSES) schema.properties[c] = item.jsonSchema();
  const expected = CLASSES.map((c) => `\`${c}\``).join(', ');
  return new Param(schema, (v, path) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      throw fail(path, `invalid type: ${describeValue(v)}, expected a map`);
    }
    const out = {};
    for (const [k, x] of Object.entries(v)) {
      if (!CLASSES.includes(k)) {
        throw fail(path, `unknown customer class \`${k}\`, expected one of ${expected}`);
      }
      out[k] = item.parseValue(x, path ? `${path}.${k}` : k);
    }
    return out;
  }, opts);
}

/** A plugin without parameters. */
export const none = () => object({});
