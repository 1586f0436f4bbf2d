"""Helpers of the basic variant, replay and CLI tests: recorded files, fast deterministic settings, file rewriting."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import ismrmrd
import numpy as np
import pytest

from igrog_gadget.io.acquisitions import copy_acquisitions, each_acquisition

DATA = Path(__file__).resolve().parents[1] / "data"
ROOT = Path(__file__).resolve().parents[2]
#: Environment variables that set native libraries' thread counts (Dask's workers and the test
#: workers set OMP_NUM_THREADS; the product's thread counts come from its configuration).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def plain_environment(**extra: str) -> dict[str, str]:
    """This process's environment without the thread variables (a plain shell), with the
    checkout on ``PYTHONPATH``, plus ``extra``."""
    environment = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    return {**environment, "PYTHONPATH": str(ROOT), **extra}

#: The batch these epoch counts were sized with (the product's default is 256 pairs at 5e-3).
EPOCH_BATCH = ["training.batch_size=1024", "training.learning_rate=3e-3"]
#: Step-limited (deterministic) training that is quick on 2 CPU cores.
FAST = ["training.max_seconds=120", "training.epochs=4", "calibration.num_training_pairs=20000", *EPOCH_BATCH]
#: Enough steps to show the accuracy margin on the recorded files.
ACCURATE = ["training.max_seconds=120", "training.epochs=6", *EPOCH_BATCH]


@pytest.fixture
def data_file() -> Callable[[str], Path]:
    def path(name: str) -> Path:
        return DATA / f"{name}.h5"

    return path


@pytest.fixture
def rewrite(tmp_path: Path) -> Callable:
    """Copy a recorded file, passing every acquisition through ``change(index, acq) -> acq | None``."""

    def _rewrite(source: Path, change: Callable[[int, ismrmrd.Acquisition], ismrmrd.Acquisition | None]) -> Path:
        target = tmp_path / f"modified_{source.name}"
        copy_acquisitions(source, target, each_acquisition(change))
        return target

    return _rewrite


def strip_trajectory(acq: ismrmrd.Acquisition) -> ismrmrd.Acquisition:
    """The same acquisition without trajectory (trajectory_dimensions = 0)."""
    head = acq.getHead()
    head.trajectory_dimensions = 0
    out = ismrmrd.Acquisition(head)
    out.data[:] = acq.data
    return out


def drop_coils(acq: ismrmrd.Acquisition, keep: int) -> ismrmrd.Acquisition:
    """The same acquisition with only its first ``keep`` coils."""
    head = acq.getHead()
    head.active_channels = keep
    head.available_channels = keep
    out = ismrmrd.Acquisition(head)
    out.data[:] = acq.data[:keep]
    out.traj[:] = acq.traj
    return out


def nrmse_on_sampled(kspace: np.ndarray, hits: np.ndarray, truth: np.ndarray) -> float:
    mask = hits > 0
    return float(np.linalg.norm((kspace - truth)[:, mask]) / np.linalg.norm(truth[:, mask]))


def copy_to(tmp_path: Path, source: Path) -> Path:
    target = tmp_path / source.name
    shutil.copy(source, target)
    return target
