"""Worker processes of ``igrog serve``: each connection's session runs in a process of its own.

The server's front process accepts a connection, reads and checks its handshake and takes a
session slot (:meth:`GadgetSession.accept`); then it hands the connection's socket (the file
descriptor, over a Unix pipe) and the handshake to a pre-started worker process, which serves
the session to its end (:meth:`GadgetSession.run`), sends its :class:`SessionReport` back and
exits. One process per session: an out-of-memory kill, a native crash or a CUDA fault ends that
session only, and a wedged native call holds that session's process only. The front process keeps its copy of the socket until the
worker ends; a worker that dies without a report leaves the peer to the front process, which
sends ERROR + CLOSE (a worker killed while writing a message leaves that message cut short
before the ERROR: the peer sees a broken message, then the error).

Workers are forked from multiprocessing's fork server, which imported torch and the product
once (:data:`PRELOAD`), and each warms up (thread counts, the device, one small transform) before
it says it is ready, so a connection never waits for an import: the pool keeps
``spare_workers`` ready and starts a replacement as soon as one is taken. This module loads
neither the session nor torch, so that ``igrog serve`` starts its pool (the fork server's
imports) first and loads its own modules meanwhile.

Before it serves, a worker caps its own memory with the OS (``RLIMIT_DATA``: its writable
private memory, the heap and anonymous maps, at its warmed-up size plus ``memory_limit_mb``): an
allocation past it fails in that process only (reported to the peer as out of memory).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import re
import resource
import signal
import socket
import threading
import time
from dataclasses import dataclass
from multiprocessing import reduction
from typing import TYPE_CHECKING, Any

from igrog_gadget.gadget.protocol import MessageChannel, ProtocolLimits
from igrog_gadget.gadget.settings import Dialect, GadgetSettings
from igrog_gadget.limits import ResourceLimits

if TYPE_CHECKING:  # the session (and torch) load in the workers, not where a pool starts
    from igrog_gadget.gadget.session import Handshake, SessionReport

logger = logging.getLogger(__name__)

#: Modules the fork server imports once, so that a forked worker starts warm.
PRELOAD = ["igrog_gadget.gadget.worker_preload"]

#: Seconds a worker has to become ready (fork, warm-up) before the pool gives up on it.
READY_TIMEOUT_S = 120.0
#: Seconds a worker that sent its report may take to exit before it is killed.
EXIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker of a server needs to serve a session (sent to it when it starts)."""

    dialect: Dialect
    defaults: GadgetSettings
    protocol_limits: ProtocolLimits
    resource_limits: ResourceLimits
    max_buffered_bytes: int
    memory_limit_mb: float | None
    """Memory a session may add to its warmed-up worker, MiB (None: no OS limit)."""
    cpu_threads: int = 0
    """Native thread count of each worker (0 = the processors it may run on)."""
    log_level: int = logging.INFO


# --------------------------------------------------------------------------------------------
# The worker process
# --------------------------------------------------------------------------------------------
def _data_size_bytes() -> int:
    """This process's writable private memory as the kernel counts it for ``RLIMIT_DATA``."""
    with open("/proc/self/status") as status:
        match = re.search(r"VmData:\s+(\d+) kB", status.read())
    return int(match.group(1)) * 1024 if match else 0


def limit_memory(extra_mb: float) -> int:
    """Cap this process's data memory at its current size plus ``extra_mb`` MiB (``RLIMIT_DATA``);
    returns the cap in bytes."""
    cap = _data_size_bytes() + int(extra_mb * (1 << 20))
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    return cap


def _warm_up(spec: WorkerSpec) -> None:
    """Everything a session's first readout would otherwise wait for: thread counts, the
    default device (a CUDA context), torch's and finufft's first calls."""
    from igrog_gadget.environment import set_thread_counts

    set_thread_counts(spec.cpu_threads)
    import numpy as np
    import torch
    from igrog_engine import resolve_device
    from igrog_gadget.numerics.nufft import nufft_forward

    device = resolve_device(spec.defaults.igrog_config().gridding.device)
    probe = torch.ones(8, 8, dtype=torch.complex64, device=device)
    torch.fft.fft2(probe)
    torch.linalg.solve(probe.real + 8 * torch.eye(8, device=device), probe.real)
    nufft_forward(np.ones((1, 8, 8), np.complex64), np.zeros((1, 2), np.float32))
    np.ones((64, 64)) @ np.ones((64, 64))  # BLAS allocates its thread buffers now, before the memory cap


def worker_main(pipe: multiprocessing.connection.Connection, spec: WorkerSpec) -> None:
    """A worker process: warm up, say ``("ready", pid)``, wait for one connection, serve it, send
    ``("report", SessionReport)`` and exit."""
    from igrog_gadget.environment import configure_process

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the front process decides when workers stop
    configure_process()  # a worker is an entry point of its own (and inherits the server's environment)
    logging.basicConfig(level=spec.log_level, format=f"%(asctime)s %(levelname)s [worker {os.getpid()}] %(name)s: %(message)s")
    started = time.perf_counter()
    _warm_up(spec)
    logger.debug("worker %d ready in %.2f s", os.getpid(), time.perf_counter() - started)
    pipe.send(("ready", os.getpid()))
    try:
        order = pipe.recv()
    except (EOFError, OSError):  # the server stopped before it needed this worker
        os._exit(0)
    if order[0] != "serve":
        os._exit(0)
    from igrog_gadget.gadget.session import GadgetSession  # loaded by the fork server already

    _, handshake, messages_in = order
    fd = reduction.recv_handle(pipe)
    sock = socket.socket(fileno=fd)
    if spec.memory_limit_mb:
        limit_memory(spec.memory_limit_mb)
    session = GadgetSession(
        MessageChannel(sock, spec.protocol_limits, shared=True),
        spec.dialect,
        spec.defaults,
        spec.max_buffered_bytes,
        resource_limits=spec.resource_limits,
        handshake_timeout_s=None,
        memory_limit_mb=spec.memory_limit_mb,
    )
    session.report.messages_in = messages_in
    report = session.run(handshake)
    try:
        pipe.send(("report", report))
    except BaseException:  # noqa: BLE001 - e.g. out of memory: the front process tells the peer
        os._exit(3)
    logging.shutdown()
    os._exit(0)  # no interpreter teardown: nothing of it matters, and native atexit handlers may crash


# --------------------------------------------------------------------------------------------
# The front process's side
# --------------------------------------------------------------------------------------------
class SessionWorker:
    """One started worker process, seen from the front process."""

    def __init__(self, context: Any, spec: WorkerSpec, number: int) -> None:
        self.pipe, child_pipe = context.Pipe(duplex=True)
        self.process = context.Process(
            target=worker_main, args=(child_pipe, spec), name=f"igrog-worker-{number}", daemon=True
        )
        self.process.start()
        child_pipe.close()
        self.ready = False

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def poll_ready(self, timeout_s: float = 0.0) -> bool:
        """True once the worker said it is ready (waits up to ``timeout_s``); False while it warms
        up or when it died doing so."""
        if self.ready:
            return True
        try:
            if self.pipe.poll(timeout_s):
                message = self.pipe.recv()
                self.ready = message[0] == "ready"
        except (EOFError, OSError):
            return False
        return self.ready

    def serve(self, sock: socket.socket, handshake: Handshake, messages_in: int) -> None:
        """Hand the connection to the worker (it duplicates the descriptor)."""
        self.pipe.send(("serve", handshake, messages_in))
        reduction.send_handle(self.pipe, sock.fileno(), self.process.pid)

    def wait_report(self) -> tuple[SessionReport | None, str]:
        """Wait for the worker to end. Returns its report, or None and how it ended when it died
        without one."""
        report: SessionReport | None = None
        while report is None and self.process.is_alive():
            ready = multiprocessing.connection.wait([self.pipe, self.process.sentinel])
            if self.pipe in ready:
                try:
                    kind, value = self.pipe.recv()
                except (EOFError, OSError):
                    break
                if kind == "report":
                    report = value
        if report is None and self.pipe.poll(0):  # sent its report just before it exited
            try:
                kind, value = self.pipe.recv()
                report = value if kind == "report" else None
            except (EOFError, OSError):
                pass
        self.process.join(EXIT_TIMEOUT_S)
        if self.process.is_alive():
            logger.warning("worker %s did not exit after its session; killing it", self.pid)
            self.process.kill()
            self.process.join()
        self.close_pipe()
        return report, _how_it_ended(self.process.exitcode)

    def close_pipe(self) -> None:
        """Close the front process's end of the worker's pipe (idempotent)."""
        try:
            self.pipe.close()
        except OSError:  # closed already (a shutdown stopping a worker whose session just ended)
            pass

    def stop(self) -> None:
        """Stop a worker that has no session (idle spare) or must go (server shutdown)."""
        try:
            self.pipe.send(("stop",))
        except (OSError, ValueError):
            pass
        self.process.join(1.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.close_pipe()


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is None:
        return "did not end"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}" + (" (the OS's out-of-memory killer sends SIGKILL)" if name == "SIGKILL" else "")
    return f"ended with exit code {exitcode} before its session did"


class WorkerPool:
    """Pre-started, warmed worker processes: ``spare_workers`` wait ready at all times."""

    def __init__(self, spec: WorkerSpec, spare_workers: int = 2) -> None:
        if spare_workers < 1:
            raise ValueError(f"spare_workers must be >= 1, got {spare_workers}")
        self.spec = spec
        self.spare_workers = spare_workers
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)
        self._lock = threading.Lock()
        self._spares: list[SessionWorker] = []
        self._counter = 0
        self._closed = False
        with self._lock:
            self._top_up()

    def _top_up(self) -> None:
        """Start workers until ``spare_workers`` are ready or warming up (lock held)."""
        while not self._closed and len(self._spares) < self.spare_workers:
            self._counter += 1
            self._spares.append(SessionWorker(self._context, self.spec, self._counter))

    def take(self, timeout_s: float = READY_TIMEOUT_S) -> SessionWorker:
        """A ready worker (the longest-waiting one; waits while they warm up) and a replacement
        started for it. Raises RuntimeError when none becomes ready in ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the server is shutting down")
                dead = [w for w in self._spares if not w.process.is_alive()]
                for worker in dead:
                    logger.error("worker %s %s while warming up", worker.pid, _how_it_ended(worker.process.exitcode))
                    self._spares.remove(worker)
                    worker.close_pipe()
                for worker in self._spares:
                    if worker.poll_ready():
                        self._spares.remove(worker)
                        self._top_up()
                        return worker
                self._top_up()
                waiting = [w.pipe for w in self._spares] + [w.process.sentinel for w in self._spares]
            if time.monotonic() >= deadline:
                raise RuntimeError(f"no worker process became ready within {timeout_s:.0f} s")
            multiprocessing.connection.wait(waiting, timeout=min(1.0, max(0.0, deadline - time.monotonic())))

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> bool:
        """Wait until every spare is ready (server start-up, tests); True when they are."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            spares = list(self._spares)
        return all(worker.poll_ready(max(0.0, deadline - time.monotonic())) for worker in spares)

    def close(self) -> None:
        """Stop the spares; a worker serving a session is stopped by its session's thread."""
        with self._lock:
            self._closed = True
            spares, self._spares = self._spares, []
        for worker in spares:
            worker.stop()


__all__ = ["SessionWorker", "WorkerPool", "WorkerSpec", "limit_memory", "worker_main"]
