"""Process-wide settings, made once by each entry point: ``igrog`` (:func:`igrog_gadget.cli.main`,
which batch workers also run for each file) and Gadgetron's ``<execute>`` target
(:func:`igrog_gadget.gadget.external.igrog_gadget`). Importing the library changes nothing of
the process: a program that reads files through :mod:`igrog_gadget.io` keeps its own HDF5 and
torch settings.
"""

from __future__ import annotations

import os
import threading

_process_threads: int | None = None
"""The count ``set_thread_counts`` fixed for the process (None: never called, e.g. a library user)."""
_thread_local = threading.local()
"""Per thread: ``native`` = the count ``pin_native_threads`` fixed for that thread."""


def configure_process() -> None:
    """Environment settings of a process that runs igrog (call before any file is opened or any
    work starts).

    - ``HDF5_USE_FILE_LOCKING=FALSE`` unless the environment says otherwise: inputs are only
      ever read, and another program holding a file open (a streaming client, or
      ``ismrmrd.Dataset``, which opens read-write by default) must not make HDF5's file
      locking refuse the read.
    - ``OMP_WAIT_POLICY=PASSIVE`` unless the environment says otherwise (effective when torch
      is not loaded yet, as in ``igrog``'s main): a stream trains on one thread while another
      grids, and OpenMP's default busy-waiting threads of one then steal the cores of the other
      (a 300-step training took 11.3 s beside the gridding thread instead of 4.4 s).
    - ``OPENBLAS_THREAD_TIMEOUT=4`` unless the environment says otherwise (effective when numpy
      is not loaded yet): after each call, OpenBLAS's threads (numpy's and scipy's BLAS) spin
      for 2^28 cycles (about 0.1 s) by default before they sleep, 2^4 with it. The product's
      numpy products are many and short: on a 192² 16-coil first key the spinning was 0.7 of
      8.5 CPU-s of the whole process (whole-process CPU 0.92x, wall the same).
    """
    os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")


def set_thread_counts(cpu_threads: int) -> int:
    """Fix the process's native thread counts from the configuration, never from the environment
    (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ... which e.g. Dask's workers set): torch's intra-op
    threads, numpy's BLAS (threadpoolctl) and finufft's (every call passes ``native_threads``: this
    count, or a training worker's pinned one). Sums over threads change in their last bits with the
    count, so results then depend only on the input and the configuration.

    Args:
        cpu_threads: the count; 0 = the processors this process may run on.
    Returns:
        The count set.
    """
    global _process_threads
    count = cpu_threads if cpu_threads > 0 else available_processors()
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(count)
    threadpool_limits(limits=count, user_api="blas")
    _process_threads = count
    return count


def pin_native_threads(count: int) -> None:
    """Fix the calling thread's native thread count (``native_threads``), e.g. a training worker's
    ``training.cpu_threads``; the process's count stays for every other thread."""
    _thread_local.native = int(count)


def native_threads() -> int:
    """Threads a native library (finufft) may use on the calling thread: the thread's pinned count,
    else the process's (``set_thread_counts``), else torch's. Never read from torch once configured:
    torch's count is process-global while another thread pins its own (a training queue being made),
    and a transform must not change its thread count, and bits, with what another session does."""
    pinned = getattr(_thread_local, "native", None)
    if pinned is not None:
        return pinned
    if _process_threads is not None:
        return _process_threads
    import torch

    return torch.get_num_threads()


def available_processors() -> int:
    """Processors this process may run on (its CPU affinity; the machine's count where the
    platform has no affinity)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
