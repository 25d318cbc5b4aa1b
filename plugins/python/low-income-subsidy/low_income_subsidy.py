"""`low-income-subsidy`: the government covers part of a low-income household's heating fee
(低保; docs/domain.md, "Service status and subsidies"; docs/reference-plugins.md).

For customers with the `low-income` flag, the government covers `share × min(1, cap / area)` of
the prior lines the customer pays in the configured categories (default heating).

A season fee is covered as a season fee: when a line is the day's part of a season amount `T`,
the subsidy is the same day's part of `S = round_fen(T × share × min(1, cap/area))`, so over the
season the government pays exactly S (Harbin, 60 m²: 0.75 × 2299.20 = 1724.40; rounding each
day alone would drift to 1724.58). `T` is the line's `season_amount` (contract 0.2.0); a line
without one (a 0.1.0 plugin's) counts as a season fee of `round_fen(quantity × unit price)` when
its amount is the day's part of that. Other lines are covered day by day.

The Python twin of plugins/low-income-subsidy (same name, version and parameters). Its day filter
(`all-of: low-income`) means the host calls it only for the customers it concerns, and there it
takes the columnar path (`evaluate_columns`): integers straight from the batch's columns and its
prior lines', no `Decimal` per customer-day. `evaluate` is the same rule row by row, in `Decimal`
as the Rust plugin writes it: the single-day entry point, and the reference the columnar path
falls back to for the rows it does not take (refusals, inputs out of its integer range), so the
two bill alike by construction there and by the tests elsewhere.
"""

from dataclasses import dataclass
from decimal import Decimal
from operator import neg

from heatbill import (
    ONE, ZERO, Accrual, AreaBasis, Batch, BatchLines, BadParams, Category, Configuration,
    DayFilter, Line, Payer, Plugin, RuleError, billed_area, bits, div_round, from_wit, param,
    round_fen, split, to_wit,
)

# `evaluate` multiplies and divides in the default decimal context: 28 significant digits. The
# columnar path's integers agree with it when its products stay below 10^28 (then exact) and its
# quotients are far enough from a half fen for the 28th digit not to matter (see `_cover_fen`);
# otherwise the row goes to `evaluate`.
_EXACT = 10**28
_I64 = 2**63 - 1
_POW10 = [10**e for e in range(40)]
_AREAS_MAX = 4096  # distinct areas remembered per instance (a ratio each)
_TOTALS_MAX = 64  # season amounts remembered per area (their covered amounts)
_PAIR_PAYERS = bytes([Payer.CUSTOMER, Payer.GOVERNMENT])
_FEN_SCALE = b"\x02"


@dataclass
class Params:
    """The parameters of `low-income-subsidy`."""

    share: Decimal | None = param(
        None, doc='The share of the fee the government covers, 0..=1 (default "1.00", Harbin 100 %).')
    area_cap: Decimal | None = param(
        None, doc='The area covered in m², e.g. "45" (Harbin): above it the subsidy is prorated by cap / area. Default: no cap.')
    area_basis: AreaBasis = param(
        AreaBasis.BUILDING, doc='The area the cap compares with: "building" (default) or "usable" (Harbin).')
    categories: frozenset[Category] | None = param(
        None, doc='The categories of prior lines subsidised, e.g. ["heating", "consumption"] (default ["heating"]).')
    code: str = param("subsidy", doc='The code of the pair of subsidy lines (default "subsidy").')
    description: str = param("低保采暖补贴", doc='Their text on the bill (default "低保采暖补贴").')


class LowIncomeSubsidy(Plugin):
    Params = Params

    def configure(self, p: Params) -> Configuration:
        share = ONE if p.share is None else p.share
        if not ZERO <= share <= ONE:
            raise BadParams(f'`share` is {share}: give the covered share between 0 and 1, e.g. "1.00"')
        if p.area_cap is not None and p.area_cap <= 0:
            raise BadParams(
                f'`area_cap` is {p.area_cap} m²: give a positive area, e.g. "45", or leave it out for no cap')
        categories = frozenset({Category.HEATING}) if p.categories is None else p.categories
        if not categories:
            raise BadParams('`categories` is empty: list the categories subsidised, e.g. ["heating"]')
        self.share, self.cap, self.basis, self.categories = share, p.area_cap, p.area_basis, categories
        config = Configuration(applies_to=DayFilter.ALL.require(bits.LOW_INCOME))
        self.line = config.add_line(p.code, p.description, "CNY", Category.SUBSIDY)
        # The columnar path's operands, exact (Python ints: no s64 limit).
        self.share_units, self.share_scale = split(share)
        self.cap_units, self.cap_scale = (None, 0) if p.area_cap is None else split(p.area_cap)
        self.category_values = frozenset(int(c) for c in categories)
        self.areas: dict = {}  # (units, scale) of an area → _Area
        try:
            ratio = to_wit(ONE * share, "unit price")  # cover(ONE) without a cap
        except RuleError:
            ratio = None
        self.uncapped = _Area(ratio)
        return config

    def evaluate(self, day) -> list:
        if not day.low_income:
            return []
        accrual = Accrual.of(day.season)
        area: list = []  # the billed area, read once and only with a cap
        base = per_day = season = ZERO
        for l in day.prior_lines:
            if l.payer != Payer.CUSTOMER or l.category not in self.categories:
                continue
            base += l.amount
            t = l.season_amount
            if t is None:
                # The 0.1.0 convention, for lines that cannot say (see the module's doc).
                t = round_fen(l.quantity * l.unit_price)
                if accrual.season_share(t) != l.amount:
                    t = ZERO
            covered = None if t == 0 else accrual.season_share(round_fen(self.cover(t, day, area)))
            if covered is None:
                per_day += l.amount
            else:
                season += covered
        if base <= 0:
            return []
        s = season + round_fen(self.cover(per_day, day, area))
        if s == 0:
            return []
        ratio = self.cover(ONE, day, area)
        # Quantity: the subsidised base; unit price: the share of it covered.
        return [
            Line(self.line, base, ratio, -s, Payer.CUSTOMER),
            Line(self.line, base, ratio, s, Payer.GOVERNMENT),
        ]

    def cover(self, x: Decimal, day, area: list) -> Decimal:
        """`x × share × min(1, cap / area)`, multiplying before dividing."""
        covered = x * self.share
        if self.cap is None:
            return covered
        if not area:
            area.append(billed_area(day, self.basis))
        return covered * self.cap / area[0] if area[0] > self.cap else covered

    # ---- the columnar path ------------------------------------------------------------------

    def evaluate_columns(self, batch: Batch, out: BatchLines) -> None:
        """The rule of `evaluate`, in integers (fen) over the batch's columns. Rows it cannot
        take in integers go to `evaluate` (`_evaluate_row`)."""
        day_bits = batch.bits
        phases, day_index, season_days = batch.season_phase, batch.season_day_index, batch.season_days
        if self.basis == AreaBasis.USABLE:
            area_col, need_bit = batch.usable_area, bits.HAS_USABLE_AREA
        else:
            area_col, need_bit = batch.building_area, 0
        area_units, area_scales = area_col.units, area_col.scales
        prior = batch.prior_lines
        starts = batch.line_starts()
        kinds, payers = prior.kinds, prior.payers
        amounts, amount_scales = prior.amount.units, prior.amount.scales
        season_units, season_scales = prior.season_amount.units, prior.season_amount.scales
        q_units, q_scales = prior.quantity.units, prior.quantity.scales
        p_units, p_scales = prior.unit_price.units, prior.unit_price.scales
        cats = self.category_values
        covered_kind = [c in cats for c in batch.prior_categories()]
        capped = self.cap_units is not None
        area = self.uncapped
        totals, ratio = area.totals, area.ratio
        area_key = area_scale = None
        areas, area_of, cover = self.areas, self._area, self._cover_fen
        pow10, exact, i64 = _POW10, _EXACT, _I64
        low_income, has_season, charged = bits.LOW_INCOME, bits.HAS_SEASON, bits.SEASON_CHARGED
        fallback = self._evaluate_row
        # One entry per billed row; its pair of lines is written at the end, column by column.
        billed = []  # (row, base, its scale, ratio, s)

        for i in range(batch.len):
            b = day_bits[i]
            if not b & low_income:
                continue
            # The accrual (`Accrual.of`): mode 0 outside the season, 1 regular day k of N,
            # 2 a charged early/extension day (the daily rate), 3 a free one (0.00).
            mode = k = days = 0
            if b & has_season:
                mode = phases[i]
                if mode:
                    days = season_days[i]
                    if mode == 1:
                        k = day_index[i]
                        if not 1 <= k <= days:
                            fallback(batch, i, out)  # refused
                            continue
                    elif mode <= 3:
                        if not b & charged:
                            mode = 3
                        elif days:
                            mode = 2
                        else:
                            fallback(batch, i, out)  # refused
                            continue
                    else:
                        fallback(batch, i, out)  # not a phase
                        continue
            # The billed area (`billed_area`), read only with a cap.
            if capped:
                units = area_units[i]
                if need_bit and not b & need_bit or units < 0:
                    fallback(batch, i, out)  # refused, or no lines
                    continue
                scale = area_scales[i]
                if units != area_key or scale != area_scale:  # a customer's days share an area
                    area_key, area_scale = units, scale
                    area = areas.get((units, scale)) or area_of((units, scale))
                    totals, ratio = area.totals, area.ratio

            base = per_day = season = base_scale = 0
            ok = True
            for j in range(starts[i], starts[i + 1]):
                if payers[j] or not covered_kind[kinds[j]]:
                    continue
                amount, scale = amounts[j], amount_scales[j]
                if scale != 2:
                    if scale > 2:
                        ok = False  # finer than the fen: rare, to `evaluate`
                        break
                    amount *= pow10[2 - scale]
                    if scale > base_scale:
                        base_scale = scale
                else:
                    base_scale = 2
                base += amount
                t_units = season_units[j]
                if not mode:
                    per_day += amount  # outside the season every line is covered day by day
                    continue
                if t_units:
                    t_scale = season_scales[j]
                else:
                    # The 0.1.0 convention: T = round_fen(quantity × unit price), when the
                    # amount is the day's part of it.
                    t_units = q_units[j] * p_units[j]
                    if not -exact < t_units < exact:
                        ok = False
                        break
                    t_scale = q_scales[j] + p_scales[j]
                    if t_scale <= 2:
                        t_units *= pow10[2 - t_scale]
                    else:
                        t_units = div_round(t_units, pow10[t_scale - 2])
                    if not t_units:
                        per_day += amount
                        continue
                    if mode == 1:
                        part = div_round(t_units * k, days) - div_round(t_units * (k - 1), days)
                    elif mode == 2:
                        part = div_round(t_units, days)
                    else:
                        part = 0
                    if part != amount:
                        per_day += amount
                        continue
                    t_scale = 2
                # S = round_fen(cover(T)), once per season amount and area.
                key = t_units << 8 | t_scale  # scales are u8
                total = totals.get(key)
                if total is None:
                    total = cover(t_units, t_scale, area)
                    if total is None:
                        ok = False
                        break
                    if len(totals) >= _TOTALS_MAX:
                        totals.clear()
                    totals[key] = total
                # The day's part of the covered season amount (`Accrual.season_share`).
                if mode == 1:
                    if total >= 0:  # div_round, inline: round(T·k/N) − round(T·(k−1)/N)
                        twice = 2 * total
                        upto = twice * k + days
                        season += upto // (2 * days) - (upto - twice) // (2 * days)
                    else:
                        season += div_round(total * k, days) - div_round(total * (k - 1), days)
                elif mode == 2:
                    season += div_round(total, days)
            if not ok:
                fallback(batch, i, out)
                continue
            if base <= 0:
                continue
            if per_day:
                per_day = cover(per_day, 2, area)
                if per_day is None:
                    fallback(batch, i, out)
                    continue
            s = season + per_day
            if not s:
                continue
            if base_scale != 2:
                base //= pow10[2 - base_scale]
            if base > i64 or not -i64 <= s <= i64 or ratio is None:
                fallback(batch, i, out)  # a line the contract cannot carry: refused
                continue
            billed.append((i, base, base_scale, ratio, s))

        # The pairs: −s paid by the customer, then +s by the government, per billed row.
        if billed:
            n = len(billed)
            rows, bases, base_scales, ratios, subsidies = map(list, zip(*billed))
            price_units, price_scales = map(list, zip(*ratios))
            out.extend(_twice(rows), [self.line] * (2 * n), _PAIR_PAYERS * n,
                       (_twice(bases), bytes(_twice(base_scales))),
                       (_twice(price_units), bytes(_twice(price_scales))),
                       (_pair(subsidies), _FEN_SCALE * (2 * n)))

    def _evaluate_row(self, batch: Batch, i: int, out: BatchLines) -> None:
        """Row i by `evaluate`, as the SDK runs a row plugin."""
        try:
            out.add_result(i, self.evaluate(batch.row(i)))
        except RuleError as e:
            out.error(i, e)

    def _area(self, key) -> "_Area":
        """What the columnar path needs of an area (`key`: its units and scale, not negative),
        computed once per area by `cover` itself (with a cap)."""
        a = from_wit(*key)
        try:
            ratio = to_wit(self.cover(ONE, None, [a]), "unit price")
        except RuleError:
            ratio = None  # the row path refuses the line: so does the fallback
        area = _Area(ratio)
        if a > self.cap:
            area.divides = True
            units, scale = key
            area.numerator = self.share_units * self.cap_units * 10**scale
            area.denominator = units * 10 ** (self.share_scale + self.cap_scale)
        if len(self.areas) >= _AREAS_MAX:
            self.areas.clear()
        self.areas[key] = area
        return area

    def _cover_fen(self, units: int, scale: int, area: "_Area"):
        """`round_fen(cover(x))` in whole fen for x = units × 10^-scale, or None when the
        integers might not agree with `cover`'s 28 digits (then the row takes `evaluate`)."""
        p = units * self.share_units
        if not area.divides:
            if not -_EXACT < p < _EXACT:
                return None
            scale += self.share_scale
            if scale <= 2:
                return p * 10 ** (2 - scale)
            return div_round(p, 10 ** (scale - 2))
        if not -_EXACT < p * self.cap_units < _EXACT:
            return None
        # x × share × cap / area in fen: numerator / denominator.
        num = units * area.numerator * 100
        den = area.denominator * 10**scale
        q, r = divmod(abs(num), den)
        if r:
            # `cover` rounds the quotient to 28 digits before round_fen: harmless unless the
            # exact quotient is within its last digit of a half fen. Below 10^15 fen the 28th
            # digit is under 10^-13 fen; keep 10^-12 fen away from the half (or exactly on it).
            twice = 2 * r
            if q >= 1_000_000_000_000_000 or twice != den and abs(twice - den) * 1_000_000_000_000 <= den:
                return None
            if twice >= den:
                q += 1
        return -q if num < 0 else q


def _twice(values: list) -> list:
    """[a, b, …] → [a, a, b, b, …]: a value for each line of the pairs."""
    out = values * 2
    out[::2] = out[1::2] = values
    return out


def _pair(subsidies: list) -> list:
    """[s, …] → [−s, s, …]: the customer's line, then the government's."""
    out = subsidies * 2
    out[::2] = map(neg, subsidies)
    out[1::2] = subsidies
    return out


class _Area:
    """An area as the columnar path uses it: whether the cap prorates it (area > cap), the unit
    price of the subsidy lines, and the integers of share × cap / area."""

    __slots__ = ("divides", "ratio", "numerator", "denominator", "totals")

    def __init__(self, ratio):
        self.divides = False
        self.ratio = ratio
        self.numerator = self.denominator = 0
        self.totals: dict = {}  # T (units << 8 | scale) → round_fen(cover(T)) in fen
