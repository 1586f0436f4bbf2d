"""3D frames through every front end of a session: a small kooshball and a stack-of-spirals
streamed to ``igrog serve`` come back as Cartesian acquisitions, Gadgetron ReconData (the (E0,
E1, E2, CHA) buffer) and one 3D image (Gadgetron and MRD dialects), each checked against
``igrog replay`` of the same file: the k-space bit for bit, the image as the RSS of replay's
k-space."""

from __future__ import annotations

import numpy as np
import pytest
from gadget_helpers import stream_dataset

from igrog_gadget.config import load_config
from igrog_gadget.gadget import protocol
from igrog_gadget.gadget.client import StreamClient, dataset_messages
from igrog_gadget.gadget.protocol import ProtocolLimits
from igrog_gadget.gadget.recondata import decode_recon_data
from igrog_gadget.gadget.server import GadgetServer, ServerOptions
from igrog_gadget.gadget.session import Dialect
from igrog_gadget.gadget.settings import GadgetSettings
from igrog_gadget.gridding.fft import rss_image
from igrog_gadget.io import read_dataset
from igrog_gadget.replay import replay_file
from igrog_gadget.simulate import SimulationSpec, simulate_to_file

N = 20
#: A quick deterministic 3D fit: closed-form kernels that read their spoke alone.
VOLUME = ["training.fit_3d=closed_form", "gridding.neighbour_sources=0", "calibration.edge_margin=2"]


#: The recorded 3D scans: a kooshball (N^3) and a stack-of-spirals (N x N x 12 partitions).
SCANS = {
    "kooshball": SimulationSpec(trajectory="kooshball", matrix=N, coils=4, spokes=700, acs=12, seed=7),
    "stack_of_spirals": SimulationSpec(
        trajectory="stack_of_spirals", matrix=N, coils=4, interleaves=8, partitions=12, acs=12, seed=8
    ),
}


@pytest.fixture(scope="module", params=list(SCANS))
def volume_scan(request, tmp_path_factory):
    """(the recorded file as read, replay's k-space (coils, nz, ny, nx))."""
    spec = SCANS[request.param]
    path = tmp_path_factory.mktemp("volume") / f"{request.param}.h5"
    simulate_to_file(path, spec)
    report = replay_file(path, path.with_name("replay.h5"), load_config("basic", overrides=VOLUME))
    (frame,) = report.frames
    nz = spec.partitions if spec.trajectory == "stack_of_spirals" else N
    assert frame.kspace.shape == (4, nz, N, N)
    return read_dataset(path), frame.kspace


@pytest.fixture(scope="module", params=[Dialect.GADGETRON, Dialect.MRD], ids=["gadgetron", "mrd"])
def volume_server(request):
    options = ServerOptions(host="127.0.0.1", port=0, dialect=request.param)
    with GadgetServer(options, GadgetSettings(overrides=list(VOLUME)), ProtocolLimits(read_timeout_s=10)) as server:
        server.serve_in_background()
        yield request.param, server


def _stream(server: GadgetServer, dialect: Dialect, dataset, output: str):
    if dialect is Dialect.GADGETRON:
        return stream_dataset(server.port, dataset, [("output", output)])
    with StreamClient.connect("127.0.0.1", server.port) as client:  # an MRD client: config name, JSON text
        client.send_handshake("igrog_basic", dataset.header_xml, config_is_name=True, nul_terminate=True)
        client.send(protocol.encode_text_message(protocol.TEXT, f'{{"parameters": {{"igrog.output": "{output}"}}}}', nul_terminate=True))
        for message in dataset_messages(dataset):
            client.send(message)
        client.send_close()
        return client.wait_closed(120)


def test_acquisitions_are_replays_lines(volume_server, volume_scan):
    dialect, server = volume_server
    dataset, expected = volume_scan
    received = _stream(server, dialect, dataset, "acquisitions")
    assert not received.of(protocol.ERROR) and received.closed
    lines = [m.value for m in received.of(protocol.ACQUISITION)][1:]  # after the passed-through noise scan
    assert len(lines) == N * expected.shape[1]  # one line per (ky, kz)
    volume = np.zeros_like(expected)
    for line in lines:
        volume[:, int(line.head.idx.kspace_encode_step_2), int(line.head.idx.kspace_encode_step_1)] = line.data
    np.testing.assert_array_equal(volume, expected)


def test_one_3d_image_per_volume(volume_server, volume_scan):
    dialect, server = volume_server
    dataset, expected = volume_scan
    received = _stream(server, dialect, dataset, "images")
    assert not received.of(protocol.ERROR) and received.closed
    (image,) = [m.value for m in received.of(protocol.IMAGE)]
    assert tuple(image.getHead().matrix_size) == (N, N, expected.shape[1])
    fov = dataset.header.encoded_fov_mm
    assert tuple(image.getHead().field_of_view) == pytest.approx(fov)  # z from the header's encoded FOV
    np.testing.assert_allclose(image.data[0], rss_image(expected), rtol=1e-5, atol=1e-6 * float(rss_image(expected).max()))


def test_recon_data_carries_the_volume(volume_server, volume_scan):
    dialect, server = volume_server
    if dialect is Dialect.MRD:
        pytest.skip("recon data is Gadgetron's (an MRD client is refused it with a clear error)")
    dataset, expected = volume_scan
    received = _stream(server, dialect, dataset, "recondata")
    assert not received.of(protocol.ERROR) and received.closed
    (message,) = received.of(protocol.RECONDATA)
    buffer = decode_recon_data(message.value).bits[0].data
    nz = expected.shape[1]
    assert buffer.data.shape == (N, N, nz, 4, 1, 1, 1)  # (E0, E1, E2, CHA, N, S, LOC)
    assert buffer.sampling.encoded_matrix == (N, N, nz)
    np.testing.assert_array_equal(buffer.data[..., 0, 0, 0].transpose(3, 2, 1, 0), expected)
