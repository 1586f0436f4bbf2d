"""Command-line front end: ``igrog simulate OUTPUT.h5 ...``."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from .spec import TRAJECTORIES, TRAJECTORY_UNITS, SimulationSpec, truth_path_for

logger = logging.getLogger(__name__)


def _acs_value(text: str) -> int | None:
    if text.strip().lower() in ("none", "0", "off", "no"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--acs must be an integer or 'none', got {text!r}") from None
    return value


def _snr_value(text: str) -> float | None:
    if text.strip().lower() in ("none", "inf", "infinity", "noiseless"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--snr must be a number, 'inf' or 'none', got {text!r}") from None
    return None if math.isinf(value) else value


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` options (see :class:`SimulationSpec`) to ``parser``."""
    d = SimulationSpec()
    parser.add_argument("output", type=Path, help="output ISMRMRD .h5 file (truth goes to <stem>.truth.npz)")
    parser.add_argument(
        "--trajectory", choices=TRAJECTORIES, default=d.trajectory,
        help="radial, spiral, or the 3D kooshball (N^3) and stack_of_spirals (N x N x --partitions)",
    )
    parser.add_argument("--matrix", type=int, default=d.matrix, help="gridding matrix N (default %(default)s)")
    parser.add_argument("--coils", type=int, default=d.coils)
    parser.add_argument("--spokes", type=int, default=d.spokes, help="radial spokes (default %(default)s)")
    parser.add_argument(
        "--samples-per-spoke", type=int, default=None, help="radial samples per spoke (default 2 * matrix)"
    )
    parser.add_argument("--interleaves", type=int, default=d.interleaves, help="spiral interleaves")
    parser.add_argument(
        "--acs", type=_acs_value, default=d.acs, help="central Cartesian ACS lines, or 'none' (default %(default)s)"
    )
    parser.add_argument("--snr", type=_snr_value, default=d.snr, help="image SNR, or 'inf' for noiseless")
    parser.add_argument("--slices", type=int, default=d.slices)
    parser.add_argument(
        "--partitions", type=int, default=d.partitions,
        help="stack-of-stars kz partitions (kspace_encode_step_2; needs --slices 1); the kz planes of stack_of_spirals",
    )
    parser.add_argument("--repetitions", type=int, default=d.repetitions)
    parser.add_argument("--contrasts", type=int, default=d.contrasts)
    parser.add_argument(
        "--units",
        dest="trajectory_units",
        choices=TRAJECTORY_UNITS,
        default=d.trajectory_units,
        help="trajectory units in the file (default %(default)s)",
    )
    parser.add_argument("--b0-max-hz", type=float, default=d.b0_max_hz, help="max |off-resonance| (0 = none)")
    parser.add_argument("--readout-ms", type=float, default=d.readout_ms, help="spiral readout duration")
    parser.add_argument("--spiral-dwell-us", type=float, default=None, help="spiral dwell time (default automatic)")
    parser.add_argument("--noise-scans", type=int, default=d.noise_scans)
    parser.add_argument("--noise-correlation", type=float, default=d.noise_correlation)
    parser.add_argument("--fov-mm", type=float, default=d.fov_mm)
    parser.add_argument("--write-b0map", action="store_true", help="add the 'b0map' image series (Hz)")
    parser.add_argument("--write-coil-images", action="store_true", help="add the 'coil_images' image series")
    parser.add_argument(
        "--write-sensitivity-maps", action="store_true", help="add the 'sensitivity_maps' image series"
    )
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")


def spec_from_args(args: argparse.Namespace) -> SimulationSpec:
    """Build a :class:`SimulationSpec` from parsed ``simulate`` arguments."""
    return SimulationSpec(
        trajectory=args.trajectory,
        matrix=args.matrix,
        coils=args.coils,
        spokes=args.spokes,
        samples_per_spoke=args.samples_per_spoke,
        interleaves=args.interleaves,
        acs=args.acs,
        snr=args.snr,
        slices=args.slices,
        partitions=args.partitions,
        repetitions=args.repetitions,
        contrasts=args.contrasts,
        trajectory_units=args.trajectory_units,
        b0_max_hz=args.b0_max_hz,
        readout_ms=args.readout_ms,
        spiral_sample_time_us=args.spiral_dwell_us,
        noise_scans=args.noise_scans,
        noise_correlation=args.noise_correlation,
        fov_mm=args.fov_mm,
        write_b0map=bool(args.write_b0map),
        write_coil_images=bool(args.write_coil_images),
        write_sensitivity_maps=bool(args.write_sensitivity_maps),
        seed=args.seed,
    )


def run_simulate(args: argparse.Namespace) -> int:
    """Run ``igrog simulate``; returns the exit status (0 ok, 1 output exists, 2 bad option)."""
    try:
        spec = spec_from_args(args)
    except ValueError as exc:
        logger.error("invalid simulate option: %s", exc)
        return 2
    output = Path(args.output)
    if not getattr(args, "force", False):
        for p in (output, truth_path_for(output)):
            if p.exists():
                logger.error("refusing to overwrite existing %s (use --force)", p)
                return 1
    from .writer import simulate_to_file  # the simulator's numerics: imported when they run

    try:
        truth = simulate_to_file(output, spec, overwrite=True)
    except ValueError as exc:
        logger.error("simulate failed: %s", exc)
        return 2
    logger.info("wrote %s and %s", output, truth)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m igrog_gadget.simulate``)."""
    parser = argparse.ArgumentParser(prog="python -m igrog_gadget.simulate", description=__doc__)
    add_simulate_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    return run_simulate(args)
