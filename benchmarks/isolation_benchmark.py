"""What a session in its own worker process costs: ``igrog serve --isolation process`` (the
default) against ``--isolation thread`` (every session in the server's process).

Both servers run as ``python -m igrog_gadget serve`` subprocesses with the same settings. The
embedded sample (``igrog_gadget/data/sample_radial.h5``: 128², 8 coils, ACS + radial spokes) is
streamed to each, alternately, ``--runs`` times; measured per stream, from the client's side:

- connect → first result: from opening the connection to receiving the first gridded line
  (handshake, hand-over to a worker, calibration, training, gridding);
- connect → CLOSE: the whole stream;

and, per server, the peak resident memory of the server process and of its largest worker
(``/proc/<pid>/status`` VmHWM, read while the processes exist). The outputs of the two modes
are compared bit for bit. Prints a table; the target is process ≤ thread + 0.5 s.

Usage::

    python benchmarks/isolation_benchmark.py [--runs 5] [--file FILE.h5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402

from process_helpers import descendants  # noqa: E402
from igrog_gadget.cli import SAMPLE_FILE  # noqa: E402
from igrog_gadget.gadget import protocol  # noqa: E402
from igrog_gadget.gadget.client import StreamClient, configuration_xml, dataset_messages  # noqa: E402
from igrog_gadget.io import read_dataset  # noqa: E402

PROPERTIES = [("output", "acquisitions")]


def start_server(mode: str, log_path: Path) -> tuple[subprocess.Popen, int]:
    command = [sys.executable, "-m", "igrog_gadget", "serve", "--host", "127.0.0.1", "--port", "0",
               "--isolation", mode, "--spare-workers", "1"]
    with log_path.open("w") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    line = process.stdout.readline()
    if not line.startswith("listening on port"):
        process.kill()
        raise RuntimeError(f"igrog serve --isolation {mode} did not start: {log_path.read_text()[-2000:]}")
    return process, int(line.split()[-1])


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


class WorkerPeaks:
    """Samples the peak memory of a server's descendants while a stream runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for child in descendants(self.pid):
                self.peak = max(self.peak, peak_rss_mb(child))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def stream(port: int, dataset) -> tuple[float, float, np.ndarray]:
    """(connect → first gridded line s, connect → CLOSE s, the gridded lines)."""
    started = time.perf_counter()
    with StreamClient.connect("127.0.0.1", port) as client:
        client.send_handshake(configuration_xml(PROPERTIES), dataset.header_xml)
        for message in dataset_messages(dataset):
            client.send(message)
        client.send_close()
        received = client.wait_closed(300)
    ended = time.perf_counter()
    if not received.closed or received.of(protocol.ERROR):
        raise RuntimeError(f"stream failed: {received.error or received.of(protocol.ERROR)[0].value}")
    acquisitions = [(m, t) for m, t in zip(received.messages, received.arrivals) if m.mid == protocol.ACQUISITION]
    gridded = [(m, t) for m, t in acquisitions if not int(m.value.head.flags) & (1 << 19)][1:]  # after the noise scan
    return gridded[0][1] - started, ended - started, np.stack([m.value.data for m, _ in gridded])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--file", type=Path, default=SAMPLE_FILE)
    args = parser.parse_args(argv)
    dataset = read_dataset(args.file)
    results: dict[str, dict[str, list[float]]] = {}
    outputs: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as workdir:
        servers = {mode: start_server(mode, Path(workdir) / f"{mode}.log") for mode in ("thread", "process")}
        try:
            for mode in servers:  # one stream each first: imports and caches of the server process
                stream(servers[mode][1], dataset)
            for _ in range(args.runs):
                for mode, (process, port) in servers.items():
                    peaks = WorkerPeaks(process.pid)
                    first, whole, lines = stream(port, dataset)
                    row = results.setdefault(mode, {"first": [], "whole": [], "worker": []})
                    row["first"].append(first)
                    row["whole"].append(whole)
                    row["worker"].append(peaks.stop())
                    outputs[mode] = lines
            server_peaks = {mode: peak_rss_mb(process.pid) for mode, (process, _) in servers.items()}
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(30)
                process.stdout.close()
    identical = np.array_equal(outputs["thread"], outputs["process"])
    print(f"{args.file.name}: {args.runs} alternating streams per mode, medians (min-max)")
    print(f"{'isolation':10} {'connect->first s':>22} {'connect->CLOSE s':>22} {'server peak MB':>15} {'worker peak MB':>15}")
    for mode, row in results.items():
        def cell(values: list[float]) -> str:
            return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"
        worker = f"{max(row['worker']):.0f}" if mode == "process" else "-"
        print(f"{mode:10} {cell(row['first']):>22} {cell(row['whole']):>22} {server_peaks[mode]:>15.0f} {worker:>15}")
    delta = statistics.median(results["process"]["first"]) - statistics.median(results["thread"]["first"])
    print(f"process - thread, connect->first: {delta:+.2f} s (target <= +0.5 s); outputs bit-identical: {identical}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
