"""Shared helpers of the benchmarks: load a simulated file as frames, score against its truth."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from igrog_gadget.core.calibrate import calibration_block
from igrog_gadget.core.frame import FrameInputs
from igrog_gadget.config import IgrogConfig
from igrog_gadget.io import read_dataset
from igrog_gadget.simulate import SimulationSpec, simulate_to_file
from igrog_gadget.stream.buffer import ReadoutBuffer
from igrog_gadget.stream.frames import frame_inputs, is_volumetric


def benchmark_workdir(given: str | None, prefix: str) -> Path:
    """The folder a benchmark keeps its simulated files in: ``given`` (``--workdir``, made if
    missing) or a new temporary one."""
    workdir = Path(given or tempfile.mkdtemp(prefix=prefix))
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def simulate_once(path: Path, spec: SimulationSpec) -> float | None:
    """Simulate ``spec`` into ``path`` unless it exists (a kept ``--workdir``); the seconds it
    took, or None when the file was reused."""
    if path.exists():
        return None
    started = time.perf_counter()
    simulate_to_file(path, spec)
    return time.perf_counter() - started


@dataclass
class Case:
    """A simulated file loaded as its first frame, with the Cartesian truth."""

    name: str
    frame: FrameInputs
    truth: np.ndarray
    """Shape (coils, ny, nx) (3D: (coils, nz, ny, nx)), complex64: noiseless field-free k-space of the frame's slice."""
    noise_std: float


def first_frame(path: str | Path, config: IgrogConfig) -> FrameInputs:
    """The first frame of an ISMRMRD file, as the product assembles it."""
    dataset = read_dataset(path)
    buffer = ReadoutBuffer(max_coils=dataset.header.num_coils)
    completed = []
    for readout in dataset.readouts:
        if readout.is_imaging() and not buffer.volumetric and is_volumetric(dataset.header, config, readout):
            buffer.mark_volumetric()  # a 3D scan: one frame on the (nx, ny, nz) grid
        if readout.is_calibration() or readout.is_imaging():
            completed += buffer.add(readout)
    completed += buffer.close()
    images = {}
    for item in dataset.images:
        images.setdefault(item.series, []).append(item.channels())
    images = {k: np.concatenate(v) for k, v in images.items()}
    return frame_inputs(completed[0], dataset.header, config, images)


def load_case(name: str, path: str | Path, config: IgrogConfig) -> Case:
    """First frame of an ISMRMRD file written by ``igrog simulate`` and its truth."""
    frame = first_frame(path, config)
    truth_file = np.load(Path(path).with_name(Path(path).stem + ".truth.npz"))
    truth = truth_file["kspace"][0, 0]
    return Case(name, frame, truth, float(truth_file["noise_std"]))


def nrmse_on_sampled(kspace: np.ndarray, hits: np.ndarray, truth: np.ndarray) -> float:
    """||kspace - truth|| / ||truth|| over the grid points where at least one sample landed."""
    mask = hits > 0
    return float(np.linalg.norm((kspace - truth)[:, mask]) / np.linalg.norm(truth[:, mask]))


def grog_block(case: Case, config: IgrogConfig):
    """The calibration block iGROG uses (ACS or self-calibration), for the GROG baseline."""
    return calibration_block(case.frame, config.calibration)
