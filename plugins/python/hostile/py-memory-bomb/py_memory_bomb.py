"""py-memory-bomb: a misbehaving plugin for the host's sandbox tests. It allocates without bound in evaluate: the host's memory cap must stop it."""

from heatbill import Plugin


class MemoryBomb(Plugin):
    def evaluate(self, day):
        hoard = []
        while True:
            # 1 MiB a step, each written so the pages are really used.
            block = bytearray(1 << 20)
            block[::4096] = b"x" * 256
            hoard.append(block)
