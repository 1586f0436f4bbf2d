"""``igrog batch`` on a 2-worker Dask LocalCluster: outputs equal to single replays, a corrupt file
reported while the others finish, a killed worker retried, a rerun that skips what is up to date."""

from __future__ import annotations

import csv
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from app_helpers import ROOT, plain_environment

from process_helpers import descendants
from igrog_gadget.batch import (
    configuration_record,
    output_is_current,
    threads_per_worker,
)
from igrog_gadget.cli import main
from igrog_gadget.config import load_config
from igrog_gadget.simulate import SimulationSpec, simulate_to_file

#: distributed is imported by the batch command when it runs (not by a pytest worker at collection).
pytestmark = pytest.mark.skipif(importlib.util.find_spec("distributed") is None, reason="distributed is not installed")

QUICK = ["training.max_steps=60", "calibration.num_training_pairs=4000", "training.plateau_patience=0"]


#: Scans of the study (and one corrupt file).
SCANS = 2
#: How long the replay of the file whose worker is killed has run when the worker is killed (a
#: replay takes about 3 s, most of it starting python and torch).
KILL_AFTER_S = 0.5


def set_args(overrides: list[str]) -> list[str]:
    return [part for override in overrides for part in ("--set", override)]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """Two small scans (radial self-calibrated; radial of 2 slices with ACS lines) and one corrupt file."""
    directory = tmp_path_factory.mktemp("study")
    specs = [
        SimulationSpec(matrix=32, coils=3, spokes=48, acs=None, seed=2),
        SimulationSpec(matrix=32, coils=3, spokes=48, acs=16, slices=2, seed=4),
    ]
    for number, spec in enumerate(specs):
        simulate_to_file(directory / f"scan{number}.h5", spec)
    (directory / "corrupt.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"not really" * 100)
    return directory


def read_report(path: Path) -> dict[str, dict]:
    with path.open() as handle:
        return {Path(row["input"]).name: row for row in csv.DictReader(handle)}


def kspace(path: Path) -> list[np.ndarray]:
    with h5py.File(path, "r") as h5:
        return [np.asarray(row["data"]) for row in h5["dataset/data"][:]]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the worker through /proc")
def test_batch_equals_single_replays_survives_a_killed_worker_reports_the_corrupt_file_and_resumes(study, tmp_path):
    """Two workers grid the study while the worker gridding scan1 is killed (SIGKILL by its PID):
    its replay child dies with it and the scheduler retries the file once on another worker. Every
    scan is done and equal, bit for bit, to its single ``igrog replay`` (the retried one too), the
    corrupt file is reported, no partial file is left; a rerun skips what is up to date."""
    out = tmp_path / "out"
    result: dict[str, int] = {}
    runner = threading.Thread(
        target=lambda: result.setdefault(
            "code", main(["-q", "batch", str(study), "--out", str(out), "--workers", "2", *set_args(QUICK)])
        ),
        daemon=True,
    )
    runner.start()
    replays = kill_the_worker_gridding("scan1.h5", out, runner)
    assert result.get("code") == 1  # one file failed
    # the killed file is gridded again; a file whose row came back is not, whichever worker died
    assert len(replays["scan1.h5"]) <= 2 and len(replays.get("scan0.h5", ())) <= 1, replays
    assert len(replays.get("corrupt.h5", ())) <= 1, replays
    report = read_report(out / "batch_report.csv")
    assert report["corrupt.h5"]["status"] == "failed" and "HDF5" in report["corrupt.h5"]["error"]
    assert not (out / "corrupt_cartesian.h5").exists()
    threads = f"gridding.cpu_threads={threads_per_worker(2)}"
    # the `igrog replay`s, one after the other in one process of their own (threads are per process)
    replays = [
        ["-q", "replay", str(study / f"scan{number}.h5"), str(tmp_path / f"single{number}.h5"), *set_args([*QUICK, threads])]
        for number in range(SCANS)
    ]
    script = "import sys; from igrog_gadget.cli import main; sys.exit(max(main(args) for args in %r))" % (replays,)
    # in a plain shell: no OMP_NUM_THREADS & co. (the workers have them; the configuration rules)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, env=plain_environment())
    for number in range(SCANS):
        row = report[f"scan{number}.h5"]
        assert row["status"] == "done", row
        assert int(row["frames"]) == (2 if number == 1 else 1) and int(row["training_steps"]) == 0  # closed-form fit
        assert float(row["peak_memory_mb"]) > 50 and float(row["estimated_nrmse"]) > 0
        ours, theirs = kspace(out / f"scan{number}_cartesian.h5"), kspace(tmp_path / f"single{number}.h5")
        assert len(ours) == len(theirs) > 0
        for mine, single in zip(ours, theirs):
            np.testing.assert_array_equal(mine, single)
    assert not list(out.glob("*.partial-*"))

    started = {p.name: p.stat().st_mtime_ns for p in out.glob("scan*_cartesian.h5")}
    code = main(["-q", "batch", str(study / "scan*.h5"), "--out", str(out), *set_args(QUICK)])
    assert code == 0
    rerun = read_report(out / "batch_report.csv")
    assert [rerun[f"scan{n}.h5"]["status"] for n in range(SCANS)] == ["skipped"] * SCANS
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("scan*_cartesian.h5")} == started
    # another configuration is not up to date
    record = configuration_record(load_config("basic", overrides=[*QUICK, threads]).to_toml())
    assert output_is_current(out / "scan0_cartesian.h5", record)
    record = configuration_record(load_config("basic", overrides=[*QUICK, threads, "training.max_steps=61"]).to_toml())
    assert not output_is_current(out / "scan0_cartesian.h5", record)


def replay_children() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of running ``igrog_gadget -q replay`` processes this
    process started (directly or through the cluster's workers; Linux /proc)."""
    found = []
    for pid in descendants(os.getpid()):
        entry = Path(f"/proc/{pid}")
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if "igrog_gadget -q replay" in command:
            found.append((pid, parent, command))
    return found


def kill_the_worker_gridding(name: str, out: Path, runner: threading.Thread) -> dict[str, set[int]]:
    """SIGKILL the Dask worker process whose replay child grids ``name`` into ``out`` and watch the
    batch (``runner``) to its end; returns the replay child PIDs seen per input file name. A batch
    still running at the end is killed, so that a failure leaves nothing running behind the next tests."""
    killed = None
    seen: dict[str, set[int]] = {}
    started: dict[int, float] = {}
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and runner.is_alive():
            for pid, parent, command in replay_children():
                if str(out) not in command:
                    continue
                source = Path(command.split(" replay ", 1)[1].split()[0]).name
                seen.setdefault(source, set()).add(pid)
                started.setdefault(pid, time.monotonic())
                # killed half a second into its replay: the rows of files the worker finished
                # before have reached the client by then (a kill in the same instant races them)
                if killed is None and source == name and time.monotonic() - started[pid] > KILL_AFTER_S:
                    os.kill(parent, signal.SIGKILL)  # the dask worker process
                    killed = parent
            time.sleep(0.05)
        assert killed is not None, f"the replay of {name} never started"
    finally:
        if runner.is_alive():
            for pid, _, command in replay_children():
                if str(out) in command:
                    os.kill(pid, signal.SIGKILL)
            runner.join(60)
    return seen
