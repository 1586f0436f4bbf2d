"""Shared pieces of the gadget tests: recorded files, fast settings, an in-process server, a peer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Mapping

import pytest

from igrog_gadget.gadget.client import Received, StreamClient, configuration_xml, dataset_messages
from igrog_gadget.gadget.protocol import PeerClosedError, ProtocolLimits
from igrog_gadget.gadget.server import GadgetServer, ServerOptions
from igrog_gadget.gadget.session import Dialect
from igrog_gadget.gadget.settings import GadgetSettings
from igrog_gadget.io import RawDataset, read_dataset

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"

#: Small training budgets: every test stream trains in about a second.
FAST_OVERRIDES = ["training.max_steps=150", "calibration.num_training_pairs=5000"]
#: Training ended by the step count, not the clock: identical models in replay and stream.
DETERMINISTIC_OVERRIDES = ["training.max_seconds=600", "training.epochs=1", "calibration.num_training_pairs=5000"]


def data_file(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"recorded test file {path} is missing")
    return path


@pytest.fixture(scope="session")
def radial_acs() -> RawDataset:
    return read_dataset(data_file("radial_acs.h5"))


@pytest.fixture(scope="session")
def radial_multi() -> RawDataset:
    return read_dataset(data_file("radial_multi.h5"))


@pytest.fixture(scope="session")
def spiral_acs() -> RawDataset:
    return read_dataset(data_file("spiral_acs.h5"))


@pytest.fixture(scope="module")
def server():
    """An in-process ``igrog serve`` (Gadgetron dialect) with fast training defaults."""
    options = ServerOptions(host="127.0.0.1", port=0, dialect=Dialect.GADGETRON, isolation="thread")
    with GadgetServer(
        options, GadgetSettings(overrides=list(FAST_OVERRIDES)), ProtocolLimits(read_timeout_s=10)
    ) as srv:
        srv.serve_in_background()
        yield srv


@pytest.fixture(scope="module")
def mrd_server():
    """An in-process ``igrog serve --mrd`` with fast training defaults."""
    options = ServerOptions(host="127.0.0.1", port=0, dialect=Dialect.MRD, isolation="thread")
    with GadgetServer(
        options, GadgetSettings(overrides=list(FAST_OVERRIDES)), ProtocolLimits(read_timeout_s=10)
    ) as srv:
        srv.serve_in_background()
        yield srv


def stream_dataset(
    port: int,
    dataset: RawDataset,
    properties: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    messages: Iterable[bytes] | None = None,
    timeout_s: float = 120.0,
) -> Received:
    """Play Gadgetron's side: configuration, header, the dataset's messages, CLOSE; collect replies."""
    with StreamClient.connect("127.0.0.1", port) as client:
        send_all(client, configuration_xml(properties), dataset, messages)
        received = client.wait_closed(timeout_s)
    assert received.closed, f"the gadget did not send CLOSE (error: {received.error})"
    return received


def send_all(client: StreamClient, config: str, dataset: RawDataset, messages: Iterable[bytes] | None = None) -> None:
    """Handshake, messages (default: the dataset's), CLOSE; stops early when the gadget hung up (after an error)."""
    try:
        client.send_handshake(config, dataset.header_xml)
        for message in messages if messages is not None else dataset_messages(dataset):
            client.send(message)
        client.send_close()
    except PeerClosedError:
        pass


def start_server_process(args: list[str], log_path: Path, env: dict | None = None) -> tuple[subprocess.Popen, int]:
    """Start ``igrog serve ARGS --port 0`` in a subprocess; returns it and the port it listens on.
    One thread (``--cpu-threads 1``) unless ``args`` say otherwise: the suite's two workers share
    two cores (the product takes its thread counts from its settings, never OMP_NUM_THREADS)."""
    threads = [] if "--cpu-threads" in args else ["--cpu-threads", "1"]
    command = [sys.executable, "-m", "igrog_gadget", "serve", "--host", "127.0.0.1", "--port", "0", *threads, *args]
    environment = dict(os.environ if env is None else env)
    environment["PYTHONPATH"] = str(ROOT) + os.pathsep + environment.get("PYTHONPATH", "")
    log = log_path.open("w")
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, env=environment)
    deadline = time.monotonic() + 90
    line = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("listening on port"):
            return process, int(line.split()[-1])
        if not line and process.poll() is not None:
            break
    process.kill()
    raise RuntimeError(f"igrog serve did not start: {line!r}; log: {log_path.read_text()[-2000:]}")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def is_calibration_line(acquisition) -> bool:
    """Whether a received acquisition is a passed-on calibration line (``[output] calibration``)."""
    return bool(int(acquisition.head.flags) & (1 << 19))  # ACQ_IS_PARALLEL_CALIBRATION = 20


def gridded_lines(received: Received) -> list:
    """The Cartesian lines of the gridded frames in a received stream: its acquisitions after the
    passed-through noise scan (the first), without the calibration lines passed on."""
    from igrog_gadget.gadget import protocol

    acquisitions = [m.value for m in received.messages if m.mid == protocol.ACQUISITION][1:]
    return [a for a in acquisitions if not is_calibration_line(a)]
