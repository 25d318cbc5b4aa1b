"""`late-fee`: a daily late fee on arrears (滞纳金; docs/domain.md, "Service status and subsidies").

On every bill date from the company's due date on, a customer whose principal is overdue
(`arrears-since` set and not after the bill date) pays `round_fen(arrears × daily_rate)`: simple
interest on the principal only (the host's `arrears` excludes earlier late fees), rounded per day.
Harbin: 1‰ a day from January 1st; Tianjin caps the rate at 2‰, which `max_daily_rate` enforces
when configuring. W6: 1149.60 × 0.001 → 1.15.

The Python twin of plugins/late-fee (same name, version and parameters). It runs for every
customer with arrears, so it only has the columnar path: integers straight from the batch's
columns, no Decimal per customer. A single-day `evaluate` runs it on a batch of one.
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from heatbill import (
    BadParams, Batch, BatchLines, Category, Configuration, DayFilter, Plugin, bits, date_to_days,
    mul_fen, param, split, to_wit,
)


@dataclass
class Params:
    """The parameters of `late-fee`."""

    daily_rate: Decimal = param(doc='The fee per day as a share of the overdue principal, e.g. "0.001" (1‰, Harbin).')
    due_date: datetime.date = param(doc='The first day a late fee accrues, e.g. "2026-01-01" (Harbin: January 1st).')
    max_daily_rate: Decimal | None = param(
        None, doc='The legal cap on the daily rate, e.g. "0.002" (Tianjin 2‰): a daily_rate above it is refused. Default none.')
    code: str = param("late-fee", doc='The code of the late-fee line (default "late-fee").')
    description: str = param("滞纳金", doc='Its text on the bill (default "滞纳金").')


class LateFee(Plugin):
    Params = Params

    def configure(self, p: Params) -> Configuration:
        if p.daily_rate < 0:
            raise BadParams(f'`daily_rate` is {p.daily_rate}: give a share per day, e.g. "0.001" for 1‰')
        if p.max_daily_rate is not None and p.daily_rate > p.max_daily_rate:
            raise BadParams(
                f"`daily_rate` {p.daily_rate} is above the legal cap max_daily_rate {p.max_daily_rate}: lower the rate")
        # Customers with overdue arrears only: no arrears-since, no late fee, and no call.
        config = Configuration(applies_to=DayFilter.ALL.require(bits.HAS_ARREARS_SINCE))
        self.line = config.add_line(p.code, p.description, "CNY", Category.LATE_FEE)
        self.rate = to_wit(p.daily_rate, "daily_rate")  # the line's unit price
        self.rate_units, self.rate_scale = split(p.daily_rate)  # exact, for the arithmetic
        self.due = date_to_days(p.due_date)
        return config

    def evaluate_columns(self, batch: Batch, out: BatchLines) -> None:
        # Locals: attribute lookups are the interpreter's cost here, not the arithmetic.
        dates, day_bits, since = batch.dates, batch.bits, batch.arrears_since
        units, scales = batch.arrears.units, batch.arrears.scales
        due, ru, rs, line, rate = self.due, self.rate_units, self.rate_scale, self.line, self.rate
        has_since = bits.HAS_ARREARS_SINCE
        for i in range(batch.len):
            date = dates[i]
            if date < due or not day_bits[i] & has_since or since[i] > date:
                continue
            principal = units[i]
            if principal <= 0:
                continue
            fee = mul_fen(principal, scales[i], ru, rs)
            if fee:
                out.add(i, line, (principal, scales[i]), rate, (fee, 2))
