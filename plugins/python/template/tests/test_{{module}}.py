"""Native unit tests of {{name}}: PYTHONPATH=vendor/heatbill-kit/sdk:. python3 -m unittest discover -s tests"""

import unittest

from heatbill import Phase, Season
from heatbill.testing import amounts, configure, day

from {{module}} import Plugin


class Test(unittest.TestCase):
    def test_a_heating_day_is_charged(self):
        fee = configure(Plugin, {"amount": "1.50"})
        d = day("2025-11-15", season=Season(Phase.REGULAR, 27, 183, False))
        self.assertEqual(amounts(fee.evaluate(d)), ["1.50"])

    def test_no_fee_outside_the_season(self):
        fee = configure(Plugin, {"amount": "1.50"})
        self.assertEqual(amounts(fee.evaluate(day("2025-10-19"))), [])


if __name__ == "__main__":
    unittest.main()
