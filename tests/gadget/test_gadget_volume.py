"""3D frames through every front end of a session: a small kooshball and a stack-of-spirals
streamed to ``igrog serve`` come back as Cartesian acquisitions, Gadgetron ReconData (the (E0,
E1, E2, CHA) buffer, with the calibration block as its reference and the hits as its density)
and one 3D image (Gadgetron and MRD dialects), each checked against ``igrog replay`` of the same
file: the k-space and calibration block bit for bit, the image as the product's image of
replay's frame."""

from __future__ import annotations

import ismrmrd
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
from igrog_gadget.io import read_dataset
from igrog_gadget.recon.images import FrameImager
from igrog_gadget.replay import replay_file
from igrog_gadget.simulate import SimulationSpec, simulate_to_file

N = 16
#: A quick deterministic 3D fit: closed-form kernels that read their spoke alone.
VOLUME = ["training.volume.fit=closed_form", "gridding.neighbour_sources=0", "calibration.edge_margin=2"]


#: The recorded 3D scans: a kooshball (N^3) and a stack-of-spirals (N x N x 12 partitions), as
#: small as a 12^3 ACS block allows (what is checked is equality with replay, not accuracy).
SCANS = {
    "kooshball": SimulationSpec(trajectory="kooshball", matrix=N, coils=4, spokes=400, acs=12, seed=7),
    "stack_of_spirals": SimulationSpec(
        trajectory="stack_of_spirals", matrix=N, coils=4, interleaves=8, partitions=12, acs=12, seed=8
    ),
}


@pytest.fixture(scope="module")
def recorded_scans() -> dict:
    """The scans ``volume_scan`` made, by name: pytest sets a parametrized module fixture up again
    when the order of the tests interleaves its parameters with another's (here the servers')."""
    return {}


@pytest.fixture(scope="module", params=list(SCANS))
def volume_scan(request, recorded_scans, tmp_path_factory):
    """(the recorded file as read, replay's frame: k-space (coils, nz, ny, nx)), made once per scan."""
    if request.param not in recorded_scans:
        spec = SCANS[request.param]
        path = tmp_path_factory.mktemp("volume") / f"{request.param}.h5"
        simulate_to_file(path, spec)
        report = replay_file(path, path.with_name("replay.h5"), load_config("basic", overrides=VOLUME))
        (frame,) = report.frames
        nz = spec.partitions if spec.trajectory == "stack_of_spirals" else N
        assert frame.kspace.shape == (4, nz, N, N)
        recorded_scans[request.param] = (read_dataset(path), frame)
    return recorded_scans[request.param]


@pytest.fixture(scope="module", params=[Dialect.GADGETRON, Dialect.MRD], ids=["gadgetron", "mrd"])
def volume_server(request):
    options = ServerOptions(host="127.0.0.1", port=0, dialect=request.param, isolation="thread")
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
    dataset, frame = volume_scan
    expected, block = frame.kspace, frame.calibration
    received = _stream(server, dialect, dataset, "acquisitions")
    assert not received.of(protocol.ERROR) and received.closed
    acquisitions = [m.value for m in received.of(protocol.ACQUISITION)][1:]  # after the passed-through noise scan
    calibration = [a for a in acquisitions if a.head.flags & (1 << (ismrmrd.ACQ_IS_PARALLEL_CALIBRATION - 1))]
    lines = acquisitions[len(calibration):]  # the calibration block first, then the frame
    assert len(lines) == N * expected.shape[1]  # one line per (ky, kz)
    volume = np.zeros_like(expected)
    for line in lines:
        volume[:, int(line.head.idx.kspace_encode_step_2), int(line.head.idx.kspace_encode_step_1)] = line.data
    np.testing.assert_array_equal(volume, expected)
    az, ay, ax = block.shape
    assert len(calibration) == az * ay
    placed = np.zeros_like(expected)
    for line in calibration:  # sample s lies at kx = s - center_sample
        x0 = N // 2 - int(line.head.center_sample)
        placed[:, int(line.head.idx.kspace_encode_step_2), int(line.head.idx.kspace_encode_step_1), x0 : x0 + ax] = line.data
    z0, y0, x0 = (block.kz0 + expected.shape[1] // 2, block.ky0 + N // 2, block.kx0 + N // 2)
    np.testing.assert_array_equal(placed[:, z0 : z0 + az, y0 : y0 + ay, x0 : x0 + ax], block.kspace)


def test_one_3d_image_per_volume(volume_server, volume_scan):
    dialect, server = volume_server
    dataset, frame = volume_scan
    received = _stream(server, dialect, dataset, "images")
    assert not received.of(protocol.ERROR) and received.closed
    (image,) = [m.value for m in received.of(protocol.IMAGE)]
    assert tuple(image.getHead().matrix_size) == (N, N, frame.kspace.shape[1])
    fov = dataset.header.encoded_fov_mm
    assert tuple(image.getHead().field_of_view) == pytest.approx(fov)  # z from the header's encoded FOV
    expected = FrameImager(load_config("basic", overrides=VOLUME).recon).image(frame)
    assert image.meta["ImageProcessingHistory"] == ["IGROG", expected.method.upper()]
    np.testing.assert_allclose(image.data[0], expected.magnitude, rtol=1e-5, atol=1e-5 * float(expected.magnitude.max()))


def test_recon_data_carries_the_volume(volume_server, volume_scan):
    dialect, server = volume_server
    if dialect is Dialect.MRD:
        pytest.skip("recon data is Gadgetron's (an MRD client is refused it with a clear error)")
    dataset, frame = volume_scan
    expected, block = frame.kspace, frame.calibration
    received = _stream(server, dialect, dataset, "recondata")
    assert not received.of(protocol.ERROR) and received.closed
    (message,) = received.of(protocol.RECONDATA)
    bit = decode_recon_data(message.value).bits[0]
    buffer = bit.data
    nz = expected.shape[1]
    assert buffer.data.shape == (N, N, nz, 4, 1, 1, 1)  # (E0, E1, E2, CHA, N, S, LOC)
    assert buffer.sampling.encoded_matrix == (N, N, nz)
    np.testing.assert_array_equal(buffer.data[..., 0, 0, 0].transpose(3, 2, 1, 0), expected)
    np.testing.assert_array_equal(buffer.density[..., 0, 0, 0].transpose(2, 1, 0), frame.hits)
    az, ay, ax = block.shape  # the reference: the block's rows on the full readout
    reference = bit.reference.data[..., 0, 0, 0].transpose(3, 2, 1, 0)  # (coils, az, ay, nx)
    x_first, _, x_last = bit.reference.sampling.limits[0]
    assert x_last - x_first + 1 == ax
    np.testing.assert_array_equal(reference[..., x_first : x_last + 1], block.kspace)
