"""`late-fee` 1.0.0-rows: the kit's late fee (plugins/python/late-fee) through the row method only.

A benchmark fixture for `heatbill-bench-kits` (BENCHMARKS.md, "Python and JavaScript plugins: the
kits side by side"): the same rule, parameters and bills as late-fee 1.0.0, written the way a
first plugin is written (`evaluate(day)` with `Decimal`s), so that the row path and the columnar
path are measured side by side. Not built by `build.py --all` (its component would overwrite
late-fee's): `./dev bench-kits` builds it into plugins/python/target/bench/.
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from heatbill import BadParams, Category, Configuration, DayFilter, Line, Plugin, bits, param, round_fen


@dataclass
class Params:
    """The parameters of `late-fee`."""

    daily_rate: Decimal = param(doc='The fee per day as a share of the overdue principal, e.g. "0.001" (1‰, Harbin).')
    due_date: datetime.date = param(doc='The first day a late fee accrues, e.g. "2026-01-01" (Harbin: January 1st).')
    max_daily_rate: Decimal | None = param(
        None, doc='The legal cap on the daily rate, e.g. "0.002" (Tianjin 2‰): a daily_rate above it is refused. Default none.')
    code: str = param("late-fee", doc='The code of the late-fee line (default "late-fee").')
    description: str = param("滞纳金", doc='Its text on the bill (default "滞纳金").')


class LateFeeRows(Plugin):
    Params = Params

    def configure(self, p: Params) -> Configuration:
        if p.daily_rate < 0:
            raise BadParams(f'`daily_rate` is {p.daily_rate}: give a share per day, e.g. "0.001" for 1‰')
        if p.max_daily_rate is not None and p.daily_rate > p.max_daily_rate:
            raise BadParams(
                f"`daily_rate` {p.daily_rate} is above the legal cap max_daily_rate {p.max_daily_rate}: lower the rate")
        config = Configuration(applies_to=DayFilter.ALL.require(bits.HAS_ARREARS_SINCE))
        self.line = config.add_line(p.code, p.description, "CNY", Category.LATE_FEE)
        self.rate = p.daily_rate
        self.due = p.due_date
        return config

    def evaluate(self, day) -> list:
        since, date = day.arrears_since, day.date
        if since is None or since > date or date < self.due:
            return []
        principal = day.arrears
        if principal is None or principal <= 0:
            return []
        fee = round_fen(principal * self.rate)
        if not fee:
            return []
        return [Line(self.line, principal, self.rate, fee)]
