"""Streaming benchmark: ``igrog serve`` fed over TCP next to ``igrog replay`` of the same file.

Measures, for a simulated multi-repetition radial scan (ACS block, then repetitions of the same
spokes, as a scanner sends it):

- latency from the last calibration acquisition (sent) to the first gridded output (received);
- steady-state throughput (imaging acquisitions / s) once the model is trained: repetitions
  2..N, which reuse the cached kernels; the client sends as fast as it can, so the server is
  the bottleneck;
- the same file through :func:`igrog_gadget.replay.replay_file` (what ``igrog replay`` runs).

Paced mode (``--paced``): readouts are sent at the scanner's pace (the header's TR, or
``--seconds-per-readout``), for a multi-slice 2D radial file and a stack-of-stars file, by a
server that trains while the scan streams (the default) and by one that trains only when a
frame is complete (``training.early_readouts=0``: the behaviour before early training), in the
same run. It prints each frame's latency (its last readout sent -> its gridded output
received) and the scan duration, and checks that each stream's output is identical to
``igrog replay`` of the same file and configuration (so paced and un-paced streams agree too).

Usage::

    python benchmarks/stream_benchmark.py                       # 128x128, 8 coils, 10 repetitions
    python benchmarks/stream_benchmark.py --repetitions 20 --set training.max_steps=600
    python benchmarks/stream_benchmark.py --output images --device cuda
    python benchmarks/stream_benchmark.py --paced --seconds-per-readout 0.01   # 192, 16 coils, 8 slices

The server runs in its own process (``python -m igrog_gadget serve``), as in production.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ismrmrd  # noqa: E402
import ismrmrd.xsd  # noqa: E402
import numpy as np  # noqa: E402

from igrog_gadget.config import load_config  # noqa: E402
from igrog_gadget.gadget import protocol  # noqa: E402
from igrog_gadget.gadget.client import StreamClient, configuration_xml, readout_messages  # noqa: E402
from igrog_gadget.io import read_dataset  # noqa: E402
from igrog_gadget.replay import replay_file  # noqa: E402
from igrog_gadget.simulate import SimulationSpec, simulate_to_file  # noqa: E402

logger = logging.getLogger("stream_benchmark")

_FRAME_MESSAGES = {"recondata": protocol.RECONDATA, "images": protocol.IMAGE}


@dataclass
class Measurement:
    """One way of gridding the file."""

    total_s: float
    training_s: float | None
    first_output_s: float | None
    """Last calibration acquisition -> first gridded output (stream); the first frame's own time (replay)."""
    steady_acq_per_s: float | None
    frames: int


def start_server(args: argparse.Namespace, log_path: Path) -> tuple[subprocess.Popen, int]:
    """``igrog serve`` in a subprocess on a free port."""
    command = [sys.executable, "-m", "igrog_gadget", "serve", "--host", "127.0.0.1", "--port", "0"]
    for override in args.overrides:
        command += ["--set", override]
    if args.device:
        command += ["--device", args.device]
    environment = dict(os.environ)
    environment["PYTHONPATH"] = str(ROOT) + os.pathsep + environment.get("PYTHONPATH", "")
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, env=environment)
    line = process.stdout.readline()
    if not line.startswith("listening on port"):
        process.kill()
        raise RuntimeError(f"igrog serve did not start: {line!r}; see {log_path}")
    return process, int(line.split()[-1])


def stream(port: int, dataset, output: str) -> Measurement:
    """Send the whole file as fast as possible; time what comes back."""
    readouts = dataset.readouts
    messages = list(readout_messages(readouts))  # serialised up front: the client is never the bottleneck
    last_calibration = max(i for i, r in enumerate(readouts) if r.is_calibration())
    sent_last_calibration = 0.0
    with StreamClient.connect("127.0.0.1", port) as client:
        started = time.perf_counter()
        client.send_handshake(configuration_xml({"output": output}), dataset.header_xml)
        for i, message in enumerate(messages):
            client.send(message)
            if i == last_calibration:
                sent_last_calibration = time.perf_counter()
        client.send_close()
        received = client.wait_closed(3600)
        ended = time.perf_counter()
    if not received.closed:
        raise RuntimeError(f"stream failed: {received.error}")
    errors = [m.value for m in received.messages if m.mid in (protocol.ERROR, protocol.TEXT)]
    if errors:
        raise RuntimeError(f"the gadget reported: {errors[0]}")
    frame_arrivals = _frame_arrivals(received, output, dataset)
    imaging_per_frame = sum(1 for r in readouts if r.is_imaging() and not r.is_noise()) / max(1, len(frame_arrivals))
    steady = None
    if len(frame_arrivals) >= 3:
        steady = imaging_per_frame * (len(frame_arrivals) - 1) / (frame_arrivals[-1] - frame_arrivals[0])
    return Measurement(
        total_s=ended - started,
        training_s=None,
        first_output_s=frame_arrivals[0] - sent_last_calibration if frame_arrivals else None,
        steady_acq_per_s=steady,
        frames=len(frame_arrivals),
    )


def _frame_arrivals(received, output: str, dataset) -> list[float]:
    if output in _FRAME_MESSAGES:
        return [t for m, t in zip(received.messages, received.arrivals) if m.mid == _FRAME_MESSAGES[output]]
    # acquisitions: a frame is complete with its line that carries ACQ_LAST_IN_SLICE
    last_in_slice = 1 << 7
    return [
        t
        for m, t in zip(received.messages, received.arrivals)
        if m.mid == protocol.ACQUISITION and int(m.value.head.flags) & last_in_slice
    ]


def replay(path: Path, output: Path, overrides: list[str], device: str | None) -> Measurement:
    overrides = list(overrides) + ([f"gridding.device={device}"] if device else [])
    config = load_config("basic", None, overrides)
    report = replay_file(path, output, config)
    frames = report.frames
    imaging = sum(1 for r in read_dataset(str(path)).readouts if r.is_imaging() and not r.is_noise())
    steady = None
    if len(frames) >= 3:
        later = sum(f.report.total_s for f in frames[1:])
        steady = imaging / len(frames) * (len(frames) - 1) / later if later > 0 else None
    return Measurement(
        total_s=report.seconds,
        training_s=report.training_seconds,
        first_output_s=frames[0].report.total_s if frames else None,
        steady_acq_per_s=steady,
        frames=len(frames),
    )


def _cell(value: float | int | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def print_table(title: str, streamed: Measurement, replayed: Measurement, server_training: float | None) -> None:
    rows = [
        ("total wall time [s]", _cell(streamed.total_s, ".2f"), _cell(replayed.total_s, ".2f")),
        ("training [s]", _cell(server_training, ".2f"), _cell(replayed.training_s, ".2f")),
        (
            "last calibration acq -> first gridded output [s]",
            _cell(streamed.first_output_s, ".2f"),
            _cell(replayed.first_output_s, ".2f") + " (frame 1, from calibration)",
        ),
        (
            "steady-state throughput, repetitions 2..N [acq/s]",
            _cell(streamed.steady_acq_per_s, ".0f"),
            _cell(replayed.steady_acq_per_s, ".0f"),
        ),
        ("frames", str(streamed.frames), str(replayed.frames)),
    ]
    width = max(len(r[0]) for r in rows)
    print(title)
    print(f"{'':{width}}  {'igrog serve (TCP stream)':>26}  {'igrog replay (file)':>36}")
    for name, a, b in rows:
        print(f"{name:{width}}  {a:>26}  {b:>36}")


def _server_training_seconds(log_path: Path) -> float | None:
    total = 0.0
    found = False
    for line in log_path.read_text().splitlines():
        if "trained basic kernels in" in line:
            total += float(line.split("trained basic kernels in", 1)[1].split("s", 1)[0])
            found = True
    return total if found else None


def paced_stream(port: int, dataset, seconds_per_readout: float | None, output: str = "acquisitions"):
    """Send the file (readouts every ``seconds_per_readout``; None = as fast as possible).

    Returns ``(received, latencies, scan_s)``: what came back, per gridded frame the time from
    its last readout sent to its last output line received, and the time from the first to the
    last readout sent.
    """
    readouts = dataset.readouts
    messages = list(readout_messages(readouts))
    sent = [0.0] * len(messages)
    with StreamClient.connect("127.0.0.1", port) as client:
        client.send_handshake(configuration_xml({"output": output}), dataset.header_xml)
        started = time.perf_counter()
        for i, message in enumerate(messages):
            if seconds_per_readout:
                delay = started + i * seconds_per_readout - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            client.send(message)
            sent[i] = time.perf_counter()
        client.send_close()
        received = client.wait_closed(3600)
    if not received.closed:
        raise RuntimeError(f"stream failed: {received.error}")
    errors = [m.value for m in received.messages if m.mid in (protocol.ERROR, protocol.TEXT)]
    if errors:
        raise RuntimeError(f"the gadget reported: {errors[0]}")
    last_sent: dict[tuple, float] = {}
    for i, readout in enumerate(readouts):
        if readout.is_imaging() and not readout.is_noise():
            last_sent.pop(readout.frame_key(), None)  # re-insert: dicts keep the order of the last readout
            last_sent[readout.frame_key()] = sent[i]
    arrivals = _frame_arrivals(received, output, dataset)
    latencies = [arrival - sent_at for arrival, sent_at in zip(arrivals, last_sent.values())]
    return received, latencies, sent[-1] - sent[0]


def gridded_lines(received) -> list[tuple[bytes, bytes]]:
    """(header bytes, data bytes) of every ACQUISITION that came back."""
    return [(bytes(m.value.head), m.value.data.tobytes()) for m in received.messages if m.mid == protocol.ACQUISITION]


def replay_lines(path: Path, output: Path, overrides: list[str]) -> list[tuple[bytes, bytes]]:
    """(header bytes, data bytes) of every acquisition ``igrog replay`` writes for ``path``."""
    import h5py

    replay_file(path, output, load_config("basic", None, overrides))
    with h5py.File(output, "r") as h5:
        records = h5["dataset/data"][()]
    return [(record["head"].tobytes(), record["data"].view(np.complex64).tobytes()) for record in records]


def paced_main(args: argparse.Namespace, workdir: Path) -> int:
    """The paced comparison for a multi-slice and a stack-of-stars file."""
    common = dict(trajectory="radial", matrix=args.matrix, coils=args.coils, spokes=args.spokes, acs=args.acs, seed=11)
    cases = [
        (f"multi-slice 2D, {args.slices} slices", SimulationSpec(slices=args.slices, **common)),
        (f"stack-of-stars, {args.partitions} partitions", SimulationSpec(partitions=args.partitions, **common)),
    ]
    for title, spec in [case for case, name in zip(cases, ("multi", "sos")) if args.only in (None, name)]:
        path = workdir / f"paced_{spec.slices}x{spec.partitions}.h5"
        simulate_to_file(path, spec, overwrite=True)
        dataset = read_dataset(str(path))
        pace = args.seconds_per_readout or float(ismrmrd.xsd.CreateFromDocument(dataset.header_xml).sequenceParameters.TR[0]) / 1000
        references: dict[tuple, list] = {}
        runs = {}
        for name, extra, seconds in (
            ("early training (paced)", [], pace),
            ("early training (un-paced)", [], None),
            ("train at frame end (paced)", ["training.early_readouts=0"], pace),
        ):
            run_args = argparse.Namespace(**{**vars(args), "overrides": list(args.overrides) + extra})
            process, port = start_server(run_args, workdir / f"serve_{len(runs)}.log")
            try:
                received, latencies, scan_s = paced_stream(port, dataset, seconds)
            finally:
                process.terminate()
                process.wait(timeout=30)
                process.stdout.close()
            overrides = tuple(run_args.overrides)
            if overrides not in references:  # igrog replay of the same file and configuration
                references[overrides] = replay_lines(path, workdir / "paced_replay.h5", list(overrides))
            runs[name] = (latencies, scan_s, gridded_lines(received) == references[overrides])
        print(
            f"\npaced stream: {title}, {args.matrix}x{args.matrix}, {args.coils} coils, {args.spokes} spokes + "
            f"{args.acs} ACS lines per frame, {1000 * pace:.1f} ms per readout, overrides {args.overrides or 'none'}"
        )
        names = list(runs)
        print(f"{'frame':>5}  " + "  ".join(f"{n + ' latency [s]':>38}" for n in names))
        for frame in range(max(len(runs[n][0]) for n in names)):
            cells = [f"{runs[n][0][frame]:.2f}" if frame < len(runs[n][0]) else "-" for n in names]
            print(f"{frame:>5}  " + "  ".join(f"{c:>38}" for c in cells))
        print(f"{'scan':>5}  " + "  ".join(f"{runs[n][1]:>36.2f} s" for n in names))
        print(f"{'= replay':>5}  " + "  ".join(f"{'identical' if runs[n][2] else 'DIFFERENT':>38}" for n in names))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--matrix", type=int, default=None, help="default 128 (paced: 192)")
    parser.add_argument("--coils", type=int, default=None, help="default 8 (paced: 16)")
    parser.add_argument("--spokes", type=int, default=None, help="spokes per frame, default 128 (paced: 256)")
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--acs", type=int, default=32)
    parser.add_argument("--output", default="recondata", choices=("recondata", "acquisitions", "images"))
    parser.add_argument("--device", default=None, help="auto | cpu | cuda (default: the configuration's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--input", default=None, help="use this ISMRMRD file instead of simulating one")
    parser.add_argument("--workdir", default=None, help="keep the simulated file, outputs and server log here")
    parser.add_argument("--paced", action="store_true", help="paced multi-slice and stack-of-stars comparison")
    parser.add_argument("--seconds-per-readout", type=float, default=None, help="paced mode: default the header's TR")
    parser.add_argument("--slices", type=int, default=8, help="paced mode: slices of the multi-slice file")
    parser.add_argument("--partitions", type=int, default=8, help="paced mode: partitions of the stack-of-stars file")
    parser.add_argument("--only", choices=("multi", "sos"), default=None, help="paced mode: one of the two files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    defaults = (192, 16, 256) if args.paced else (128, 8, 128)
    args.matrix, args.coils, args.spokes = (given or default for given, default in zip((args.matrix, args.coils, args.spokes), defaults))
    if args.paced:
        with tempfile.TemporaryDirectory() as scratch:
            workdir = Path(args.workdir or scratch)
            workdir.mkdir(parents=True, exist_ok=True)
            return paced_main(args, workdir)

    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(args.workdir or scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        if args.input:
            path = Path(args.input)
        else:
            path = workdir / "stream_benchmark_radial.h5"
            spec = SimulationSpec(
                trajectory="radial",
                matrix=args.matrix,
                coils=args.coils,
                spokes=args.spokes,
                acs=args.acs,
                repetitions=args.repetitions,
                seed=11,
            )
            simulate_to_file(path, spec, overwrite=True)
        dataset = read_dataset(str(path))
        log_path = workdir / "serve.log"
        process, port = start_server(args, log_path)
        try:
            streamed = stream(port, dataset, args.output)
        finally:
            process.terminate()
            process.wait(timeout=30)
            process.stdout.close()
        server_training = _server_training_seconds(log_path)
        replayed = replay(path, workdir / "replay_out.h5", args.overrides, args.device)
        header = dataset.header
        imaging = sum(1 for r in dataset.readouts if r.is_imaging() and not r.is_noise())
        title = (
            f"stream benchmark: {header.trajectory} {header.encoded_matrix[0]}x{header.encoded_matrix[1]}, "
            f"{dataset.readouts[-1].num_coils} coils, {imaging} imaging + "
            f"{sum(1 for r in dataset.readouts if r.is_calibration())} calibration acquisitions, "
            f"output {args.output}, overrides {args.overrides or 'none'}"
        )
        print_table(title, streamed, replayed, server_training)
    return 0


if __name__ == "__main__":
    sys.exit(main())
