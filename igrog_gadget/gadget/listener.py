"""The server's listening socket, bound before anything heavy is imported: a port in use or an
address not on this machine is reported at once (``igrog serve`` exits 2 within a fraction of a
second, not after loading torch)."""

from __future__ import annotations

import socket


def bind_listener(host: str, port: int, backlog: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` ("" or "::" = every interface, IPv4 and IPv6 where
    the system has dual-stack sockets). Raises OSError (port in use, no such address, no
    permission)."""
    if host in ("", "::") and socket.has_dualstack_ipv6():
        listener = socket.create_server((host or "::", int(port)), family=socket.AF_INET6, dualstack_ipv6=True)
    else:
        listener = socket.create_server((host or "0.0.0.0", int(port)))
    listener.listen(backlog)
    return listener
