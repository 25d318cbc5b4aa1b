"""heatbill-sdk: write heatbill pricing rules in Python.

A plugin is a :class:`Plugin` subclass with a parameter ``@dataclass``; build it into a
WebAssembly component for the ``rules-plugin`` world with ``plugins/python/build.py``. See
``plugins/python/README.md``.

The core (everything but :mod:`heatbill.component`) is pure standard library and imports without
the generated WIT bindings, so plugins are unit-tested natively with ``heatbill.testing``.
"""

from . import bits
from .area import AreaBasis, billed_area
from .columns import Batch, BatchLines
from .errors import BadParams, InvalidInput, MissingInput, RuleError, Unsupported
from .money import (
    ONE, ZERO, div_round, from_fen, from_wit, mul_fen, round_fen, split, to_fen, to_wit,
)
from .params import NoParams, param, parse, schema, schema_json
from .plugin import Plugin
from .season import Accrual, cumulative_share, daily_rate
from .types import (
    Category,
    Configuration,
    CustomerClass,
    Day,
    DayFilter,
    Kind,
    Line,
    LineSpec,
    Output,
    Payer,
    Phase,
    PriorLine,
    Season,
    date_from_days,
    date_to_days,
)

__version__ = "0.2.0"
CONTRACT = "heatbill:rules@0.2.0"

__all__ = [
    "Accrual", "AreaBasis", "BadParams", "Batch", "BatchLines", "Category", "Configuration",
    "CustomerClass", "Day", "DayFilter", "InvalidInput", "Kind", "Line", "LineSpec",
    "MissingInput", "NoParams", "ONE", "Output", "Payer", "Phase", "Plugin", "PriorLine",
    "RuleError", "Season", "Unsupported", "ZERO", "billed_area", "bits", "cumulative_share",
    "daily_rate", "date_from_days", "date_to_days", "from_fen", "from_wit", "mul_fen", "param",
    "parse", "round_fen", "schema", "schema_json", "split", "to_fen", "to_wit", "div_round",
]
