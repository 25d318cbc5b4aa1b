"""py-spins: a misbehaving plugin for the host's sandbox tests. It loops forever in evaluate: the host's fuel or epoch deadline must stop it."""

from heatbill import Plugin


class Spins(Plugin):
    def evaluate(self, day):
        while True:
            pass
