"""The component's exports: wires a :class:`heatbill.Plugin` to the ``exports.Rules`` protocol
componentize-py generates for the ``rules-plugin`` world.

Only this module imports the generated bindings (``wit_world``); ``build.py`` generates the
entry module that calls :func:`export`. The configured plugin lives in a module global: the host
configures an instance once and calls it for the instance's life.

A :class:`RuleError` becomes the contract's ``rule-error``; any other exception is a bug in the
plugin: it propagates, its full traceback goes to stderr (the host keeps stderr in the plugin log)
and the instance traps.
"""

from __future__ import annotations

import sys
import traceback

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types as t

from . import columns
from .errors import RuleError, Unsupported, truncate
from .params import parse, schema_json
from .types import Day, PriorLine, Season, CustomerClass, Category, Payer, Phase

_ERRORS = {
    "bad-params": t.RuleError_BadParams,
    "missing-input": t.RuleError_MissingInput,
    "invalid-input": t.RuleError_InvalidInput,
    "unsupported": t.RuleError_Unsupported,
}
_EMPTY = t.DecimalColumn(units=[], scales=b"")


def _wit_error(e: RuleError):
    return _ERRORS[e.kind](truncate(str(e.message)))


def _bug() -> None:
    """A bug's traceback, for the plugin log. In the component, componentize-py's runtime prints
    the traceback of any exception that escapes an export before it traps (0.25.1 does, measured:
    printing here too doubled every traceback in the log), so the SDK prints only where nothing
    else will: natively, where this module runs under the kit's tests."""
    if sys.platform != "wasi":
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()


def _not_configured() -> Unsupported:
    return Unsupported("the plugin is not configured: the host must call `configure` before `evaluate`")


def _dec(d) -> t.Decimal:
    u, s = d
    return t.Decimal(units=u, scale=s)


def _wit_line(line) -> t.Line:
    from .money import to_wit

    return t.Line(
        spec=line.kind,
        quantity=_dec(to_wit(line.quantity, "quantity")),
        unit_price=_dec(to_wit(line.unit_price, "unit price")),
        amount=_dec(to_wit(line.amount, "amount")),
        payer=t.Payer(int(line.payer)),
        season_amount=None if line.season_amount is None else _dec(to_wit(line.season_amount, "season amount")),
    )


def _wit_season(s: Season) -> t.SeasonDay:
    return t.SeasonDay(phase=t.SeasonPhase(int(s.phase)), day_index=s.day_index,
                       season_days=s.season_days, charged=bool(s.charged))


def _date(d):
    import datetime

    return datetime.date(d.year, d.month, d.day)


def _opt(d):
    from .money import from_wit

    return None if d is None else from_wit(d.units, d.scale)


def day_from_wit(cd) -> Day:
    """A WIT ``customer-day`` as a :class:`Day`."""
    from .money import from_wit

    flags = cd.flags.value
    return Day(
        date=_date(cd.date),
        customer_class=CustomerClass(cd.class_.value),
        special_class=cd.special_class,
        suspended=cd.status.value == 1,
        metered=bool(flags & t.CustomerFlags.METERED.value),
        low_income=bool(flags & t.CustomerFlags.LOW_INCOME.value),
        building_area=from_wit(cd.building_area.units, cd.building_area.scale),
        usable_area=_opt(cd.usable_area),
        ceiling_height=_opt(cd.ceiling_height),
        heat=_opt(cd.heat),
        indoor_temperature=_opt(cd.indoor_temperature),
        arrears=from_wit(cd.arrears.units, cd.arrears.scale),
        arrears_since=None if cd.arrears_since is None else _date(cd.arrears_since),
        season=None if cd.season is None else Season(
            Phase(cd.season.phase.value), cd.season.day_index, cd.season.season_days, cd.season.charged),
        tags=tuple(cd.tags),
        attributes={a.key: a.value for a in cd.attributes},
        prior_lines=[
            PriorLine(p.code, p.entry, Category(p.category.value), _opt(p.quantity), _opt(p.unit_price),
                      _opt(p.amount), Payer(p.payer.value),
                      None if p.season_amount is None or p.season_amount.units == 0 else _opt(p.season_amount))
            for p in cd.prior_lines
        ],
    )


def _column(c) -> t.DecimalColumn:
    return t.DecimalColumn(units=c[0], scales=bytes(c[1]))


def _batch_output(out: columns.BatchLines) -> t.BatchOutput:
    season = out.season_columns()
    return t.BatchOutput(
        lines=t.LineColumn(
            rows=out.rows,
            kinds=out.kinds,
            payers=bytes(out.payers),
            quantity=_column(out.quantity),
            unit_price=_column(out.unit_price),
            amount=_column(out.amount),
            season_amount=_column(out.season_amount),
        ),
        errors=[t.RowError(row=r, error=_wit_error(e)) for r, e in out.errors],
        season=None if season is None else t.SeasonColumn(
            phase=bytes(season[0]), day_index=season[1], season_days=season[2], charged=bytes(season[3])),
    )


def export(plugin_class, meta: dict):
    """The ``Rules`` class componentize-py exports, for ``plugin_class`` described by ``meta``
    (name, version, kind, description: from the plugin's pyproject.toml)."""
    from .types import Kind

    info = t.PluginInfo(
        name=meta["name"],
        version=meta["version"],
        kind=t.PluginKind(int(Kind.parse(meta["kind"]))),
        description=meta["description"],
        # Derived at import time, which componentize-py runs when it builds the component: the
        # schema is part of the snapshot, not recomputed per instance.
        params_schema=schema_json(plugin_class.Params),
    )
    state = {"plugin": None}

    class Rules(exports.Rules):
        def describe(self) -> t.PluginInfo:
            return info

        def configure(self, params: str) -> t.Configuration:
            if state["plugin"] is not None:
                raise Err(t.RuleError_BadParams(
                    "this instance is already configured: instantiate the plugin again to configure it differently"))
            try:
                plugin = plugin_class()
                config = plugin.configure(parse(plugin_class.Params, params))
            except RuleError as e:
                error = e
            except BaseException:
                _bug()
                raise
            else:
                state["plugin"] = plugin
                return t.Configuration(
                    lines=[t.LineSpec(code=s.code, description=s.description, unit=s.unit,
                                      category=t.LineCategory(int(s.category))) for s in config.lines],
                    applies_to=t.DayFilter(all_of=config.applies_to.all_of, none_of=config.applies_to.none_of),
                )
            raise Err(_wit_error(error))

        def evaluate(self, day: t.CustomerDay) -> t.DayOutput:
            plugin = state["plugin"]
            try:
                if plugin is None:
                    raise _not_configured()
                out = columns.evaluate_day(plugin, day_from_wit(day))
                result = t.DayOutput(lines=[_wit_line(l) for l in out.lines],
                                     season=None if out.season is None else _wit_season(out.season))
            except RuleError as e:
                error = e
            except BaseException:
                _bug()
                raise
            else:
                return result
            raise Err(_wit_error(error))

        def evaluate_batch(self, batch: t.DayBatch) -> t.BatchOutput:
            plugin = state["plugin"]
            try:
                if plugin is None:
                    out = columns.BatchLines(batch.len)
                    for i in range(batch.len):
                        out.error(i, _not_configured())
                else:
                    out = columns.evaluate_batch(plugin, batch)
                return _batch_output(out)
            except BaseException:
                _bug()
                raise

    Rules.__name__ = Rules.__qualname__ = "Rules"
    return Rules
