"""Kernel trainings run one at a time, in the order they were submitted, on one worker thread.

A job's inputs (and the model it warm-starts from) are fixed when it is submitted (see
``TrainingService``), and every job runs on the same worker thread with the same torch thread
count, so running the jobs in the background (streaming: training overlaps the scan) or
waiting for each (replay) gives the same models, bit for bit.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from igrog_gadget.environment import pin_native_threads


class TrainingQueue:
    """FIFO of jobs on one worker thread. ``background=True``: ``submit`` returns at once
    (unless ``max_waiting`` jobs wait to start: it then waits until one starts, so that queued
    jobs and what they hold stay bounded); ``False``: it returns when the job is done. A job's
    exception is raised by its future's ``result()``; a job dropped by ``close`` has a
    cancelled future.

    ``cpu_threads`` > 0: torch's intra-op thread count of the worker (its CPU work), fixed
    once when the queue is made; 0: the count of the thread that makes the queue. A small
    kernel MLP trains faster on one thread than on two (a step of 256 pairs: 4.3 against 5.3 ms
    on a 2-core CPU), and leaves the other core to the thread that ingests and grids.
    """

    def __init__(self, background: bool, cpu_threads: int = 0, max_waiting: int = 2, name: str = "igrog-training") -> None:
        self.background = background
        self.max_waiting = max(1, max_waiting)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._changed = threading.Condition()
        self._waiting = 0
        """Jobs submitted and not started yet."""
        self._blocked = 0
        """``submit`` calls waiting for room (``max_waiting`` jobs wait to start)."""
        self._closed = False
        self.submitted = 0
        self._pin_worker_threads(cpu_threads or torch.get_num_threads())

    def _pin_worker_threads(self, count: int) -> None:
        """Give the worker ``count`` torch threads; the process keeps its own count.

        ``torch.set_num_threads`` sets the calling thread's count and also the count that threads
        which have not run torch yet will start with, so the caller sets that back to its own."""
        own = torch.get_num_threads()  # the caller's count (initialised now if it had none)
        self._executor.submit(_pin_calling_thread, count).result()
        torch.set_num_threads(own)

    def submit(self, job: Callable[[], Any]) -> Future:
        """Queue ``job``; its future holds its result (or exception)."""
        self.submitted += 1
        with self._changed:
            self._blocked += 1
            self._changed.wait_for(lambda: self._closed or self._waiting < self.max_waiting)
            self._blocked -= 1
            if self._closed:
                future: Future = Future()
                future.cancel()
                return future
            self._waiting += 1
        future = self._executor.submit(self._started, job)
        if not self.background:
            concurrent.futures.wait([future])
        return future

    @property
    def submits_blocked(self) -> int:
        """``submit`` calls now waiting for room in the queue."""
        with self._changed:
            return self._blocked

    def _started(self, job: Callable[[], Any]) -> Any:
        with self._changed:
            self._waiting -= 1
            self._changed.notify_all()
        return job()

    def close(self) -> None:
        """Drop jobs not started yet (their futures are cancelled) and release a waiting
        ``submit``; the running job ends on its own (cancel it first)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _pin_calling_thread(count: int) -> None:
    """Fix the calling thread's torch intra-op thread count (after torch's own first
    initialisation of the thread, which would otherwise replace it) and its native libraries'
    (``igrog_gadget.environment.native_threads``)."""
    torch.get_num_threads()
    torch.set_num_threads(count)
    pin_native_threads(count)
