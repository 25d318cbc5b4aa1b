// `low-income-subsidy` in JavaScript: the same rule, name, version and parameters as the Rust
// reference plugin (plugins/low-income-subsidy; docs/reference-plugins.md).
//
// For low-income customers the government covers share × min(1, cap / area) of the prior lines
// the customer pays in the configured categories. A season fee is covered as a season fee: a
// line that is the day's part of a season amount T gets the same day's part of
// S = round_fen(T × share × min(1, cap/area)), so over the season the government pays exactly S
// (rounding each day alone would drift). T is the line's `seasonAmount` (contract 0.2.0); a line
// without one (a 0.1.0 tariff's) is taken as a season fee of round_fen(quantity × unit price)
// when its amount is the day's part of that. Other lines are covered day by day. Emits −s paid
// by the customer and +s paid by the government. W5: heat 12.56 → subsidy 9.42.
//
// Rows, not columns: its day filter (`all-of: low-income`) has the host call it for the few
// low-income customers only.

import { params, Decimal, BadParams, DayFilter, bits, line, NO_LINES, Accrual, billedArea } from '@heatbill/sdk';

export default class LowIncomeSubsidy {
  static params = params.object(
    {
      share: params.decimal({ description: 'The share of the fee the government covers, 0..=1 (default "1.00", Harbin 100 %).', optional: true }),
      area_cap: params.decimal({
        description: 'The area covered in m², e.g. "45" (Harbin): above it the subsidy is prorated by cap / area. Default: no cap.',
        optional: true,
      }),
      area_basis: params.oneOf(['building', 'usable'], {
        description: 'The area the cap compares with: "building" (default) or "usable" (Harbin).',
        default: 'building',
      }),
      categories: params.categories({
        description: 'The categories of prior lines subsidised, e.g. ["heating", "consumption"] (default ["heating"]).',
        optional: true,
      }),
      code: params.string({ description: 'The code of the pair of subsidy lines (default "subsidy").', default: 'subsidy' }),
      description: params.string({ description: 'Their text on the bill (default "低保采暖补贴").', default: '低保采暖补贴' }),
    },
    { description: 'The parameters of `low-income-subsidy`.' },
  );

  static configure(p, kinds) {
    const share = p.share ?? Decimal.ONE;
    if (share.isNegative() || share.gt(Decimal.ONE)) {
      throw new BadParams(`\`share\` is ${share}: give the covered share between 0 and 1, e.g. "1.00"`);
    }
    if (p.area_cap !== undefined && p.area_cap.sign() <= 0) {
      throw new BadParams(`\`area_cap\` is ${p.area_cap} m²: give a positive area, e.g. "45", or leave it out for no cap`);
    }
    const categories = p.categories ?? new Set(['heating']);
    if (categories.size === 0) {
      throw new BadParams('`categories` is empty: list the categories subsidised, e.g. ["heating"]');
    }
    const kind = kinds.add({ code: p.code, description: p.description, unit: 'CNY', category: 'subsidy' });
    return new LowIncomeSubsidy(share, p.area_cap, p.area_basis, categories, kind);
  }

  constructor(share, areaCap, areaBasis, categories, kind) {
    this.share = share;
    this.areaCap = areaCap;
    this.areaBasis = areaBasis;
    this.categories = categories;
    this.kind = kind;
    /** Low-income households only. */
    this.appliesTo = DayFilter.ALL.require(bits.LOW_INCOME);
  }

  evaluate(day) {
    if ((day.bits & bits.LOW_INCOME) === 0) return NO_LINES;
    const accrual = Accrual.of(day);
    const ctx = { day, area: undefined };
    let base = Decimal.ZERO;
    let perDay = Decimal.ZERO;
    let season = Decimal.ZERO;
    for (const l of day.priorLines) {
      if (l.payer !== 'customer' || !this.categories.has(l.category)) continue;
      base = base.add(l.amount);
      let t = l.seasonAmount;
      if (t === undefined) {
        // The 0.1.0 convention, for lines that cannot say.
        const guess = l.quantity.mul(l.unitPrice).roundFen();
        const share = accrual.seasonShare(guess);
        t = share !== undefined && share.eq(l.amount) ? guess : Decimal.ZERO;
      }
      const covered = t.isZero() ? undefined : accrual.seasonShare(this.cover(t, ctx).roundFen());
      if (covered !== undefined) season = season.add(covered);
      else perDay = perDay.add(l.amount);
    }
    if (base.sign() <= 0) return NO_LINES;
    // cover(0) is 0 (and the area, if needed, was read for the season lines already).
    const s = perDay.isZero() ? season : season.add(this.cover(perDay, ctx).roundFen());
    if (s.isZero()) return NO_LINES;
    const ratio = this.cover(Decimal.ONE, ctx);
    // Quantity: the subsidised base; unit price: the share of it covered.
    return [line(this.kind, base, ratio, s.neg(), 'customer'), line(this.kind, base, ratio, s, 'government')];
  }

  /**
   * x × share × min(1, cap / area), multiplying before dividing; the billed area is read once
   * per customer-day, and only when there is a cap.
   */
  cover(x, ctx) {
    const covered = x.mul(this.share);
    if (this.areaCap === undefined) return covered;
    ctx.area ??= billedArea(this.areaBasis, ctx.day);
    return ctx.area.gt(this.areaCap) ? covered.mul(this.areaCap).div(ctx.area) : covered;
  }
}
