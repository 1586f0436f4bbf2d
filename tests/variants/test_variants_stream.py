"""image_based and fieldcorr through the streaming gadget: same result as replay; bad input ends the stream."""

from __future__ import annotations

import dataclasses

import h5py
import ismrmrd
import numpy as np
import pytest
from variants_helpers import recorded

from igrog_gadget.config import load_config
from igrog_gadget.gadget import protocol
from igrog_gadget.gadget.client import StreamClient, configuration_xml, dataset_messages
from igrog_gadget.gadget.protocol import PeerClosedError, ProtocolLimits
from igrog_gadget.gadget.server import GadgetServer, ServerOptions
from igrog_gadget.gadget.session import Dialect
from igrog_gadget.gadget.settings import GadgetSettings
from igrog_gadget.io import read_dataset
from igrog_gadget.replay import replay_file

#: Training ended by the step count: identical models in replay and stream.
DETERMINISTIC = ["training.max_seconds=600", "training.epochs=1", "calibration.num_training_pairs=5000"]


@pytest.fixture(scope="module")
def server():
    options = ServerOptions(host="127.0.0.1", port=0, dialect=Dialect.GADGETRON, isolation="thread")
    with GadgetServer(options, GadgetSettings(), ProtocolLimits(read_timeout_s=10)) as srv:
        srv.serve_in_background()
        yield srv


def stream(server, dataset, properties):
    with StreamClient.connect("127.0.0.1", server.port) as client:
        try:
            client.send_handshake(configuration_xml(properties), dataset.header_xml)
            for message in dataset_messages(dataset):
                client.send(message)
            client.send_close()
        except PeerClosedError:
            pass
        received = client.wait_closed(120)
    server.wait_idle(30)
    return received, server.reports[-1]


@pytest.mark.parametrize("variant", ["fieldcorr", "image_based"])
def test_stream_equals_replay(server, tmp_path, variant):
    output = tmp_path / "replay.h5"
    replay_file(recorded("spiral_b0"), output, load_config(variant, None, DETERMINISTIC))
    properties = [("variant", variant), ("output", "acquisitions")] + [("set", o) for o in DETERMINISTIC]
    received, report = stream(server, read_dataset(recorded("spiral_b0")), properties)
    assert report.error is None and report.variant == variant
    streamed = [m.value for m in received.messages if m.mid == protocol.ACQUISITION]
    with h5py.File(output, "r") as h5:
        records = h5["dataset/data"][()]
    calibration = [wire for wire in streamed if int(wire.head.flags) & (1 << (ismrmrd.ACQ_IS_PARALLEL_CALIBRATION - 1))]
    assert len(streamed) == len(records) == 1 + len(calibration) + 64  # noise, calibration block rows, lines
    for wire, record in zip(streamed, records):
        np.testing.assert_allclose(wire.data.reshape(-1), record["data"].view(np.complex64), rtol=1e-5, atol=1e-6)


def test_stream_without_b0_map_ends_with_a_clear_error(server):
    dataset = read_dataset(recorded("spiral_b0"))
    dataset = dataclasses.replace(dataset, images=[i for i in dataset.images if i.series != "b0map"])
    properties = [("variant", "fieldcorr")] + [("set", o) for o in DETERMINISTIC]
    received, report = stream(server, dataset, properties)
    assert report.error is not None and "needs a B0 map" in report.error, report.error
    # The server still serves the next connection.
    received, report = stream(server, read_dataset(recorded("spiral_b0")), properties)
    assert report.error is None


def test_3d_stream_with_3d_image_series_equals_replay(server, tmp_path):
    """A 3D frame (16 x 16 x 12 stack of spirals) whose 3D b0map and coil_images series travel in
    the stream: fieldcorr's output equals the replay's."""
    from igrog_gadget.simulate import SimulationSpec, simulate_to_file

    path = tmp_path / "stack_b0.h5"
    simulate_to_file(path, SimulationSpec(
        trajectory="stack_of_spirals", matrix=16, coils=2, interleaves=4, partitions=12, acs=12, snr=50.0, seed=3,
        b0_max_hz=40.0, readout_ms=6.0, write_b0map=True, write_coil_images=True,
    ))
    overrides = ["training.volume.fit=closed_form", "calibration.edge_margin=2"]
    output = tmp_path / "replay.h5"
    replay_file(path, output, load_config("fieldcorr", None, overrides))
    properties = [("variant", "fieldcorr"), ("output", "acquisitions")] + [("set", o) for o in overrides]
    received, report = stream(server, read_dataset(path), properties)
    assert report.error is None and report.variant == "fieldcorr"
    streamed = [m.value for m in received.messages if m.mid == protocol.ACQUISITION]
    with h5py.File(output, "r") as h5:
        records = h5["dataset/data"][()]
    assert len(streamed) == len(records) > 16 * 12  # noise, lines of every (ky, kz)
    for wire, record in zip(streamed, records):
        np.testing.assert_allclose(wire.data.reshape(-1), record["data"].view(np.complex64), rtol=1e-5, atol=1e-6)
