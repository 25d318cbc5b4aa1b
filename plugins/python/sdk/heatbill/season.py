"""How a customer-day accrues a season fee, from the season position a season plugin set
(docs/domain.md, "Money and rounding"): regular day k of N gets the cumulative share
``round(T·k/N) − round(T·(k−1)/N)``, so the N days add up to T exactly; charged early-start and
extension days the daily rate ``round(T/N)``; free ones 0.00; other days nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Optional

from .errors import InvalidInput
from .money import div_round, from_fen, to_fen
from .types import Phase, Season


def cumulative_share_fen(total_fen: int, k: int, n: int) -> int:
    """Day ``k`` (1-based) of a season fee of ``total_fen`` fen spread over ``n`` days."""
    if n <= 0 or not 1 <= k <= n:
        raise InvalidInput(f"the season day index {k} is not within 1..={n}")
    return div_round(total_fen * k, n) - div_round(total_fen * (k - 1), n)


def cumulative_share(total: Decimal, k: int, n: int) -> Decimal:
    """Day ``k`` of a season fee ``total`` (rounded to the fen first) spread over ``n`` days:
    2299.20 over 183 days is 12.56, 12.57, 12.56 for k = 1, 2, 3."""
    return from_fen(cumulative_share_fen(to_fen(total), k, n))


def daily_rate(total: Decimal, n: int) -> Decimal:
    """The season's daily rate ``round_fen(T/N)``, for charged early and extension days."""
    if n <= 0:
        raise InvalidInput("the season has 0 days: no daily rate")
    return from_fen(div_round(to_fen(total), n))


class Accrual:
    """How the bill date accrues a season fee: ``Accrual.of(day.season)``."""

    __slots__ = ("phase", "k", "n", "charged")

    def __init__(self, phase: Phase, k: int = 0, n: int = 0, charged: bool = False):
        self.phase, self.k, self.n, self.charged = phase, k, n, charged

    @classmethod
    def of(cls, season: Optional[Season]) -> "Accrual":
        """Reads a season position; ``InvalidInput`` when it is inconsistent."""
        if season is None or season.phase == Phase.OUTSIDE:
            return cls(Phase.OUTSIDE)
        k, n = season.day_index, season.season_days
        if season.phase == Phase.REGULAR and not 1 <= k <= n:
            raise InvalidInput(f"season day index {k} is not within 1..={n}")
        if season.phase != Phase.REGULAR and season.charged and n == 0:
            raise InvalidInput("a charged early or extension day in a season of 0 days")
        return cls(Phase(season.phase), k, n, bool(season.charged))

    @property
    def is_heating_day(self) -> bool:
        return self.phase != Phase.OUTSIDE

    def season_share(self, total: Decimal) -> Optional[Decimal]:
        """The day's part of a season fee: the cumulative share on regular days, the daily rate
        on charged early/extension days, 0.00 on free ones, ``None`` when not a heating day."""
        if self.phase == Phase.OUTSIDE:
            return None
        if self.phase == Phase.REGULAR:
            return cumulative_share(total, self.k, self.n)
        if self.charged:
            return daily_rate(total, self.n)
        return Decimal("0.00")
