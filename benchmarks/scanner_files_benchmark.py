"""igrog on files as other writers make them, against nearest-neighbour gridding of the same file.

Simulated scans are edited (``writer_edits``) the way other writers produce them, replayed with
the standard ``basic`` configuration, and scored against the simulation's Cartesian truth on
the grid points nearest-neighbour gridding of the edited file fills. Prints one row per file.

    python benchmarks/scanner_files_benchmark.py [--cases a,b,...]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.baselines import grid_nearest_neighbour  # noqa: E402
from benchmarks.evaluation import load_case, nrmse_on_sampled  # noqa: E402
from benchmarks.writer_edits import (  # noqa: E402
    add_calibration_encoding,
    as_calibration_scan,
    calibration_lines_with_zero_trajectory,
    copy_dataset,
    keep_header,
    overshoot_to,
    shorten_even_spokes,
    without_calibration_lines,
)
from benchmarks.tables import print_rows  # noqa: E402
from igrog_gadget.config import load_config  # noqa: E402
from igrog_gadget.replay import replay_file  # noqa: E402
from igrog_gadget.simulate import SimulationSpec, simulate_to_file  # noqa: E402

RADIAL_ACS = SimulationSpec(matrix=128, coils=8, spokes=32, acs=32, seed=3)
"""32 spokes for a 128 matrix: without its ACS only a low-resolution self-calibration is possible."""
RADIAL_NORMALIZED = SimulationSpec(matrix=128, coils=8, spokes=128, acs=32, trajectory_units="normalized", seed=3)

#: name -> (simulation, edit (source, target) -> edited file or None for the file as simulated, what it shows)
Edit = Callable[[Path, Path], Path]
CASES: dict[str, tuple[SimulationSpec, Edit | None, str]] = {
    "acs_as_simulated": (RADIAL_ACS, None, "ACS lines on the main grid (reference)"),
    "acs_removed": (RADIAL_ACS, lambda s, t: copy_dataset(s, t, keep_header, without_calibration_lines), "no ACS"),
    "separate_calibration": (
        RADIAL_ACS, lambda s, t: copy_dataset(s, t, add_calibration_encoding, as_calibration_scan(1, True)),
        "encoding 1: 32x32, own e1 numbering, 2x oversampling",
    ),
    "calibration_main_numbering": (
        RADIAL_ACS, lambda s, t: copy_dataset(s, t, add_calibration_encoding, as_calibration_scan(1, False)),
        "encoding 1 lines numbered on the main grid (cannot be placed)",
    ),
    "calibration_as_encoding_0": (
        RADIAL_ACS, lambda s, t: copy_dataset(s, t, add_calibration_encoding, as_calibration_scan(0, False)),
        "64-sample lines claimed by encoding 0 (misplaced: rejected)",
    ),
    "calibration_zero_traj": (
        RADIAL_ACS, lambda s, t: copy_dataset(s, t, keep_header, calibration_lines_with_zero_trajectory),
        "ACS lines with an all-zero traj (mrpro's test-data writer)",
    ),
    "mixed_lengths": (
        RADIAL_ACS, lambda s, t: copy_dataset(s, t, keep_header, shorten_even_spokes(48)),
        "half the spokes 48 samples shorter",
    ),
    "overshoot_0.52": (
        RADIAL_NORMALIZED, lambda s, t: copy_dataset(s, t, keep_header, overshoot_to(0.52)),
        "normalized trajectory reaching |k| = 0.52",
    ),
    "radial48_128_no_acs": (SimulationSpec(matrix=128, coils=8, spokes=48, acs=None, seed=3), None, "48 spokes, 128 matrix"),
    "radial32_64_no_acs": (SimulationSpec(matrix=64, coils=8, spokes=32, acs=None, seed=3), None, "32 spokes, 64 matrix"),
}


def run_case(name: str, workdir: Path) -> dict:
    spec, edit, what = CASES[name]
    source = workdir / f"{name}.h5"
    simulate_to_file(source, spec)
    path = edit(source, workdir / f"{name}_edited.h5") if edit else source
    config = load_config("basic")
    started = time.perf_counter()
    report = replay_file(path, workdir / f"{name}_grid.h5", config)
    seconds = time.perf_counter() - started
    if path != source:  # score on the edited file: its nearest-neighbour gridding, the same truth
        shutil.copy(source.with_name(source.stem + ".truth.npz"), path.with_name(path.stem + ".truth.npz"))
    case = load_case(name, path, config)
    nn = grid_nearest_neighbour(case.frame.flat_samples(), case.frame.flat_coords(), case.frame.matrix)
    error = nrmse_on_sampled(report.frames[0].kspace, nn.hits, case.truth)
    nn_error = nrmse_on_sampled(nn.kspace, nn.hits, case.truth)
    frame_report = report.frames[0].report
    return {
        "case": name,
        "igrog NRMSE": f"{error:.4f}",
        "NN NRMSE": f"{nn_error:.4f}",
        "NN / igrog": f"{nn_error / error:.1f}",
        "estimated": f"{frame_report.estimated_nrmse:.4f}",
        "calibration": frame_report.training.calibration if frame_report.training else "",
        "replay s": f"{seconds:.1f}",
        "file": what,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_case(name, Path(tmp)) for name in args.cases.split(",")]
    print_rows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
