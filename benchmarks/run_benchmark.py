"""Accuracy and speed of iGROG against nearest-neighbour, classic GROG and a finufft adjoint.

Usage: python benchmarks/run_benchmark.py [--cases radial_acs,radial_self,spiral_acs,spiral_self]
                                          [--set section.field=value ...] [--workdir DIR]

Simulates each case with ``igrog simulate``'s code (128 matrix, 8 coils, 2x readout
oversampling, 200 golden-angle spokes or 16 spiral interleaves, image SNR 50), grids it
with every method in the same run, and prints a table: k-space NRMSE against the truth on
the sampled grid points, training time, gridding time (kernel inference + application),
time to apply cached kernels to a new frame, and a finufft adjoint of the same frame.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.baselines import ClassicGrog, grid_nearest_neighbour  # noqa: E402
from benchmarks.evaluation import benchmark_workdir, grog_block, load_case, nrmse_on_sampled, simulate_once  # noqa: E402
from igrog_gadget.planning.gridder import FrameGridder  # noqa: E402
from igrog_gadget.config import load_config  # noqa: E402
from igrog_gadget.numerics.nufft import nufft_adjoint  # noqa: E402
from igrog_gadget.simulate import SimulationSpec  # noqa: E402

CASES = {
    "radial_acs_clean": dict(trajectory="radial", acs=32, snr=None),
    "radial_acs": dict(trajectory="radial", acs=32),
    "radial_self": dict(trajectory="radial", acs=None),
    "spiral_acs": dict(trajectory="spiral", acs=32),
    "spiral_self": dict(trajectory="spiral", acs=None),
}


def best_time(function, repeats: int = 3) -> float:
    """Shortest wall time of ``repeats`` calls, seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def run_case(name: str, path: Path, overrides: list[str], variant: str = "basic") -> dict:
    config = load_config(variant, overrides=overrides)
    case = load_case(name, path, config)
    frame = case.frame
    samples, coords = frame.flat_samples(), frame.flat_coords()
    row: dict = {"case": name, "samples": samples.shape[1]}

    nn = grid_nearest_neighbour(samples, coords, frame.matrix)
    row["nn"] = nrmse_on_sampled(nn.kspace, nn.hits, case.truth)

    block = grog_block(case, config)
    grog = ClassicGrog.from_acs(block.kspace)
    row["grog_s"] = best_time(lambda: grog.grid(samples, coords, frame.matrix), 1)
    result = grog.grid(samples, coords, frame.matrix)
    row["grog"] = nrmse_on_sampled(result.kspace, result.hits, case.truth)

    gridder = FrameGridder(config)
    gridded = gridder.grid(frame)
    row["igrog"] = nrmse_on_sampled(gridded.kspace, gridded.hits, case.truth)
    training = gridded.report.training
    row["train_s"] = training.seconds if training else float("nan")
    row["steps"] = training.steps if training else 0
    row["grid_s"] = gridded.report.gridding_s
    row["cached_s"] = best_time(lambda: gridder.grid(frame))
    row["adjoint_s"] = best_time(lambda: nufft_adjoint(samples, coords, (frame.matrix[1], frame.matrix[0])))
    row["noise_floor"] = noise_floor(gridded.hits, case.noise_std, case.truth)
    return row


def noise_floor(hits: np.ndarray, noise_std: float, truth: np.ndarray) -> float:
    """NRMSE of perfect averaging of the noise: sqrt(sum sigma^2 / hits) / ||truth|| on sampled points."""
    mask = hits > 0
    coils = truth.shape[0]
    return float(np.sqrt(coils * np.sum(noise_std**2 / hits[mask])) / np.linalg.norm(truth[:, mask]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--variant", default="basic")
    parser.add_argument("--workdir", default=None, help="keep the simulated files here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    workdir = benchmark_workdir(args.workdir, "igrog-bench-")
    rows = []
    for name in args.cases.split(","):
        path = workdir / f"{name}.h5"
        simulate_once(path, SimulationSpec(**{**dict(matrix=128, coils=8, spokes=200, interleaves=16, snr=50.0), **CASES[name]}))
        rows.append(run_case(name, path, args.overrides, args.variant))
    header = (
        f"{'case':<12} {'NN':>6} {'GROG':>6} {'iGROG':>6} {'iG/GROG':>7} {'floor':>6} "
        f"{'train s':>7} {'steps':>5} {'grid s':>6} {'cached s':>8} {'adjoint s':>9} {'GROG s':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['case']:<12} {r['nn']:6.3f} {r['grog']:6.3f} {r['igrog']:6.3f} {r['igrog'] / r['grog']:7.2f} "
            f"{r['noise_floor']:6.3f} {r['train_s']:7.2f} {r['steps']:5d} {r['grid_s']:6.3f} {r['cached_s']:8.3f} "
            f"{r['adjoint_s']:9.3f} {r['grog_s']:6.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
