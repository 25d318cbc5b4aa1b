// Typed rule errors: a plugin's refusal of a customer-day or of its parameters. They are data,
// not crashes: the host parks the customer's bill with the error and bills the others. Any other
// exception is a bug: the adapter logs it to stderr and traps.

/** The longest rule-error message the contract allows, in bytes. */
export const MAX_MESSAGE_BYTES = 1000;

const encoder = new TextEncoder();

/** Cuts a message to 1,000 bytes of UTF-8 on a character boundary, marking the cut with "…". */
export function truncate(message) {
  // Cheap test first: at most 3 bytes per UTF-16 unit.
  if (message.length * 3 <= MAX_MESSAGE_BYTES || encoder.encode(message).length <= MAX_MESSAGE_BYTES) {
    return message;
  }
  let out = '';
  let bytes = 0;
  for (const ch of message) {
    const n = encoder.encode(ch).length;
    if (bytes + n > MAX_MESSAGE_BYTES - 3) break;
    out += ch;
    bytes += n;
  }
  return `${out}…`;
}

/** A refusal: `kind` is the WIT case of `rule-error`. */
export class RuleError extends Error {
  /**
   * @param {'bad-params' | 'missing-input' | 'invalid-input' | 'unsupported'} kind
   * @param {string} message
   */
  constructor(kind, message) {
    super(message);
    this.name = 'RuleError';
    /** @type {'bad-params' | 'missing-input' | 'invalid-input' | 'unsupported'} */
    this.kind = kind;
  }

  /** The WIT `rule-error` variant, message cut to 1,000 bytes. */
  toWit() {
    return { tag: this.kind, val: truncate(this.message) };
  }
}

/** The parameters are invalid; say which and why. */
export class BadParams extends RuleError {
  /** @param {string} message */
  constructor(message) {
    super('bad-params', message);
    this.name = 'BadParams';
  }
}

/** An input the rule needs is missing (e.g. no meter reading for a metered customer). */
export class MissingInput extends RuleError {
  /** @param {string} message */
  constructor(message) {
    super('missing-input', message);
    this.name = 'MissingInput';
  }
}

/** An input is present but unusable (e.g. a negative area). */
export class InvalidInput extends RuleError {
  /** @param {string} message */
  constructor(message) {
    super('invalid-input', message);
    this.name = 'InvalidInput';
  }
}

/** The rule does not handle this case (e.g. an unknown special class). */
export class Unsupported extends RuleError {
  /** @param {string} message */
  constructor(message) {
    super('unsupported', message);
    this.name = 'Unsupported';
  }
}
