"""A loopback TCP proxy in front of PostgreSQL that counts the client's waits on the server.

Every wait of a client on PostgreSQL ends with the server's ReadyForQuery message (`Z`): one
per simple query, one per Sync of the extended protocol, however many statements a pipeline
put before it. So the number of `Z` messages the server sends while a call runs is the number
of round trips the call made, whatever the driver does and however TCP splits the bytes.
Connect through it with `sslmode=disable`, so that the server's stream is framed messages
from its first byte.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator

READY_FOR_QUERY = ord("Z")
_CHUNK = 1 << 16


class WireCounter:
    """Listens on a free loopback port and forwards every connection to `upstream`."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream = ("127.0.0.1", upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._ready = 0
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def round_trips(self) -> int:
        """ReadyForQuery messages the server has sent so far, over every connection."""
        with self._lock:
            return self._ready

    @contextlib.contextmanager
    def counting(self) -> Iterator[list[int]]:
        """The round trips made inside the block, in a one-element list filled at its end."""
        seen = [0]
        before = self.round_trips
        yield seen
        seen[0] = self.round_trips - before

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> WireCounter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            with self._lock:
                self._sockets += [client, server]
            for target, args in ((self._pump, (client, server)), (self._count, (server, client))):
                thread = threading.Thread(target=target, args=args, daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(_CHUNK):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def _count(self, server: socket.socket, client: socket.socket) -> None:
        """Forward the server's bytes and count its ReadyForQuery messages (a message: one
        type byte, then its length, itself included, as a 4-byte integer)."""
        pending = b""
        with contextlib.suppress(OSError):
            while data := server.recv(_CHUNK):
                pending += data
                ready = 0
                while len(pending) >= 5:
                    kind = pending[0]
                    (length,) = struct.unpack_from("!I", pending, 1)
                    if len(pending) < 1 + length:
                        break
                    ready += kind == READY_FOR_QUERY
                    pending = pending[1 + length :]
                if ready:
                    with self._lock:
                        self._ready += ready
                client.sendall(data)  # after counting: the client's next wait starts later
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)
