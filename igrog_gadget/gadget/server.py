"""``igrog serve``: a TCP server for Gadgetron's ``<connect>`` (passive) mode and for MRD clients.

Each accepted connection gets its own thread, its own :class:`GadgetSession` and so its own
pipeline and models; a connection that fails never affects the others or the server. The
accept loop waits in a selector on the listening socket and a wake-up pipe (no polling), so
:meth:`GadgetServer.shutdown` stops it at once.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

from igrog_gadget.gadget import protocol
from igrog_gadget.gadget.protocol import MessageChannel, ProtocolLimits
from igrog_gadget.gadget.session import Dialect, GadgetSession, SessionReport, SessionSlots
from igrog_gadget.gadget.settings import DEFAULT_GADGETRON_PORT, GadgetSettings
from igrog_gadget.limits import ResourceLimits

logger = logging.getLogger(__name__)

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


class GadgetServer:
    """Listens on a TCP port and serves every connection in its own thread."""

    def __init__(
        self,
        options: ServerOptions | None = None,
        defaults: GadgetSettings | None = None,
        limits: ProtocolLimits | None = None,
    ) -> None:
        self.options = options or ServerOptions()
        self.defaults = defaults or GadgetSettings()
        self.limits = limits or ProtocolLimits()
        self.reports: list[SessionReport] = []
        self._sessions: dict[int, GadgetSession] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._counter = 0
        self.slots = SessionSlots(self.options.max_connections)
        self._stopping = threading.Event()
        self._wake_read, self._wake_write = os.pipe()
        self._listener = self._listen()
        self.port = int(self._listener.getsockname()[1])

    # --- listening ------------------------------------------------------------------------
    def _listen(self) -> socket.socket:
        host, port = self.options.host, int(self.options.port)
        if host in ("", "::") and socket.has_dualstack_ipv6():  # every interface, IPv4 and IPv6
            listener = socket.create_server((host or "::", port), family=socket.AF_INET6, dualstack_ipv6=True)
        else:
            listener = socket.create_server((host or "0.0.0.0", port))
        listener.listen(max(16, self.options.max_connections))
        return listener

    @property
    def address(self) -> str:
        return f"{self.options.host or '*'}:{self.port}"

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown` (blocks the calling thread)."""
        logger.info(
            "iGROG gadget listening on %s (%s dialect, up to %d concurrent connections)",
            self.address,
            self.options.dialect.value,
            self.options.max_connections,
        )
        selector = selectors.DefaultSelector()  # epoll on Linux: no FD_SETSIZE limit, no polling
        with self._lock:  # a shutdown that came first has closed the listener: nothing to serve
            if self._stopping.is_set():
                selector.close()
                return
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
        try:
            while not self._stopping.is_set():
                ready = [key.fileobj for key, _ in selector.select()]
                if self._wake_read in ready or self._stopping.is_set():
                    break
                try:
                    sock, _ = self._listener.accept()
                except OSError as error:
                    if self._stopping.is_set():
                        break
                    logger.error("accept failed: %s", error)
                    time.sleep(0.1)
                    continue
                self._start_connection(sock)
        finally:
            selector.close()
            self._close_listener()

    def serve_in_background(self) -> threading.Thread:
        """Run :meth:`serve_forever` in a daemon thread (tests, embedding); returns it."""
        thread = threading.Thread(target=self.serve_forever, name=f"igrog-server :{self.port}", daemon=True)
        thread.start()
        return thread

    def shutdown(self, wait_s: float = 10.0) -> None:
        """Stop accepting, close every open connection and wait up to ``wait_s`` for their threads."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        try:
            os.write(self._wake_write, b"x")
        except OSError:
            pass
        with self._lock:
            sessions = list(self._sessions.values())
            threads = list(self._threads.values())
        for session in sessions:
            session.channel.close()
        deadline = time.monotonic() + wait_s
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:  # not while serve_forever registers it
            self._close_listener()

    def _close_listener(self) -> None:
        try:
            self._listener.close()
        except OSError:
            pass

    # --- connections ----------------------------------------------------------------------
    def _start_connection(self, sock: socket.socket) -> None:
        channel = MessageChannel(sock, self.limits)
        with self._lock:
            open_connections = len(self._threads)
            self._counter += 1
            number = self._counter
        handshaking = open_connections - self.slots.in_use
        if self.slots.in_use >= self.options.max_connections or handshaking >= self.options.max_handshaking:
            self._refuse(channel, self.slots.in_use)
            return
        session = GadgetSession(
            channel,
            self.options.dialect,
            self.defaults,
            self.options.max_buffered_bytes,
            resource_limits=self.options.resource_limits,
            slots=self.slots,
            handshake_timeout_s=self.options.handshake_timeout_s,
        )
        thread = threading.Thread(
            target=self._run_session,
            args=(number, session),
            name=f"igrog-connection-{number} {channel.peer}",
            daemon=True,
        )
        with self._lock:
            self._sessions[number] = session
            self._threads[number] = thread
        logger.info("connection %d from %s", number, channel.peer)
        thread.start()

    def _run_session(self, number: int, session: GadgetSession) -> None:
        report = session.report
        try:
            report = session.run()
        finally:
            with self._lock:
                self.reports.append(report)
                del self.reports[: -self.options.keep_reports]
                self._sessions.pop(number, None)
                self._threads.pop(number, None)

    def _refuse(self, channel: MessageChannel, busy: int) -> None:
        text = f"iGROG gadget: server busy ({busy} sessions, limit {self.options.max_connections}); try again later"
        logger.warning("%s: refused: %s", channel.peer, text)
        if self.options.dialect is Dialect.GADGETRON:
            message = protocol.encode_error(text)
        else:
            message = protocol.encode_text_message(protocol.TEXT, f"ERROR    {text}", nul_terminate=True)
        try:
            channel.send(message, protocol.encode_close())
        except protocol.ProtocolError:
            pass
        channel.close()

    @property
    def active_connections(self) -> int:
        with self._lock:
            return len(self._threads)

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Wait until no connection is being served (tests); True when idle."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.active_connections == 0:
                return True
            time.sleep(0.02)
        return self.active_connections == 0

    def __enter__(self) -> "GadgetServer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        for fd in (self._wake_read, self._wake_write):
            try:
                os.close(fd)
            except OSError:
                pass
