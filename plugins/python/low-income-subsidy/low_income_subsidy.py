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

The Python twin of plugins/low-income-subsidy (same name, version and parameters). Row by row:
its day filter (`all-of: low-income`) means the host calls it for the few customers it concerns.
"""

from dataclasses import dataclass
from decimal import Decimal

from heatbill import (
    ONE, ZERO, Accrual, AreaBasis, BadParams, Category, Configuration, DayFilter, Line, Payer,
    Plugin, billed_area, bits, param, round_fen,
)


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
