"""Native unit tests of plugins, without the sandbox: build days, configure from JSON exactly as
the component does, and evaluate one day (``evaluate``) or a batch (``evaluate-batch``: the row
views or the columnar path, through the same code the component runs).

::

    fee = configure(LateFee, {"daily_rate": "0.001", "due_date": "2026-01-01"})
    d = day("2026-01-01", arrears="1149.60", arrears_since="2026-01-01")
    assert amounts(fee.evaluate(d)) == ["1.15"]
"""

from __future__ import annotations

import datetime
import json
from decimal import Decimal

from . import columns
from .errors import RuleError
from .params import parse
from .types import Category, CustomerClass, Day, Output, Payer, Phase, PriorLine, Season


def _dec(v):
    return None if v is None else Decimal(v) if isinstance(v, (str, int)) else v


def _date(v):
    return datetime.date.fromisoformat(v) if isinstance(v, str) else v


def day(date, **fields) -> Day:
    """A :class:`Day`; decimals and dates may be strings, ``customer_class`` a WIT name."""
    for k in ("building_area", "usable_area", "ceiling_height", "heat", "indoor_temperature", "arrears"):
        if k in fields:
            fields[k] = _dec(fields[k])
    if "arrears_since" in fields:
        fields["arrears_since"] = _date(fields["arrears_since"])
    if isinstance(fields.get("customer_class"), str):
        fields["customer_class"] = CustomerClass.parse(fields["customer_class"])
    return Day(_date(date), **fields)


def regular(k: int, n: int) -> Season:
    """Regular day ``k`` of a season of ``n`` days."""
    return Season(Phase.REGULAR, k, n, False)


def prior(category="heating", amount="0", payer="customer", *, code="heat", entry=1,
          quantity="1", unit_price=None, season_amount=None) -> PriorLine:
    """A prior line (an earlier plugin's), decimals as strings."""
    return PriorLine(code, entry, Category.parse(category) if isinstance(category, str) else category,
                     _dec(quantity), _dec(unit_price if unit_price is not None else amount),
                     _dec(amount), Payer.parse(payer) if isinstance(payer, str) else payer,
                     _dec(season_amount))


class Configured:
    """A configured plugin, evaluated as the component evaluates it."""

    def __init__(self, plugin, config):
        self.plugin = plugin
        self.config = config

    def evaluate(self, d) -> Output:
        """``evaluate``: an :class:`Output`; raises the plugin's :class:`RuleError`."""
        return columns.evaluate_day(self.plugin, d)

    def evaluate_batch(self, days) -> list:
        """``evaluate-batch`` of ``days`` the host's filter lets through: per day a list of
        lines or a :class:`RuleError` (days outside the filter get ``[]`` without a call,
        as the host does)."""
        days = list(days)
        f = self.config.applies_to
        picked = [i for i, d in enumerate(days) if f.matches(d.bits)]
        results = columns.evaluate_batch(self.plugin, columns.batch_of([days[i] for i in picked])).results()
        out: list = [[] for _ in days]
        for i, r in zip(picked, results):
            out[i] = r
        return out


def configure(plugin_class, params="{}") -> Configured:
    """Parses ``params`` (JSON text or a dict) and configures the plugin; raises ``BadParams``."""
    text = params if isinstance(params, str) else json.dumps(params)
    plugin = plugin_class()
    config = plugin.configure(parse(plugin_class.Params, text))
    return Configured(plugin, config)


def amounts(result) -> list:
    """The amounts of an :class:`Output` or a list of lines, as strings ("1.15")."""
    lines = result.lines if isinstance(result, Output) else result
    if isinstance(lines, RuleError):
        raise lines
    return [str(l.amount) for l in lines]
