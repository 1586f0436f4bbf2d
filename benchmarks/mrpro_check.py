"""Does a real downstream reader take igrog's outputs as meant? mrpro's ``KData.from_file``.

For a 2D output with 2x grid oversampling, a multi-slice output and a stack-of-stars output it
checks the matrix, FOV and voxel size mrpro reads, the slices and partitions it finds, and that
mrpro's direct reconstruction (coil images, then RSS) equals the RSS of igrog's gridded k-space
(inverse FFT, cropped to the recon FOV), up to one global scale. Then the other direction: a
radial scan read by mrpro (``KTrajectoryIsmrmrd``) and written back by its ``KData.to_file``
(its own header, flags and 3-column trajectory) is gridded by igrog exactly as the original.
The outputs carry the calibration block as ACQ_IS_PARALLEL_CALIBRATION lines (``[output]
calibration``): mrpro's default reading leaves them out (the checks above), and read on their
own (``acquisition_filter_criterion`` = the calibration flag) they give the block itself at its k
positions (an 8-interleaf spiral with 24 ACS lines). Prints tables; exit code 1 when a check fails.

mrpro needs torchvision, whose PyPI build does not import beside the CPU torch 2.13.0 of the
project's environment, so run it from its own environment:

    python3 -m venv /tmp/mrpro-venv
    /tmp/mrpro-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 mrpro
    /tmp/mrpro-venv/bin/pip install -e .
    /tmp/mrpro-venv/bin/python benchmarks/mrpro_check.py
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.tables import print_rows  # noqa: E402
from igrog_gadget.config import load_config  # noqa: E402
from igrog_gadget.replay import replay_file  # noqa: E402
from igrog_gadget.simulate import SimulationSpec, simulate_to_file  # noqa: E402

QUICK = ["training.max_steps=200", "calibration.num_training_pairs=10000", "training.plateau_patience=0"]

#: name -> (simulation, extra configuration)
CASES: dict[str, tuple[SimulationSpec, list[str]]] = {
    "2d_grid_os2": (SimulationSpec(matrix=64, coils=4, spokes=96, acs=24, fov_mm=64.0, seed=1), ["gridding.grid_oversampling=2"]),
    "multi_slice": (SimulationSpec(matrix=48, coils=4, spokes=80, acs=24, slices=3, seed=2), []),
    "stack_of_stars": (SimulationSpec(matrix=48, coils=4, spokes=80, acs=24, partitions=4, seed=3), []),
}


def rss_of_gridded(kspace: np.ndarray, recon_matrix: tuple[int, int]) -> np.ndarray:
    """RSS image of gridded k-space (coils, kz, ky, kx), centred FFT, cropped to (ry, rx)."""
    image = np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(kspace, axes=(-3, -2, -1)), axes=(-3, -2, -1)), axes=(-3, -2, -1))
    ny, nx = kspace.shape[-2:]
    ry, rx = recon_matrix
    image = image[..., (ny - ry) // 2 : (ny - ry) // 2 + ry, (nx - rx) // 2 : (nx - rx) // 2 + rx]
    return np.sqrt(np.sum(np.abs(image) ** 2, axis=0))


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """||a - s b|| / ||a|| with the least-squares scale s (the readers' FFT scaling differs)."""
    a, b = a.reshape(-1), b.reshape(-1)
    scale = np.vdot(b, a).real / max(np.vdot(b, b).real, 1e-30)
    return float(np.linalg.norm(a - scale * b) / np.linalg.norm(a))


def check(name: str, spec: SimulationSpec, overrides: list[str], workdir: Path) -> dict:
    from mrpro.algorithms.reconstruction import DirectReconstruction
    from mrpro.data import KData
    from mrpro.data.traj_calculators import KTrajectoryCartesian

    source, output = workdir / f"{name}.h5", workdir / f"{name}_grid.h5"
    simulate_to_file(source, spec)
    config = load_config("basic", overrides=[*QUICK, *overrides])
    report = replay_file(source, output, config)
    kdata = KData.from_file(output, KTrajectoryCartesian())
    head = kdata.header
    frames = report.frames
    nx, ny = frames[0].kspace.shape[-1], frames[0].kspace.shape[-2]
    factor = config.gridding.grid_oversampling
    voxel_mm = spec.fov_mm * factor / nx
    partitions = spec.partitions
    expected_shape_k = (partitions, ny, nx)
    data_shape = tuple(kdata.data.shape)  # (other..., coils, k2, k1, k0)
    images = DirectReconstruction(kdata, csm=None)(kdata).rss().detach().cpu().numpy()  # (other..., z, y, x)
    differences = []
    for index, slab in enumerate(_slabs(frames, spec)):
        ours = rss_of_gridded(slab, (head.recon_matrix.y, head.recon_matrix.x))
        theirs = images.reshape(-1, *images.shape[-3:])[index]
        differences.append(relative_difference(ours, theirs))
    checks = {
        "matrix": (head.encoding_matrix.x, head.encoding_matrix.y, head.encoding_matrix.z) == (nx, ny, partitions),
        "voxel": abs(head.recon_fov.x * 1e3 / head.recon_matrix.x - voxel_mm) < 1e-6
        and abs(head.encoding_fov.x * 1e3 / head.encoding_matrix.x - voxel_mm) < 1e-6,
        "k-space": data_shape[-3:] == expected_shape_k and int(np.prod(data_shape[:-4] or (1,))) == spec.slices,
        "recon": max(differences) < 1e-3,
    }
    return {
        "case": name,
        "mrpro matrix (x,y,z)": f"{head.encoding_matrix.x}x{head.encoding_matrix.y}x{head.encoding_matrix.z}",
        "recon matrix": f"{head.recon_matrix.x}x{head.recon_matrix.y}",
        "voxel mm": f"{head.recon_fov.x * 1e3 / head.recon_matrix.x:.3f} (expect {voxel_mm:.3f})",
        "data shape": "x".join(str(d) for d in data_shape),
        "direct recon vs RSS": f"{max(differences):.1e}",
        "ok": all(checks.values()),
        "failed": [k for k, v in checks.items() if not v],
    }


def mrpro_written_input(workdir: Path) -> dict:
    """igrog's error on a scan written by mrpro's KData.to_file vs on the original file."""
    from mrpro.data import KData
    from mrpro.data.traj_calculators import KTrajectoryIsmrmrd

    from benchmarks.baselines import grid_nearest_neighbour
    from benchmarks.evaluation import load_case, nrmse_on_sampled

    source, written = workdir / "radial.h5", workdir / "radial_mrpro.h5"
    simulate_to_file(source, SimulationSpec(matrix=64, coils=4, spokes=96, acs=None, seed=4))
    KData.from_file(source, KTrajectoryIsmrmrd()).to_file(written)
    config = load_config("basic", overrides=QUICK)
    case = load_case("c", source, load_config("basic"))
    nn = grid_nearest_neighbour(case.frame.flat_samples(), case.frame.flat_coords(), case.frame.matrix)
    errors = {}
    for name, path in (("original", source), ("mrpro-written", written)):
        report = replay_file(path, workdir / f"{name}_grid.h5", config)
        errors[name] = nrmse_on_sampled(report.frames[0].kspace, nn.hits, case.truth)
    nn_error = nrmse_on_sampled(nn.kspace, nn.hits, case.truth)
    return {
        "input": "radial 64, 96 spokes, no ACS",
        "igrog NRMSE original": f"{errors['original']:.4f}",
        "igrog NRMSE mrpro-written": f"{errors['mrpro-written']:.4f}",
        "nearest neighbour": f"{nn_error:.4f}",
        "ok": abs(errors["original"] - errors["mrpro-written"]) < 1e-3 and errors["mrpro-written"] < 0.5 * nn_error,
    }


def print_table(rows: list[dict]) -> None:
    print_rows(rows, " | ", skip=("failed",))
    for row in rows:
        if not row["ok"]:
            print(f"FAILED {row.get('case', row.get('input'))}: {row.get('failed', '')}")


def _slabs(frames, spec: SimulationSpec) -> list[np.ndarray]:
    """Gridded k-space per slice as (coils, partitions, ny, nx), in slice order."""
    by_slice: dict[int, dict[int, np.ndarray]] = {}
    for frame in frames:
        slice_index, e2 = frame.frame_key[0], frame.frame_key[-1]
        by_slice.setdefault(slice_index, {})[e2] = frame.kspace
    return [np.stack([parts[e2] for e2 in sorted(parts)], axis=1) for _, parts in sorted(by_slice.items())]


def calibration_lines(workdir: Path) -> dict:
    """mrpro reads the passed-on calibration block of a spiral output as a Cartesian KData."""
    from mrpro.data import KData
    from mrpro.data.traj_calculators import KTrajectoryCartesian

    source, output = workdir / "spiral.h5", workdir / "spiral_grid.h5"
    simulate_to_file(source, SimulationSpec(trajectory="spiral", matrix=64, coils=4, interleaves=8, acs=24, seed=5))
    report = replay_file(source, output, load_config("basic", overrides=QUICK))
    block = report.frames[0].calibration
    calibration_flag = 1 << 19  # ACQ_IS_PARALLEL_CALIBRATION (bit 20)
    kdata = KData.from_file(output, KTrajectoryCartesian(), acquisition_filter_criterion=lambda a: bool(a.flags & calibration_flag))
    data = kdata.data.numpy()[0, :, 0]  # (coils, k1, k0)
    ky, kx = kdata.traj.ky.flatten().numpy(), kdata.traj.kx.flatten().numpy()
    same = data.shape == block.kspace.shape and float(np.abs(data - block.kspace).max()) == 0.0
    placed = (int(ky.min()), int(kx.min())) == (block.ky0, block.kx0) and len(ky) == block.shape[0] and len(kx) == block.shape[1]
    return {
        "output": "spiral 64, 8 interleaves, 24 ACS lines",
        "block (source)": f"{block.shape[0]}x{block.shape[1]} ({block.source}) at ky {block.ky0}, kx {block.kx0}",
        "mrpro data shape": "x".join(str(d) for d in kdata.data.shape),
        "mrpro k (min)": f"ky {int(ky.min())}, kx {int(kx.min())}",
        "data equal": same,
        "ok": same and placed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        import mrpro  # noqa: F401
    except ImportError:
        print("mrpro is not installed: pip install mrpro", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases.split(","):
            spec, overrides = CASES[name]
            rows.append(check(name, spec, overrides, Path(tmp)))
        written = mrpro_written_input(Path(tmp))
        calibration = calibration_lines(Path(tmp))
    print_table(rows)
    print()
    print_table([written])
    print()
    print_table([calibration])
    return 0 if all(r["ok"] for r in rows) and written["ok"] and calibration["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
