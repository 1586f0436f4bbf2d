"""``igrog pipe`` against ``igrog replay`` on the same scan: the k-space bit for bit and the time.

Usage: python benchmarks/pipe_benchmark.py [--case radial_256x32] [--runs 3] [--workdir DIR]

Simulates the case (the scale benchmark's: 256 x 256, 32 coils, 402 spokes, 4 repetitions,
SNR 50, 32 ACS lines), writes it as an ISMRMRD HDF5 file and as an MRD v2 stream (the
product's own mapping), then runs, alternately, ``igrog -q replay in.h5 out.h5`` and
``igrog -q pipe -i in.mrd -o out.mrd`` under ``/usr/bin/time -v`` (wall time and peak RSS of
the whole process, torch import included) and prints their medians, the ratio pipe / replay
of each pair, and whether the pipe's acquisitions (calibration lines and Cartesian lines) equal
the replay file's, header and data, bit for bit.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

import ismrmrd
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.evaluation import benchmark_workdir, simulate_once  # noqa: E402
from benchmarks.scale_benchmark import CASES, COMMON  # noqa: E402
from igrog_gadget.io import mrd2  # noqa: E402
from igrog_gadget.io.acquisitions import read_acquisitions, read_header_xml  # noqa: E402
from igrog_gadget.simulate import SimulationSpec  # noqa: E402


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of ``command`` under ``/usr/bin/time -v``."""
    result = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", result.stderr)
    hours, minutes, seconds = (float(g) if g else 0.0 for g in wall.groups())
    rss = float(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1)) / 1024
    return hours * 3600 + minutes * 60 + seconds, rss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="radial_256x32", choices=sorted(CASES))
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (alternating)")
    parser.add_argument("--workdir", default=None, help="keep the files here")
    args = parser.parse_args(argv)
    workdir = benchmark_workdir(args.workdir, "igrog-pipe-")
    source = workdir / f"{args.case}.h5"
    simulate_once(source, SimulationSpec(**{**COMMON, **CASES[args.case]}))
    stream = workdir / f"{args.case}.mrd"
    with open(stream, "wb") as handle:
        mrd2.write_mrd2(handle, read_header_xml(source).decode(), read_acquisitions(source))
    igrog = [sys.executable, "-m", "igrog_gadget", "-q"]
    replay = [*igrog, "replay", str(source), str(workdir / "replay.h5")]
    pipe = [*igrog, "pipe", "-i", str(stream), "-o", str(workdir / "pipe.mrd")]
    replays, pipes = [], []
    for _ in range(args.runs):
        replays.append(timed(replay))
        pipes.append(timed(pipe))
    expected = read_acquisitions(workdir / "replay.h5")
    with open(workdir / "pipe.mrd", "rb") as handle:
        _, items = mrd2.read_mrd2(handle)
        produced = [mrd2.item_from_mrd2(item) for item in items]
    produced = [a for a in produced if isinstance(a, ismrmrd.Acquisition)]
    equal = len(produced) == len(expected) and all(
        bytes(a.getHead()) == bytes(b.getHead()) and np.array_equal(a.data, b.data) for a, b in zip(produced, expected)
    )
    ratios = [p[0] / r[0] for p, r in zip(pipes, replays)]
    print(f"{args.case}: {source.stat().st_size / 2**20:.0f} MB HDF5, {stream.stat().st_size / 2**20:.0f} MB MRD v2; {args.runs} runs each")
    print(f"{'command':<8} {'wall s (median)':>16} {'min':>7} {'max':>7} {'peak RSS MB':>12}")
    for name, runs in (("replay", replays), ("pipe", pipes)):
        walls = [w for w, _ in runs]
        print(f"{name:<8} {statistics.median(walls):16.2f} {min(walls):7.2f} {max(walls):7.2f} {max(r for _, r in runs):12.0f}")
    print(f"pipe / replay, pair by pair: median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")
    print(f"acquisitions equal to replay's, header and data, bit for bit: {equal} ({len(produced)} acquisitions)")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
