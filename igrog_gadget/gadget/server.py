"""``igrog serve``: a TCP server for Gadgetron's ``<connect>`` (passive) mode and for MRD clients.

Each accepted connection gets a thread of this (front) process, which reads and checks its
handshake; then, with ``isolation = "process"`` (the default), a pre-started worker process
serves the session (:mod:`igrog_gadget.gadget.workers`), so that a session that is killed, runs
out of memory or crashes in native code ends alone, with ERROR + CLOSE to its peer, while the
server and every other session go on. With ``isolation = "thread"`` the session runs in the
connection's thread (embedding, debugging: no process start, but one process holds every scan).
Either way each session has its own pipeline and models. The accept loop waits in a selector
on the listening socket and a wake-up pipe (no polling), so :meth:`GadgetServer.shutdown`
stops it at once.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import threading
import time

from igrog_gadget.gadget import protocol
from igrog_gadget.gadget.protocol import MessageChannel, ProtocolLimits
from igrog_gadget.gadget.server_options import (  # noqa: F401  (ServerOptions and DEFAULT_HOST: this module's API too)
    DEFAULT_HOST,
    ISOLATION_MODES,
    ServerOptions,
    bind_listener,
    listen_backlog,
    worker_spec,
)
from igrog_gadget.gadget.session import Dialect, GadgetSession, SessionReport, SessionSlots
from igrog_gadget.gadget.settings import GadgetSettings
from igrog_gadget.gadget.workers import SessionWorker, WorkerPool

logger = logging.getLogger(__name__)

class GadgetServer:
    """Listens on a TCP port and serves every connection in its own thread, and with process
    isolation its session in its own worker process."""

    def __init__(
        self,
        options: ServerOptions | None = None,
        defaults: GadgetSettings | None = None,
        limits: ProtocolLimits | None = None,
        listener: socket.socket | None = None,
        pool: WorkerPool | None = None,
    ) -> None:
        """``listener``: a socket already bound and listening (``bind_listener``); None binds
        ``options.host:options.port`` here. ``pool``: process isolation's workers, already
        started (``worker_spec``); None starts them here."""
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
        self._listener = listener if listener is not None else self._listen()
        self.port = int(self._listener.getsockname()[1])
        self._workers: dict[int, SessionWorker] = {}
        """Process isolation: the worker serving each connection (by connection number)."""
        self._worker_started = threading.Condition(self._lock)
        self.pool: WorkerPool | None = None
        if self.options.isolation == "process":
            self.pool = pool or WorkerPool(worker_spec(self.options, self.defaults, self.limits), self.options.spare_workers)
        elif pool is not None:
            raise ValueError("a worker pool was given to a server with thread isolation")

    # --- listening ------------------------------------------------------------------------
    def _listen(self) -> socket.socket:
        return bind_listener(self.options.host, self.options.port, listen_backlog(self.options.max_connections))

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
            session.channel.close()  # a worker's copy of the socket is shut down too
        deadline = time.monotonic() + wait_s
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:  # not while serve_forever registers it
            self._close_listener()
            workers = list(self._workers.values())
        for worker in workers:  # still running after the wait: stop them
            worker.stop()
        if self.pool is not None:
            self.pool.close()

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
            memory_limit_mb=self.options.memory_limit_mb,
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
            report = session.run() if self.pool is None else self._run_in_worker(number, session)
        finally:
            with self._lock:
                self.reports.append(report)
                del self.reports[: -self.options.keep_reports]
                self._sessions.pop(number, None)
                self._threads.pop(number, None)

    def _run_in_worker(self, number: int, session: GadgetSession) -> SessionReport:
        """Process isolation: the handshake here, the session in a worker process."""
        assert self.pool is not None
        handshake = session.accept()
        if handshake is None:
            return session.report
        try:
            worker = self.pool.take()
        except RuntimeError as error:
            return session.end_elsewhere(None, f"could not start: {error}")
        with self._lock:
            self._workers[number] = worker
            self._worker_started.notify_all()
        try:
            logger.info("%s: session handed to worker process %s", session.channel.peer, worker.pid)
            worker.serve(session.channel.sock, handshake, session.report.messages_in)
            report, ended = worker.wait_report()
        except OSError as error:  # the worker died before it took the connection
            report, ended = None, f"could not take the connection: {error}"
        finally:
            with self._lock:
                self._workers.pop(number, None)
        return session.end_elsewhere(report, ended)

    def wait_for_worker(self, peer: str, timeout_s: float = 30.0) -> int | None:
        """Wait until a worker process serves the connection from ``peer``; its pid (None on timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._worker_started:
            while True:
                for number, worker in self._workers.items():
                    session = self._sessions.get(number)
                    if session is not None and session.channel.peer == peer:
                        return worker.pid
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._worker_started.wait(remaining):
                    return None

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
