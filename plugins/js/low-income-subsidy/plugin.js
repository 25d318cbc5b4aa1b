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
// Its day filter (`all-of: low-income`) has the host call it for the few low-income customers
// only, but for those it has the columnar fast path too (`evaluateColumns`): the row method's
// BigInt decimals cost ~65 µs a customer-day in the interpreter, which made it most of the
// reference chain's time. The fast path computes the same numbers exactly with JS numbers and
// hands a row it cannot (a refusal, a value beyond 2^53) to the row method.

import { params, Decimal, BadParams, DayFilter, bits, line, NO_LINES, Accrual, billedArea, BatchRow, i64Words } from '@heatbill/sdk';

const SAFE = Number.MAX_SAFE_INTEGER;
const TWO32 = 4294967296;
/** |hi| below this: hi × 2^32 + lo is a safe integer. */
const HI_SAFE = 0x200000;
const E9 = 1e9;
/** 10^i as numbers: exact up to 10^22; beyond, only ever found too large (> 2^53) by a check. */
const P10 = Array.from({ length: 400 }, (_, i) => 10 ** i);
const { LOW_INCOME, HAS_SEASON, SEASON_CHARGED, HAS_USABLE_AREA } = bits;

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
    /** The row method, for the rows the columnar path leaves to it. */
    this.rowMethod = (day) => this.evaluate(day);
    this.fast = this.prepareColumns();
  }

  /**
   * The parameters as exact numbers for the columnar path; false when they are not (then every
   * row goes through the row method).
   */
  prepareColumns() {
    const { share, areaCap } = this;
    this.shU = Number(share.units);
    this.shS = share.scale;
    this.capU = areaCap === undefined ? 1 : Number(areaCap.units);
    this.capS = areaCap === undefined ? 0 : areaCap.scale;
    this.mCap = this.shU * this.capU;
    if (!Number.isSafeInteger(this.mCap) || this.shS > 60 || this.capS > 60) return false;
    // The unit price of the lines when the cap does not apply: cover(1) = share.
    let w;
    try {
      w = share.toWit('unit price');
    } catch {
      return false;
    }
    this.ratioLo = Number(BigInt.asIntN(32, w.units));
    this.ratioHi = Number(BigInt.asIntN(32, w.units >> 32n));
    this.ratioScale = w.scale;
    return true;
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
   * The columnar path: the row method's rule over a whole `day-batch`, from the columns, with
   * exact numbers (every s64 read as its two 32-bit halves, every product and quotient checked
   * to stay below 2^53), writing the output columns directly and making no call per row on the
   * common path. A row it cannot compute so (an invalid season position, a missing or negative
   * area when there is a cap, a value beyond 2^53) goes to the row method, which bills or
   * refuses it with the BigInt decimals.
   *
   * Why numbers give the row method's results: `cover` divides at 28 decimals and then rounds to
   * the fen (or, for the unit price, to the contract's 18). Rounding twice, half away from zero,
   * equals rounding once unless the exact quotient lies less than 10^-28 below a half-fen (a
   * half of the 18th decimal), which a fraction whose denominator is below 10^26 fen (10^10
   * units of the 18th decimal) cannot: the fast path computes round(n / d) of the exact
   * fraction, with d below 2^53 (below 9·10^6 for the unit price; else BigInts).
   */
  evaluateColumns(batch, out) {
    const len = batch.len;
    let view;
    if (!this.fast) {
      view = new BatchRow(batch);
      for (let i = 0; i < len; i++) {
        if (batch.bits[i] & LOW_INCOME) out.evaluateRow(i, this.rowMethod, view.at(i));
      }
      return;
    }
    const { shU, shS, capU, capS, mCap, kind } = this;
    // The module's constants as locals (cheaper to read in the interpreter).
    const safe = SAFE;
    const two32 = TWO32;
    const hiSafe = HI_SAFE;
    const p10 = P10;
    const e9 = E9;
    const lowIncome = LOW_INCOME;
    const hasSeason = HAS_SEASON;
    const seasonCharged = SEASON_CHARGED;
    const capOn = this.areaCap !== undefined;
    const rowBits = batch.bits;
    const phases = batch.seasonPhase;
    const dayIndex = batch.seasonDayIndex;
    const seasonDays = batch.seasonDays;
    const prior = batch.priorLines;
    const prow = prior.rows;
    const pkind = prior.kinds;
    const ppay = prior.payers;
    const nl = prow.length;
    const amW = i64Words(prior.amount.units);
    const amS = prior.amount.scales;
    const saW = i64Words(prior.seasonAmount.units);
    const saS = prior.seasonAmount.scales;
    // Which prior kinds are in the subsidised categories (once per batch, not per line).
    const priorKinds = batch.priorKinds;
    const subsidised = new Uint8Array(priorKinds.length);
    for (let k = 0; k < priorKinds.length; k++) subsidised[k] = this.categories.has(priorKinds[k].category) ? 1 : 0;
    const usable = this.areaBasis === 'usable';
    const areaCol = usable ? batch.usableArea : batch.buildingArea;
    const arW = i64Words(areaCol.units);
    const arS = areaCol.scales;
    const areaBit = usable ? HAS_USABLE_AREA : 0;

    // What the area decides, for the last area seen (consecutive days of one customer, or
    // customers of one size, share it): cover(x) = x × m / d0 × 10^(g − scale of x), and the
    // unit price cover(1) as two 32-bit words and a scale (computed when first needed).
    let lastArea = -1;
    let lastAreaScale = -1;
    let capped = false;
    let m = shU;
    let d0 = 1;
    let g = 2 - shS;
    let ratioDue = false;
    let rLo = this.ratioLo;
    let rHi = this.ratioHi;
    let rS = this.ratioScale;

    // ⌊x / d⌋ for safe integers 0 ≤ x, 1 ≤ d is written inline as
    // `(fq = x / d) < 2^31 ? fq | 0 : Math.floor(fq)`: the float quotient of two integers below
    // 2^53 is never rounded up to the next integer, so truncating it is exact; no `%` (in
    // WebAssembly a software fmod) and, below 2^31, no call.
    let fq = 0;
    let o = out.reserve(2 * len); // at most two lines per row
    let { rows, kinds, payers } = out;
    let qw = out.quantity.words, qs = out.quantity.scales;
    let pw = out.unitPrice.words, ps = out.unitPrice.scales;
    let mw = out.amount.words, ms = out.amount.scales;
    // Scales written only where they differ from these (most lines: fen, and the unit price of
    // the batch's usual case); the kinds and payers are filled in at the end.
    const n2 = 2 * len;
    qs.fill(2, 0, n2);
    ms.fill(2, 0, n2);
    ps.fill(capOn ? 18 : rS, 0, n2);
    const psDefault = capOn ? 18 : rS;
    let j = 0;
    let r = nl > 0 ? prow[0] : len; // the row of prior line j (len past the last)
    for (let i = 0; i < len; i++) {
      const b = rowBits[i];
      if ((b & lowIncome) === 0) continue;
      while (r < i) {
        j++;
        r = j < nl ? prow[j] : len;
      }
      fast: {
        // How the day accrues a season fee (Accrual.of): 0 none, 1 regular (k of n), 2 charged
        // (the daily rate of n), 3 free.
        let acc = 0;
        let k = 0;
        let n = 0;
        if (b & hasSeason) {
          const ph = phases[i];
          if (ph === 1) {
            k = dayIndex[i];
            n = seasonDays[i];
            if (k === 0 || k > n) break fast; // invalid-input, from the row method
            acc = 1;
          } else if (ph === 2 || ph === 3) {
            if (b & seasonCharged) {
              n = seasonDays[i];
              if (n === 0) break fast;
              acc = 2;
            } else {
              acc = 3;
            }
          }
        }
        if (capOn) {
          // The row method reads the area whenever it covers anything; a refusal (no usable
          // area, a negative one) or an area beyond 2^53 is its business.
          if ((b & areaBit) !== areaBit) break fast;
          const hi = arW[2 * i + 1];
          if (hi < 0 || hi >= hiSafe) break fast;
          const area = hi * two32 + (arW[2 * i] >>> 0);
          const areaScale = arS[i];
          if (area !== lastArea || areaScale !== lastAreaScale) {
            lastArea = area;
            lastAreaScale = areaScale;
            // area > cap? Only one side is scaled: if its exact value passes 2^53, so does its
            // float, and the comparison still holds.
            capped = areaScale >= capS ? area > capU * p10[areaScale - capS] : area * p10[capS - areaScale] > capU;
            if (capped) {
              m = mCap;
              d0 = area;
              g = 2 + areaScale - capS - shS;
              ratioDue = true;
            } else {
              m = shU;
              d0 = 1;
              g = 2 - shS;
              ratioDue = false;
              rLo = this.ratioLo;
              rHi = this.ratioHi;
              rS = this.ratioScale;
            }
          }
        }
        let baseU = 0; // the subsidised base: units at baseS decimals (−1: no line yet)
        let baseS = -1;
        let perU = 0; // the lines covered day by day
        let perS = -1;
        let seasonF = 0; // the season lines' covered parts, in fen
        let anySeason = false;
        for (; r === i; j++, r = j < nl ? prow[j] : len) {
          const p = ppay[j];
          if (p === 1 || p === 2 || subsidised[pkind[j]] !== 1) continue;
          const j2 = 2 * j;
          let hi = amW[j2 + 1];
          if (hi < -hiSafe || hi >= hiSafe) break fast;
          const amt = hi * two32 + (amW[j2] >>> 0);
          const as = amS[j];
          if (as === baseS) {
            baseU += amt;
            if (baseU > safe || baseU < -safe) break fast;
          } else if (baseS < 0) {
            baseU = amt;
            baseS = as;
          } else {
            // Decimal.add: the sum at the larger scale.
            const up = as > baseS;
            const x = up ? baseU * p10[as - baseS] : amt * p10[baseS - as];
            if (!(x <= safe && x >= -safe)) break fast;
            baseU = x + (up ? amt : baseU);
            if (up) baseS = as;
            if (baseU > safe || baseU < -safe) break fast;
          }
          // The season amount T: the line's own, else the 0.1.0 convention's guess.
          let tU = 0;
          let tS = 2;
          hi = saW[j2 + 1];
          const lo = saW[j2];
          if (hi !== 0 || lo !== 0) {
            if (hi < -hiSafe || hi >= hiSafe) break fast;
            tU = hi * two32 + (lo >>> 0);
            tS = saS[j];
          } else if (acc !== 0) {
            tU = guessSeasonFen(prior, j, amt, as, acc, k, n);
            if (tU !== tU) break fast; // NaN: beyond exact numbers
          }
          if (tU !== 0) {
            // f = |round_fen(cover(T))| in fen, a rounding of the exact fraction num / den.
            const e = g - tS;
            let num = tU * m;
            let den = d0;
            if (e > 0) num *= p10[e];
            else if (e < 0) den *= p10[-e];
            if (num < 0) num = -num;
            if (!(num + den <= safe)) break fast;
            let f = num;
            if (den !== 1) {
              f = ((fq = num / den) < 2147483648 ? fq | 0 : Math.floor(fq));
              const r = num - f * den;
              if (r + r >= den) f++;
            }
            // The day's part of it (Accrual.seasonShare; the rounding is symmetric in sign);
            // none: the line is covered by the day.
            if (acc === 1) {
              const x1 = f * k;
              if (x1 > safe) break fast;
              const x0 = x1 - f;
              const q1 = ((fq = x1 / n) < 2147483648 ? fq | 0 : Math.floor(fq));
              const q0 = ((fq = x0 / n) < 2147483648 ? fq | 0 : Math.floor(fq));
              const r1 = x1 - q1 * n;
              const r0 = x0 - q0 * n;
              const part = q1 - q0 + (r1 + r1 >= n ? 1 : 0) - (r0 + r0 >= n ? 1 : 0);
              seasonF += tU * m < 0 ? -part : part;
            } else if (acc === 2) {
              const q = ((fq = f / n) < 2147483648 ? fq | 0 : Math.floor(fq));
              const r1 = f - q * n;
              const part = q + (r1 + r1 >= n ? 1 : 0);
              seasonF += tU * m < 0 ? -part : part;
            }
            if (acc !== 0) {
              if (seasonF > safe || seasonF < -safe) break fast;
              anySeason = true;
              continue;
            }
          }
          if (as === perS) {
            perU += amt;
            if (perU > safe || perU < -safe) break fast;
          } else if (perS < 0) {
            perU = amt;
            perS = as;
          } else {
            const up = as > perS;
            const x = up ? perU * p10[as - perS] : amt * p10[perS - as];
            if (!(x <= safe && x >= -safe)) break fast;
            perU = x + (up ? amt : perU);
            if (up) perS = as;
            if (perU > safe || perU < -safe) break fast;
          }
        }
        if (baseU <= 0) continue;
        // s = season + round_fen(cover(perDay)), in fen, and the scale the row method's sum has.
        let sF = seasonF;
        let sS = anySeason ? 2 : 0;
        if (perU !== 0) {
          const e = g - perS;
          let num = perU * m;
          let den = d0;
          if (e > 0) num *= p10[e];
          else if (e < 0) den *= p10[-e];
          const neg = num < 0;
          if (neg) num = -num;
          if (!(num + den <= safe)) break fast;
          let f = num;
          if (den !== 1) {
            f = ((fq = num / den) < 2147483648 ? fq | 0 : Math.floor(fq));
            const r = num - f * den;
            if (r + r >= den) f++;
          }
          sF += neg ? -f : f;
          if (sF > safe || sF < -safe) break fast;
          // round_fen keeps fewer decimals (of a product of fewer); the capped quotient has 28.
          const xs = capped ? 2 : perS + shS < 2 ? perS + shS : 2;
          if (xs > sS) sS = xs;
        }
        if (sF === 0) continue;
        if (ratioDue) {
          // The unit price cover(1) = share × cap / area = num / den < 1, rounded to 18
          // decimals in two steps of 9 digits.
          ratioDue = false;
          const E = shS + capS - lastAreaScale;
          const num = E >= 0 ? mCap : mCap * p10[-E];
          const den = E >= 0 ? lastArea * p10[E] : lastArea;
          if (den <= 9e6 && num < den) {
            const x1 = num * e9;
            let q1 = (x1 / den) | 0; // below 10^9: the quotient's float is never above the next integer
            const r1 = x1 - q1 * den;
            const x2 = r1 * e9;
            let q2 = (x2 / den) | 0;
            const r2 = x2 - q2 * den;
            if (r2 + r2 >= den) {
              q2++;
              if (q2 === e9) {
                q2 = 0;
                q1++;
              }
            }
            // q1 × 10^9 + q2 as two 32-bit words: 10^9 = 1953125 × 2^9.
            const a = q1 * 1953125;
            rHi = (a / 8388608) | 0;
            rLo = (a - rHi * 8388608) * 512 + q2;
            if (rLo >= two32) {
              rLo -= two32;
              rHi++;
            }
            rS = 18;
          } else {
            const w = this.share.mul(this.areaCap).div(new Decimal(BigInt(lastArea), lastAreaScale)).toWit('unit price');
            rLo = Number(BigInt.asIntN(32, w.units));
            rHi = Number(BigInt.asIntN(32, w.units >> 32n));
            rS = w.scale;
          }
        }
        // −s paid by the customer, +s by the government; the quantity is the base, the unit
        // price cover(1).
        // A safe integer's words: the low one is the number itself (an Int32Array stores it
        // modulo 2^32), the high one (x − (x mod 2^32)) / 2^32, exact.
        const sU = sS === 2 ? sF : sF / p10[2 - sS]; // exact: the value has sS decimals
        const bHi = (baseU - (baseU >>> 0)) / two32;
        const o2 = 2 * o;
        rows[o] = i;
        rows[o + 1] = i;
        qw[o2] = baseU;
        qw[o2 + 1] = bHi;
        qw[o2 + 2] = baseU;
        qw[o2 + 3] = bHi;
        pw[o2] = rLo;
        pw[o2 + 1] = rHi;
        pw[o2 + 2] = rLo;
        pw[o2 + 3] = rHi;
        mw[o2] = -sU;
        mw[o2 + 1] = (-sU - (-sU >>> 0)) / two32;
        mw[o2 + 2] = sU;
        mw[o2 + 3] = (sU - (sU >>> 0)) / two32;
        if (baseS !== 2) {
          qs[o] = baseS;
          qs[o + 1] = baseS;
        }
        if (rS !== psDefault) {
          ps[o] = rS;
          ps[o + 1] = rS;
        }
        if (sS !== 2) {
          ms[o] = sS;
          ms[o + 1] = sS;
        }
        o += 2;
        continue;
      }
      // The row method: a refusal, or a value beyond exact numbers.
      out.commit(o);
      view ??= new BatchRow(batch);
      out.evaluateRow(i, this.rowMethod, view.at(i));
      o = out.n;
      ({ rows, kinds, payers } = out);
      qw = out.quantity.words;
      qs = out.quantity.scales;
      pw = out.unitPrice.words;
      ps = out.unitPrice.scales;
      mw = out.amount.words;
      ms = out.amount.scales;
      // A row the row method refused after writing part of its lines leaves their scales.
      qs[o] = qs[o + 1] = ms[o] = ms[o + 1] = 2;
      ps[o] = ps[o + 1] = psDefault;
    }
    // Every row's lines, here and from the row method, are the pair (customer, government) of
    // this kind: line 2m is the customer's, 2m + 1 the government's.
    kinds.fill(kind, 0, o);
    new Uint16Array(payers.buffer, payers.byteOffset, o >> 1).fill(0x0100);
    out.commit(o);
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

/**
 * The 0.1.0 convention's season amount of prior line j (without one), in fen: T =
 * round_fen(quantity × unit price) when the line's amount is the day's part of T, else 0; NaN
 * when a value is beyond exact numbers. `acc`, `k`, `n`: the day's accrual (1 regular, 2
 * charged, 3 free).
 */
function guessSeasonFen(prior, j, amt, as, acc, k, n) {
  const qW = i64Words(prior.quantity.units);
  const pW = i64Words(prior.unitPrice.units);
  const qs = prior.quantity.scales[j];
  const ps = prior.unitPrice.scales[j];
  let hi = qW[2 * j + 1];
  if (hi < -HI_SAFE || hi >= HI_SAFE) return NaN;
  const q = hi * TWO32 + (qW[2 * j] >>> 0);
  hi = pW[2 * j + 1];
  if (hi < -HI_SAFE || hi >= HI_SAFE) return NaN;
  const prod = q * (hi * TWO32 + (pW[2 * j] >>> 0));
  const e = 2 - qs - ps;
  const num = e >= 0 ? prod * P10[e] : prod;
  const den = e >= 0 ? 1 : P10[-e];
  const na = num < 0 ? -num : num;
  if (!(na + den <= SAFE)) return NaN;
  const r = na % den;
  let t = (na - r) / den;
  if (r + r >= den) t++;
  // Its day's part, |T| first (the rounding is symmetric).
  let part = 0;
  if (acc === 1) {
    const x1 = t * k;
    if (!(x1 <= SAFE)) return NaN;
    const x0 = x1 - t;
    const r1 = x1 % n;
    const r0 = x0 % n;
    part = (x1 - r1) / n + (r1 + r1 >= n ? 1 : 0) - ((x0 - r0) / n + (r0 + r0 >= n ? 1 : 0));
  } else if (acc === 2) {
    const r1 = t % n;
    part = (t - r1) / n + (r1 + r1 >= n ? 1 : 0);
  }
  if (num < 0) {
    t = -t;
    part = -part;
  }
  // The amount in fen equals the part?
  let equal;
  if (as <= 2) {
    const a = amt * P10[2 - as];
    if (!(a <= SAFE && a >= -SAFE)) return NaN;
    equal = a === part;
  } else {
    const p = part * P10[as - 2];
    if (!(p <= SAFE && p >= -SAFE)) return NaN;
    equal = p === amt;
  }
  return equal ? t : 0;
}
