"""py-raises: a misbehaving plugin for the host's sandbox tests. It raises an uncaught exception in evaluate: the SDK prints its traceback to stderr and traps."""

from heatbill import Plugin


class Raises(Plugin):
    def evaluate(self, day):
        raise RuntimeError("py-raises: deliberate failure")
