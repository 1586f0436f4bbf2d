"""Regenerate the recorded simulator files deterministically.

Usage (from the repository root)::

    python tests/data/make_data.py            # write all files (overwrites)
    python tests/data/make_data.py --check    # regenerate into a temp dir and compare

Each entry below is equivalent to the ``igrog simulate`` command in its comment.
The files are deterministic for a given seed (up to floating-point differences
between NUFFT/FFT builds, well below the noise level).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

from igrog_gadget.simulate import SimulationSpec, load_truth, simulate_to_file

ROOT = Path(__file__).resolve().parents[2]

logger = logging.getLogger("make_data")

#: (path relative to the repository root, spec)
FILES: dict[str, SimulationSpec] = {
    # igrog simulate igrog_gadget/data/sample_radial.h5 --trajectory radial --matrix 128 --coils 8
    #   --spokes 200 --acs 32 --snr 50 --slices 1 --seed 0
    "igrog_gadget/data/sample_radial.h5": SimulationSpec(
        trajectory="radial", matrix=128, coils=8, spokes=200, samples_per_spoke=256, acs=32, snr=50.0, seed=0
    ),
    # igrog simulate tests/data/radial_acs.h5 --matrix 64 --coils 4 --spokes 100 --acs 24 --snr 50 --seed 1
    "tests/data/radial_acs.h5": SimulationSpec(
        trajectory="radial", matrix=64, coils=4, spokes=100, samples_per_spoke=128, acs=24, snr=50.0, seed=1
    ),
    # igrog simulate tests/data/radial_selfcal.h5 --matrix 64 --coils 4 --spokes 100 --acs none --snr 50 --seed 2
    "tests/data/radial_selfcal.h5": SimulationSpec(
        trajectory="radial", matrix=64, coils=4, spokes=100, samples_per_spoke=128, acs=None, snr=50.0, seed=2
    ),
    # igrog simulate tests/data/spiral_acs.h5 --trajectory spiral --matrix 64 --coils 4 --interleaves 8
    #   --acs 24 --snr 50 --readout-ms 8 --seed 3
    "tests/data/spiral_acs.h5": SimulationSpec(
        trajectory="spiral", matrix=64, coils=4, interleaves=8, acs=24, snr=50.0, readout_ms=8.0, seed=3
    ),
    # igrog simulate tests/data/radial_multi.h5 --matrix 64 --coils 4 --spokes 32 --acs 24 --snr 50
    #   --slices 2 --repetitions 2 --units normalized --seed 4
    "tests/data/radial_multi.h5": SimulationSpec(
        trajectory="radial",
        matrix=64,
        coils=4,
        spokes=32,
        samples_per_spoke=128,
        acs=24,
        snr=50.0,
        slices=2,
        repetitions=2,
        trajectory_units="normalized",
        seed=4,
    ),
    # igrog simulate tests/data/spiral_b0.h5 --trajectory spiral --matrix 64 --coils 4 --interleaves 8
    #   --acs 24 --snr 50 --readout-ms 10 --b0-max-hz 50 --write-b0map --write-coil-images
    #   --write-sensitivity-maps --seed 5
    "tests/data/spiral_b0.h5": SimulationSpec(
        trajectory="spiral",
        matrix=64,
        coils=4,
        interleaves=8,
        acs=24,
        snr=50.0,
        readout_ms=10.0,
        b0_max_hz=50.0,
        write_b0map=True,
        write_coil_images=True,
        write_sensitivity_maps=True,
        seed=5,
    ),
}


def _compare(reference: Path, candidate: Path) -> list[str]:
    """Differences between two simulated files (acquisition data, traj, truth)."""
    from igrog_gadget.io.acquisitions import read_acquisitions

    problems: list[str] = []
    first, second = read_acquisitions(reference), read_acquisitions(candidate)
    if len(first) != len(second):
        return [f"{reference}: {len(first)} acquisitions vs {len(second)} regenerated"]
    for i, (x, y) in enumerate(zip(first, second)):
        if x.getHead() != y.getHead():
            problems.append(f"{reference}: acquisition {i} header differs")
        scale = max(float(np.abs(x.data).max()), 1e-12)
        if x.data.shape != y.data.shape or np.abs(x.data - y.data).max() > 1e-4 * scale:
            problems.append(f"{reference}: acquisition {i} data differs")
        if x.traj.shape != y.traj.shape or (x.traj.size and np.abs(x.traj - y.traj).max() > 1e-5):
            problems.append(f"{reference}: acquisition {i} traj differs")
    ta, tb = load_truth(reference), load_truth(candidate)
    for key in ("kspace", "image", "sensitivity_maps"):
        if not np.allclose(ta[key], tb[key], rtol=1e-4, atol=1e-6):
            problems.append(f"{reference}: truth {key} differs")
    if ta["spec"] != tb["spec"]:
        problems.append(f"{reference}: truth spec differs")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="regenerate into a temp dir and compare")
    parser.add_argument("names", nargs="*", help="only these files (paths as listed in FILES)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    selected = {k: v for k, v in FILES.items() if not args.names or k in args.names}
    if args.check:
        problems: list[str] = []
        with tempfile.TemporaryDirectory() as tmp:
            for rel, spec in selected.items():
                out = Path(tmp) / Path(rel).name
                simulate_to_file(out, spec)
                problems += _compare(ROOT / rel, out)
        for p in problems:
            logger.error("%s", p)
        return 1 if problems else 0
    for rel, spec in selected.items():
        out = ROOT / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        truth = simulate_to_file(out, spec, overwrite=True)
        logger.info("%s: %d bytes, %s: %d bytes", rel, out.stat().st_size, truth.name, truth.stat().st_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
