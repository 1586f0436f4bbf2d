"""Kernel trainings run one at a time, in the order they were submitted: inline or on a worker.

A job's inputs (and the model it warm-starts from) are fixed when it is submitted (see
``VariantGridder``), so running the jobs on a background thread (streaming: training overlaps
the scan) or inline (replay) gives the same models.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class TrainingQueue:
    """FIFO of jobs; ``background=True`` runs them on one worker thread (``submit`` returns at
    once), ``False`` inside ``submit``. A job's exception is raised by its future's ``result()``."""

    def __init__(self, background: bool, name: str = "igrog-training") -> None:
        self.background = background
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) if background else None
        self.submitted = 0

    def submit(self, job: Callable[[], Any]) -> Future:
        """Queue ``job``; its future holds its result (or exception)."""
        self.submitted += 1
        if self._executor is not None:
            return self._executor.submit(job)
        future: Future = Future()
        try:
            future.set_result(job())
        except BaseException as error:  # noqa: BLE001 - handed to the waiter, exactly as the worker does
            future.set_exception(error)
        return future

    def close(self) -> None:
        """Drop jobs not started yet; the running one ends on its own (cancel it first)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
