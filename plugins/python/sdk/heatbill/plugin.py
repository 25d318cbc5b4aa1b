"""The class a plugin subclasses: the Python shape of the Rust SDK's ``Plugin`` trait."""

from __future__ import annotations

from .params import NoParams
from .types import Configuration


class Plugin:
    """A heatbill rules plugin: typed parameters, parsed once, then a pure function of each
    customer-day.

    - ``Params``: the parameter ``@dataclass`` (its JSON Schema is what ``describe`` returns and
      the host validates against); default: none.
    - ``configure(params)``: checks the parsed parameters (raise ``BadParams``), precomputes what
      does not depend on the customer into ``self``, and returns a :class:`Configuration` with
      the kinds of line and the customer-days billed. Called once per instance.
    - ``evaluate(day)``: the lines for one customer-day (a list of ``Line``, or ``Output`` with a
      season position); raise ``MissingInput``, ``InvalidInput`` or ``Unsupported`` to refuse it.
    - ``evaluate_columns(batch, out)``, optional: the columnar fast path for the nightly
      batches (see ``heatbill.columns``); when defined, the SDK calls it instead of ``evaluate``
      per row, and ``evaluate`` may be left out (a single day then runs as a batch of one).

    Who the plugin is (name, version, kind, description) comes from its ``pyproject.toml``, not
    from the class: ``build.py`` bakes it in.
    """

    Params = NoParams

    def configure(self, params) -> Configuration:
        return Configuration()

    def evaluate(self, day):
        raise NotImplementedError("define evaluate(day) or evaluate_columns(batch, out)")

    def evaluate_columns(self, batch, out) -> None:
        raise NotImplementedError
