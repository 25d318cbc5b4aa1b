"""The values a plugin reads and returns, as plain Python: ``Decimal`` for money and quantities,
``datetime.date`` for dates, enums whose values are the WIT case indices.

A plugin sees a customer-day as a :class:`Day` (or a batch row with the same attributes, read
lazily from the columns) and returns :class:`Line` values; ``configure`` returns a
:class:`Configuration` that announces the kinds of line and the :class:`DayFilter`.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from enum import IntEnum
from typing import NamedTuple, Optional

from . import bits as _bits
from .money import ZERO

_EPOCH = datetime.date(1970, 1, 1).toordinal()


def date_from_days(days: int) -> datetime.date:
    """A date from days since 1970-01-01 (the batch's ``date32`` columns)."""
    return datetime.date.fromordinal(_EPOCH + days)


def date_to_days(d: datetime.date) -> int:
    """Days since 1970-01-01: compare these with a batch's ``dates`` column."""
    return d.toordinal() - _EPOCH


class WitEnum(IntEnum):
    """An enum of the contract: the value is the WIT case index (the batch columns' encoding),
    ``wit`` the WIT name used in parameters and case files ("base-fee")."""

    @property
    def wit(self) -> str:
        return self.name.lower().replace("_", "-")

    @classmethod
    def parse(cls, name: str):
        for case in cls:
            if case.wit == name:
                return case
        raise ValueError(name)


class Payer(WitEnum):
    CUSTOMER = 0
    GOVERNMENT = 1
    EMPLOYER = 2


class CustomerClass(WitEnum):
    RESIDENTIAL = 0
    NON_RESIDENTIAL = 1


class Phase(WitEnum):
    OUTSIDE = 0
    REGULAR = 1
    EARLY = 2
    EXTENDED = 3


class Category(WitEnum):
    HEATING = 0
    CONSUMPTION = 1
    BASE_FEE = 2
    SUBSIDY = 3
    REFUND = 4
    LATE_FEE = 5
    OTHER = 6


class Kind(WitEnum):
    SEASON = 0
    TARIFF = 1
    SUBSIDY = 2
    FEE = 3


class Season(NamedTuple):
    """The bill date's place in the heating season (``season-day``)."""

    phase: Phase
    day_index: int
    season_days: int
    charged: bool


class PriorLine(NamedTuple):
    """A line an earlier plugin of the chain produced for this customer-day."""

    code: str
    entry: int
    category: Category
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    payer: Payer
    season_amount: Optional[Decimal] = None


class Line(NamedTuple):
    """A line the plugin adds. ``kind`` is what ``Configuration.add_line`` returned; ``amount``
    must be whole fen (use ``round_fen``). Decimals are ``Decimal`` (or ``(units, scale)``
    pairs on a fast path). ``season_amount``: the season fee this line is one day's share of."""

    kind: int
    quantity: object
    unit_price: object
    amount: object
    payer: Payer = Payer.CUSTOMER
    season_amount: object = None


class Output(NamedTuple):
    """What ``evaluate`` returns when it also sets a season position (a season plugin); other
    plugins return a list of lines (or an empty list)."""

    lines: list
    season: Optional[Season] = None


class LineSpec(NamedTuple):
    """A kind of line, announced once in ``configure``."""

    code: str
    description: str
    unit: str
    category: Category


class DayFilter(NamedTuple):
    """Which customer-days the host sends (see ``day-filter`` in the contract): those with every
    bit of ``all_of`` and none of ``none_of``. A promise: outside it, ``evaluate`` returns no
    lines. ``DayFilter.ALL`` is every customer-day."""

    all_of: int = 0
    none_of: int = 0

    def require(self, bits: int) -> "DayFilter":
        return DayFilter(self.all_of | bits, self.none_of)

    def exclude(self, bits: int) -> "DayFilter":
        return DayFilter(self.all_of, self.none_of | bits)

    def matches(self, bits: int) -> bool:
        return bits & self.all_of == self.all_of and not bits & self.none_of


DayFilter.ALL = DayFilter()


class Configuration:
    """What ``configure`` returns: the kinds of line, in order, and the customer-days billed."""

    def __init__(self, applies_to: DayFilter = DayFilter.ALL):
        self.lines: list[LineSpec] = []
        self.applies_to = applies_to

    def add_line(self, code: str, description: str, unit: str, category: Category) -> int:
        """Announces a kind of line; the returned index is the ``kind`` of its lines."""
        self.lines.append(LineSpec(code, description, unit, Category(category)))
        return len(self.lines) - 1


class Day:
    """One customer on one bill date: everything a rule may know (no identity, no clock).

    ``evaluate`` receives a ``Day``, or in a batch a row view with exactly these attributes
    (read from the columns when first touched, so unread fields cost nothing).
    """

    __slots__ = (
        "date", "customer_class", "special_class", "suspended", "metered", "low_income",
        "building_area", "usable_area", "ceiling_height", "heat", "indoor_temperature",
        "arrears", "arrears_since", "season", "tags", "attributes", "prior_lines",
    )

    def __init__(
        self,
        date: datetime.date,
        customer_class: CustomerClass = CustomerClass.RESIDENTIAL,
        special_class: Optional[str] = None,
        suspended: bool = False,
        metered: bool = False,
        low_income: bool = False,
        building_area: Decimal = ZERO,
        usable_area: Optional[Decimal] = None,
        ceiling_height: Optional[Decimal] = None,
        heat: Optional[Decimal] = None,
        indoor_temperature: Optional[Decimal] = None,
        arrears: Decimal = ZERO,
        arrears_since: Optional[datetime.date] = None,
        season: Optional[Season] = None,
        tags: tuple = (),
        attributes: Optional[dict] = None,
        prior_lines: Optional[list] = None,
    ):
        self.date = date
        self.customer_class = customer_class
        self.special_class = special_class
        self.suspended = suspended
        self.metered = metered
        self.low_income = low_income
        self.building_area = building_area
        self.usable_area = usable_area
        self.ceiling_height = ceiling_height
        self.heat = heat
        self.indoor_temperature = indoor_temperature
        self.arrears = arrears
        self.arrears_since = arrears_since
        self.season = season
        self.tags = tuple(tags)
        self.attributes = dict(attributes or {})
        self.prior_lines = list(prior_lines or [])

    @property
    def bits(self) -> int:
        """The customer-day's ``day-bits``, as a ``DayFilter`` tests them."""
        return day_bits(self)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"Day({fields})"


def day_bits(day) -> int:
    """The ``day-bits`` of a day (or a row view)."""
    b = 0
    if day.customer_class == CustomerClass.NON_RESIDENTIAL:
        b |= _bits.NON_RESIDENTIAL
    if day.suspended:
        b |= _bits.SUSPENDED
    if day.metered:
        b |= _bits.METERED
    if day.low_income:
        b |= _bits.LOW_INCOME
    if day.usable_area is not None:
        b |= _bits.HAS_USABLE_AREA
    if day.ceiling_height is not None:
        b |= _bits.HAS_CEILING_HEIGHT
    if day.heat is not None:
        b |= _bits.HAS_HEAT
    if day.indoor_temperature is not None:
        b |= _bits.HAS_INDOOR_TEMPERATURE
    if day.arrears_since is not None:
        b |= _bits.HAS_ARREARS_SINCE
    if day.season is not None:
        b |= _bits.HAS_SEASON
        if day.season.charged:
            b |= _bits.SEASON_CHARGED
    return b
