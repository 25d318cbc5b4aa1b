"""py-sockets: a misbehaving plugin for the host's sandbox tests. It tries to open a TCP
connection in evaluate; the host links wasi:sockets to functions that trap, so the call fails
its customer-day and nothing leaves the sandbox."""

import socket

from heatbill import Plugin


class Sockets(Plugin):
    def evaluate(self, day):
        # A numeric address as bytes: no name lookup (whose codec CPython's wasm build lacks),
        # straight to the socket calls.
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect((b"127.0.0.1", 6379))
        s.sendall(b"PING\r\n")
        return []
