"""iGROG at clinical scale: accuracy, time and whole-process peak memory of `igrog replay`.

Usage: python benchmarks/scale_benchmark.py [--cases a,b,...] [--workdir DIR] [--set section.field=value ...]
                                            [--device cpu|cuda]

Each case is simulated once (kept in ``--workdir``) with four repetitions (two for the
multi-slice, its 1-slice reference and the stack-of-stars; later repetitions of a slice or
partition are gridded with the cached kernels of the first, when they fit the cache), then
``igrog replay`` runs in its own process under ``/usr/bin/time -v`` (peak RSS of the whole
process). In the same run, on the first frame: nearest-neighbour and classic GROG
(``benchmarks/baselines.py``, GROG in iGROG's virtual coils) NRMSE and a finufft adjoint's time. Printed per case:

- ``NN``, ``GROG``, ``iGROG``: k-space NRMSE against the truth on the sampled grid points
  (iGROG: first frame; ``iG mean``: mean over all frames), ``floor``: NRMSE of perfect
  averaging of the noise, ``iG/floor``: mean over frames of iGROG / floor;
- ``vcoils``: virtual coils iGROG gridded in (the output is in the physical coils);
- ``estimate``: iGROG's own error estimate (held-out pairs, mean over frames; no truth used);
- ``steps``/``train s``: optimizer steps and seconds of all trainings; ``grid s``: kernel
  inference + application of the first frame; ``cached s``: a new frame with cached kernels
  (best of the repetitions, 3 for most cases); ``adjoint s``: finufft adjoint of the first frame (best of 3);
- ``replay s`` and ``RSS MB``: the whole ``igrog replay`` process.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.baselines import ClassicGrog, grid_nearest_neighbour  # noqa: E402
from benchmarks.evaluation import benchmark_workdir, grog_block, load_case, nrmse_on_sampled, simulate_once  # noqa: E402
from benchmarks.run_benchmark import best_time, noise_floor  # noqa: E402
from igrog_gadget.config import load_config  # noqa: E402
from igrog_gadget.numerics.nufft import nufft_adjoint  # noqa: E402
from igrog_gadget.io import read_dataset  # noqa: E402
from igrog_gadget.scan import FRAME_KEY_FIELDS  # noqa: E402
from igrog_gadget.simulate import SimulationSpec  # noqa: E402

COMMON = dict(snr=50.0, repetitions=4, acs=32)
CASES: dict[str, dict] = {
    "radial_128x8": dict(trajectory="radial", matrix=128, coils=8, spokes=200),
    "spiral_128x8": dict(trajectory="spiral", matrix=128, coils=8, interleaves=16),
    "radial_256x16": dict(trajectory="radial", matrix=256, coils=16, spokes=402),
    "radial_256x32": dict(trajectory="radial", matrix=256, coils=32, spokes=402),
    "spiral_256x20": dict(trajectory="spiral", matrix=256, coils=20, interleaves=32),
    "radial_192x16_1sl": dict(trajectory="radial", matrix=192, coils=16, spokes=302, repetitions=2),
    "radial_192x16_8sl": dict(trajectory="radial", matrix=192, coils=16, spokes=302, slices=8, repetitions=2),
    "sos_128x8_16part": dict(trajectory="radial", matrix=128, coils=8, spokes=200, partitions=16, repetitions=2),
}


def run_replay(source: Path, output: Path, overrides: list[str]) -> tuple[float, float, str]:
    """``igrog replay`` in its own process: (wall seconds, peak RSS MiB, stderr)."""
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "igrog_gadget.cli", "-q", "replay", str(source), str(output)]
    for override in overrides:
        command += ["--set", override]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"replay of {source} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    return seconds, (int(peak.group(1)) / 1024 if peak else float("nan")), done.stderr


def read_output(path: Path) -> tuple[dict[tuple, np.ndarray], list[dict]]:
    """Frames of a Cartesian output (frame key -> (coils, ny, nx)) and its ``igrog.frames`` facts."""
    dataset = read_dataset(path)
    nx, ny, _ = dataset.header.encoded_matrix
    frames: dict[tuple, np.ndarray] = {}
    for readout in dataset.readouts:
        if not readout.is_imaging():
            continue
        key = readout.frame_key()
        if key not in frames:
            frames[key] = np.zeros((readout.num_coils, ny, nx), dtype=np.complex64)
        frames[key][:, int(readout.idx["kspace_encode_step_1"])] = readout.data
    facts = re.search(r'name>igrog\.frames</name>\s*<value>(.*?)</value>', dataset.header_xml, re.S)
    import html

    return frames, json.loads(html.unescape(facts.group(1))) if facts else []


def classic_grog(case, config):
    """Classic GROG of the first frame, in the same virtual coils iGROG uses when it compresses
    (GROG's unit-shift operators cannot be fitted for 20-32 coils from a 32 x 32 block: their
    fractional powers blow up), expanded back to the physical coils."""
    from dataclasses import replace

    from benchmarks.baselines import GriddingResult
    from benchmarks.evaluation import Case
    from igrog_gadget.core.virtual_coils import frame_coil_transform, to_virtual_coils

    transform = frame_coil_transform(case.frame, config.gridding)
    frame = to_virtual_coils(case.frame, transform)
    block = grog_block(replace(case, frame=frame) if isinstance(case, Case) else case, config)
    result = ClassicGrog.from_acs(block.kspace).grid(frame.flat_samples(), frame.flat_coords(), frame.matrix)
    return GriddingResult(transform.to_physical(result.kspace), result.hits, 0)


def run_case(name: str, workdir: Path, overrides: list[str]) -> dict:
    spec = {**COMMON, **CASES[name]}
    source = workdir / f"{name}.h5"
    simulate_once(source, SimulationSpec(**spec))
    output = workdir / f"{name}_out.h5"
    replay_s, rss_mb, _ = run_replay(source, output, overrides)

    config = load_config("basic", overrides=overrides)
    case = load_case(name, source, config)
    frame = case.frame
    samples, coords = frame.flat_samples(), frame.flat_coords()
    nn = grid_nearest_neighbour(samples, coords, frame.matrix)
    truth_all = np.load(workdir / f"{name}.truth.npz")["kspace"]
    hits = nn.hits
    grog = classic_grog(case, config)
    row: dict = {
        "case": name,
        "nn": nrmse_on_sampled(nn.kspace, hits, case.truth),
        "grog": nrmse_on_sampled(grog.kspace, grog.hits, case.truth),
        "adjoint_s": best_time(lambda: nufft_adjoint(samples, coords, (frame.matrix[1], frame.matrix[0]))),
        "replay_s": replay_s,
        "rss_mb": rss_mb,
    }
    frames, facts = read_output(output)
    errors, ratios = [], []
    for key, kspace in frames.items():
        counters = dict(zip(FRAME_KEY_FIELDS, key))
        plane = counters["kspace_encode_step_2"] if spec.get("partitions", 1) > 1 else counters["slice"]
        truth = truth_all[plane, counters["contrast"]]
        error = nrmse_on_sampled(kspace, hits, truth)
        errors.append(error)
        ratios.append(error / noise_floor(hits, case.noise_std, truth))
    first_key = min(frames)
    row["igrog"] = errors[list(frames).index(first_key)]
    row["igrog_mean"] = float(np.mean(errors))
    row["floor"] = noise_floor(hits, case.noise_std, case.truth)
    row["ratio"] = float(np.mean(ratios))
    trained = [f for f in facts if f.get("path") == "trained"]
    cached = [f["gridding_s"] for f in facts if f.get("path") == "cached kernels"]
    row["estimate"] = float(np.mean([f.get("estimated_nrmse", np.nan) for f in facts]))
    row["steps"] = int(sum(f.get("training_steps", 0) for f in trained))
    row["train_s"] = float(sum(f.get("training_s", 0.0) for f in trained))
    row["grid_s"] = float(facts[0].get("gridding_s", np.nan)) if facts else float("nan")
    row["cached_s"] = float(np.min(cached)) if cached else float("nan")
    row["frames"] = len(frames)
    row["vcoils"] = int(facts[0].get("virtual_coils", 0)) if facts else 0
    row["stops"] = sorted({f.get("training_stop", "").split(" (")[0].split(" after")[0] for f in trained})
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--device", default=None, help="gridding.device of the replays (default: the configuration's)")
    parser.add_argument("--workdir", default=None, help="keep the simulated files here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    overrides = list(args.overrides) + ([f"gridding.device={args.device}"] if args.device else [])
    workdir = benchmark_workdir(args.workdir, "igrog-scale-")
    rows = []
    for name in args.cases.split(","):
        rows.append(run_case(name, workdir, overrides))
        print(f"done {name}", file=sys.stderr, flush=True)
    header = (
        f"{'case':<18} {'frames':>6} {'vcoils':>6} {'NN':>6} {'GROG':>6} {'iGROG':>6} {'iG mean':>7} {'floor':>6} {'iG/floor':>8} "
        f"{'estimate':>8} {'steps':>6} {'train s':>7} {'grid s':>6} {'cached s':>8} {'adjoint s':>9} "
        f"{'replay s':>8} {'RSS MB':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['case']:<18} {r['frames']:6d} {r['vcoils']:6d} {r['nn']:6.3f} {r['grog']:6.3f} {r['igrog']:6.3f} {r['igrog_mean']:7.3f} "
            f"{r['floor']:6.3f} {r['ratio']:8.2f} {r['estimate']:8.3f} {r['steps']:6d} {r['train_s']:7.2f} "
            f"{r['grid_s']:6.3f} {r['cached_s']:8.3f} {r['adjoint_s']:9.3f} {r['replay_s']:8.2f} {r['rss_mb']:7.0f}"
        )
    print("training ended by:", "; ".join(f"{r['case']}: {', '.join(r['stops'])}" for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
