"""How ``igrog serve`` listens and separates its sessions: its options, its listening socket and
its worker processes' spec. Nothing here loads torch or the session: the command binds its port
(a port in use is reported at once, exit 2) and starts its worker pool (whose fork server loads
torch and the product) before it loads its own modules."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field

from igrog_gadget.gadget.protocol import ProtocolLimits
from igrog_gadget.gadget.settings import DEFAULT_GADGETRON_PORT, Dialect, GadgetSettings
from igrog_gadget.gadget.workers import WorkerSpec
from igrog_gadget.limits import ResourceLimits

#: Loopback: exposing the server to a network is an explicit ``--host``.
DEFAULT_HOST = "127.0.0.1"


@dataclass
class ServerOptions:
    """How the server listens and what it allows."""

    host: str = DEFAULT_HOST
    """Address to bind: loopback by default; "" or "0.0.0.0" / "::" = every interface (an
    explicit choice: the server has no authentication, see docs/gadget.md)."""
    port: int = DEFAULT_GADGETRON_PORT
    dialect: Dialect = Dialect.GADGETRON
    max_connections: int = 16
    """Concurrent sessions (connections past their handshake); more are told so and closed."""
    max_handshaking: int = 64
    """Connections still in their handshake at once (they hold no session slot); more are refused."""
    handshake_timeout_s: float = 30.0
    """Seconds from connecting to a complete handshake (configuration and header)."""
    max_buffered_bytes: int = 2 << 30
    """Per connection: bytes of messages read ahead while the worker is busy (training)."""
    resource_limits: ResourceLimits = field(default_factory=ResourceLimits)
    """What one connection may ask for (matrix, coils, training size and time, buffered data)."""
    keep_reports: int = 256
    """Finished sessions' reports kept in memory (for tests and monitoring)."""
    isolation: str = "process"
    """``process``: each session in a worker process of its own; ``thread``: in this process."""
    spare_workers: int = 2
    """``process`` isolation: warmed worker processes kept ready for the next connections."""
    memory_limit_mb: float | None = None
    """``process`` isolation: memory a session may add to its warmed-up worker, MiB, enforced by
    the OS (``RLIMIT_DATA``); None = no limit."""
    cpu_threads: int = 0
    """``process`` isolation: native thread count of each worker (0 = the processors it may use)."""
    log_level: int = logging.INFO
    """``process`` isolation: the workers' log level."""

    def __post_init__(self) -> None:
        if self.isolation not in ISOLATION_MODES:
            raise ValueError(f"isolation must be one of {', '.join(ISOLATION_MODES)}, got {self.isolation!r}")


def worker_spec(options: ServerOptions, defaults: GadgetSettings, limits: ProtocolLimits) -> WorkerSpec:
    """What the worker processes of a server with these options need to serve its sessions."""
    return WorkerSpec(
        dialect=options.dialect,
        defaults=defaults,
        protocol_limits=limits,
        resource_limits=options.resource_limits,
        max_buffered_bytes=options.max_buffered_bytes,
        memory_limit_mb=options.memory_limit_mb,
        cpu_threads=options.cpu_threads,
        log_level=options.log_level,
    )


def listen_backlog(max_connections: int) -> int:
    """Connections the OS queues before the server accepts them."""
    return max(16, max_connections)


#: How sessions are separated from each other (``ServerOptions.isolation``).
ISOLATION_MODES = ("process", "thread")


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
