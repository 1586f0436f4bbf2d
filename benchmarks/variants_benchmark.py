"""Accuracy and speed of the image_based and fieldcorr variants against basic.

Usage: python benchmarks/variants_benchmark.py [--cases a,b,...] [--set section.field=value ...]
                                               [--workdir DIR]

Simulates each case with ``igrog simulate``'s code (128 matrix, 8 coils, 2x readout
oversampling, 200 golden-angle spokes or 16 spiral interleaves, image SNR 50; coil images and
sensitivity maps written as image series) and grids its first frame with every method of the
case, with the same overrides. Rows:

- ``basic``: k-space calibration (joint ACS + centre solve, ACS only, or self-calibration);
- ``image_based series``: coil images from the ``coil_images`` series (field-free truth);
- ``image_based data``: the image series removed, coil images made from the data's centre;
- ``fieldcorr hybrid`` / ``kernel``: the two field-correction modes (B0 map from the series);
  ``fieldcorr hybrid data``: coil images made from the data.

Cases ``*_acs32`` / ``*_acs16`` have a 32 / 16-line Cartesian ACS, ``*_self`` none.
``spiral_b0``: 16 interleaves of 9.6 ms, smooth B0 map of +60 / -33 Hz, ACS 32;
``spiral_nob0``: the same spiral without off-resonance (zero map).

3D cases (one 3D frame each; closed-form kernels, ``training.volume.fit = closed_form``, the more
accurate fit at 32^3 and a fraction of the network's time):

- ``koosh32_acs12`` / ``koosh32_self``: 32^3 golden-means kooshball, 8 coils, 1200 spokes, SNR 50,
  a 12 x 12 (ky, kz) ACS block or none; a 3D ``coil_images`` series (field-free truth);
- ``sos32_b0``: 32 x 32 x 16 stack of spirals (8 interleaves of 9.6 ms a partition), 8 coils,
  16 x 16 ACS, a smooth 3D B0 map of up to 60 Hz as a 3D ``b0map`` series; ``sos32_nob0`` the
  same without off-resonance (zero map). ``fieldcorr kernel`` trains 600 steps on 60000 pairs;
  ``image_based series`` (the same coil images, the field ignored) separates the gain of the
  images' calibration from that of the field correction.

Columns: k-space NRMSE
against the field-free truth on the sampled grid points, its ratio to basic's, training
seconds, gridding seconds (kernel inference, application and any field correction), the
time to grid a new frame with cached kernels, and the whole first frame (calibration images,
pair synthesis, training and gridding).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.evaluation import benchmark_workdir, load_case, nrmse_on_sampled, simulate_once  # noqa: E402
from benchmarks.run_benchmark import best_time, noise_floor  # noqa: E402
from igrog_gadget.planning.gridder import FrameGridder  # noqa: E402
from igrog_gadget.config import load_config  # noqa: E402
from igrog_gadget.errors import IgrogError  # noqa: E402
from igrog_gadget.simulate import SimulationSpec  # noqa: E402

COMMON = dict(
    matrix=128, coils=8, spokes=200, interleaves=16, snr=50.0, write_coil_images=True, write_sensitivity_maps=True
)

#: name → (simulation spec fields, methods: (label, variant, overrides, keep image series))
IMAGE_METHODS = [
    ("basic", "basic", [], True),
    ("image_based series", "image_based", [], True),
    ("image_based data", "image_based", [], False),
]
FIELD_METHODS = [
    ("basic", "basic", [], True),
    ("fieldcorr hybrid", "fieldcorr", [], True),
    ("fieldcorr kernel", "fieldcorr", ["fieldcorr.mode=kernel"], True),
    ("fieldcorr hybrid data", "fieldcorr", [], "b0map"),
]
#: 3D cases: their spec fields replace all of COMMON's that differ; every method adds CLOSED_3D.
COMMON_3D = dict(coils=8, snr=50.0, write_coil_images=True, write_sensitivity_maps=True)
CLOSED_3D = ["training.volume.fit=closed_form", "calibration.edge_margin=2"]
FIELD_METHODS_3D = [
    FIELD_METHODS[0],
    ("image_based series", "image_based", [], True),  # the images' calibration without the field's correction
    FIELD_METHODS[1],
    ("fieldcorr kernel", "fieldcorr",
     ["fieldcorr.mode=kernel", "training.volume.max_steps=600", "calibration.volume.num_training_pairs=60000"], True),
    FIELD_METHODS[3],
]
KOOSH_32 = dict(trajectory="kooshball", matrix=32, spokes=1200)
SOS_32 = dict(trajectory="stack_of_spirals", matrix=32, interleaves=8, partitions=16, acs=16, readout_ms=9.6, write_b0map=True)
CASES: dict[str, tuple[dict, list]] = {
    "radial_acs32": (dict(trajectory="radial", acs=32), IMAGE_METHODS),
    "radial_acs16": (dict(trajectory="radial", acs=16), IMAGE_METHODS),
    "radial_self": (dict(trajectory="radial", acs=None), IMAGE_METHODS),
    "spiral_acs32": (dict(trajectory="spiral", acs=32), IMAGE_METHODS),
    "spiral_acs16": (dict(trajectory="spiral", acs=16), IMAGE_METHODS),
    "spiral_self": (dict(trajectory="spiral", acs=None), IMAGE_METHODS),
    "spiral_b0": (dict(trajectory="spiral", acs=32, b0_max_hz=60.0, readout_ms=9.6, write_b0map=True), FIELD_METHODS),
    "spiral_nob0": (dict(trajectory="spiral", acs=32, b0_max_hz=0.0, readout_ms=9.6, write_b0map=True), FIELD_METHODS[:2]),
    "koosh32_acs12": (dict(**KOOSH_32, acs=12), IMAGE_METHODS),
    "koosh32_self": (dict(**KOOSH_32, acs=None), IMAGE_METHODS),
    "sos32_b0": (dict(**SOS_32, b0_max_hz=60.0), FIELD_METHODS_3D),
    "sos32_nob0": (dict(**SOS_32, b0_max_hz=0.0), FIELD_METHODS_3D[:3]),
}
VOLUME_CASES = ("koosh32_acs12", "koosh32_self", "sos32_b0", "sos32_nob0")


def run_method(path: Path, label: str, variant: str, overrides: list[str], keep) -> dict:
    """One row: grid the first frame of ``path`` with ``variant``."""
    config = load_config(variant, overrides=overrides)
    case = load_case(path.stem, path, config)
    frame = case.frame
    if keep is False:
        frame.images = {}
    elif isinstance(keep, str):
        frame.images = {keep: frame.images[keep]}
    row = {"case": path.stem, "method": label}
    gridder = FrameGridder(config)
    started = time.perf_counter()
    try:
        result = gridder.grid(frame)
    except IgrogError as error:
        row.update(error=str(error).split(";")[0][:70])
        return row
    row["first_s"] = time.perf_counter() - started
    row["nrmse"] = nrmse_on_sampled(result.kspace, result.hits, case.truth)
    row["floor"] = noise_floor(result.hits, case.noise_std, case.truth)
    training = result.report.training
    row["calibration"] = training.calibration if training else ""
    row["train_s"] = training.seconds if training else float("nan")
    row["grid_s"] = result.report.gridding_s
    row["cached_s"] = best_time(lambda: gridder.grid(frame), 2)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help="default: all (the 3D ones: " + ",".join(VOLUME_CASES) + ")")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--workdir", default=None, help="keep the simulated files here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    workdir = benchmark_workdir(args.workdir, "igrog-variants-")
    header = (
        f"{'case':<13} {'method':<22} {'NRMSE':>6} {'/basic':>6} {'floor':>6} {'train s':>7} {'grid s':>6} "
        f"{'cached s':>8} {'first s':>7}  calibration"
    )
    print(header)
    print("-" * len(header))
    for name in args.cases.split(","):
        spec, methods = CASES[name]
        path = workdir / f"{name}.h5"
        volume = name in VOLUME_CASES
        simulate_once(path, SimulationSpec(**{**(COMMON_3D if volume else COMMON), **spec}))
        basic = None
        for label, variant, extra, keep in methods:
            row = run_method(path, label, variant, (CLOSED_3D if volume else []) + extra + args.overrides, keep)
            if "error" in row:
                print(f"{name:<13} {label:<22} failed: {row['error']}")
                continue
            if variant == "basic":
                basic = row["nrmse"]
            ratio = row["nrmse"] / basic if basic else float("nan")
            print(
                f"{name:<13} {label:<22} {row['nrmse']:6.3f} {ratio:6.2f} {row['floor']:6.3f} {row['train_s']:7.2f} "
                f"{row['grid_s']:6.3f} {row['cached_s']:8.3f} {row['first_s']:7.2f}  {row['calibration']}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
