"""Warm start across scans (``training.warm_start_dir``): training time and accuracy of a later
scan that starts from the network an earlier scan saved, against training it from scratch.

Usage: python benchmarks/warm_start_benchmark.py [--cases radial_2d,koosh_3d] [--workdir DIR]

Per protocol, scan A (the reference) trains from scratch and saves its network; then each later
scan grids twice, from scratch and from a copy of the store as A left it:

- ``same``: the next scan of the protocol (the same object and coils, new noise);
- ``object``: another object (2D: another slice of the phantom, same coils);
- ``coils``: the coil array placed differently: the channels mixed by a fixed random unitary
  matrix (every channel sees another combination of the object), data and truth alike.

The network fit throughout (``training.fit = network``: the 2D default is the closed form,
which has nothing to start from; 3D frames train the network by default). Printed per scan:
training time (the fit, on the training worker) and k-space NRMSE against the truth on the
sampled grid points, cold and warm, and their ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.evaluation import Case, benchmark_workdir, load_case, nrmse_on_sampled, simulate_once  # noqa: E402
from benchmarks.tables import print_rows  # noqa: E402
from igrog_gadget.planning.gridder import FrameGridder  # noqa: E402
from igrog_gadget.config import load_config  # noqa: E402
from igrog_gadget.io.acquisitions import copy_acquisitions, each_acquisition  # noqa: E402
from igrog_gadget.simulate import SimulationSpec  # noqa: E402

PROTOCOLS: dict[str, dict] = {
    "radial_2d": dict(trajectory="radial", matrix=128, coils=8, spokes=200, acs=32, slices=3),
    "koosh_3d": dict(trajectory="kooshball", matrix=32, coils=8, spokes=1200, acs=12),
}
#: Slice of the multi-slice 2D scan that stands for another object.
OTHER_SLICE = 2


def mixed_coils(case: Case, seed: int = 5) -> Case:
    """``case`` as a coil array placed differently: every channel a fixed unitary mix of the
    original ones (samples, calibration lines, noise covariance and truth)."""
    rng = np.random.default_rng(seed)
    coils = case.frame.num_coils
    unitary, _ = np.linalg.qr(rng.standard_normal((coils, coils)) + 1j * rng.standard_normal((coils, coils)))
    unitary = unitary.astype(np.complex64)
    frame = case.frame
    covariance = None if frame.noise_covariance is None else unitary @ frame.noise_covariance @ unitary.conj().T
    frame = dataclasses.replace(
        frame,
        samples=np.einsum("dc,c...->d...", unitary, frame.samples),
        calibration_lines=[(unitary @ data, positions) for data, positions in frame.calibration_lines],
        noise_covariance=covariance,
    )
    truth = np.einsum("dc,c...->d...", unitary, case.truth)
    return dataclasses.replace(case, name=f"{case.name} coils", frame=frame, truth=truth)


def other_slice(path: Path, workdir: Path, slice_index: int) -> Path:
    """A copy of the multi-slice file ``path`` with only slice ``slice_index`` (and its truth)."""
    target = workdir / f"{path.stem}_slice{slice_index}.h5"
    if not target.exists():
        keep = each_acquisition(lambda _, acq: acq if acq.idx.slice == slice_index or acq.is_flag_set(1) else None)
        copy_acquisitions(path, target, keep)
        truth = dict(np.load(path.with_name(path.stem + ".truth.npz")))
        truth["kspace"] = truth["kspace"][slice_index : slice_index + 1]
        np.savez(target.with_name(target.stem + ".truth.npz"), **truth)
    return target


def grid_once(case: Case, overrides: list[str]) -> tuple[float, float, bool]:
    """(training seconds, NRMSE, warm-started) of one gridding of ``case``."""
    config = load_config("basic", overrides=overrides)
    result = FrameGridder(config).grid(case.frame)
    return float(result.report.training.seconds), nrmse_on_sampled(result.kspace, result.hits, case.truth), bool(result.report.training.warm_start)


def run_protocol(name: str, workdir: Path) -> list[dict]:
    spec = SimulationSpec(**{**dict(snr=50.0), **PROTOCOLS[name], "seed": 21})
    reference_path = workdir / f"{name}_a.h5"
    later_path = workdir / f"{name}_b.h5"
    simulate_once(reference_path, spec)
    simulate_once(later_path, dataclasses.replace(spec, seed=22))
    base = ["training.fit=network"]
    config = load_config("basic", overrides=base)
    reference = load_case(f"{name} A", reference_path, config)
    later = load_case(f"{name} same", later_path, config)
    scans = [later, mixed_coils(later)]
    if spec.slices > OTHER_SLICE:
        scans.insert(1, load_case(f"{name} object", other_slice(later_path, workdir, OTHER_SLICE), config))

    store = Path(tempfile.mkdtemp(prefix="igrog-store-", dir=workdir))
    seconds, error, _ = grid_once(reference, [*base, f"training.warm_start_dir={store}"])
    rows = [dict(scan=reference.name, cold_s=seconds, warm_s=float("nan"), cold=error, warm=float("nan"))]
    for scan in scans:
        copy = Path(tempfile.mkdtemp(prefix="igrog-store-copy-", dir=workdir)) / "store"
        shutil.copytree(store, copy)  # each later scan starts from A's network
        cold_s, cold, _ = grid_once(scan, base)
        warm_s, warm, started_warm = grid_once(scan, [*base, f"training.warm_start_dir={copy}"])
        if not started_warm:
            raise RuntimeError(f"{scan.name}: the store's model was not used")
        rows.append(dict(scan=scan.name, cold_s=cold_s, warm_s=warm_s, cold=cold, warm=warm))
        print(f"  {scan.name}: cold {cold_s:.1f} s {cold:.4f}, warm {warm_s:.1f} s {warm:.4f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(PROTOCOLS))
    parser.add_argument("--workdir", default=None, help="keep the simulated files here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    workdir = benchmark_workdir(args.workdir, "igrog-warm-")
    rows = []
    for name in args.cases.split(","):
        rows += run_protocol(name, workdir)
    table = [
        dict(
            scan=row["scan"],
            train_cold_s=f"{row['cold_s']:.1f}",
            train_warm_s=f"{row['warm_s']:.1f}",
            time_ratio=f"{row['warm_s'] / row['cold_s']:.2f}",
            nrmse_cold=f"{row['cold']:.4f}",
            nrmse_warm=f"{row['warm']:.4f}",
            error_ratio=f"{row['warm'] / row['cold']:.3f}",
        )
        for row in rows
    ]
    print_rows(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
