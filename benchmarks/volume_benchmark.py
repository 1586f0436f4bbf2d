"""3D iGROG (kooshball, stack-of-spirals): accuracy, time and whole-process peak memory.

Usage: python benchmarks/volume_benchmark.py [--cases a,b,...] [--workdir DIR] [--set section.field=value ...]
                                             [--no-grog]

Each case is simulated once (kept in ``--workdir``), then ``igrog replay`` runs in its own
process under ``/usr/bin/time -v`` (wall time and peak RSS of the whole process, reading,
calibration, training, gridding and writing included) and its output is read back. In this
process, on the same samples: 3D nearest neighbour and 3D classic GROG
(``benchmarks/baselines3d.py``: three unit-shift operators from the block iGROG calibrates
from, in iGROG's virtual coils when it compresses). Printed per case:

- ``NN``, ``GROG``, ``iGROG``: k-space NRMSE against the truth on the grid points NN samples;
  ``floor``: NRMSE of perfect averaging of the noise (sqrt(sum sigma^2 / hits) / ||truth||);
- ``iG/NN``, ``iG/GROG``: the ratios the issue's targets state (<= 0.4, <= 0.5);
- ``cover``: grid points iGROG filled / those NN filled;
- ``GROG s``: classic GROG's gridding time; ``replay s``, ``RSS MB``: the whole ``igrog replay``;
- then per shell of |k| (fractions of the half matrix, last: beyond it, the grid's corners) the
  ratio of iGROG's k-space NRMSE to nearest neighbour's there, and the worst: the issue's "no
  band gridded worse than nearest neighbour of the same samples".
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.baselines3d import ClassicGrog3d, grid_nearest_neighbour_3d  # noqa: E402
from benchmarks.evaluation import benchmark_workdir, grog_block, load_case, nrmse_on_sampled, simulate_once  # noqa: E402
from benchmarks.run_benchmark import noise_floor  # noqa: E402
from benchmarks.scale_benchmark import run_replay  # noqa: E402
from igrog_gadget.core.virtual_coils import frame_coil_transform  # noqa: E402
from igrog_gadget.config import load_config  # noqa: E402
from igrog_gadget.io import read_dataset  # noqa: E402
from igrog_gadget.simulate import SimulationSpec  # noqa: E402

CASES: dict[str, dict] = {
    "koosh_32x8": dict(trajectory="kooshball", matrix=32, coils=8, spokes=1200, acs=12),
    # densely sampled (4x the spokes): several samples average into each point of the outer,
    # noise-dominated shells, so a kernel's noise gain shows against nearest neighbour there
    "koosh_32x8_dense": dict(trajectory="kooshball", matrix=32, coils=8, spokes=4800, acs=12),
    "koosh_64x8": dict(trajectory="kooshball", matrix=64, coils=8, spokes=4000, acs=16),
    "koosh_64x8_self": dict(trajectory="kooshball", matrix=64, coils=8, spokes=4000, acs=None),
    "sos_64x8": dict(trajectory="stack_of_spirals", matrix=64, coils=8, interleaves=16, partitions=64, acs=16),
    "koosh_128x16": dict(trajectory="kooshball", matrix=128, coils=16, spokes=16000, acs=16),
}


def read_volume(path: Path) -> np.ndarray:
    """The first 3D frame of a Cartesian output: (coils, nz, ny, nx) from its (ky, kz) lines."""
    dataset = read_dataset(path)
    nx, ny, nz = dataset.header.encoded_matrix
    volume = None
    for readout in dataset.readouts:
        if not readout.is_imaging():
            continue
        if volume is None:
            volume = np.zeros((readout.num_coils, nz, ny, nx), dtype=np.complex64)
        volume[:, int(readout.idx["kspace_encode_step_2"]), int(readout.idx["kspace_encode_step_1"])] = readout.data
    if volume is None:
        raise RuntimeError(f"{path}: no Cartesian lines")
    return volume


#: Shells of |k| as fractions of the half matrix (the last one: the grid's corners beyond it).
SHELLS: list[tuple[float, float]] = [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0), (1.0, np.inf)]


def shell_nrmse(kspace: np.ndarray, hits: np.ndarray, truth: np.ndarray) -> list[float]:
    """k-space NRMSE per ``SHELLS`` shell over the points with hits > 0: kspace, truth (coils,
    nz, ny, nx), hits (nz, ny, nx); nan where a shell has no such point."""
    nz, ny, nx = hits.shape
    kz, ky, kx = np.meshgrid(*((np.arange(n) - n // 2) / (n / 2) for n in (nz, ny, nx)), indexing="ij")
    radius = np.sqrt(kx**2 + ky**2 + kz**2)
    values = []
    for lo, hi in SHELLS:
        mask = (hits > 0) & (radius >= lo) & (radius < hi)
        norm = float(np.linalg.norm(truth[:, mask]))
        values.append(float(np.linalg.norm((kspace - truth)[:, mask])) / norm if mask.any() and norm > 0 else float("nan"))
    return values


def run_case(name: str, path: Path, overrides: list[str], workdir: Path, with_grog: bool) -> dict:
    config = load_config("basic", overrides=overrides)
    case = load_case(name, path, config)
    frame = case.frame
    samples, coords = frame.flat_samples(), frame.flat_coords()
    row: dict = {"case": name, "samples": samples.shape[1]}
    nn_kspace, hits = grid_nearest_neighbour_3d(samples, coords, frame.matrix)
    row["nn"] = nrmse_on_sampled(nn_kspace, hits, case.truth)
    row["floor"] = noise_floor(hits, case.noise_std, case.truth)
    row["bands_nn"] = shell_nrmse(nn_kspace, hits, case.truth)
    del nn_kspace
    row["grog"] = row["grog_s"] = float("nan")
    if with_grog:
        transform = frame_coil_transform(frame, config.gridding)
        block = grog_block(case, config)  # the block iGROG calibrates from (physical coils)
        grog = ClassicGrog3d.from_acs(transform.to_virtual(block.kspace))
        started = time.perf_counter()
        result = grog.grid(transform.to_virtual(samples), coords, frame.matrix)
        row["grog_s"] = time.perf_counter() - started
        kspace = transform.to_physical(result.kspace)
        row["grog"] = nrmse_on_sampled(kspace, hits, case.truth)
        del kspace, result
    output = workdir / f"{name}.out.h5"
    row["replay_s"], row["rss_mb"], _ = run_replay(path, output, overrides)
    gridded = read_volume(output)
    row["igrog"] = nrmse_on_sampled(gridded, hits, case.truth)
    row["bands_igrog"] = shell_nrmse(gridded, hits, case.truth)
    filled = np.any(gridded != 0, axis=0)
    row["cover"] = float(np.count_nonzero(filled & (hits > 0)) / max(np.count_nonzero(hits), 1))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="koosh_64x8")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--workdir", default=None, help="keep the simulated files here")
    parser.add_argument("--no-grog", action="store_true", help="skip classic 3D GROG (slow at 128^3)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    workdir = benchmark_workdir(args.workdir, "igrog-volume-")
    rows = []
    for name in args.cases.split(","):
        path = workdir / f"{name}.h5"
        seconds = simulate_once(path, SimulationSpec(**{**dict(snr=50.0, seed=11), **CASES[name]}))
        if seconds is not None:
            print(f"simulated {name} in {seconds:.0f} s", flush=True)
        rows.append(run_case(name, path, args.overrides, workdir, not args.no_grog))
        row = rows[-1]
        print(
            f"{'case':<16} {'samples':>8} {'NN':>6} {'GROG':>6} {'iGROG':>6} {'floor':>6} {'iG/NN':>6} {'iG/GROG':>7} "
            f"{'cover':>6} {'GROG s':>6} {'replay s':>8} {'RSS MB':>7}\n"
            f"{row['case']:<16} {row['samples']:>8} {row['nn']:>6.4f} {row['grog']:>6.4f} {row['igrog']:>6.4f} "
            f"{row['floor']:>6.4f} {row['igrog'] / row['nn']:>6.3f} {row['igrog'] / row['grog']:>7.3f} {row['cover']:>6.3f} "
            f"{row['grog_s']:>6.1f} {row['replay_s']:>8.1f} {row['rss_mb']:>7.0f}",
            flush=True,
        )
        ratios = [i / n for i, n in zip(row["bands_igrog"], row["bands_nn"])]
        shells = " ".join(f"[{lo:g},{hi:g})={r:.3f}" for (lo, hi), r in zip(SHELLS, ratios))
        nn_cells = " ".join(f"{v:.4f}" for v in row["bands_nn"])
        print(f"  iG/NN per |k| shell (x half matrix): {shells}; worst {np.nanmax(ratios):.3f} (NN NRMSE {nn_cells})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
