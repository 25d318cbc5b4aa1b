"""Rule errors: a plugin's refusal of a configuration or a customer-day.

Raise one of these from ``configure``, ``evaluate`` or ``evaluate_columns``; the SDK turns it into
the contract's ``rule-error`` variant, and the host parks that customer's bill with the message and
bills the others. Any other exception is a bug: the SDK prints its traceback to stderr (the host
keeps stderr in the plugin log) and traps.
"""

# The contract's limit on a rule-error message, in bytes of UTF-8.
MAX_MESSAGE_BYTES = 1000


class RuleError(Exception):
    """Base class of the four refusals; ``kind`` is the name case files and the host use."""

    kind = "rule-error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadParams(RuleError):
    """The parameters are invalid; say which and how to fix them."""

    kind = "bad-params"


class MissingInput(RuleError):
    """An input the rule needs is missing (e.g. no meter reading for a metered customer)."""

    kind = "missing-input"


class InvalidInput(RuleError):
    """An input is present but unusable (e.g. a negative area)."""

    kind = "invalid-input"


class Unsupported(RuleError):
    """The rule does not handle this case (e.g. an unknown special class)."""

    kind = "unsupported"


def truncate(message: str) -> str:
    """Cuts a message to the contract's 1,000 bytes on a character boundary, marking the cut."""
    data = message.encode("utf-8")
    if len(data) <= MAX_MESSAGE_BYTES:
        return message
    cut = data[: MAX_MESSAGE_BYTES - len("…".encode())].decode("utf-8", "ignore")
    return cut + "…"
