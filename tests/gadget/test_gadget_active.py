"""Active mode: the test plays Gadgetron, which listens and runs ``python -m gadgetron PORT MODULE TARGET``."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gadget_helpers import FAST_OVERRIDES, ROOT, send_all
from igrog_gadget.gadget import protocol
from igrog_gadget.gadget.client import StreamClient, configuration_xml
from igrog_gadget.gadget.recondata import decode_recon_data

#: Only the external process imports gadgetron (0.6 s of CPU a pytest worker need not spend at collection).
pytestmark = pytest.mark.skipif(importlib.util.find_spec("gadgetron") is None, reason="gadgetron is not installed")

MODULE, TARGET = "igrog_gadget.gadget.external", "igrog_gadget"


def run_active(properties, dataset, tmp_path: Path, messages=None, timeout_s: float = 120.0):
    """Listen like Gadgetron, start the external module, stream, collect replies and the module's log."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    environment = dict(os.environ)
    environment["PYTHONPATH"] = str(ROOT) + os.pathsep + environment.get("PYTHONPATH", "")
    environment["GADGETRON_EXTERNAL_LOG_LEVEL"] = "INFO"
    log_path = tmp_path / "external.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gadgetron", str(port), MODULE, TARGET],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
        try:
            listener.settimeout(60)
            sock, _ = listener.accept()
            listener.close()
            with StreamClient(sock) as client:
                # What Gadgetron's Configuration::send does: CONFIG (pugixml-saved <configuration>), HEADER.
                send_all(client, configuration_xml(properties), dataset, messages)
                received = client.wait_closed(timeout_s)
                # after our CLOSE the module must end the connection: no second CLOSE, no stray bytes
                sock.settimeout(30)
                trailing = sock.recv(16)
            returncode = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return received, trailing, returncode, log_path.read_text()


def test_active_mode_grids_and_hands_recon_data_to_gadgetron(radial_acs, tmp_path: Path):
    properties = [("variant", "basic"), ("output", "recondata")] + [("set", o) for o in FAST_OVERRIDES]
    received, trailing, returncode, log = run_active(properties, radial_acs, tmp_path)
    assert received.closed, (received.error, log[-3000:])
    assert [m.mid for m in received.messages] == [protocol.ACQUISITION, protocol.RECONDATA, protocol.CLOSE], log[-3000:]
    buffer = decode_recon_data(received.messages[1].value).bits[0].data
    assert buffer.data.shape == (64, 64, 1, 4, 1, 1, 1)
    assert np.abs(buffer.data).max() > 0
    assert trailing == b""
    assert returncode == 0, log[-3000:]
    assert "1 frame(s) out as recondata" in log and "1 training(s)" in log


def test_active_mode_reports_an_unknown_property_to_gadgetron(radial_acs, tmp_path: Path):
    received, trailing, returncode, log = run_active({"colour": "blue"}, radial_acs, tmp_path, messages=[])
    assert [m.mid for m in received.messages] == [protocol.ERROR, protocol.CLOSE]
    assert "unknown property 'colour'" in received.messages[0].value
    assert trailing == b""
    assert returncode == 0
    assert "Traceback" not in log


def test_active_mode_hands_a_3d_volume_to_gadgetron(tmp_path: Path):
    """A kooshball in active mode: one (E0, E1, E2, CHA) ReconData buffer equal to replay's k-space."""
    from igrog_gadget.config import load_config
    from igrog_gadget.io import read_dataset
    from igrog_gadget.replay import replay_file
    from igrog_gadget.simulate import SimulationSpec, simulate_to_file

    volume = ["training.volume.fit=closed_form", "gridding.neighbour_sources=0", "calibration.edge_margin=2"]
    path = tmp_path / "koosh.h5"
    simulate_to_file(path, SimulationSpec(trajectory="kooshball", matrix=16, coils=4, spokes=400, acs=12, seed=9))
    import torch

    from igrog_gadget.environment import set_thread_counts

    before = torch.get_num_threads()
    set_thread_counts(0)  # the external process's count: the processors it may run on
    try:
        (frame,) = replay_file(path, tmp_path / "replay.h5", load_config("basic", overrides=volume)).frames
    finally:
        set_thread_counts(before)
    properties = [("output", "recondata")] + [("set", o) for o in volume]
    received, trailing, returncode, log = run_active(properties, read_dataset(path), tmp_path)
    assert received.closed and returncode == 0, log[-3000:]
    (message,) = received.of(protocol.RECONDATA)
    buffer = decode_recon_data(message.value).bits[0].data
    assert buffer.data.shape == (16, 16, 16, 4, 1, 1, 1)
    np.testing.assert_array_equal(buffer.data[..., 0, 0, 0].transpose(3, 2, 1, 0), frame.kspace)
