"""``igrog batch`` throughput: the same files with 1 and 2 LocalCluster workers.

Simulates N radial scans (128 matrix, 8 coils, 200 spokes, ACS 32), grids them with
``igrog batch`` (standard ``basic`` configuration) once with 1 worker (2 torch threads) and once
with 2 workers (1 thread each) on this machine, and prints wall time, files per minute and the
mean per-file replay time and peak memory from the batch report.

    python benchmarks/batch_benchmark.py [--files 8]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.tables import print_rows  # noqa: E402
from igrog_gadget.simulate import SimulationSpec, simulate_to_file  # noqa: E402


def run(inputs: Path, out: Path, workers: int) -> dict:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "igrog_gadget", "-q", "batch", str(inputs), "--out", str(out), "--workers", str(workers)],
        check=True, stdout=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - started
    with (out / "batch_report.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["status"] == "done"]
    return {
        "workers": workers,
        "files": len(rows),
        "wall s": f"{seconds:.1f}",
        "files/min": f"{60 * len(rows) / seconds:.1f}",
        "per-file replay s": f"{sum(float(r['seconds']) for r in rows) / max(len(rows), 1):.1f}",
        "peak MB per replay": f"{max(float(r['peak_memory_mb']) for r in rows):.0f}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "study"
        inputs.mkdir()
        for number in range(args.files):
            simulate_to_file(inputs / f"scan{number:03d}.h5", SimulationSpec(matrix=128, coils=8, spokes=200, acs=32, seed=number))
        rows = [run(inputs, Path(tmp) / f"out{w}", w) for w in (1, 2)]
    print_rows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
