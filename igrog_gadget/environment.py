"""Process-wide settings, made once by each entry point: ``igrog`` (:func:`igrog_gadget.cli.main`,
which batch workers also run for each file) and Gadgetron's ``<execute>`` target
(:func:`igrog_gadget.gadget.external.igrog_gadget`). Importing the library changes nothing of
the process: a program that reads files through :mod:`igrog_gadget.io` keeps its own HDF5 and
torch settings.
"""

from __future__ import annotations

import os


def configure_process(cpu_threads: int = 0) -> None:
    """Settings of a process that runs igrog (call before any file is opened or any work starts).

    - ``HDF5_USE_FILE_LOCKING=FALSE`` unless the environment says otherwise: inputs are only
      ever read, and another program holding a file open (a streaming client, or
      ``ismrmrd.Dataset``, which opens read-write by default) must not make HDF5's file
      locking refuse the read.
    - ``OMP_WAIT_POLICY=PASSIVE`` unless the environment says otherwise (effective when torch
      is not loaded yet, as in ``igrog``'s main): a stream trains on one thread while another
      grids, and OpenMP's default busy-waiting threads of one then steal the cores of the other
      (a 300-step training took 11.3 s beside the gridding thread instead of 4.4 s).
    - ``cpu_threads`` > 0: torch's intra-op thread count, chosen once for the process (results
      then never depend on the machine's load; trainings never change it).
    """
    os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if cpu_threads > 0:
        import torch

        torch.set_num_threads(cpu_threads)
