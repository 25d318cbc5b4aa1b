// {{name}}: a flat fee for every heating day. A starting point: keep the shape, change the rule.
//
// Build: `heatbill plugin build .` → target/{{name}}.wasm. Test: `npm install && npm test`
// (links the vendored SDK; no download), then through the real engine:
// `heatbill plugin test . --profile interpreted --cases cases`.

import { params, Decimal, BadParams, line, NO_LINES, isHeatingDay } from '@heatbill/sdk';

export default class Plugin {
  // The one place the parameters are declared: the host validates a chain's parameters against
  // the JSON Schema derived from this, and `configure` receives them parsed and typed.
  static params = params.object({
    daily_amount: params.decimal({ description: 'Yuan per heating day, e.g. "0.50".' }),
    code: params.string({ description: 'The line\'s code (default "service-fee").', default: 'service-fee' }),
    description: params.string({ description: 'Its text on the bill (default "服务费").', default: '服务费' }),
  });

  // Called once per instance: check values and precompute here, not per customer.
  static configure(p, kinds) {
    if (p.daily_amount.isNegative()) {
      throw new BadParams(`\`daily_amount\` is ${p.daily_amount}: give a fee of 0 or more, e.g. "0.50"`);
    }
    const kind = kinds.add({ code: p.code, description: p.description, unit: 'day', category: 'other' });
    return new Plugin(p.daily_amount, kind);
  }

  constructor(amount, kind) {
    this.amount = amount;
    this.fee = amount.roundFen(); // amounts on bills are whole fen
    this.kind = kind;
  }

  // Called per customer-day. NO_LINES when the rule does not apply: it allocates nothing.
  evaluate(day) {
    if (!isHeatingDay(day)) return NO_LINES;
    // Quantity 1 day at the daily amount: the host checks |amount| ≤ |quantity × unit price| + 0.01.
    return [line(this.kind, Decimal.ONE, this.amount, this.fee)];
  }
}
