"""The contract's columnar ``day-batch``: row views for ``evaluate``, the columns themselves for
``evaluate_columns``, and the output columns both write into.

Why a rule might want the columns: componentize-py hands every ``list<s64>`` to Python as a list
of Python ints, one object per element, and every attribute a row view reads is a few
interpreted bytecodes more. A rule that runs for every customer (a late fee, a tariff) and reads
two or three columns is several times faster looping over those columns in integers
(:func:`heatbill.money.mul_fen`) than building a ``Decimal`` per value.

Nothing here needs the generated WIT bindings: a batch is read by attribute (any object shaped
like the WIT ``day-batch`` works, e.g. :func:`batch_of`'s), and the output is plain lists that
:mod:`heatbill.component` wraps into the WIT records.
"""

from __future__ import annotations

import datetime
from bisect import bisect_left
from itertools import islice
from operator import gt
from types import SimpleNamespace
from typing import Optional

from . import bits as B
from .errors import RuleError
from .money import from_wit, to_wit
from .types import (
    Category,
    CustomerClass,
    Day,
    Line,
    Output,
    Payer,
    Phase,
    PriorLine,
    Season,
    date_from_days,
    date_to_days,
    day_bits,
)


class Batch:
    """A ``day-batch`` as ``evaluate_columns`` sees it.

    Its columns are the WIT record's fields, unchanged (``batch.dates``, ``batch.bits``,
    ``batch.arrears.units``, ``batch.arrears.scales``, ``batch.arrears_since``, …; dates are days
    since 1970-01-01, decimals ``units[i] × 10^-scales[i]``, absent values 0 with their presence
    bit clear: see ``day-batch`` in wit/rules.wit). ``batch.row(i)`` is row i as a :class:`Day`
    view, for the rare row a columnar rule wants to read in full.
    """

    __slots__ = ("raw", "len", "_line_starts", "_categories", "_tags", "_attributes")

    def __init__(self, raw):
        self.raw = raw
        self.len = raw.len
        self._line_starts = None
        self._categories = None
        self._tags = None
        self._attributes = None

    def __getattr__(self, name):
        return getattr(self.raw, name)

    def __len__(self) -> int:
        return self.len

    def row(self, i: int) -> "Row":
        return Row(self, i)

    def rows(self):
        """Every row, as :class:`Day` views."""
        return [Row(self, i) for i in range(self.len)]

    # Per-batch indexes, built on first use: a rule that never reads prior lines, tags or
    # attributes never pays for them.
    def line_starts(self) -> list:
        """Where each row's prior lines start: row i's are ``starts[i]:starts[i + 1]`` of the
        ``prior_lines`` columns (``len + 1`` entries; the contract keeps lines
        in row order)."""
        starts = self._line_starts
        if starts is None:
            rows, n = self.raw.prior_lines.rows, self.len
            k = len(rows) // n if n else 0
            every = list(range(n))
            if k and len(rows) == k * n and rows[::k] == every and (k == 1 or rows[k - 1::k] == every):
                # Every row has k lines (a chain's tariffs bill every day alike): no search.
                starts = list(range(0, k * n + 1, k))
            else:
                starts = [bisect_left(rows, i) for i in range(n + 1)]
            self._line_starts = starts
        return starts

    def line_range(self, i: int) -> range:
        starts = self.line_starts()
        return range(starts[i], starts[i + 1])

    def prior_categories(self) -> list:
        """The category of each prior kind, as ints (the :class:`Category` values): the category
        of prior line j is ``prior_categories()[batch.prior_lines.kinds[j]]``."""
        cats = self._categories
        if cats is None:
            cats = self._categories = [
                k.category.value if hasattr(k.category, "value") else int(k.category)
                for k in self.raw.prior_kinds
            ]
        return cats

    def tags_of(self, i: int) -> tuple:
        if self._tags is None:
            texts, tags = self.raw.texts, {}
            for r, t in self.raw.tags:
                tags.setdefault(r, []).append(texts[t])
            self._tags = tags
        return tuple(self._tags.get(i, ()))

    def attributes_of(self, i: int) -> dict:
        if self._attributes is None:
            texts, attrs = self.raw.texts, {}
            for r, k, v in self.raw.attributes:
                attrs.setdefault(r, {})[texts[k]] = texts[v]
            self._attributes = attrs
        return dict(self._attributes.get(i, {}))


def _opt(col, i: int, present: bool):
    return from_wit(col.units[i], col.scales[i]) if present else None


class Row:
    """Row ``i`` of a batch with the attributes of a :class:`Day`, each read from its column
    when touched."""

    __slots__ = ("_b", "_i", "bits")

    def __init__(self, batch: Batch, i: int):
        self._b = batch
        self._i = i
        self.bits = batch.raw.bits[i]

    date = property(lambda s: date_from_days(s._b.raw.dates[s._i]))
    customer_class = property(
        lambda s: CustomerClass.NON_RESIDENTIAL if s.bits & B.NON_RESIDENTIAL else CustomerClass.RESIDENTIAL
    )
    suspended = property(lambda s: bool(s.bits & B.SUSPENDED))
    metered = property(lambda s: bool(s.bits & B.METERED))
    low_income = property(lambda s: bool(s.bits & B.LOW_INCOME))
    building_area = property(lambda s: _opt(s._b.raw.building_area, s._i, True))
    usable_area = property(lambda s: _opt(s._b.raw.usable_area, s._i, s.bits & B.HAS_USABLE_AREA))
    ceiling_height = property(lambda s: _opt(s._b.raw.ceiling_height, s._i, s.bits & B.HAS_CEILING_HEIGHT))
    heat = property(lambda s: _opt(s._b.raw.heat, s._i, s.bits & B.HAS_HEAT))
    indoor_temperature = property(
        lambda s: _opt(s._b.raw.indoor_temperature, s._i, s.bits & B.HAS_INDOOR_TEMPERATURE)
    )
    arrears = property(lambda s: _opt(s._b.raw.arrears, s._i, True))
    tags = property(lambda s: s._b.tags_of(s._i))
    attributes = property(lambda s: s._b.attributes_of(s._i))

    @property
    def special_class(self) -> Optional[str]:
        s = self._b.raw.special_class[self._i]
        return self._b.raw.texts[s - 1] if s else None

    @property
    def arrears_since(self) -> Optional[datetime.date]:
        if not self.bits & B.HAS_ARREARS_SINCE:
            return None
        return date_from_days(self._b.raw.arrears_since[self._i])

    @property
    def season(self) -> Optional[Season]:
        if not self.bits & B.HAS_SEASON:
            return None
        raw, i = self._b.raw, self._i
        return Season(
            Phase(raw.season_phase[i]),
            raw.season_day_index[i],
            raw.season_days[i],
            bool(self.bits & B.SEASON_CHARGED),
        )

    @property
    def prior_lines(self) -> list:
        raw = self._b.raw
        p, kinds = raw.prior_lines, raw.prior_kinds
        out = []
        for j in self._b.line_range(self._i):
            k = kinds[p.kinds[j]]
            su, ss = p.season_amount.units[j], p.season_amount.scales[j]
            out.append(
                PriorLine(
                    k.code,
                    k.entry,
                    Category(k.category.value if hasattr(k.category, "value") else k.category),
                    from_wit(p.quantity.units[j], p.quantity.scales[j]),
                    from_wit(p.unit_price.units[j], p.unit_price.scales[j]),
                    from_wit(p.amount.units[j], p.amount.scales[j]),
                    Payer(p.payers[j]),
                    from_wit(su, ss) if su else None,
                )
            )
        return out

    def __repr__(self) -> str:
        return "Row(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in Day.__slots__) + ")"


class BatchLines:
    """The output columns of a batch: lines in row order, refusals, season positions.

    ``evaluate_columns(batch, out)`` calls :meth:`add` for each line (rows ascending) and
    :meth:`error` for each refused row; a row with an error keeps no lines.
    """

    def __init__(self, n: int):
        self.n = n
        self.rows: list = []
        self.kinds: list = []
        self.payers = bytearray()
        self.quantity = ([], bytearray())
        self.unit_price = ([], bytearray())
        self.amount = ([], bytearray())
        self.season_amount = ([], bytearray())
        self.errors: list = []  # (row, RuleError)
        self.seasons: Optional[dict] = None  # row -> Season

    def add(self, row: int, kind: int, quantity, unit_price, amount,
            payer: Payer = Payer.CUSTOMER, season_amount=None) -> None:
        """A line for ``row``. Decimals are ``Decimal`` or ``(units, scale)`` pairs; ``amount``
        whole fen (``(fen, 2)`` on an integer fast path)."""
        q = to_wit(quantity, "quantity")
        p = to_wit(unit_price, "unit price")
        a = to_wit(amount, "amount")
        s = (0, 0) if season_amount is None else to_wit(season_amount, "season amount")
        self.rows.append(row)
        self.kinds.append(kind)
        self.payers.append(payer)
        for col, (u, sc) in ((self.quantity, q), (self.unit_price, p), (self.amount, a),
                             (self.season_amount, s)):
            col[0].append(u)
            col[1].append(sc)

    def extend(self, rows: list, kinds: list, payers: bytes, quantity, unit_price, amount,
               season_amount=None) -> None:
        """Adds many lines at once, column by column: the fast path's :meth:`add`. Decimal columns
        are ``(units, scales)`` pairs (a list of ints, a bytes-like of scales), each value already
        what the contract carries (s64 units, scale 0..=18, amounts whole fen: not checked);
        ``season_amount`` None for none. Rows need not be in order (:meth:`finish` sorts)."""
        self.rows += rows
        self.kinds += kinds
        self.payers += payers
        for col, (u, sc) in ((self.quantity, quantity), (self.unit_price, unit_price),
                             (self.amount, amount)):
            col[0].extend(u)
            col[1].extend(sc)
        if season_amount is None:
            self.season_amount[0].extend([0] * len(rows))
            self.season_amount[1].extend(bytes(len(rows)))
        else:
            self.season_amount[0].extend(season_amount[0])
            self.season_amount[1].extend(season_amount[1])

    def add_line(self, row: int, line: Line) -> None:
        self.add(row, line.kind, line.quantity, line.unit_price, line.amount, line.payer,
                 line.season_amount)

    def error(self, row: int, error: RuleError) -> None:
        """Refuses ``row`` (its lines, if any were added, are dropped)."""
        self.errors.append((row, error))

    def season(self, row: int, season: Season) -> None:
        """Sets ``row``'s season position (season plugins)."""
        if self.seasons is None:
            self.seasons = {}
        self.seasons[row] = season

    def add_result(self, row: int, result) -> None:
        """Adds what ``evaluate`` returned for ``row``: lines, an :class:`Output`, or None."""
        if result is None:
            return
        if isinstance(result, Output):
            if result.season is not None:
                self.season(row, result.season)
            result = result.lines
        for line in result:
            self.add_line(row, line)

    def finish(self) -> "BatchLines":
        """Drops the lines of refused rows and puts lines in row order (stable)."""
        if self.errors:
            self.errors.sort(key=lambda e: e[0])
            bad = {r for r, _ in self.errors}
            keep = [j for j, r in enumerate(self.rows) if r not in bad]
            if len(keep) != len(self.rows):
                self._select(keep)
        rows = self.rows
        if any(map(gt, rows, islice(rows, 1, None))):  # in C: this runs per batch
            self._select(sorted(range(len(self.rows)), key=self.rows.__getitem__))
        return self

    def _select(self, idx: list) -> None:
        self.rows = [self.rows[j] for j in idx]
        self.kinds = [self.kinds[j] for j in idx]
        self.payers = bytearray(self.payers[j] for j in idx)
        for name in ("quantity", "unit_price", "amount", "season_amount"):
            u, s = getattr(self, name)
            setattr(self, name, ([u[j] for j in idx], bytearray(s[j] for j in idx)))

    def season_columns(self):
        """``(phase, day_index, season_days, charged)`` columns, or None without seasons."""
        if self.seasons is None:
            return None
        cols = (bytearray(), [], [], bytearray())
        outside = Season(Phase.OUTSIDE, 0, 0, False)
        for i in range(self.n):
            s = self.seasons.get(i, outside)
            cols[0].append(s.phase)
            cols[1].append(s.day_index)
            cols[2].append(s.season_days)
            cols[3].append(1 if s.charged else 0)
        return cols

    def results(self) -> list:
        """Per row: a list of :class:`Line` or a :class:`RuleError` (for tests)."""
        out: list = [[] for _ in range(self.n)]
        for j, r in enumerate(self.rows):
            dec = lambda c: from_wit(c[0][j], c[1][j])
            sa = from_wit(self.season_amount[0][j], self.season_amount[1][j]) if self.season_amount[0][j] else None
            out[r].append(Line(self.kinds[j], dec(self.quantity), dec(self.unit_price),
                               dec(self.amount), Payer(self.payers[j]), sa))
        for r, e in self.errors:
            out[r] = e
        return out


def has_columns(plugin) -> bool:
    """Whether the plugin defines the columnar fast path."""
    from .plugin import Plugin

    return type(plugin).evaluate_columns is not Plugin.evaluate_columns


def has_rows(plugin) -> bool:
    from .plugin import Plugin

    return type(plugin).evaluate is not Plugin.evaluate


def evaluate_batch(plugin, raw) -> BatchLines:
    """The SDK's ``evaluate-batch``: the columnar path when the plugin has one, else ``evaluate``
    per row view. A :class:`RuleError` refuses its row; any other exception propagates (a bug)."""
    batch = Batch(raw)
    out = BatchLines(batch.len)
    if has_columns(plugin):
        try:
            plugin.evaluate_columns(batch, out)
        except RuleError as e:
            # Raised for the batch as a whole rather than per row (out.error): every row.
            out = BatchLines(batch.len)
            for i in range(batch.len):
                out.error(i, e)
        return out.finish()
    evaluate = plugin.evaluate
    for i in range(batch.len):
        try:
            # A line the contract cannot carry refuses its row; finish() drops its lines.
            out.add_result(i, evaluate(Row(batch, i)))
        except RuleError as e:
            out.error(i, e)
    return out.finish()


def evaluate_day(plugin, day) -> Output:
    """The SDK's single-day ``evaluate``: ``evaluate`` when the plugin has it, else the columnar
    path on a batch of this one day. Raises the plugin's :class:`RuleError`."""
    if has_rows(plugin):
        result = plugin.evaluate(day)
        if result is None:
            return Output([])
        if isinstance(result, Output):
            return Output(list(result.lines), result.season)
        return Output(list(result))
    out = evaluate_batch(plugin, batch_of([day]))
    if out.errors:
        raise out.errors[0][1]
    lines = out.results()[0]
    season = out.seasons.get(0) if out.seasons else None
    return Output(lines, season)


# ---- encoding rows into a batch (the host's side; for single-day evaluate and tests) ---------


def _column(values) -> SimpleNamespace:
    units, scales = [], bytearray()
    for v in values:
        u, s = (0, 0) if v is None else to_wit(v)
        units.append(u)
        scales.append(s)
    return SimpleNamespace(units=units, scales=bytes(scales))


def batch_of(days) -> SimpleNamespace:
    """A ``day-batch``-shaped object holding ``days`` (:class:`Day` or row views), laid out as
    the host lays out a batch: what a test feeds :func:`evaluate_batch`."""
    days = list(days)
    texts: list = []
    index: dict = {}

    def text(s: str) -> int:
        if s not in index:
            index[s] = len(texts)
            texts.append(s)
        return index[s]

    kinds: list = []
    kind_index: dict = {}
    lines = SimpleNamespace(rows=[], kinds=[], payers=bytearray())
    lq, lp, la, ls = [], [], [], []
    tags, attributes = [], []
    for i, d in enumerate(days):
        for t in d.tags:
            tags.append((i, text(t)))
        for k, v in d.attributes.items():
            attributes.append((i, text(k), text(v)))
        for pl in d.prior_lines:
            key = (pl.code, pl.entry, int(pl.category))
            if key not in kind_index:
                kind_index[key] = len(kinds)
                kinds.append(SimpleNamespace(code=pl.code, entry=pl.entry, category=Category(pl.category)))
            lines.rows.append(i)
            lines.kinds.append(kind_index[key])
            lines.payers.append(int(pl.payer))
            lq.append(pl.quantity)
            lp.append(pl.unit_price)
            la.append(pl.amount)
            ls.append(pl.season_amount)
    lines.payers = bytes(lines.payers)
    lines.quantity, lines.unit_price = _column(lq), _column(lp)
    lines.amount, lines.season_amount = _column(la), _column(ls)
    seasons = [d.season for d in days]
    return SimpleNamespace(
        len=len(days),
        dates=[date_to_days(d.date) for d in days],
        bits=[day_bits(d) for d in days],
        special_class=[0 if d.special_class is None else 1 + text(d.special_class) for d in days],
        building_area=_column(d.building_area for d in days),
        usable_area=_column(d.usable_area for d in days),
        ceiling_height=_column(d.ceiling_height for d in days),
        heat=_column(d.heat for d in days),
        indoor_temperature=_column(d.indoor_temperature for d in days),
        arrears=_column(d.arrears for d in days),
        arrears_since=[0 if d.arrears_since is None else date_to_days(d.arrears_since) for d in days],
        season_phase=bytes(0 if s is None else int(s.phase) for s in seasons),
        season_day_index=[0 if s is None else s.day_index for s in seasons],
        season_days=[0 if s is None else s.season_days for s in seasons],
        texts=texts,
        tags=tags,
        attributes=attributes,
        prior_lines=lines,
        prior_kinds=kinds,
    )
