"""Passive mode over loopback TCP with the recorded files: outputs, replay equality, order, reuse, concurrency."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import h5py
import ismrmrd
import numpy as np
import pytest

from gadget_helpers import DETERMINISTIC_OVERRIDES, data_file, gridded_lines, send_all, stream_dataset
from igrog_gadget.config import load_config
from igrog_gadget.gadget import protocol
from igrog_gadget.numerics.fft import rss_image
from igrog_gadget.gadget.client import StreamClient, configuration_xml, dataset_messages
from igrog_gadget.gadget.recondata import decode_recon_data
from igrog_gadget.gadget.server import GadgetServer, ServerOptions
from igrog_gadget.gadget.session import SessionReport
from igrog_gadget.io import acquisition_from_readout
from igrog_gadget.replay import replay_file


def report_for(server: GadgetServer, received_peer: str) -> SessionReport:
    server.wait_idle(30)
    matches = [r for r in server.reports if r.peer == received_peer]
    assert matches, f"no report for {received_peer}; have {[r.peer for r in server.reports]}"
    return matches[-1]


def stream_with_report(server: GadgetServer, dataset, properties, messages=None):
    """Stream and return (received, the server's report of that connection)."""
    with StreamClient.connect("127.0.0.1", server.port) as client:
        host, port = client.channel.sock.getsockname()[:2]
        send_all(client, configuration_xml(properties), dataset, messages)
        received = client.wait_closed(120)
    assert received.closed, received.error
    return received, report_for(server, f"{host}:{port}")


def truth_rss(name: str) -> np.ndarray:
    """RSS image (ny, nx) of a recorded file's Cartesian ground-truth k-space."""
    truth = np.load(data_file(f"{name}.truth.npz"))
    return rss_image(truth["kspace"][0, 0])


def rss(recon_buffer_data: np.ndarray) -> np.ndarray:
    """SimpleReconGadget's image: centred inverse FFT over E0, E1 and root-sum-of-squares over CHA."""
    kspace = recon_buffer_data[:, :, 0, :, 0, 0, 0]  # [E0, E1, CHA]
    image = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(0, 1)), axes=(0, 1), norm="ortho"), axes=(0, 1))
    return np.sqrt((np.abs(image) ** 2).sum(axis=-1))


# --------------------------------------------------------------------------------------------
# Output modes, 4 concurrent streams
# --------------------------------------------------------------------------------------------
def test_four_concurrent_streams_in_all_output_modes(server, radial_acs, spiral_acs):
    jobs = {
        "recondata": (radial_acs, {"output": "recondata"}),
        "acquisitions": (radial_acs, {"output": "acquisitions"}),
        "images": (radial_acs, {"output": "images", "image_series_index": "5"}),
        "spiral-recondata": (spiral_acs, {}),  # default output for a Gadgetron peer: recondata
    }
    results: dict[str, object] = {}

    def run(name: str) -> None:
        dataset, properties = jobs[name]
        try:
            results[name] = stream_with_report(server, dataset, properties)
        except BaseException as error:  # noqa: BLE001 - re-raised in the main thread below
            results[name] = error

    threads = [threading.Thread(target=run, args=(name,)) for name in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    for name, result in results.items():
        if isinstance(result, BaseException):
            raise AssertionError(f"stream {name} failed") from result
    assert set(results) == set(jobs)

    reports = {name: results[name][1] for name in jobs}
    for name, report in reports.items():
        assert report.error is None, (name, report.error)
        assert report.trainings == 1 and report.frames_out == 1, name
    # the four connections were served at the same time, each by its own session
    latest_start = max(r.started for r in reports.values())
    earliest_end = min(r.ended for r in reports.values())
    assert latest_start < earliest_end
    assert len({r.peer for r in reports.values()}) == 4

    noise = protocol.encode_acquisition(acquisition_from_readout(radial_acs.readouts[0]))
    assert radial_acs.readouts[0].is_noise()

    received = results["recondata"][0]
    assert [m.mid for m in received.messages] == [protocol.ACQUISITION, protocol.RECONDATA, protocol.CLOSE]
    assert received.messages[0].raw == noise  # pass-through, byte for byte
    buffer = decode_recon_data(received.messages[1].value).bits[0].data
    assert buffer.data.shape == (64, 64, 1, 4, 1, 1, 1) and buffer.data.dtype == np.complex64
    assert buffer.headers.shape == (64, 1, 1, 1, 1)
    centre = buffer.headers[buffer.sampling.limits[1][1], 0, 0, 0, 0]
    assert isinstance(centre, ismrmrd.AcquisitionHeader)
    assert tuple(centre.slice_dir) == tuple(radial_acs.readouts[-1].source_header.slice_dir)
    assert buffer.sampling.encoded_matrix == (64, 64, 1)
    image = rss(buffer.data)  # [E0 = x, E1 = y]
    truth = truth_rss("radial_acs")  # [y, x]
    # the scene, in the right orientation (the training budget is tiny under 4 concurrent streams:
    # a 1-step model still correlates > 0.8, a converged one > 0.99)
    assert np.corrcoef(image.T.ravel(), truth.ravel())[0, 1] > 0.7

    received = results["acquisitions"][0]
    mids = [m.mid for m in received.messages]
    # the noise scan, the calibration block's 32 rows, the frame's 64 lines, its igrog_weights image
    assert mids == [protocol.ACQUISITION] * (1 + 32 + 64) + [protocol.IMAGE, protocol.CLOSE]
    lines = gridded_lines(received)
    assert [int(line.head.idx.kspace_encode_step_1) for line in lines] == list(range(64))
    assert all(line.data.shape == (4, 64) and int(line.head.center_sample) == 32 for line in lines)

    received = results["images"][0]
    assert [m.mid for m in received.messages] == [protocol.ACQUISITION, protocol.IMAGE, protocol.CLOSE]
    picture = received.messages[1].value
    head = picture.getHead()
    assert tuple(head.matrix_size) == (64, 64, 1) and head.image_type == ismrmrd.IMTYPE_MAGNITUDE
    assert head.image_series_index == 5 and head.image_index == 1 and head.channels == 1
    assert picture.data.dtype == np.float32
    assert np.corrcoef(picture.data[0, 0].ravel(), truth.ravel())[0, 1] > 0.7  # pixel [y, x]

    received = results["spiral-recondata"][0]
    assert [m.mid for m in received.messages] == [protocol.ACQUISITION, protocol.RECONDATA, protocol.CLOSE]


# --------------------------------------------------------------------------------------------
# The stream equals replay
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deterministic_replay(tmp_path_factory):
    """radial_acs.h5 replayed with the deterministic settings: (output file, report), looked at by
    several tests."""
    output = tmp_path_factory.mktemp("replay") / "replay.h5"
    return output, replay_file(data_file("radial_acs.h5"), output, load_config("basic", None, DETERMINISTIC_OVERRIDES))


@pytest.fixture(scope="module")
def deterministic_acquisitions(server, radial_acs):
    """radial_acs streamed with output=acquisitions and the deterministic settings: (received, the
    server's report), looked at by several tests."""
    return stream_with_report(server, radial_acs, [("output", "acquisitions")] + [("set", o) for o in DETERMINISTIC_OVERRIDES])


def test_streamed_acquisitions_equal_replay(deterministic_replay, deterministic_acquisitions):
    output, _ = deterministic_replay
    received, report = deterministic_acquisitions
    assert report.error is None
    streamed = [m.value for m in received.messages if m.mid == protocol.ACQUISITION]
    with h5py.File(output, "r") as h5:
        records = h5["dataset/data"][()]
    assert len(streamed) == len(records) == 1 + 32 + 64  # noise scan, calibration block rows, frame lines
    for i, (wire, record) in enumerate(zip(streamed, records)):
        assert bytes(wire.head) == record["head"].tobytes(), f"header of acquisition {i} differs"
        np.testing.assert_array_equal(
            wire.data.reshape(-1), record["data"].view(np.complex64), err_msg=f"data of acquisition {i}"
        )


# --------------------------------------------------------------------------------------------
# Pass-through order and byte-exactness
# --------------------------------------------------------------------------------------------
def test_items_the_gadget_does_not_grid_pass_through_unchanged_and_in_order(server, radial_acs):
    readouts = radial_acs.readouts
    waveform = ismrmrd.Waveform.from_array(np.arange(20, dtype=np.uint32).reshape(2, 10))
    wave = [protocol.encode_waveform(waveform) for _ in range(3)]
    text = protocol.encode_text_message(protocol.TEXT, "a note from upstream")
    picture = ismrmrd.Image.from_array(np.ones((1, 1, 4, 4), np.float32))
    picture.meta = {"SeriesName": "scout"}
    image = protocol.encode_image(picture)
    acquisitions = [protocol.encode_acquisition(acquisition_from_readout(r)) for r in readouts]
    imaging_start = next(i for i, r in enumerate(readouts) if r.is_imaging() and not r.is_noise())
    messages = (
        [acquisitions[0], wave[0]]  # noise, waveform
        + acquisitions[1 : imaging_start + 10]  # ACS + first imaging readouts
        + [wave[1], text, image]  # in the middle of the frame
        + acquisitions[imaging_start + 10 :]  # the rest; the last one completes the frame
        + [wave[2]]
    )
    received, report = stream_with_report(server, radial_acs, {"output": "recondata"}, messages)
    assert report.error is None
    got = [m.raw if m.mid != protocol.RECONDATA else "FRAME" for m in received.messages]
    assert got == [acquisitions[0], wave[0], wave[1], text, image, "FRAME", wave[2], protocol.encode_close()]


# --------------------------------------------------------------------------------------------
# Repetitions reuse the trained model
# --------------------------------------------------------------------------------------------
def test_repetitions_train_once_per_calibration(server, radial_multi):
    received, report = stream_with_report(server, radial_multi, {"output": "recondata"})
    assert report.error is None
    frames = [decode_recon_data(m.value).bits[0].data for m in received.of(protocol.RECONDATA)]
    keys = [(int(b.headers[32, 0, 0, 0, 0].idx.slice), int(b.headers[32, 0, 0, 0, 0].idx.repetition)) for b in frames]
    assert sorted(keys) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert report.trainings == 2  # once per slice (calibration key), not once per repetition
    assert sorted(report.frame_paths) == ["cached kernels", "cached kernels", "trained", "trained"]
    # latency from the readout that completed a frame to its sending (streamed as fast as possible,
    # a frame's last readout may wait in the inbox behind an earlier frame's training)
    assert len(report.frame_latencies_s) == 4
    assert all(0 <= latency <= report.seconds for latency in report.frame_latencies_s)
    # each frame is sent as soon as it is complete: repetition 0 before repetition 1
    assert [k[1] for k in keys] == sorted(k[1] for k in keys)


# --------------------------------------------------------------------------------------------
# Errors go back to the peer; the server keeps serving
# --------------------------------------------------------------------------------------------
def test_unknown_property_is_reported_back_and_the_server_keeps_serving(server, radial_acs):
    received = stream_dataset(server.port, radial_acs, {"outptu": "images"})
    assert [m.mid for m in received.messages] == [protocol.ERROR, protocol.CLOSE]
    assert "unknown property 'outptu'" in received.messages[0].value
    received = stream_dataset(server.port, radial_acs, {"output": "images"})
    assert [m.mid for m in received.messages] == [protocol.ACQUISITION, protocol.IMAGE, protocol.CLOSE]


def test_bad_data_is_reported_with_the_acquisition_named(server, radial_acs):
    messages = list(dataset_messages(radial_acs))
    bad = ismrmrd.Acquisition.from_array(np.full((4, 128), np.nan, np.complex64))
    messages.insert(5, protocol.encode_acquisition(bad))
    received = stream_dataset(server.port, radial_acs, {}, messages)
    assert received.messages[-2].mid == protocol.ERROR
    assert "acquisition 5: field 'data' contains 512 non-finite" in received.messages[-2].value


def test_wrong_first_message_and_bad_header(server, radial_acs):
    with StreamClient.connect("127.0.0.1", server.port) as client:
        client.send(protocol.encode_text_message(protocol.HEADER, radial_acs.header_xml))
        received = client.wait_closed(30)
    assert received.messages[0].mid == protocol.ERROR
    assert "expected CONFIG_FILE (1) or CONFIG_TEXT (2) first, got HEADER (3)" in received.messages[0].value
    with StreamClient.connect("127.0.0.1", server.port) as client:
        client.send_handshake(configuration_xml({}), "<ismrmrdHeader><encoding>")
        received = client.wait_closed(30)
    assert received.messages[0].mid == protocol.ERROR and "not well-formed XML" in received.messages[0].value


# --------------------------------------------------------------------------------------------
# MRD dialect
# --------------------------------------------------------------------------------------------
def test_mrd_dialect_config_name_json_text_and_images(mrd_server, radial_acs):
    with StreamClient.connect("127.0.0.1", mrd_server.port) as client:
        client.send_handshake("igrog_basic", radial_acs.header_xml, config_is_name=True, nul_terminate=True)
        client.send(
            protocol.encode_text_message(
                protocol.TEXT, '{"parameters": {"config": "igrog", "igrog.image_dtype": "ushort"}}', nul_terminate=True
            )
        )
        for message in dataset_messages(radial_acs):
            client.send(message)
        client.send_close()
        received = client.wait_closed(120)
    assert [m.mid for m in received.messages] == [protocol.ACQUISITION, protocol.IMAGE, protocol.CLOSE]
    picture = received.messages[1].value
    assert picture.data.dtype == np.uint16 and int(picture.data.max()) == 4095


def test_mrd_dialect_errors_come_back_as_text(mrd_server, radial_acs):
    with StreamClient.connect("127.0.0.1", mrd_server.port) as client:
        client.send_handshake("igrog", radial_acs.header_xml, config_is_name=True)
        client.send(protocol.encode_text_message(protocol.TEXT, '{"parameters": {"igrog.output": "recondata"}}'))
        client.send_close()
        received = client.wait_closed(30)
    assert [m.mid for m in received.messages] == [protocol.TEXT, protocol.CLOSE]
    assert received.messages[0].value.startswith("ERROR")
    assert "output=recondata is for Gadgetron chains" in received.messages[0].value


# --------------------------------------------------------------------------------------------
# Readout oversampling is removed from recon data (the image is the recon FOV)
# --------------------------------------------------------------------------------------------
def test_recondata_covers_the_recon_fov(server, radial_acs, deterministic_acquisitions):
    header = ismrmrd.xsd.CreateFromDocument(radial_acs.header_xml)
    recon_space = header.encoding[0].reconSpace
    recon_space.fieldOfView_mm.x = recon_space.fieldOfView_mm.x / 2  # as with 2x readout oversampling
    recon_space.matrixSize.x = recon_space.matrixSize.x // 2
    oversampled = dataclasses.replace(radial_acs, header_xml=ismrmrd.xsd.ToXML(header))
    deterministic = [("set", o) for o in DETERMINISTIC_OVERRIDES]

    full, _ = deterministic_acquisitions  # the same stream without oversampling
    lines = gridded_lines(full)
    kspace = np.stack([line.data for line in lines], axis=1)  # (coils, ny, nx)
    expected = rss_image(kspace)[:, 16:48]  # [y, x]: the central half along x

    cropped, report = stream_with_report(server, oversampled, [("output", "recondata")] + deterministic)
    assert report.error is None
    buffer = decode_recon_data(cropped.of(protocol.RECONDATA)[0].value).bits[0].data
    assert buffer.data.shape == (32, 64, 1, 4, 1, 1, 1)
    assert buffer.headers.shape == (64, 1, 1, 1, 1) and int(buffer.headers[0, 0, 0, 0, 0].number_of_samples) == 32
    assert buffer.sampling.recon_fov_mm == pytest.approx((128.0, 256.0, 5.0))
    assert buffer.sampling.limits[0] == (0, 16, 31)
    np.testing.assert_allclose(rss(buffer.data).T, expected, rtol=1e-4, atol=1e-4 * float(expected.max()))


def test_connections_beyond_the_limit_are_told_the_server_is_busy(radial_acs):
    """A session slot is taken once the handshake is complete; a second complete handshake
    beyond the limit is told the server is busy."""
    options = ServerOptions(host="127.0.0.1", port=0, max_connections=1, isolation="thread")
    with GadgetServer(options) as busy_server:
        busy_server.serve_in_background()
        with StreamClient.connect("127.0.0.1", busy_server.port) as first:
            first.send_handshake(configuration_xml({}), radial_acs.header_xml)
            deadline = 100
            while busy_server.slots.in_use < 1 and deadline:
                deadline -= 1
                threading.Event().wait(0.05)
            with StreamClient.connect("127.0.0.1", busy_server.port) as second:
                second.send_handshake(configuration_xml({}), radial_acs.header_xml)
                received = second.wait_closed(10)
            assert [m.mid for m in received.messages] == [protocol.ERROR, protocol.CLOSE]
            assert "server busy (1 sessions, limit 1)" in received.messages[0].value
            first.send_close()
        assert busy_server.wait_idle(10) and busy_server.slots.in_use == 0


def test_after_an_error_the_gadget_waits_for_gadgetrons_answering_close(server, radial_acs):
    """Gadgetron answers an ERROR by writing CLOSE; that write must not hit a closed socket."""
    with StreamClient.connect("127.0.0.1", server.port) as client:
        client.send_handshake(configuration_xml({"no_such_property": "1"}), radial_acs.header_xml)
        received = client.wait_closed(10)
        assert [m.mid for m in received.messages] == [protocol.ERROR, protocol.CLOSE]
        client.send_close()  # what Gadgetron's on_error does
        time.sleep(0.3)  # Gadgetron's own CLOSE comes a moment later: the delay is what is tested, not a wait for an event
        client.send_close()  # would fail (reset by peer) had the gadget closed its socket already


def test_coils_reduced_upstream_are_gridded_in_the_coils_they_carry(server, radial_acs):
    """PCACoilGadget + CoilReductionGadget upstream: receiverChannels stays 4, acquisitions carry 3."""
    reduced = dataclasses.replace(
        radial_acs, readouts=[dataclasses.replace(r, data=r.data[:3]) for r in radial_acs.readouts]
    )
    received, report = stream_with_report(server, reduced, [("output", "acquisitions")])
    assert report.error is None
    lines = gridded_lines(received)
    assert len(lines) == 64 and all(line.data.shape == (3, 64) for line in lines)
    kspace = np.stack([line.data for line in lines], axis=1)  # (3, ny, nx)
    truth = np.load(data_file("radial_acs.truth.npz"))["kspace"][0, 0][:3]
    error = np.linalg.norm(kspace - truth) / np.linalg.norm(truth)
    assert error < 0.2  # 0.10 measured (unsampled corners included); zeros would give 1


def test_concurrent_sessions_give_the_output_of_a_lone_one(server, radial_acs):
    """Training ends on its step count and no session changes the thread count: bit-identical."""
    properties = [("output", "acquisitions")]
    alone = stream_dataset(server.port, radial_acs, properties)
    results: list = [None, None]

    def run(index: int) -> None:
        results[index] = stream_dataset(server.port, radial_acs, properties)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    expected = np.stack([line.data for line in gridded_lines(alone)])
    for received in results:
        got = np.stack([line.data for line in gridded_lines(received)])
        np.testing.assert_array_equal(got, expected)


# --------------------------------------------------------------------------------------------
# The images output is a parallel-imaging image
# --------------------------------------------------------------------------------------------
def test_images_of_an_undersampled_stream_are_sense_images(server, radial_multi):
    """radial_multi (32 spokes per frame on 64^2, 2 slices x 2 repetitions) with output=images:
    SENSE images from each slice's calibration block, at under half the error of the RSS of the
    same gridded k-space (what the output was before), against the truth inside the object."""
    deterministic = [("set", o) for o in DETERMINISTIC_OVERRIDES]
    images, report = stream_with_report(server, radial_multi, [("output", "images")] + deterministic)
    assert report.error is None
    lines, _ = stream_with_report(server, radial_multi, [("output", "acquisitions")] + deterministic)
    frames = gridded_lines(lines)
    truth = np.load(data_file("radial_multi.truth.npz"))
    inside = truth["object_mask"] > 0
    pictures = [m.value for m in images.of(protocol.IMAGE)]
    assert len(pictures) == 4
    for index, picture in enumerate(pictures):
        assert picture.meta["ImageProcessingHistory"] == ["IGROG", "SENSE"]
        kspace = np.stack([line.data for line in frames[index * 64 : (index + 1) * 64]], axis=1)  # (coils, ny, nx)
        reference = rss_image(truth["kspace"][picture.getHead().slice, 0])
        rss_error = np.linalg.norm((rss_image(kspace) - reference)[inside]) / np.linalg.norm(reference[inside])
        sense_error = np.linalg.norm((picture.data[0, 0] - reference)[inside]) / np.linalg.norm(reference[inside])
        assert sense_error < 0.5 * rss_error, (index, sense_error, rss_error)


def test_streams_carry_the_calibration_block_and_the_weights_of_replay(server, radial_acs, deterministic_replay, deterministic_acquisitions):
    """recondata: the reference buffer holds replay's calibration block, the density replay's
    hits; acquisitions: the igrog_weights image after the frame's lines equals replay's."""
    output, report = deterministic_replay
    (frame,) = report.frames
    block = frame.calibration
    deterministic = [("set", o) for o in DETERMINISTIC_OVERRIDES]

    received, _ = stream_with_report(server, radial_acs, [("output", "recondata")] + deterministic)
    bit = decode_recon_data(received.of(protocol.RECONDATA)[0].value).bits[0]
    np.testing.assert_array_equal(bit.data.density[:, :, 0, 0, 0, 0].T, frame.hits)
    reference = bit.reference
    ay, ax = block.shape
    assert reference.data.shape == (64, ay, 1, 4, 1, 1, 1) and reference.headers.shape == (ay, 1, 1, 1, 1)
    x_first, x_centre, x_last = reference.sampling.limits[0]
    assert (x_first, x_centre, x_last) == (block.kx0 + 32, 32, block.kx0 + 32 + ax - 1)
    assert reference.sampling.limits[1] == (0, -block.ky0, ay - 1)
    rows = reference.data[:, :, 0, :, 0, 0, 0].transpose(2, 1, 0)  # (coils, ay, nx)
    np.testing.assert_array_equal(rows[:, :, x_first : x_last + 1], block.kspace)
    assert not rows[:, :, :x_first].any() and not rows[:, :, x_last + 1 :].any()
    assert [int(h.idx.kspace_encode_step_1) for h in reference.headers[:, 0, 0, 0, 0]] == list(range(block.ky0 + 32, block.ky0 + 32 + ay))

    received, _ = deterministic_acquisitions
    assert [m.mid for m in received.messages][-2:] == [protocol.IMAGE, protocol.CLOSE]
    weights = received.messages[-2].value
    assert weights.meta["SeriesName"] == "igrog_weights"
    dataset = ismrmrd.Dataset(str(output), "dataset", create_if_needed=False)
    try:
        stored = dataset.read_image("igrog_weights", 0)
    finally:
        dataset.close()
    np.testing.assert_array_equal(weights.data, stored.data)
    np.testing.assert_array_equal(weights.data[0, 0], frame.hits)


# --------------------------------------------------------------------------------------------
# OpenRecon's quirks (MRD dialect)
# --------------------------------------------------------------------------------------------
def _mrd_images(mrd_server, dataset, config_name: str, messages=None):
    """Stream ``dataset`` (or ``messages``) to the MRD server under a config name: what came back."""
    with StreamClient.connect("127.0.0.1", mrd_server.port) as client:
        client.send_handshake(config_name, dataset.header_xml, config_is_name=True, nul_terminate=True)
        for message in messages if messages is not None else dataset_messages(dataset):
            client.send(message)
        client.send_close()
        return client.wait_closed(120)


@pytest.fixture(scope="module")
def plain_mrd_image(mrd_server, radial_acs):
    """The MRD server's image of radial_acs streamed plainly (config name ``igrog``), streamed once
    for the tests that compare with it."""
    received = _mrd_images(mrd_server, radial_acs, "igrog")
    assert [m.mid for m in received.messages] == [protocol.ACQUISITION, protocol.IMAGE, protocol.CLOSE]
    image = received.messages[1].value.data
    image.setflags(write=False)  # shared: read only
    return image


def test_openrecon_config_name_means_the_servers_settings(mrd_server, radial_acs, plain_mrd_image, caplog):
    """OpenRecon always sends the config name ``openrecon``: the server's settings, no WARNING back."""
    received = _mrd_images(mrd_server, radial_acs, "openrecon")
    assert [m.mid for m in received.messages] == [protocol.ACQUISITION, protocol.IMAGE, protocol.CLOSE]
    np.testing.assert_array_equal(received.messages[1].value.data, plain_mrd_image)
    assert not any("unknown config name" in r.getMessage() for r in caplog.records)


def test_openrecon_text_mid_stream_is_logged_and_ignored(mrd_server, radial_acs, plain_mrd_image, caplog):
    """A TEXT message in the middle of the data: logged, neither echoed nor an error."""
    caplog.set_level(logging.INFO)
    messages = list(dataset_messages(radial_acs))
    status = protocol.encode_text_message(protocol.TEXT, "OpenRecon: status update", nul_terminate=True)
    received = _mrd_images(mrd_server, radial_acs, "openrecon", messages=messages[:40] + [status] + messages[40:])
    assert [m.mid for m in received.messages] == [protocol.ACQUISITION, protocol.IMAGE, protocol.CLOSE]
    np.testing.assert_array_equal(received.messages[1].value.data, plain_mrd_image)
    assert any("TEXT from the client, ignored: OpenRecon: status update" in r.getMessage() for r in caplog.records)


def test_openrecon_centre_sample_beyond_the_readout_is_reported_once(mrd_server, radial_acs, plain_mrd_image, caplog):
    """``center_sample >= number_of_samples`` (seen once readout oversampling is removed upstream):
    one warning; the trajectory places the samples, so the image is the plain stream's."""
    shifted = dataclasses.replace(
        radial_acs,
        readouts=[dataclasses.replace(r, center_sample=r.num_samples + 5) if r.is_imaging() else r for r in radial_acs.readouts],
    )
    received = _mrd_images(mrd_server, shifted, "openrecon")
    np.testing.assert_array_equal(received.messages[1].value.data, plain_mrd_image)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("center_sample" in m and "the trajectory places the samples" in m for m in messages) == 1
