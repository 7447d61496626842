"""Owning the server's port: a server refuses to start on a port something already serves.

The workers of a multi-process server share their port with SO_REUSEPORT, and the kernel lets
any process of the same user join such a group: a second server started on the port would
take half the calls, answering from its own database. So before any worker exists the
supervisor claims the port:

1. It binds an abstract Unix socket named after the port and holds it while it lives. Of two
   loyalty servers starting at the same moment on one port, only one gets it; the probe below
   cannot tell them apart, as neither listens yet.
2. It binds the address itself without SO_REUSEPORT, and closes that probe at once. The bind
   fails while anything listens on the port, with SO_REUSEPORT or without, under any user.

Holding a TCP socket on the address instead does not work: one with SO_REUSEPORT lets in
anyone of our user; one without it either keeps the workers out as well (without
SO_REUSEADDR) or, not listening, keeps nobody out (with it, as gRPC's sockets have). A
program taking the port between the probe and the workers' bind remains possible: without
SO_REUSEPORT it makes the workers' bind fail, so the server stops; with it, under our user,
it chose to share.

A one-process server binds without SO_REUSEPORT, so the kernel refuses a taken port anyway;
it probes first only to say so in one line.
"""

from __future__ import annotations

import errno
import socket
from typing import Any


class CannotListen(Exception):
    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot listen on {address}: {reason}")


class PortInUse(CannotListen):
    def __init__(self, address: str) -> None:
        super().__init__(address, "port already in use")


def host_and_port(address: str) -> tuple[str | None, int]:
    """ "127.0.0.1:50051" -> ("127.0.0.1", 50051); "[::]:50051" -> ("::", 50051);
    ":50051" -> (None, 50051): every interface."""
    host, _, port = address.rpartition(":")
    return host.strip("[]") or None, int(port)


def claim_port(address: str) -> socket.socket:
    """The supervisor's claim on the address's port: keep the socket returned for as long as
    the workers serve (it is not inherited). Raises PortInUse."""
    _, port = host_and_port(address)
    claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # Abstract names belong to the network namespace, as TCP ports do, and go with the
        # process however it ends.
        if _taken(claim, f"\0loyalty-server port {port}"):
            raise PortInUse(address)
        check_port_free(address)
    except BaseException:
        claim.close()
        raise
    return claim


def check_port_free(address: str) -> None:
    """Raise PortInUse when something listens on the address's port."""
    host, port = host_and_port(address)
    if port == 0:
        return
    for family, kind, proto, _, where in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            # As gRPC's own listeners: the connections in TIME_WAIT that the last run left do
            # not make the port look taken on a restart.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if _taken(probe, where):
                raise PortInUse(address)


def _taken(sock: socket.socket, where: str | tuple[Any, ...]) -> bool:
    """Bind; True when the address is in use. Other errors (no IPv6 for "localhost", say)
    are left to the server's own bind to report."""
    try:
        sock.bind(where)
    except OSError as exc:
        return exc.errno == errno.EADDRINUSE
    return False
