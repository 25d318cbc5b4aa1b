"""Native unit tests of the Python SDK and the kit's plugins.

    PYTHONPATH=plugins/python/sdk python3 -m unittest discover -s plugins/python/tests

The tests of the component adapter (heatbill.component) need the generated WIT bindings: they
generate them with the kit's toolchain (plugins/python/.toolchain, made by build.py) into a temp
directory, and are skipped when it is not installed.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import importlib.util
import io
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
import unittest
from contextlib import redirect_stderr
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Literal

KIT = Path(__file__).resolve().parent.parent
REPO = KIT.parent.parent
for sub in ("sdk", "late-fee", "low-income-subsidy"):
    if str(KIT / sub) not in sys.path:
        sys.path.insert(0, str(KIT / sub))

import heatbill  # noqa: E402
from heatbill import (  # noqa: E402
    BadParams, Category, CustomerClass, Day, InvalidInput, MissingInput, Payer, Phase, PriorLine,
    Season, bits, columns, cumulative_share, daily_rate, from_fen, from_wit, mul_fen, param,
    round_fen, to_fen, to_wit,
)
from heatbill.testing import amounts, configure, day, prior, regular  # noqa: E402
from late_fee import LateFee  # noqa: E402
from low_income_subsidy import LowIncomeSubsidy  # noqa: E402

D = Decimal


class Decimals(unittest.TestCase):
    def test_round_half_up_both_signs(self):
        for x, want in [("3.768", "3.77"), ("1.005", "1.01"), ("-1.005", "-1.01"), ("1.0049", "1.00"),
                        ("1.1496", "1.15"), ("-0.125", "-0.13"), ("0.125", "0.13"), ("2.5", "2.50")]:
            self.assertEqual(str(round_fen(D(x))), want, x)

    def test_fen(self):
        self.assertEqual(to_fen(D("12.5")), 1250)
        self.assertEqual(to_fen(D("-0.125")), -13)
        self.assertEqual(from_fen(1256), D("12.56"))
        self.assertEqual(str(from_fen(-942)), "-9.42")

    def test_mul_fen_matches_decimal_rounding(self):
        for a, b in [("60.00", "38.32"), ("80.55", "0.18"), ("1.20", "44.45"), ("1149.60", "0.001"),
                     ("-12.56", "0.30"), ("0.005", "1"), ("-0.005", "1"), ("100", "47.197"),
                     ("123456789.123456789", "987654321.987654321"), ("0.000000000000000001", "0.5")]:
            (au, as_), (bu, bs) = heatbill.split(D(a)), heatbill.split(D(b))
            self.assertEqual(from_fen(mul_fen(au, as_, bu, bs)), round_fen(D(a) * D(b)), f"{a} × {b}")

    def test_wit_conversions(self):
        self.assertEqual(from_wit(3832, 2), D("38.32"))
        self.assertEqual(to_wit(D("38.32")), (3832, 2))
        self.assertEqual(to_wit(D("0.001")), (1, 3))
        self.assertEqual(to_wit(D("1E+2")), (100, 0))
        self.assertEqual(to_wit(7), (7, 0))
        self.assertEqual(to_wit((115, 2)), (115, 2))
        self.assertEqual(to_wit(D("-9.42")), (-942, 2))
        # Trailing zeros beyond 18 decimals are dropped, not rounded or refused.
        self.assertEqual(to_wit(D("0.0500000000000000000000")), (5, 2))
        # More than 18 real decimals: rounded half up to 18 (an informative unit price).
        self.assertEqual(to_wit(D(1) / D(3)), (333333333333333333, 18))
        self.assertEqual(to_wit(D("0.0000000000000000005")), (1, 18))
        with self.assertRaises(InvalidInput):
            to_wit(D("1E+30"))
        with self.assertRaises(TypeError):
            to_wit(1.15)  # a float is a bug, not a refusal

    def test_cumulative_share_w1_w2(self):
        days = [cumulative_share(D("2299.20"), k, 183) for k in range(1, 184)]
        self.assertEqual(days[:3], [D("12.56"), D("12.57"), D("12.56")])
        self.assertEqual(sum(days), D("2299.20"))
        days = [cumulative_share(D("1920"), k, 121) for k in range(1, 122)]
        self.assertEqual(days[:3], [D("15.87"), D("15.87"), D("15.86")])
        self.assertEqual(sum(days), D("1920"))
        for t, n in [("0.01", 183), ("689.76", 184), ("-9.42", 121), ("123456.78", 151)]:
            self.assertEqual(sum(cumulative_share(D(t), k, n) for k in range(1, n + 1)), D(t), t)
        self.assertEqual(sum(cumulative_share(D("1.005"), k, 3) for k in (1, 2, 3)), D("1.01"))
        for k, n in [(0, 3), (4, 3), (1, 0)]:
            with self.assertRaises(InvalidInput):
                cumulative_share(D(1), k, n)

    def test_daily_rate(self):
        self.assertEqual(daily_rate(D("2299.20"), 183), D("12.56"))
        self.assertEqual(daily_rate(D("689.76"), 183), D("3.77"))
        self.assertEqual(daily_rate(D("0.05"), 2), D("0.03"))
        self.assertEqual(daily_rate(D("-0.05"), 2), D("-0.03"))

    def test_accrual(self):
        A = heatbill.Accrual
        self.assertIsNone(A.of(None).season_share(D("2299.20")))
        self.assertEqual(A.of(regular(2, 183)).season_share(D("2299.20")), D("12.57"))
        self.assertEqual(A.of(Season(Phase.EARLY, 1, 183, True)).season_share(D("2299.20")), D("12.56"))
        self.assertEqual(A.of(Season(Phase.EXTENDED, 183, 183, False)).season_share(D("2299.20")), D("0.00"))
        with self.assertRaises(InvalidInput):
            A.of(regular(184, 183))

    def test_messages_are_cut_to_the_limit(self):
        m = heatbill.errors.truncate("é" * 1000)
        self.assertLessEqual(len(m.encode()), 1000)
        self.assertTrue(m.endswith("…"))


class Kinds(Enum):
    A = "a-kind"
    B = "b-kind"


@dataclasses.dataclass
class Inner:
    """A nested object."""

    rate: Decimal = param(doc="A rate.")
    cls: CustomerClass = param(CustomerClass.RESIDENTIAL)


@dataclasses.dataclass
class Sample:
    """Sample parameters.

    Only the first paragraph is the description."""

    price: Decimal = param(doc='元/m², e.g. "38.32".')
    start: datetime.date = param()
    cap: Decimal | None = param(None)
    flag: bool = param(False)
    count: int = param(3)
    mode: Literal["season", "day"] = param("season")
    kind: Kinds = param(Kinds.A)
    payer: Payer | None = param(None)
    cats: frozenset[Category] = param(frozenset({Category.HEATING}))
    tags: list[str] = param([])
    prices: dict[str, Decimal] = param({})
    inner: Inner | None = param(None)


@dataclasses.dataclass
class ClassPrices:
    """Prices by class."""

    residential: Decimal = param(doc='Homes, e.g. "38.32".')
    non_residential: Decimal = param(key="non-residential", doc='Businesses, e.g. "43.3".')


@dataclasses.dataclass
class Tariff:
    """A tariff with the names tariffs use."""

    prices: ClassPrices = param(doc="Per m² by class.")
    surcharge: dict[CustomerClass, Decimal] = param({}, doc="By class; a class may be left out.")


class Schemas(unittest.TestCase):
    def test_derived_schema(self):
        s = heatbill.schema(Sample)
        self.assertEqual(s["$schema"], "https://json-schema.org/draft/2020-12/schema")
        self.assertEqual((s["type"], s["additionalProperties"]), ("object", False))
        self.assertEqual(s["description"], "Sample parameters.")
        self.assertEqual(s["required"], ["price", "start"])
        p = s["properties"]
        self.assertEqual(p["price"]["format"], "decimal")
        self.assertEqual(p["price"]["type"], "string")
        self.assertEqual(p["price"]["description"], '元/m², e.g. "38.32".')
        self.assertEqual(p["start"]["format"], "date")
        self.assertEqual(p["cap"]["type"], ["string", "null"])
        self.assertEqual(p["flag"], {"type": "boolean", "default": False})
        self.assertEqual(p["count"], {"type": "integer", "default": 3})
        self.assertEqual(p["mode"]["enum"], ["season", "day"])
        self.assertEqual(p["kind"]["enum"], ["a-kind", "b-kind"])
        # An optional enum allows null without adding it to the enum: anyOf.
        self.assertEqual(p["payer"]["anyOf"][1], {"type": "null"})
        self.assertEqual(p["payer"]["anyOf"][0]["enum"], ["customer", "government", "employer"])
        self.assertEqual(p["cats"]["items"]["enum"][2], "base-fee")
        self.assertTrue(p["cats"]["uniqueItems"])
        self.assertEqual(p["cats"]["default"], ["heating"])
        self.assertEqual(p["tags"], {"type": "array", "items": {"type": "string"}, "default": []})
        self.assertEqual(p["prices"]["additionalProperties"]["format"], "decimal")
        inner = p["inner"]["anyOf"][0] if "anyOf" in p["inner"] else p["inner"]
        self.assertEqual(inner["additionalProperties"], False)
        self.assertEqual(inner["required"], ["rate"])
        json.loads(heatbill.schema_json(Sample))

    def test_hyphenated_keys_and_maps_keyed_by_class(self):
        s = heatbill.schema(Tariff)
        prices = s["properties"]["prices"]
        self.assertEqual(prices["required"], ["residential", "non-residential"])
        self.assertEqual(set(prices["properties"]), {"residential", "non-residential"})
        sur = s["properties"]["surcharge"]
        self.assertEqual(set(sur["properties"]), {"residential", "non-residential"})
        self.assertEqual(sur["properties"]["non-residential"]["format"], "decimal")
        self.assertFalse(sur["additionalProperties"])
        self.assertNotIn("required", sur)
        t = heatbill.parse(
            Tariff,
            '{"prices": {"residential": "38.32", "non-residential": "43.3"},'
            ' "surcharge": {"non-residential": "0.03"}}',
        )
        self.assertEqual((t.prices.residential, t.prices.non_residential), (D("38.32"), D("43.3")))
        self.assertEqual(t.surcharge, {CustomerClass.NON_RESIDENTIAL: D("0.03")})

        def err(text):
            with self.assertRaises(BadParams) as c:
                heatbill.parse(Tariff, text)
            return str(c.exception)

        self.assertIn("missing field `non-residential`", err('{"prices": {"residential": "1"}}'))
        self.assertIn("unknown field `non_residential`", err('{"prices": {"residential": "1", "non_residential": "2"}}'))
        self.assertIn(
            "`surcharge`: unknown customer class `garage`",
            err('{"prices": {"residential": "1", "non-residential": "2"}, "surcharge": {"garage": "1"}}'),
        )
        self.assertIn(
            "`surcharge.residential`",
            err('{"prices": {"residential": "1", "non-residential": "2"}, "surcharge": {"residential": 1}}'),
        )

    def test_no_params(self):
        self.assertEqual(json.loads(heatbill.schema_json(heatbill.NoParams))["additionalProperties"], False)
        self.assertEqual(heatbill.parse(heatbill.NoParams, ""), heatbill.NoParams())
        with self.assertRaises(BadParams):
            heatbill.parse(heatbill.NoParams, '{"x": 1}')

    def test_late_fee_schema_mirrors_the_rust_plugin(self):
        s = heatbill.schema(LateFee.Params)
        self.assertEqual(s["required"], ["daily_rate", "due_date"])
        self.assertEqual(set(s["properties"]), {"daily_rate", "due_date", "max_daily_rate", "code", "description"})
        self.assertEqual(s["properties"]["max_daily_rate"]["type"], ["string", "null"])
        self.assertEqual(s["properties"]["code"]["default"], "late-fee")
        s = heatbill.schema(LowIncomeSubsidy.Params)
        self.assertNotIn("required", s)
        self.assertEqual(s["properties"]["area_basis"]["enum"], ["building", "usable"])
        self.assertEqual(s["properties"]["categories"]["type"], ["array", "null"])

    def test_parse(self):
        p = heatbill.parse(Sample, '{"price": "38.32", "start": "2025-10-20", "cats": ["heating", "base-fee"],'
                                   ' "payer": "government", "kind": "b-kind", "prices": {"x": "1.5"},'
                                   ' "inner": {"rate": "0.03", "cls": "non-residential"}}')
        self.assertEqual(p.price, D("38.32"))
        self.assertEqual(p.start, datetime.date(2025, 10, 20))
        self.assertEqual(p.cats, frozenset({Category.HEATING, Category.BASE_FEE}))
        self.assertEqual((p.payer, p.kind, p.mode), (Payer.GOVERNMENT, Kinds.B, "season"))
        self.assertEqual(p.inner.cls, CustomerClass.NON_RESIDENTIAL)
        self.assertEqual(p.prices, {"x": D("1.5")})

    def test_parse_errors_name_the_key(self):
        def err(text):
            with self.assertRaises(BadParams) as c:
                heatbill.parse(Sample, text)
            return c.exception.message

        self.assertIn("`price`: expected a decimal written as a JSON string", err('{"price": 38.32, "start": "2025-10-20"}'))
        self.assertIn("`start`", err('{"price": "1", "start": "2025-1-1"}'))
        self.assertIn("`start`", err('{"price": "1", "start": "2026-02-29"}'))
        self.assertIn("unknown field `pricee`", err('{"price": "1", "pricee": "2", "start": "2025-10-20"}'))
        self.assertIn("missing field `start`", err('{"price": "1"}'))
        self.assertIn("`inner.rate`", err('{"price": "1", "start": "2025-10-20", "inner": {"rate": "x"}}'))
        self.assertIn('"non-residential"', err('{"price": "1", "start": "2025-10-20", "inner": {"rate": "1", "cls": "shop"}}'))
        self.assertIn("`cats[0]`", err('{"price": "1", "start": "2025-10-20", "cats": ["heat"]}'))
        self.assertIn("not JSON", err('{"price": "1"} x'))


def full_day(i: int) -> Day:
    """A day with every field set (and some unset), varied by i."""
    return Day(
        date=datetime.date(2025, 10, 20) + datetime.timedelta(days=i),
        customer_class=CustomerClass(i % 2),
        special_class="garage" if i % 3 == 0 else None,
        suspended=i % 4 == 1,
        metered=i % 2 == 0,
        low_income=i % 5 == 0,
        building_area=D("75.00") + i,
        usable_area=D("60.00") if i % 2 else None,
        ceiling_height=D("3.81") if i % 3 == 1 else None,
        heat=D("1.2345") if i % 2 == 0 else None,
        indoor_temperature=D("-17.5") if i == 2 else None,
        arrears=D("1149.60") * i,
        arrears_since=datetime.date(2025, 12, 1) if i % 2 else None,
        season=Season(Phase(i % 4), i, 183, i % 2 == 0) if i % 3 else None,
        tags=("district:nangang", f"t{i}") if i % 2 else (),
        attributes={"building": str(i)} if i % 3 == 2 else {},
        prior_lines=[
            PriorLine("heat", 1, Category.HEATING, D("60.00"), D("38.32"), D("12.56"), Payer.CUSTOMER, D("2299.20")),
            PriorLine("heat-government", 1, Category.HEATING, D("60"), D("2.7"), D("0.89"), Payer.GOVERNMENT, None),
        ][: i % 3],
    )


class RowViews(unittest.TestCase):
    def test_round_trip(self):
        days = [full_day(i) for i in range(12)]
        batch = columns.Batch(columns.batch_of(days))
        for i, d in enumerate(days):
            row = batch.row(i)
            for field in Day.__slots__:
                self.assertEqual(getattr(row, field), getattr(d, field), f"row {i} {field}")
            self.assertEqual(row.bits, d.bits)
        # And back: a batch of the row views is the same batch.
        again = columns.batch_of(batch.rows())
        self.assertEqual(vars(again)["bits"], batch.bits)
        self.assertEqual(again.prior_lines.amount.units, batch.prior_lines.amount.units)

    def test_output_columns(self):
        out = columns.BatchLines(3)
        out.add(2, 0, D("1"), D("1.5"), D("1.50"))
        out.add(0, 1, (114960, 2), (1, 3), (115, 2), Payer.CUSTOMER, D("2299.20"))
        out.add(1, 0, D("1"), D("1"), D("1.00"))
        out.error(1, MissingInput("no"))
        out.finish()
        self.assertEqual(out.rows, [0, 2])
        self.assertEqual(out.amount, ([115, 150], bytearray([2, 2])))
        self.assertEqual(out.season_amount, ([229920, 0], bytearray([2, 0])))
        results = out.results()
        self.assertIsInstance(results[1], MissingInput)
        self.assertEqual(results[0][0].season_amount, D("2299.20"))


HARBIN_LATE = {"daily_rate": "0.001", "due_date": "2026-01-01"}


class LateFees(unittest.TestCase):
    def test_w6(self):
        fee = configure(LateFee, HARBIN_LATE)
        out = fee.evaluate(day("2026-01-01", usable_area="60.00", arrears="1149.60", arrears_since="2026-01-01"))
        self.assertEqual(amounts(out), ["1.15"])
        line = out.lines[0]
        self.assertEqual((line.quantity, line.unit_price, line.payer), (D("1149.60"), D("0.001"), Payer.CUSTOMER))
        self.assertEqual(fee.config.lines[0].category, Category.LATE_FEE)
        self.assertEqual(fee.config.lines[0].code, "late-fee")
        self.assertEqual(fee.config.applies_to.all_of, bits.HAS_ARREARS_SINCE)

    def test_w6_january_on_the_principal_only(self):
        fee = configure(LateFee, HARBIN_LATE)
        days = [day(datetime.date(2026, 1, 1) + datetime.timedelta(days=k), arrears="1149.60",
                    arrears_since="2026-01-01") for k in range(31)]
        results = fee.evaluate_batch(days)
        self.assertEqual(sum(l.amount for r in results for l in r), D("35.65"))
        self.assertTrue(all(amounts(r) == ["1.15"] for r in results))

    def test_no_fee_before_due_or_when_not_overdue(self):
        fee = configure(LateFee, HARBIN_LATE)
        for d in [day("2025-12-31", arrears="1149.60", arrears_since="2025-12-01"),
                  day("2026-01-05", arrears="1149.60", arrears_since="2026-01-06"),
                  day("2026-01-05", arrears="1149.60"),
                  day("2026-01-05", arrears="0", arrears_since="2025-12-01"),
                  day("2026-01-05", arrears="-5", arrears_since="2025-12-01"),
                  day("2026-01-05", arrears="4.99", arrears_since="2025-12-01")]:
            self.assertEqual(amounts(fee.evaluate(d)), [], d)
        # One batch of all of them and a fee day: only the fee day has a line.
        mixed = [day("2025-12-31", arrears="1149.60", arrears_since="2025-12-01"),
                 day("2026-02-15", arrears="1149.60", arrears_since="2025-12-20"),
                 day("2026-01-05", arrears="4.99", arrears_since="2025-12-01")]
        self.assertEqual([amounts(r) for r in fee.evaluate_batch(mixed)], [[], ["1.15"], []])

    def test_legal_cap_and_bad_params(self):
        configure(LateFee, {"daily_rate": "0.002", "due_date": "2026-01-01", "max_daily_rate": "0.002"})
        with self.assertRaises(BadParams) as c:
            configure(LateFee, {"daily_rate": "0.003", "due_date": "2026-01-01", "max_daily_rate": "0.002"})
        self.assertIn("max_daily_rate", c.exception.message)
        for p in [{"daily_rate": "-0.001", "due_date": "2026-01-01"}, {"daily_rate": "0.001"},
                  {"daily_rate": "0.001", "due_date": "2026-1-1"}, {"daily_rate": 0.001, "due_date": "2026-01-01"}]:
            with self.assertRaises(BadParams, msg=str(p)):
                configure(LateFee, p)


HARBIN_SUBSIDY = {"share": "1.00", "area_cap": "45", "area_basis": "usable"}


def heat_line(amount, quantity="60.00", unit_price="38.32", season_amount=None, payer=Payer.CUSTOMER):
    return PriorLine("heat", 1, Category.HEATING, D(quantity), D(unit_price), D(amount), payer,
                     None if season_amount is None else D(season_amount))


class LowIncome(unittest.TestCase):
    def test_w5(self):
        s = configure(LowIncomeSubsidy, HARBIN_SUBSIDY)
        d = day("2025-10-20", low_income=True, usable_area="60.00", season=regular(1, 183),
                prior_lines=[heat_line("12.56", season_amount="2299.20")])
        out = s.evaluate(d)
        self.assertEqual(amounts(out), ["-9.42", "9.42"])
        self.assertEqual([l.payer for l in out.lines], [Payer.CUSTOMER, Payer.GOVERNMENT])
        self.assertEqual(D("12.56") + out.lines[0].amount, D("3.14"))
        self.assertEqual(s.config.applies_to.all_of, bits.LOW_INCOME)
        # The batch path (row views) gives the same.
        self.assertEqual(amounts(s.evaluate_batch([d])[0]), ["-9.42", "9.42"])

    def test_a_season_fee_is_covered_exactly_over_the_season(self):
        s = configure(LowIncomeSubsidy, HARBIN_SUBSIDY)
        days = [day("2025-10-20", low_income=True, usable_area="60.00", season=regular(k, 183),
                    # A 0.1.0 tariff's line: no season amount; the convention finds it.
                    prior_lines=[heat_line(cumulative_share(D("2299.20"), k, 183))]) for k in range(1, 184)]
        government = [r[1].amount for r in s.evaluate_batch(days)]
        self.assertEqual(government[0], D("9.42"))
        self.assertEqual(sum(government), D("1724.40"))

    def test_a_season_fee_with_a_government_share(self):
        s = configure(LowIncomeSubsidy, {"share": "1.00", "area_cap": "45"})
        fee = D("1867.49")
        days = [day("2025-11-01", low_income=True, building_area="80.15", season=regular(k, 151),
                    prior_lines=[heat_line(cumulative_share(fee, k, 151), "80.15", "23.30", season_amount=fee)])
                for k in range(1, 152)]
        government = [r[1].amount for r in s.evaluate_batch(days)]
        self.assertEqual(government[1], D("6.95"))
        self.assertEqual(sum(government), D("1048.50"))

    def test_under_the_cap_the_whole_fee_is_covered(self):
        s = configure(LowIncomeSubsidy, HARBIN_SUBSIDY)
        d = day("2025-10-20", low_income=True, usable_area="40", prior_lines=[prior("heating", "8.37")])
        self.assertEqual(amounts(s.evaluate(d)), ["-8.37", "8.37"])

    def test_only_low_income_customer_paid_lines_in_the_categories(self):
        s = configure(LowIncomeSubsidy, HARBIN_SUBSIDY)
        self.assertEqual(amounts(s.evaluate(day("2025-10-20", usable_area="40", prior_lines=[prior("heating", "8")]))), [])
        other = day("2025-10-20", low_income=True, usable_area="40",
                    prior_lines=[prior("heating", "1.43", "government"), prior("late-fee", "1.15")])
        self.assertEqual(amounts(s.evaluate(other)), [])
        with self.assertRaises(MissingInput):
            s.evaluate(day("2025-10-20", low_income=True, prior_lines=[prior("heating", "8")]))
        # In a batch the refusal is the row's, and the other rows are billed.
        results = s.evaluate_batch([day("2025-10-20", low_income=True, prior_lines=[prior("heating", "8")]),
                                    day("2025-10-20", low_income=True, usable_area="40", prior_lines=[prior("heating", "8")])])
        self.assertIsInstance(results[0], MissingInput)
        self.assertEqual(amounts(results[1]), ["-8.00", "8.00"])

    def test_partial_share_and_more_categories(self):
        s = configure(LowIncomeSubsidy, {"share": "0.5", "categories": ["heating", "consumption"]})
        d = day("2025-11-15", low_income=True, building_area="80",
                prior_lines=[prior("heating", "7.93"), prior("consumption", "53.34")])
        self.assertEqual(amounts(s.evaluate(d)), ["-30.64", "30.64"])

    def test_the_columnar_path_bills_as_the_row_path(self):
        plugin_days = subsidy_days(5, 3000)
        for params in SUBSIDY_PARAMS:
            s = configure(LowIncomeSubsidy, params)
            self.assertTrue(columns.has_columns(s.plugin))
            for start in range(0, len(plugin_days), 500):
                days = plugin_days[start:start + 500]
                fast = columns.evaluate_batch(s.plugin, columns.batch_of(days))
                self.assertEqual(wire(fast), wire(row_path(s.plugin, days)), f"{params} {start}")
            # The same days one by one (single-day `evaluate`, on `Day`s) and in other batches.
            for d in plugin_days[:300]:
                one = columns.evaluate_batch(s.plugin, columns.batch_of([d]))
                # The day as the component's single-day `evaluate` gets it: its decimals from the
                # wire (a "1E+2" area arrives as 100, and the ratio's scale follows the area's).
                row = columns.Batch(columns.batch_of([d])).row(0)
                d = Day(**{f: getattr(row, f) for f in Day.__slots__})
                self.assertEqual(wire(one), wire(row_path(s.plugin, [d])), str(params))
                try:
                    # As the component returns it: the lines' decimals on the wire.
                    single = [(to_wit(l.quantity, "quantity"), to_wit(l.unit_price, "unit price"), to_wit(l.amount, "amount"), l.payer)
                              for l in s.evaluate(d).lines]
                except heatbill.RuleError as e:
                    self.assertEqual([(type(e), e.message)], [(type(x), x.message) for _, x in one.errors])
                else:
                    self.assertEqual(one.errors, [])
                    self.assertEqual(single, list(zip(zip(*one.quantity), zip(*one.unit_price),
                                                      zip(*one.amount), one.payers)))

    def test_where_28_digits_round_the_integers_step_aside(self):
        """`evaluate` computes in the default context's 28 digits; where that rounding reaches the
        fen (absurd sizes) the columnar path must give what `evaluate` gives, not the exact."""
        cases = [
            # x × share has 30 significant digits; exactly it is ….304999999997, at 28 digits ….305.
            ({"share": "0.7967032967300000000"}, "1", "12345678901234567.89", "-9835843080983584.31"),
            # x × cap / area is a hair under a half fen; at 28 digits it is on it.
            ({"share": "1", "area_cap": "4.5"}, "4.500000000000000007", "41785714285714285.78",
             "-41785714285714285.72"),
        ]
        for params, area, amount, expected in cases:
            s = configure(LowIncomeSubsidy, params)
            days = [day("2025-11-01", low_income=True, building_area=area, prior_lines=[prior("heating", amount)]),
                    day("2025-11-01", low_income=True, building_area="60", prior_lines=[prior("heating", "12.56")])]
            fast = columns.evaluate_batch(s.plugin, columns.batch_of(days))
            self.assertEqual(wire(fast), wire(row_path(s.plugin, days)))
            self.assertEqual(str(fast.results()[0][0].amount), expected)

    def test_the_columnar_path_takes_the_common_rows(self):
        """The reference chains' rows go through the integers, not the row fallback."""
        s = configure(LowIncomeSubsidy, {"share": "1.00", "area_cap": "45"})
        s.plugin.evaluate = None  # a fallback would call it
        days = [day("2025-11-01", low_income=True, building_area=a, season=regular(k, 151),
                    prior_lines=[heat_line(cumulative_share(D("2083.90"), k, 151), a, "26", season_amount="1867.49"),
                                 heat_line("1.44", a, "2.7", "216.41", Payer.GOVERNMENT)])
                for k in range(1, 152) for a in ("80.15", "40.00")]
        results = columns.evaluate_batch(s.plugin, columns.batch_of(days)).results()
        self.assertEqual(sum(r[1].amount for r in results[::2]), D("1048.50"))
        self.assertEqual(results[2][1].amount, D("6.95"))
        self.assertEqual(results[0][1].unit_price, D("0.561447286338116032"))  # 45 / 80.15

    def test_bad_params(self):
        for p in ['{"share": "1.2"}', '{"area_cap": "0"}', '{"categories": []}', '{"categories": ["heat"]}', '{"cap": "45"}']:
            with self.assertRaises(BadParams, msg=p):
                configure(LowIncomeSubsidy, p)


def row_path(plugin, days) -> columns.BatchLines:
    """``evaluate-batch`` of ``days`` as the SDK runs a plugin without ``evaluate_columns``:
    ``evaluate`` per row view (the reference the columnar path must equal)."""
    batch = columns.Batch(columns.batch_of(days))
    out = columns.BatchLines(batch.len)
    for i in range(batch.len):
        try:
            out.add_result(i, plugin.evaluate(batch.row(i)))
        except heatbill.RuleError as e:
            out.error(i, e)
    return out.finish()


def wire(out: columns.BatchLines) -> tuple:
    """What the host receives of a batch's output: the columns as the contract carries them."""
    return (out.rows, out.kinds, bytes(out.payers), out.quantity, out.unit_price, out.amount,
            out.season_amount, [(r, type(e).__name__, e.message) for r, e in out.errors])


SUBSIDY_PARAMS = [
    HARBIN_SUBSIDY,
    {"share": "1.00", "area_cap": "45"},
    {},
    {"share": "0.5", "categories": ["heating", "consumption"]},
    {"share": "0.75", "area_cap": "45.5", "area_basis": "usable"},
    {"share": "0.333", "area_cap": "52.37"},
    {"share": "1", "area_cap": "1E+2", "categories": ["heating", "consumption", "base-fee"]},
    {"share": "0"},
    {"share": "0E-40", "area_cap": "45.000000000000000000000000000000"},
    {"share": "0.1000000000000000000000000000001", "area_cap": "0.000000000000000000000000000045"},
]


def subsidy_days(seed: int, n: int) -> list:
    """Varied customer-days for the subsidy: low-income or not, both areas (absent, negative,
    under and over the caps, odd scales), every season phase (and inconsistent positions), heat
    lines with and without season amounts (0.1.0 guesses right and wrong), government shares,
    other categories, refunds, amounts at scales 0..3, and a few absurdly large values."""
    import random

    rng = random.Random(seed)
    pick = rng.choice
    days = []
    for _ in range(n):
        area = pick(["80.15", "60.00", "45", "40.00", "45.50", "52.37", "100.0", "123.457", "0", "0.00",
                     "-5.00", "1E+2", "9999999.99", "33.333333333333333"])
        usable = pick([None, "60.00", "40", "45.00", "45.5", "71.3", "-1", "200.55"])
        r = rng.random()
        if r < 0.15:
            season = None
        else:
            n_days = pick([151, 183, 1, 0, 365])
            phase = pick([Phase.REGULAR] * 4 + [Phase.OUTSIDE, Phase.EARLY, Phase.EXTENDED])
            k = rng.randint(0, n_days + 1) if rng.random() < 0.1 else rng.randint(1, max(n_days, 1))
            season = Season(phase, k, n_days, rng.random() < 0.5)
        k, n_days = (season.day_index, season.season_days) if season else (1, 183)
        ok_k = season is not None and 1 <= k <= n_days
        lines = []
        for _ in range(rng.randint(0, 4)):
            kind = rng.random()
            quantity = D(pick(["80.15", "60.00", "45", "1", "12.3456", "0"]))
            price = D(pick(["23.30", "38.32", "26", "2.7", "0.0333", "1"]))
            total = round_fen(quantity * price)
            if kind < 0.3:  # a 0.2.0 area tariff's line: its season amount says what it is part of
                fee = D(pick(["1867.49", "2299.20", "1", "0.01", "-35.50", "123456789.12"]))
                amount = cumulative_share(fee, k, n_days) if ok_k else round_fen(fee / 151)
                lines.append(PriorLine("heat", 1, Category.HEATING, quantity, price, amount, Payer.CUSTOMER, fee))
            elif kind < 0.5:  # a 0.1.0 tariff's line: the convention guesses (rightly or not)
                amount = cumulative_share(total, k, n_days) if ok_k else round_fen(total / 183)
                amount += pick([D(0), D(0), D("0.01")])
                lines.append(PriorLine("heat", 1, Category.HEATING, quantity, price, amount, Payer.CUSTOMER))
            elif kind < 0.6:  # the government's share of the price
                lines.append(PriorLine("heat-government", 1, Category.HEATING, quantity, D("2.7"),
                                       D(pick(["1.44", "0.89"])), Payer.GOVERNMENT, D("216.41")))
            elif kind < 0.8:  # per day, in other categories or scales
                amount = D(pick(["53.34", "7.93", "-2.10", "0", "12", "12.5", "12.560", "0.001",
                                 "92233720368547758.07"]))
                category = pick([Category.HEATING, Category.CONSUMPTION, Category.BASE_FEE,
                                 Category.LATE_FEE, Category.REFUND])
                lines.append(PriorLine("m", 2, category, D(1), amount, amount, pick([Payer.CUSTOMER] * 3 + [Payer.EMPLOYER])))
            else:  # huge operands: the integers must step aside, not differ
                big = D(pick(["123456789012345.6789", "9223372036854775.807", "0.000000000000000001"]))
                lines.append(PriorLine("heat", 1, Category.HEATING, big, big, D("12.56"), Payer.CUSTOMER,
                                       pick([None, big])))
        days.append(day("2025-11-01", low_income=rng.random() < 0.8, building_area=area, usable_area=usable,
                        season=season, prior_lines=lines))
    return days


class Template(unittest.TestCase):
    """The template renders into a plugin that passes its own case (run natively here for the
    chain's last entry; the season comes from the case's dates as the season plugin would)."""

    def test_renders_and_bills(self):
        with tempfile.TemporaryDirectory() as tmp:
            dest = Path(tmp) / "flat-fee"
            render_template("flat-fee", dest)
            project = tomllib.loads((dest / "pyproject.toml").read_text())
            self.assertEqual(project["project"]["name"], "flat-fee")
            self.assertEqual(project["tool"]["heatbill"]["plugin"], "flat_fee:Plugin")
            case = tomllib.loads((dest / "cases" / "flat-fee.toml").read_text())
            sys.path.insert(0, str(dest))
            try:
                module = importlib.import_module("flat_fee")
                plugin = configure(module.Plugin, case["chain"][1]["params"])
                start, end = (datetime.date.fromisoformat(case["chain"][0]["params"][k]) for k in ("start", "end"))
                n = (end - start).days + 1

                def season(d):
                    k = (d - start).days + 1
                    return Season(Phase.REGULAR, k, n, False) if 1 <= k <= n else Season(Phase.OUTSIDE, 0, n, False)

                heating_day = case["case"][0]
                d = datetime.date.fromisoformat(heating_day["customer"]["date"])
                self.assertEqual(amounts(plugin.evaluate(day(d, season=season(d)))),
                                 [l["amount"] for l in heating_day["expect"]["lines"]])
                d = datetime.date.fromisoformat(case["case"][1]["customer"]["date"])
                self.assertEqual(amounts(plugin.evaluate(day(d, season=season(d)))), [])
                whole = case["case"][2]
                lo, hi = (datetime.date.fromisoformat(whole["dates"][k]) for k in ("from", "to"))
                dates = [lo + datetime.timedelta(days=i) for i in range((hi - lo).days + 1)]
                results = plugin.evaluate_batch([day(x, season=season(x)) for x in dates])
                self.assertEqual(sum(l.amount for r in results for l in r), D(whole["expect"]["sum"]["fee"]))
                self.assertEqual(sum(1 for r in results if r), whole["expect"]["days"])
                # Its own unit tests pass too.
                suite = unittest.defaultTestLoader.discover(str(dest / "tests"), top_level_dir=str(dest / "tests"))
                result = unittest.TextTestRunner(stream=io.StringIO()).run(suite)
                self.assertTrue(result.wasSuccessful() and result.testsRun == 2, result.errors + result.failures)
            finally:
                sys.path.remove(str(dest))
                sys.modules.pop("flat_fee", None)


def render_template(name: str, dest: Path) -> None:
    """What `heatbill plugin new --lang python NAME` does: copy the template, replacing
    {{name}} and {{module}} in file names and contents."""
    module = name.replace("-", "_")
    src = KIT / "template"
    for path in src.rglob("*"):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        rel = str(path.relative_to(src)).replace("{{name}}", name).replace("{{module}}", module)
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(path.read_text(encoding="utf-8").replace("{{name}}", name).replace("{{module}}", module), encoding="utf-8")


def _bindings() -> Path | None:
    exe = KIT / ".toolchain" / "bin" / "componentize-py"
    if not exe.is_file():
        return None
    out = Path(tempfile.mkdtemp(prefix="heatbill-bindings-"))
    r = subprocess.run([str(exe), "-q", "-d", str(REPO / "wit"), "-w", "rules-plugin", "bindings", str(out)],
                       capture_output=True, text=True)
    if r.returncode:
        shutil.rmtree(out)
        raise RuntimeError(r.stderr)
    return out


class Adapter(unittest.TestCase):
    """heatbill.component against the real generated bindings (native CPython, not the sandbox)."""

    @classmethod
    def setUpClass(cls):
        cls.dir = _bindings()
        if cls.dir is None:
            raise unittest.SkipTest("no toolchain: run build.py once to install it")
        sys.path.insert(0, str(cls.dir))
        cls.t = importlib.import_module("wit_world.imports.types")
        cls.component = importlib.import_module("heatbill.component")
        cls.Err = importlib.import_module("componentize_py_types").Err

    @classmethod
    def tearDownClass(cls):
        if cls.dir is not None:
            sys.path.remove(str(cls.dir))
            shutil.rmtree(cls.dir)

    def rules(self, plugin_class, name="late-fee", kind="fee"):
        meta = {"name": name, "version": "1.0.0", "kind": kind, "description": "x"}
        return self.component.export(plugin_class, meta)()

    def wit_day(self, d: Day):
        t = self.t
        wd = lambda x: t.Date(x.year, x.month, x.day)
        dec = lambda x: None if x is None else t.Decimal(*to_wit(x))
        flags = t.CustomerFlags(0)
        if d.metered:
            flags |= t.CustomerFlags.METERED
        if d.low_income:
            flags |= t.CustomerFlags.LOW_INCOME
        return t.CustomerDay(
            date=wd(d.date), class_=t.CustomerClass(int(d.customer_class)), special_class=d.special_class,
            status=t.ServiceStatus(int(d.suspended)), flags=flags, building_area=dec(d.building_area),
            usable_area=dec(d.usable_area), ceiling_height=dec(d.ceiling_height), heat=dec(d.heat),
            indoor_temperature=dec(d.indoor_temperature), arrears=dec(d.arrears),
            arrears_since=None if d.arrears_since is None else wd(d.arrears_since),
            season=None if d.season is None else t.SeasonDay(t.SeasonPhase(int(d.season.phase)), d.season.day_index,
                                                             d.season.season_days, d.season.charged),
            tags=list(d.tags), attributes=[t.Attribute(k, v) for k, v in d.attributes.items()],
            prior_lines=[t.PriorLine(p.code, p.entry, t.LineCategory(int(p.category)), dec(p.quantity),
                                     dec(p.unit_price), dec(p.amount), t.Payer(int(p.payer)), dec(p.season_amount))
                         for p in d.prior_lines])

    def test_describe_and_configure(self):
        r = self.rules(LateFee)
        info = r.describe()
        self.assertEqual((info.name, info.kind), ("late-fee", self.t.PluginKind.FEE))
        self.assertEqual(json.loads(info.params_schema)["required"], ["daily_rate", "due_date"])
        with self.assertRaises(self.Err) as c:
            r.evaluate(self.wit_day(day("2026-01-01")))
        self.assertIsInstance(c.exception.value, self.t.RuleError_Unsupported)
        with self.assertRaises(self.Err) as c:
            r.configure('{"daily_rate": "-1", "due_date": "2026-01-01"}')
        self.assertIsInstance(c.exception.value, self.t.RuleError_BadParams)
        config = r.configure(json.dumps(HARBIN_LATE))
        self.assertEqual(config.lines[0].category, self.t.LineCategory.LATE_FEE)
        self.assertEqual(config.applies_to.all_of, bits.HAS_ARREARS_SINCE)
        with self.assertRaises(self.Err):
            r.configure(json.dumps(HARBIN_LATE))

    def test_wit_day_round_trip(self):
        for i in range(12):
            d = full_day(i)
            back = self.component.day_from_wit(self.wit_day(d))
            for field in Day.__slots__:
                self.assertEqual(getattr(back, field), getattr(d, field), f"{i} {field}")

    def test_evaluate_and_batch(self):
        r = self.rules(LateFee)
        r.configure(json.dumps(HARBIN_LATE))
        out = r.evaluate(self.wit_day(day("2026-01-01", arrears="1149.60", arrears_since="2026-01-01")))
        self.assertEqual(out.lines[0].amount, self.t.Decimal(115, 2))
        self.assertEqual(out.lines[0].unit_price, self.t.Decimal(1, 3))
        batch = columns.batch_of([day("2026-01-01", arrears="1149.60", arrears_since="2026-01-01"),
                                  day("2025-12-01", arrears="1149.60", arrears_since="2025-11-01"),
                                  day("2026-01-03", arrears="200", arrears_since="2025-11-01")])
        out = r.evaluate_batch(batch)
        self.assertEqual(out.lines.rows, [0, 2])
        self.assertEqual((out.lines.amount.units, bytes(out.lines.amount.scales)), ([115, 20], b"\x02\x02"))
        self.assertIsInstance(out.lines.payers, bytes)
        self.assertEqual((out.errors, out.season), ([], None))

    def test_rule_errors_per_row(self):
        r = self.rules(LowIncomeSubsidy, "low-income-subsidy", "subsidy")
        r.configure(json.dumps(HARBIN_SUBSIDY))
        batch = columns.batch_of([day("2025-10-20", low_income=True, prior_lines=[prior("heating", "8")]),
                                  day("2025-10-20", low_income=True, usable_area="40", prior_lines=[prior("heating", "8")])])
        out = r.evaluate_batch(batch)
        self.assertEqual([e.row for e in out.errors], [0])
        self.assertIsInstance(out.errors[0].error, self.t.RuleError_MissingInput)
        self.assertEqual(out.lines.rows, [1, 1])
        self.assertEqual(out.lines.payers, bytes([0, 1]))

    def test_a_bug_prints_its_traceback_and_traps(self):
        sys.path.insert(0, str(KIT / "hostile" / "py-raises"))
        try:
            Raises = importlib.import_module("py_raises").Raises
        finally:
            sys.path.pop(0)
        r = self.rules(Raises, "py-raises")
        r.configure("{}")
        for call in (lambda: r.evaluate(self.wit_day(day("2026-01-01"))),
                     lambda: r.evaluate_batch(columns.batch_of([day("2026-01-01")]))):
            err = io.StringIO()
            with redirect_stderr(err), self.assertRaises(RuntimeError):
                call()
            self.assertIn("Traceback (most recent call last)", err.getvalue())
            self.assertIn("py-raises: deliberate failure", err.getvalue())

    def test_season_positions_become_a_season_column(self):
        class Seasons(heatbill.Plugin):
            def evaluate(self, d):
                if d.date.day % 2:
                    return heatbill.Output([], Season(Phase.REGULAR, d.date.day, 183, True))
                return []

        r = self.rules(Seasons, "seasons", "season")
        r.configure("")
        out = r.evaluate_batch(columns.batch_of([day("2026-01-02"), day("2026-01-03"), day("2026-01-04")]))
        self.assertEqual(bytes(out.season.phase), bytes([0, 1, 0]))
        self.assertEqual(out.season.day_index, [0, 3, 0])
        self.assertEqual(bytes(out.season.charged), bytes([0, 1, 0]))
        one = r.evaluate(self.wit_day(day("2026-01-03")))
        self.assertEqual((one.season.phase, one.season.day_index), (self.t.SeasonPhase.REGULAR, 3))


class Build(unittest.TestCase):
    """build.py's reading of a plugin's pyproject.toml (the build itself is slow: not here)."""

    @classmethod
    def setUpClass(cls):
        spec = importlib.util.spec_from_file_location("heatbill_build", KIT / "build.py")
        cls.build = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cls.build)

    def test_reads_the_reference_plugins(self):
        meta = self.build.read_project(KIT / "late-fee")
        self.assertEqual((meta["name"], meta["version"], meta["kind"]), ("late-fee", "1.0.0", "fee"))
        self.assertEqual(meta["plugin"], "late_fee:LateFee")
        names = {self.build.read_project(d)["name"] for d in self.build.kit_plugins()}
        # --all builds the rules and the hostile fixtures (and any bench variants).
        expected = {"late-fee", "low-income-subsidy", "py-memory-bomb", "py-raises", "py-sockets", "py-spins"}
        self.assertTrue(expected <= names, names)

    def test_errors_say_what_to_fix(self):
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            with self.assertRaisesRegex(self.build.BuildError, "no pyproject.toml"):
                self.build.read_project(d)
            (d / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1.0.0"\n')
            with self.assertRaisesRegex(self.build.BuildError, r"\[tool.heatbill\]"):
                self.build.read_project(d)
            (d / "pyproject.toml").write_text('[project]\nname = "My Rule"\nversion = "1.0.0"\n[tool.heatbill]\n')
            with self.assertRaisesRegex(self.build.BuildError, "lowercase"):
                self.build.read_project(d)
            (d / "pyproject.toml").write_text(
                '[project]\nname = "x"\nversion = "1.0.0"\n[tool.heatbill]\nkind = "fee"\ndescription = "d"\nplugin = "x:P"\n')
            with self.assertRaisesRegex(self.build.BuildError, "has no x.py"):
                self.build.read_project(d)
            (d / "x.py").write_text("")
            self.assertEqual(self.build.read_project(d)["plugin"], "x:P")


if __name__ == "__main__":
    unittest.main()
