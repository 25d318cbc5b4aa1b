"""Exact money: ``decimal.Decimal``, rounded to the fen (0.01) with ROUND_HALF_UP (half away from
zero, so a refund is exactly a negated charge), and the contract's ``decimal {units, scale}``.

On the per-customer path of a columnar rule, work in integers instead: :func:`mul_fen` multiplies
two contract decimals given as ``(units, scale)`` and rounds to whole fen without building a
``Decimal``, which is several times faster in the sandbox's interpreter.
"""

from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation

from .errors import InvalidInput

# The contract's largest scale, and the s64 range of its units.
MAX_SCALE = 18
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1

# Wide enough for any product of two contract decimals: rounding is then only ever the one we ask
# for, never the context's 28 digits.
_CTX = Context(prec=80, rounding=ROUND_HALF_UP)
_FEN = Decimal("0.01")
_SCALE_MAX = Decimal(1).scaleb(-MAX_SCALE)
ZERO = Decimal(0)
ONE = Decimal(1)


def round_fen(d: Decimal) -> Decimal:
    """Rounds to the fen, half away from zero: 1.005 → 1.01, -1.005 → -1.01, 1.1496 → 1.15."""
    return d.quantize(_FEN, rounding=ROUND_HALF_UP, context=_CTX)


def div_round(a: int, b: int) -> int:
    """``round(a / b)`` half away from zero, for ``b > 0``, in integers."""
    q = (2 * abs(a) + b) // (2 * b)
    return -q if a < 0 else q


def to_fen(d: Decimal) -> int:
    """A decimal rounded to the fen, as a whole number of fen (12.555 → 1256)."""
    return int(round_fen(d).scaleb(2, _CTX))


def from_fen(fen: int) -> Decimal:
    """A whole number of fen as a decimal with two decimals (1256 → 12.56)."""
    return Decimal(fen).scaleb(-2, _CTX)


def mul_fen(a_units: int, a_scale: int, b_units: int, b_scale: int) -> int:
    """``round_fen(a × b)`` in whole fen, for two contract decimals given as units and scale:
    one integer multiplication and one division (W6: 114960e-2 × 1e-3 → 115 fen)."""
    m = a_units * b_units
    scale = a_scale + b_scale
    if scale <= 2:
        return m * 10 ** (2 - scale)
    return div_round(m, 10 ** (scale - 2))


def from_wit(units: int, scale: int) -> Decimal:
    """The exact value ``units × 10^-scale`` (the contract's decimal) as a ``Decimal``."""
    return Decimal(units).scaleb(-scale, _CTX)


def to_wit(d, what: str = "value") -> tuple[int, int]:
    """A ``Decimal`` (or an ``int``, or an ``(units, scale)`` pair, passed through) as the
    contract's ``(units, scale)``.

    Exact when the value has at most 18 decimals once trailing zeros are dropped; an informative
    value with more (a unit price from a division) is rounded half up to 18 decimals, as the Rust
    SDK does. Raises :class:`InvalidInput` when the units do not fit an s64 (only absurd inputs).
    """
    if type(d) is tuple:
        return d
    if type(d) is int:
        units, scale = d, 0
    elif not isinstance(d, Decimal):
        # A float here is a bug in the plugin (money is never a float): trap, do not refuse.
        raise TypeError(
            f"the {what} must be a decimal.Decimal, an int or a (units, scale) pair,"
            f" not {type(d).__name__}"
        )
    else:
        try:
            exp = d.as_tuple().exponent
            if not isinstance(exp, int):
                raise InvalidInput(f"the {what} {d} is not a number")
            if exp < -MAX_SCALE:
                # Trailing zeros first (exact), then round what still does not fit.
                d = d.normalize(_CTX)
                if d.as_tuple().exponent < -MAX_SCALE:
                    d = d.quantize(_SCALE_MAX, rounding=ROUND_HALF_UP, context=_CTX)
                exp = d.as_tuple().exponent
            if exp >= 0:
                units, scale = int(d), 0
            else:
                scale = -exp
                units = int(d.scaleb(scale, _CTX))
        except InvalidOperation as e:
            raise InvalidInput(f"the {what} {d!r} is not a decimal: {e}") from None
    if not _I64_MIN <= units <= _I64_MAX:
        raise InvalidInput(f"the {what} {d} is too large for the contract's decimal")
    return units, scale


def is_whole_fen(units: int, scale: int) -> bool:
    """Whether a contract decimal is a whole number of fen (at most two decimals)."""
    return scale <= 2 or units % 10 ** (scale - 2) == 0


def split(d: Decimal) -> tuple[int, int]:
    """A decimal's exact ``(units, scale)`` with Python's unbounded ints (no s64 limit, no
    rounding): the operands of :func:`mul_fen` taken from parameters."""
    sign, digits, exp = d.as_tuple()
    units = int("".join(map(str, digits)) or "0")
    if sign:
        units = -units
    if exp >= 0:
        return units * 10**exp, 0
    return units, -exp
