"""Kernel trainings run one at a time, in the order they were submitted: inline or on a worker.

Submission order is decided by the data (the pipeline submits a training when a calibration
key's data are there, see ``igrog_gadget.stream.pipeline``), and each job may start from the
model of the job before it (warm start), so running the same jobs in a background thread
(streaming: training overlaps the scan) or inline (replay) gives the same models.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

Result = TypeVar("Result")


class TrainingQueue(Generic[Result]):
    """FIFO of jobs ``job(previous) -> result``; ``previous`` is the last successful job's result.

    ``background=True`` runs the jobs on one worker thread (``submit`` returns at once);
    ``False`` runs each job inside ``submit``. Either way the jobs run one at a time in
    submission order, and a job's exception is raised by its future's ``result()``.
    """

    def __init__(self, background: bool, name: str = "igrog-training") -> None:
        self.background = background
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) if background else None
        self._previous: Result | None = None
        self._lock = threading.Lock()
        self.submitted = 0

    def submit(self, job: Callable[[Result | None], Result]) -> Future:
        """Queue ``job``; its future holds its result (or exception)."""
        self.submitted += 1
        if self._executor is not None:
            return self._executor.submit(self._run, job)
        future: Future = Future()
        try:
            future.set_result(self._run(job))
        except BaseException as error:  # noqa: BLE001 - handed to the waiter, exactly as the worker does
            future.set_exception(error)
        return future

    def _run(self, job: Callable[[Result | None], Result]) -> Result:
        with self._lock:
            previous = self._previous
        result = job(previous)
        with self._lock:
            self._previous = result
        return result

    def close(self) -> None:
        """Drop jobs not started yet; the running one ends on its own (cancel it first)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
