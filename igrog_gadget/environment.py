"""Process-wide settings, made once by each entry point: ``igrog`` (:func:`igrog_gadget.cli.main`,
which batch workers also run for each file) and Gadgetron's ``<execute>`` target
(:func:`igrog_gadget.gadget.external.igrog_gadget`). Importing the library changes nothing of
the process: a program that reads files through :mod:`igrog_gadget.io` keeps its own HDF5 and
torch settings.
"""

from __future__ import annotations

import os


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
    """
    os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def set_thread_counts(cpu_threads: int) -> int:
    """Fix the process's native thread counts from the configuration, never from the environment
    (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ... which e.g. Dask's workers set): torch's intra-op
    threads, numpy's BLAS (threadpoolctl) and finufft's (every call passes torch's count of its
    thread, ``igrog_gadget.gridding.nufft.native_threads``). Sums over threads change in their
    last bits with the count, so results then depend only on the input and the configuration.

    Args:
        cpu_threads: the count; 0 = the processors this process may run on.
    Returns:
        The count set.
    """
    count = cpu_threads if cpu_threads > 0 else available_processors()
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(count)
    threadpool_limits(limits=count, user_api="blas")
    return count


def available_processors() -> int:
    """Processors this process may run on (its CPU affinity; the machine's count where the
    platform has no affinity)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
