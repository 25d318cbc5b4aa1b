"""The area a rule bills or compares with: building (建筑面积) or usable (使用面积)."""

from __future__ import annotations

from decimal import Decimal
from enum import Enum

from .errors import InvalidInput, MissingInput


class AreaBasis(str, Enum):
    """Which area: "building" (most cities) or "usable" (e.g. Harbin)."""

    BUILDING = "building"
    USABLE = "usable"


def billed_area(day, basis: AreaBasis) -> Decimal:
    """The customer's area on ``basis``; a missing usable area is ``MissingInput``, a negative
    area ``InvalidInput`` (the same messages as the Rust SDK's ``area::billed_area``)."""
    if basis == AreaBasis.USABLE:
        area, field = day.usable_area, "usable-area"
        if area is None:
            raise MissingInput(
                "the customer has no usable area (使用面积) and the tariff bills by usable area:"
                ' record it, or bill by building area (area_basis = "building")'
            )
    else:
        area, field = day.building_area, "building-area"
    if area < 0:
        raise InvalidInput(f"the {field} is {area} m²: an area cannot be negative")
    return area
