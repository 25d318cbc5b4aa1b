"""{{name}}: a flat fee per heating day. A starting point: replace the rule, keep the shape.

Build:  heatbill plugin build <this directory>      (-> target/{{name}}.wasm)
Test:   heatbill plugin test <this directory> --profile interpreted --cases <this directory>/cases
Unit:   PYTHONPATH=vendor/heatbill-kit/sdk:. python3 -m unittest discover -s tests
"""

from dataclasses import dataclass
from decimal import Decimal

import heatbill
from heatbill import BadParams, Category, Configuration, Line, param, round_fen


@dataclass
class Params:
    """The parameters of `{{name}}`."""

    # The dataclass is the parameter parser and the JSON Schema the host validates chains
    # against; `doc` is what integrators read in forms, so give the unit and an example.
    amount: Decimal = param(doc='Yuan per heating day, e.g. "1.50".')
    code: str = param("fee", doc='The line\'s code on the bill (default "fee").')
    description: str = param("服务费", doc='The line\'s text on the bill (default "服务费").')


class Plugin(heatbill.Plugin):
    Params = Params

    def configure(self, p: Params) -> Configuration:
        # Runs once per instance: refuse bad values here, with the fix in the message, and
        # precompute, so evaluate does as little as possible per customer.
        if p.amount < 0:
            raise BadParams(f'`amount` is {p.amount}: a fee is not negative; give e.g. "1.50"')
        self.amount = round_fen(p.amount)
        config = Configuration()  # every customer-day; narrow it with applies_to=DayFilter...
        self.line = config.add_line(p.code, p.description, "day", Category.OTHER)
        return config

    def evaluate(self, day) -> list:
        # No season position (no season plugin earlier in the chain) or outside the season:
        # not a heating day, no fee.
        if day.season is None or day.season.phase == heatbill.Phase.OUTSIDE:
            return []
        return [Line(self.line, quantity=Decimal(1), unit_price=self.amount, amount=self.amount)]
