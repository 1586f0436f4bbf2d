"""Hostile and careless peers against an in-process ``igrog serve`` (both dialects), with short
timeouts set here: each scenario ends with ERROR + CLOSE (Gadgetron) or TEXT "ERROR ..." + CLOSE
(MRD) naming what was wrong, its session slot comes back, and a valid stream is served after."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
import tracemalloc
from pathlib import Path

import ismrmrd
import numpy as np
import pytest

from gadget_helpers import FAST_OVERRIDES, send_all
from igrog_gadget.gadget import protocol
from igrog_gadget.gadget.client import StreamClient, configuration_xml, dataset_messages
from igrog_gadget.gadget.protocol import MessageChannel, ProtocolError, ProtocolLimits
from igrog_gadget.gadget.server import GadgetServer, ServerOptions
from igrog_gadget.gadget.session import Dialect
from igrog_gadget.gadget.settings import GadgetSettings, PeerFiles
from igrog_gadget.limits import ResourceLimits

LIMITS = ProtocolLimits(read_timeout_s=0.6, idle_timeout_s=3.0, message_deadline_s=1.5, max_message_bytes=64 << 20)
RESOURCES = ResourceLimits(max_matrix=256, max_coils=32, max_buffered_samples=2_000_000)


def make_server(dialect: Dialect, data_dir: Path | None) -> GadgetServer:
    options = ServerOptions(
        host="127.0.0.1", port=0, dialect=dialect, max_connections=2, handshake_timeout_s=1.0, resource_limits=RESOURCES,
        isolation="thread",  # the protocol's limits are the same code in a worker (tests/gadget/test_isolation.py)
    )
    defaults = GadgetSettings(overrides=list(FAST_OVERRIDES), files=PeerFiles(str(data_dir) if data_dir else None, 1 << 20))
    server = GadgetServer(options, defaults, LIMITS)
    server.serve_in_background()
    return server


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("peer_files")
    (directory / "ok.toml").write_text('[training]\nmax_steps = 100\n')
    os.mkfifo(directory / "fifo.toml")
    (directory / "big.toml").write_bytes(b"#" * (2 << 20))
    return directory


@pytest.fixture(scope="module", params=[Dialect.GADGETRON, Dialect.MRD], ids=["gadgetron", "mrd"])
def hostile_server(request, data_dir):
    server = make_server(request.param, data_dir)
    yield server
    server.shutdown()


def error_text(received) -> str:
    """The error a session sent before CLOSE (either dialect)."""
    assert received.closed, f"no CLOSE (receiving ended: {received.error})"
    first = received.messages[0]
    if first.mid == protocol.ERROR:
        return first.value
    assert first.mid == protocol.TEXT and first.value.startswith("ERROR"), [m.name for m in received.messages]
    return first.value


def run_raw(server: GadgetServer, payload: bytes, timeout_s: float = 10.0):
    """Send raw bytes (no CLOSE) and collect the reply."""
    with StreamClient.connect("127.0.0.1", server.port) as client:
        try:
            client.send(payload)
        except ProtocolError:
            pass
        received = client.wait_closed(timeout_s)
    return received


def handshake(dataset, properties=None, header_xml: str | None = None) -> bytes:
    return protocol.encode_text_message(protocol.CONFIG_TEXT, configuration_xml(properties or {})) + protocol.encode_text_message(
        protocol.HEADER, header_xml if header_xml is not None else dataset.header_xml
    )


def assert_recovered(server: GadgetServer) -> None:
    assert server.wait_idle(10), "a session is still running"
    assert server.slots.in_use == 0


def recon_data_with_header_dims(dims: tuple[int, ...]) -> bytes:
    """A RECONDATA message: one bit, a 1-element data array, headers array of ``dims``."""
    u64 = struct.Struct("<Q").pack
    data = u64(7) + b"".join(u64(1) for _ in range(7)) + np.zeros(1, np.complex64).tobytes()
    headers = u64(len(dims)) + b"".join(u64(d) for d in dims)
    return struct.pack("<H", protocol.RECONDATA) + u64(1) + data + b"\x00\x00" + headers


# --- malformed messages --------------------------------------------------------------------
@pytest.mark.parametrize("dims", [(2**63, 2), (2**63, 0), (2**40, 2**40)], ids=["overflow", "huge-times-zero", "product"])
def test_recon_data_with_overflowing_dimensions_ends_the_session(hostile_server, radial_acs, dims):
    received = run_raw(hostile_server, handshake(radial_acs) + recon_data_with_header_dims(dims))
    assert "recon data: recon bit 0 headers" in error_text(received)
    assert_recovered(hostile_server)


def test_unknown_message_id(hostile_server, radial_acs):
    received = run_raw(hostile_server, handshake(radial_acs) + struct.pack("<H", 4242))
    assert "unsupported message id 4242" in error_text(received)
    assert_recovered(hostile_server)


def test_acquisition_announcing_more_than_the_message_limit(hostile_server, radial_acs):
    head = ismrmrd.AcquisitionHeader()  # within the coil and sample limits, beyond 64 MiB by its trajectory
    head.number_of_samples, head.active_channels, head.trajectory_dimensions = 65535, 1, 300
    received = run_raw(hostile_server, handshake(radial_acs) + struct.pack("<H", protocol.ACQUISITION) + bytes(head))
    assert "announces 79166280 bytes, more than the limit" in error_text(received)
    assert_recovered(hostile_server)


def test_acquisition_with_more_coils_than_the_resource_limit(hostile_server, radial_acs):
    """Refused from its header: the data (never sent here) are not waited for."""
    acquisition = ismrmrd.Acquisition.from_array(np.zeros((40, 16), np.complex64))
    header_only = protocol.encode_acquisition(acquisition)[: 2 + protocol.ACQUISITION_HEADER_SIZE]
    started = time.monotonic()
    received = run_raw(hostile_server, handshake(radial_acs) + header_only)
    assert "active_channels = 40 exceeds the resource limit max_coils = 32" in error_text(received)
    assert time.monotonic() - started < LIMITS.read_timeout_s  # not a stall timeout
    assert_recovered(hostile_server)


# --- slow, silent and vanishing peers -------------------------------------------------------
def trickle(client: StreamClient, data: bytes, interval_s: float) -> None:
    """Send ``data`` one byte every ``interval_s`` until the gadget closes the connection."""
    for byte in data:
        if client.received.closed:
            return
        try:
            client.send(bytes([byte]))
        except ProtocolError:
            return
        time.sleep(interval_s)


def test_trickling_peer_is_cut_off_by_the_message_deadline(hostile_server, radial_acs):
    """One byte every 0.3 s stays inside the 0.6 s read timeout; the 1.5 s deadline ends it."""
    message = next(iter(dataset_messages(radial_acs)))
    with StreamClient.connect("127.0.0.1", hostile_server.port) as client:
        client.send(handshake(radial_acs))
        started = time.monotonic()
        trickle(client, message[:12], 0.3)
        received = client.wait_closed(10)
    assert time.monotonic() - started < 6
    assert "message deadline of 1.5 s" in error_text(received)
    assert_recovered(hostile_server)


def test_trickling_handshake_is_cut_off(hostile_server, radial_acs):
    with StreamClient.connect("127.0.0.1", hostile_server.port) as client:
        trickle(client, handshake(radial_acs)[:8], 0.25)
        received = client.wait_closed(10)
    assert "did not arrive in time" in error_text(received)
    assert_recovered(hostile_server)


def test_silent_peers_hold_no_session_slot(hostile_server, radial_acs):
    """Five silent connections (limit: 2 sessions) do not make a valid stream busy; each is closed
    after the 1 s handshake timeout."""
    silent = [socket.create_connection(("127.0.0.1", hostile_server.port)) for _ in range(5)]
    try:
        with StreamClient.connect("127.0.0.1", hostile_server.port) as client:
            send_all(client, configuration_xml({"output": "acquisitions"}), radial_acs)
            received = client.wait_closed(120)
        assert received.of(protocol.ACQUISITION), [m.name for m in received.messages]
        for sock in silent:
            sock.settimeout(5)
            assert sock.recv(1 << 16) is not None  # the server answers (error) and closes
    finally:
        for sock in silent:
            sock.close()
    assert_recovered(hostile_server)


def test_peer_vanishing_during_training_frees_its_slot(hostile_server, radial_acs):
    client = StreamClient.connect("127.0.0.1", hostile_server.port)
    client.send_handshake(configuration_xml({}), radial_acs.header_xml)
    for message in dataset_messages(radial_acs):
        client.send(message)
    client.close()  # no CLOSE: gone while its frame trains
    assert_recovered(hostile_server)


def test_truncated_acquisition_frees_the_slot(hostile_server, radial_acs):
    client = StreamClient.connect("127.0.0.1", hostile_server.port)
    client.send(handshake(radial_acs) + next(iter(dataset_messages(radial_acs)))[:200])
    client.close()
    assert_recovered(hostile_server)


# --- what a connection may ask for ----------------------------------------------------------
@pytest.mark.parametrize(
    "override, limit",
    [
        ("training.max_seconds=1e9", "max_training_seconds = 600"),
        ("training.epochs=1000000000", "max_epochs = 10000"),
        ("calibration.num_training_pairs=10000000000", "max_training_pairs = 2000000"),
        ("model.hidden_width=1000000", "max_hidden_width = 4096"),
    ],
)
def test_oversized_requests_are_refused_before_work(hostile_server, radial_acs, override, limit):
    started = time.monotonic()
    received = run_raw(hostile_server, handshake(radial_acs, {"set": override}))
    assert f"exceeds the resource limit {limit}" in error_text(received)
    assert time.monotonic() - started < 5
    assert_recovered(hostile_server)


def test_header_matrix_beyond_the_limit_is_refused_before_allocation(hostile_server, radial_acs):
    header = radial_acs.header_xml.replace("<x>64</x>", "<x>8192</x>").replace("<y>64</y>", "<y>8192</y>")
    assert "8192" in header
    received = run_raw(hostile_server, handshake(radial_acs, header_xml=header))
    assert "8192-point grid, beyond the resource limit max_matrix = 256" in error_text(received)
    assert_recovered(hostile_server)


def test_frames_that_never_complete_hit_the_buffer_limit(hostile_server, radial_acs):
    """Readouts each in a frame of its own repetition, never completed: bounded, named."""
    acquisitions = []
    for repetition in range(400):
        acq = ismrmrd.Acquisition.from_array(np.ones((4, 2048), np.complex64), np.zeros((2048, 2), np.float32))
        acq.idx.repetition = repetition
        acquisitions.append(protocol.encode_acquisition(acq))
    with StreamClient.connect("127.0.0.1", hostile_server.port) as client:
        send_all(client, configuration_xml({}), radial_acs, acquisitions)
        received = client.wait_closed(20)
    assert "beyond the resource limit max_buffered_samples = 2000000" in error_text(received)
    assert_recovered(hostile_server)


# --- properties that name files -------------------------------------------------------------
@pytest.mark.parametrize(
    "properties, message",
    [
        ({"config": "/dev/zero"}, "is not a file below the server's data directory"),
        ({"config": "/etc/passwd"}, "is not a file below the server's data directory"),
        ({"config": "/no/such/file.toml"}, "is not a file below the server's data directory"),
        ({"config": "../../etc/passwd"}, "is not a file below the server's data directory"),
        ({"config": "fifo.toml"}, "is not a regular file"),
        ({"config": "big.toml"}, "more than the limit of 1048576"),
        ({"set": "fieldcorr.b0map_file=/etc/hostname", "variant": "fieldcorr"}, "is not a file below"),
        ({"set": "image_calibration.image_file=/proc/self/environ", "variant": "image_based"}, "is not a file below"),
    ],
    ids=["dev-zero", "etc-passwd", "missing-outside", "dot-dot", "fifo", "too-big", "b0map", "image-file"],
)
def test_file_properties_stay_inside_the_data_directory(hostile_server, radial_acs, properties, message):
    started = time.monotonic()
    received = run_raw(hostile_server, handshake(radial_acs, properties))
    text = error_text(received)
    assert message in text
    assert "root:" not in text and "No such file" not in text  # nothing about files outside
    assert time.monotonic() - started < 5
    assert_recovered(hostile_server)


def test_a_file_inside_the_data_directory_is_read(hostile_server, radial_acs):
    with StreamClient.connect("127.0.0.1", hostile_server.port) as client:
        send_all(client, configuration_xml({"config": "ok.toml", "output": "acquisitions"}), radial_acs)
        received = client.wait_closed(120)
    assert received.closed and received.of(protocol.ACQUISITION)
    assert_recovered(hostile_server)


def test_without_a_data_directory_file_properties_are_refused(radial_acs):
    server = make_server(Dialect.GADGETRON, None)
    try:
        received = run_raw(server, handshake(radial_acs, {"config": "ok.toml"}))
        assert "this server reads no files for its peers" in error_text(received)
        assert_recovered(server)
    finally:
        server.shutdown()


# --- memory ---------------------------------------------------------------------------------
def test_an_acquisition_message_costs_about_its_size():
    """A 64 MiB acquisition read off a socket: traced allocations peak at about 1x its size
    (the arrays are views of the one receive buffer)."""
    samples, coils = 1 << 15, 256  # 64 MiB of complex64
    message = protocol.encode_acquisition(ismrmrd.Acquisition.from_array(np.ones((coils, samples), np.complex64)))
    left, right = socket.socketpair()
    sender = threading.Thread(target=left.sendall, args=(message,), daemon=True)
    tracemalloc.start()
    try:
        sender.start()
        channel = MessageChannel(right, ProtocolLimits(max_message_bytes=1 << 30))
        tracemalloc.reset_peak()
        received = channel.read_message()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        sender.join(5)
        left.close()
        right.close()
    assert received.value.data.shape == (coils, samples)
    assert peak < 1.1 * len(message), (peak, len(message))


# --- and after all that ---------------------------------------------------------------------
def test_a_valid_stream_is_served_correctly_afterwards(hostile_server, radial_acs):
    with StreamClient.connect("127.0.0.1", hostile_server.port) as client:
        send_all(client, configuration_xml({"output": "acquisitions"}), radial_acs)
        received = client.wait_closed(120)
    lines = received.of(protocol.ACQUISITION)
    assert received.closed and len(lines) >= 64
    assert_recovered(hostile_server)
    assert hostile_server.active_connections == 0


@pytest.mark.parametrize("data_dir_set", [False, True], ids=["no-IGROG_DATA_DIR", "IGROG_DATA_DIR"])
def test_active_mode_reads_files_only_below_igrog_data_dir(radial_acs, data_dir, monkeypatch, data_dir_set):
    """Gadgetron's <execute> (active mode): a chain's file properties follow $IGROG_DATA_DIR."""
    from igrog_gadget.gadget.external import igrog_gadget

    if data_dir_set:
        monkeypatch.setenv("IGROG_DATA_DIR", str(data_dir))
    else:
        monkeypatch.delenv("IGROG_DATA_DIR", raising=False)
    ours, theirs = socket.socketpair()
    worker = threading.Thread(target=igrog_gadget, args=(ours,), daemon=True)
    worker.start()
    with StreamClient(theirs) as client:
        client.send_handshake(configuration_xml({"config": "fifo.toml"}), radial_acs.header_xml)
        received = client.wait_closed(10)
    worker.join(10)
    expected = "is not a regular file" if data_dir_set else "this server reads no files for its peers"
    assert expected in error_text(received)
