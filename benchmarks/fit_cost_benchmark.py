"""What a first calibration key costs: the kernel fit against the network training it replaced.

Usage: python benchmarks/fit_cost_benchmark.py [--cases sample,radial200,spiral16,...] [--repeats 3]
           [--variant basic|image_based|fieldcorr] [--fits closed_form,network] [--workdir DIR]
           [--set section.field=value ...]

Each measurement is a fresh process (``--child``) that loads the case's first frame and makes
``FrameGridder(config).grid(frame)`` once: the first key's calibration, fit, kernels and the
frame's gridding. Its CPU seconds (user + system of every thread, ``getrusage``) and wall
seconds cover that call only (the interpreter, torch's import and the file's reading are
common to every fit and not counted). The fits alternate within each repeat (A B, A B, ...), so
each ratio compares runs made under the same load; printed per case and fit: median CPU and
wall seconds, the engine's training seconds, k-space NRMSE against the truth on the sampled
points (simulated cases) and the CPU ratio to the first fit listed in ``--fits`` (median of the
pairwise ratios, with their range).

``network`` is the issue's baseline: ``training.fit = network`` (the gradient-trained kernel
network, 1200 steps in 2D, 2400 in 3D) and ``calibration.fill_centre = false``, its default
before the closed form; ``closed_form`` is ``training.fit = closed_form`` (3D: ``training.volume.fit``) with
the centre fill. Cases (simulated once per ``--workdir``): ``sample`` the embedded sample
(128², 8 coils, 200 spokes + 32 ACS lines); ``radial200``, ``spiral16``, ``spiral8`` 128² x 8 coils at
SNR 50; ``radial300_192`` 192² x 16 coils (the paced stream's slice); ``koosh32`` 32³ x 8 coils,
1200 spokes; ``koosh64`` 64³ x 8 coils, 4000 spokes (slow).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from igrog_gadget.environment import configure_process  # noqa: E402

configure_process()  # as the product's commands do, before torch is imported (a child measures)

from benchmarks.evaluation import benchmark_workdir, simulate_once  # noqa: E402
from benchmarks.tables import print_rows  # noqa: E402
from igrog_gadget.simulate import SimulationSpec  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "igrog_gadget" / "data" / "sample_radial.h5"
BASE = dict(trajectory="radial", matrix=128, coils=8, acs=32, snr=50.0)
CASES: dict[str, dict | None] = {
    "sample": None,
    "radial200": dict(spokes=200),
    "spiral16": dict(trajectory="spiral", interleaves=16),
    "spiral8": dict(trajectory="spiral", interleaves=8),
    "radial300_192": dict(matrix=192, coils=16, spokes=300),
    "koosh32": dict(trajectory="kooshball", matrix=32, spokes=1200, acs=12),
    "koosh64": dict(trajectory="kooshball", matrix=64, spokes=4000, acs=16),
}
VARIANT_EXTRAS: dict[str, dict] = {
    "basic": {},
    "image_based": dict(write_coil_images=True),
    "fieldcorr": dict(b0_max_hz=40.0, write_b0map=True),
}
FITS: dict[str, list[str]] = {
    "network": ["training.fit=network", "training.volume.fit=network", "calibration.fill_centre=false"],
    "closed_form": ["training.fit=closed_form", "training.volume.fit=closed_form"],
}


def fit_overrides(fit: str, variant: str) -> list[str]:
    """``FITS[fit]`` for ``variant`` (fieldcorr fills no centre: it has no ``fill_centre``)."""
    return [o for o in FITS[fit] if not (variant == "fieldcorr" and o.startswith("calibration.fill_centre"))]


def cpu_seconds() -> float:
    """User + system CPU seconds of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(path: Path, variant: str, overrides: list[str]) -> dict:
    """One first key in this process: the measurement's figures."""
    import numpy as np

    from benchmarks.evaluation import first_frame, load_case, nrmse_on_sampled
    from igrog_gadget.config import load_config
    from igrog_gadget.environment import set_thread_counts
    from igrog_gadget.planning.gridder import FrameGridder

    config = load_config(variant, overrides=overrides)
    set_thread_counts(config.gridding.cpu_threads)
    has_truth = path.with_name(path.stem + ".truth.npz").exists()
    if has_truth:
        case = load_case(path.stem, path, config)
        frame, truth = case.frame, case.truth
    else:
        frame, truth = first_frame(path, config), None
    gridder = FrameGridder(config)
    cpu, wall = cpu_seconds(), time.perf_counter()
    result = gridder.grid(frame)
    cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
    gridder.close()
    training = result.report.training
    nrmse = nrmse_on_sampled(result.kspace, result.hits, truth) if truth is not None else float("nan")
    return dict(
        cpu_s=cpu, wall_s=wall, training_s=training.seconds if training else 0.0,
        steps=training.steps if training else 0, nrmse=float(np.float64(nrmse)),
    )


def measure(path: Path, variant: str, overrides: list[str]) -> dict:
    """``child`` in a fresh process."""
    command = [sys.executable, __file__, "--child", str(path), "--variant", variant]
    for override in overrides:
        command += ["--set", override]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def case_path(name: str, variant: str, workdir: Path) -> Path:
    """The case's file, simulated into ``workdir`` on first use."""
    spec = CASES[name]
    if spec is None:
        return SAMPLE
    path = workdir / f"{name}_{variant}.h5"
    simulate_once(path, SimulationSpec(**{**BASE, **spec, **VARIANT_EXTRAS[variant]}))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="sample,radial200,spiral16,spiral8,radial300_192,koosh32")
    parser.add_argument("--fits", default="network,closed_form")
    parser.add_argument("--variant", default="basic", choices=sorted(VARIANT_EXTRAS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(Path(args.child), args.variant, args.overrides)))
        return 0
    fits = args.fits.split(",")
    unknown = [f for f in fits if f not in FITS] + [c for c in args.cases.split(",") if c not in CASES]
    if unknown:
        parser.error(f"unknown fits or cases: {', '.join(unknown)}")
    workdir = benchmark_workdir(args.workdir, "igrog-fitcost-")
    rows = []
    for name in args.cases.split(","):
        path = case_path(name, args.variant, workdir)
        runs: dict[str, list[dict]] = {fit: [] for fit in fits}
        for _ in range(args.repeats):
            for fit in fits:  # alternating: each pair ran under the same load
                runs[fit].append(measure(path, args.variant, fit_overrides(fit, args.variant) + args.overrides))
        base = runs[fits[0]]
        for fit in fits:
            ratios = [r["cpu_s"] / b["cpu_s"] for r, b in zip(runs[fit], base)]
            rows.append({
                "case": name, "fit": fit,
                "CPU s": f"{statistics.median(r['cpu_s'] for r in runs[fit]):.2f}",
                "wall s": f"{statistics.median(r['wall_s'] for r in runs[fit]):.2f}",
                "training s": f"{statistics.median(r['training_s'] for r in runs[fit]):.2f}",
                "steps": runs[fit][0]["steps"],
                "NRMSE": f"{runs[fit][0]['nrmse']:.4f}",
                f"CPU / {fits[0]}": f"{statistics.median(ratios):.3f}",
                "range": f"{min(ratios):.2f}-{max(ratios):.2f}",
            })
    print(f"First key: FrameGridder.grid of the first frame, fresh process each, variant {args.variant}, "
          f"{args.repeats} alternating repeats (medians)")
    print_rows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
