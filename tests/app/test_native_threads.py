"""Results depend only on the input and the configuration: every native library's thread count
(torch, numpy's BLAS, finufft) comes from ``gridding.cpu_threads``, so the same replay with and
without ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` in its environment
(what Dask's workers set) gives the same bits."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
from app_helpers import DATA, THREAD_VARIABLES, plain_environment

from igrog_gadget.config import load_config
from igrog_gadget.environment import available_processors, set_thread_counts
from igrog_gadget.replay import replay_file

ROOT = Path(__file__).resolve().parents[2]


def kspace(path: Path) -> list[np.ndarray]:
    with h5py.File(path, "r") as file:
        return [row["data"] for row in file["dataset/data"][()]]


def test_a_replay_gives_the_same_bits_whatever_the_thread_variables(tmp_path):
    """One thread by the configuration: in this process, and in a replay whose environment asks
    OpenMP, MKL and OpenBLAS for two (were those obeyed, sums would split differently)."""
    import torch

    source, one_thread = DATA / "spiral_acs.h5", "gridding.cpu_threads=1"
    before = torch.get_num_threads()
    set_thread_counts(1)
    try:
        replay_file(source, tmp_path / "here.h5", load_config("basic", overrides=[one_thread]))
    finally:
        set_thread_counts(before)
    subprocess.run(
        [sys.executable, "-m", "igrog_gadget", "replay", "-q", str(source), str(tmp_path / "there.h5"), "--set", one_thread],
        check=True, cwd=ROOT, env=plain_environment(**{name: "2" for name in THREAD_VARIABLES}), capture_output=True,
    )
    here, there = kspace(tmp_path / "here.h5"), kspace(tmp_path / "there.h5")
    assert len(here) == len(there) > 0
    for mine, theirs in zip(here, there):
        np.testing.assert_array_equal(mine, theirs)


def test_thread_counts_come_from_the_configuration():
    import torch
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    try:
        assert set_thread_counts(0) == available_processors() == torch.get_num_threads()
        assert set_thread_counts(1) == 1 == torch.get_num_threads()
        assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
    finally:
        set_thread_counts(before)


def test_a_threads_native_count_does_not_follow_another_threads_torch_pin():
    """torch's count is process-global while a thread pins its own (a session making its training
    queue): a thread that starts then (another session's gridding) reads torch's count as the
    pinned one, but finufft's count there stays the process's."""
    import threading

    import torch

    from igrog_gadget.planning.training_queue import TrainingQueue
    from igrog_gadget.environment import native_threads

    before = torch.get_num_threads()
    set_thread_counts(2)
    try:
        pinned, release = threading.Event(), threading.Event()
        seen: list[int] = []

        def pin_one() -> None:  # what a training worker's pin does to torch, held open
            torch.get_num_threads()
            torch.set_num_threads(1)
            pinned.set()
            release.wait(10)

        other = threading.Thread(target=pin_one)
        other.start()
        pinned.wait(10)
        newcomer = threading.Thread(target=lambda: seen.append(native_threads()))
        newcomer.start()
        newcomer.join(10)
        release.set()
        other.join()
        assert seen == [2]
        queue = TrainingQueue(background=True, cpu_threads=1)
        assert queue.submit(native_threads).result(timeout=10) == 1 and native_threads() == 2
        queue.close()
    finally:
        set_thread_counts(before)


def test_finufft_values_do_not_depend_on_the_thread_count():
    """finufft (2.5) chooses its upsampling factor from the thread count when left to it (2.0 on
    one thread, 1.25 on two for a 3D transform of many points): the package fixes it, so a 3D
    block's single-precision correlations on one thread or two agree to single-precision
    rounding (left to finufft they differ by 7e-5 of their peak, the tolerance's size)."""
    from igrog_gadget.core.closed_form import BlockCorrelation
    from igrog_gadget.environment import pin_native_threads
    from igrog_gadget.numerics.calibration import CalibrationBlock

    rng = np.random.default_rng(5)
    kspace = (rng.standard_normal((3, 10, 10, 10)) + 1j * rng.standard_normal((3, 10, 10, 10))).astype(np.complex64)
    correlation = BlockCorrelation(CalibrationBlock.at(kspace, (-5, -5, -5), "joint", None))
    shifts = rng.uniform(-3, 3, (50000, 3))

    def evaluate(threads: int) -> np.ndarray:  # the pin is the calling thread's: one thread each
        pin_native_threads(threads)
        return correlation(shifts, precise=False)

    with ThreadPoolExecutor(max_workers=1) as one, ThreadPoolExecutor(max_workers=1) as other:
        values = [one.submit(evaluate, 1).result(), other.submit(evaluate, 2).result()]
    peak = float(np.abs(values[0]).max())
    assert np.abs(values[0] - values[1]).max() < 2e-6 * peak
