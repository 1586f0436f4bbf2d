"""Wire protocol: exact byte layouts, round trips, limits and broken peers (no gridding here)."""

from __future__ import annotations

import io
import socket
import struct
import threading
import time

import ismrmrd
import numpy as np
import pytest

from igrog_gadget.core.report import FrameReport
from igrog_gadget.gadget import protocol
from igrog_gadget.recon.images import FrameImage
from igrog_gadget.gadget.images import frame_image
from igrog_gadget.numerics.fft import rss_image
from igrog_gadget.gadget.protocol import (
    MalformedMessageError,
    MessageChannel,
    MessageTooLargeError,
    PeerClosedError,
    PeerTimeoutError,
    ProtocolLimits,
    TruncatedMessageError,
)
from igrog_gadget.gadget.recondata import (
    SAMPLING_DESCRIPTION_SIZE,
    decode_recon_data,
    encode_frame,
)
from igrog_gadget.scan import GriddedFrame, Readout


def make_frame(coils: int = 3, ny: int = 8, nx: int = 10, slice_: int = 2, repetition: int = 1) -> GriddedFrame:
    rng = np.random.default_rng(0)
    kspace = (rng.standard_normal((coils, ny, nx)) + 1j * rng.standard_normal((coils, ny, nx))).astype(np.complex64)
    head = ismrmrd.AcquisitionHeader()
    head.version = 1
    head.measurement_uid = 77
    head.position[:] = (1.0, 2.0, 3.0)
    head.read_dir[:] = (1.0, 0.0, 0.0)
    head.phase_dir[:] = (0.0, 1.0, 0.0)
    head.slice_dir[:] = (0.0, 0.0, 1.0)
    head.idx.slice = slice_
    head.idx.repetition = repetition
    template = Readout(
        data=np.zeros((coils, 4), np.complex64),
        traj=None,
        flags=0,
        idx={"slice": slice_, "repetition": repetition},
        source_header=head,
    )
    key = (slice_, 0, 0, 0, repetition, 0, 0)
    return GriddedFrame(
        kspace=kspace, hits=np.ones((ny, nx), np.int32), frame_key=key, template=template, report=FrameReport(variant="basic", device="cpu")
    )


def channel_pair(limits: ProtocolLimits | None = None) -> tuple[MessageChannel, socket.socket]:
    ours, theirs = socket.socketpair()
    return MessageChannel(ours, limits or ProtocolLimits(read_timeout_s=2, idle_timeout_s=2), peer="test"), theirs


# --------------------------------------------------------------------------------------------
# Recon data
# --------------------------------------------------------------------------------------------
def test_recondata_layout_matches_gadgetron_hondarray_serialisation():
    frame = make_frame()
    message = encode_frame(frame, (200.0, 210.0, 5.0), first_scan_counter=7)
    coils, ny, nx = frame.kspace.shape
    assert struct.unpack_from("<H", message)[0] == protocol.RECONDATA
    offset = 2
    assert struct.unpack_from("<Q", message, offset)[0] == 1  # one recon bit
    offset += 8
    ndim = struct.unpack_from("<Q", message, offset)[0]
    dims = struct.unpack_from(f"<{ndim}Q", message, offset + 8)
    assert dims == (nx, ny, 1, coils, 1, 1, 1)  # [E0, E1, E2, CHA, N, S, LOC]
    offset += 8 + 8 * ndim
    values = np.frombuffer(message, np.complex64, count=nx * ny * coils, offset=offset)
    # hoNDArray order: E0 fastest, then E1, then CHA
    np.testing.assert_array_equal(values.reshape(coils, ny, nx), frame.kspace)
    offset += values.nbytes
    assert message[offset : offset + 2] == b"\x00\x00"  # no trajectory, no density
    offset += 2
    hdims = struct.unpack_from("<6Q", message, offset)
    assert hdims == (5, ny, 1, 1, 1, 1)  # [E1, E2, N, S, LOC]
    offset += 48 + ny * protocol.ACQUISITION_HEADER_SIZE
    sampling = message[offset : offset + SAMPLING_DESCRIPTION_SIZE]
    assert SAMPLING_DESCRIPTION_SIZE == 56
    fovs = struct.unpack_from("<6f", sampling)
    assert fovs == (200.0, 210.0, 5.0, 200.0, 210.0, 5.0)
    matrices_and_limits = struct.unpack_from("<15H", sampling, 24)
    assert matrices_and_limits[:6] == (nx, ny, 1, nx, ny, 1)
    assert matrices_and_limits[6:] == (0, nx // 2, nx - 1, 0, ny // 2, ny - 1, 0, 0, 0)  # min, center, max
    offset += SAMPLING_DESCRIPTION_SIZE
    assert message[offset:] == b"\x00"  # no reference buffer, end of message


def test_recondata_centre_header_carries_geometry_and_counters():
    frame = make_frame(slice_=3, repetition=4)
    recon = decode_recon_data(encode_frame(frame, (256.0, 256.0, 5.0), first_scan_counter=10)[2:])
    buffer = recon.bits[0].data
    centre = buffer.headers[buffer.sampling.limits[1][1], buffer.sampling.limits[2][1], 0, 0, 0]
    assert isinstance(centre, ismrmrd.AcquisitionHeader)
    assert centre.idx.slice == 3 and centre.idx.repetition == 4
    assert centre.idx.kspace_encode_step_1 == frame.kspace.shape[1] // 2
    assert tuple(centre.position) == (1.0, 2.0, 3.0)
    assert centre.measurement_uid == 77
    assert [h.scan_counter for h in buffer.headers.reshape(-1)] == list(range(10, 10 + frame.kspace.shape[1]))
    np.testing.assert_array_equal(buffer.data[:, :, 0, :, 0, 0, 0], frame.kspace.transpose(2, 1, 0))


@pytest.mark.filterwarnings("ignore:A builtin ctypes object:RuntimeWarning")
def test_recondata_is_read_by_the_gadgetron_package():
    """An independent reader (the gadgetron package's) sees the same arrays and headers."""
    recon_data = pytest.importorskip("gadgetron.types.recon_data")
    frame = make_frame()
    message = encode_frame(frame, (256.0, 256.0, 5.0))

    class Source:
        def __init__(self, payload: bytes) -> None:
            self.stream = io.BytesIO(payload)

        def read(self, n: int) -> bytes:
            return self.stream.read(n)

    source = Source(message[2:])
    recon = recon_data.read_recon_data(source)
    assert source.stream.read() == b""
    buffer = recon.bits[0].data
    np.testing.assert_array_equal(buffer.data[:, :, 0, :, 0, 0, 0], frame.kspace.transpose(2, 1, 0))
    assert list(buffer.sampling.sampling_limits[1]) == [0, 4, 7]  # min, center, max (ny = 8)
    assert buffer.headers.shape == (8, 1, 1, 1, 1)
    assert recon.bits[0].ref is None


def test_recondata_decoder_rejects_trailing_bytes_and_absurd_dimensions():
    payload = encode_frame(make_frame(), (1.0, 1.0, 1.0))[2:]
    with pytest.raises(MalformedMessageError, match="after its last recon bit"):
        decode_recon_data(payload + b"\x00")
    absurd = struct.pack("<QQ", 1, 1000)
    with pytest.raises(MalformedMessageError, match="1000 dimensions"):
        decode_recon_data(absurd)
    huge = struct.pack("<QQ7Q", 1, 7, *([1 << 20] * 7))
    with pytest.raises(MessageTooLargeError, match="declares a dimension of 1048576"):
        decode_recon_data(huge)


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------
def test_rss_image_of_a_centred_point_is_flat():
    kspace = np.zeros((2, 8, 8), np.complex64)
    kspace[:, 4, 4] = 1.0
    image = rss_image(kspace)
    assert image.shape == (8, 8) and image.dtype == np.float32
    np.testing.assert_allclose(image, np.sqrt(2) / 8, rtol=1e-5)


@pytest.mark.parametrize("dtype, data_type", [("float", ismrmrd.DATATYPE_FLOAT), ("ushort", ismrmrd.DATATYPE_USHORT)])
def test_frame_image_header(dtype, data_type):
    frame = make_frame(slice_=1, repetition=2)
    picture = FrameImage(rss_image(frame.kspace), "rss")
    image = frame_image(frame, picture, (256.0, 250.0, 5.0), image_index=3, image_series_index=9, dtype=dtype)
    head = image.getHead()
    assert tuple(head.matrix_size) == (10, 8, 1)
    assert tuple(head.field_of_view) == pytest.approx((256.0, 250.0, 5.0))
    assert head.channels == 1 and head.image_type == ismrmrd.IMTYPE_MAGNITUDE and head.data_type == data_type
    assert (head.slice, head.repetition, head.image_index, head.image_series_index) == (1, 2, 3, 9)
    assert tuple(head.position) == (1.0, 2.0, 3.0) and tuple(head.slice_dir) == (0.0, 0.0, 1.0)
    assert head.measurement_uid == 77
    assert image.data.shape == (1, 1, 8, 10)
    decoded = ismrmrd.Image.from_bytes(protocol.encode_image(image)[2:])
    np.testing.assert_array_equal(decoded.data, image.data)
    if dtype == "ushort":
        assert int(image.data.max()) == 4095
        scale = float(decoded.meta["IgrogScale"])
        np.testing.assert_allclose(image.data[0, 0] / scale, rss_image(frame.kspace), atol=1.0 / scale)


# --------------------------------------------------------------------------------------------
# Encoding exactness
# --------------------------------------------------------------------------------------------
def test_acquisition_round_trip_is_byte_exact_and_typed():
    acq = ismrmrd.Acquisition.from_array(
        (np.arange(12) * (1 + 1j)).reshape(3, 4).astype(np.complex128),  # not complex64 on purpose
        np.arange(8, dtype=np.float64).reshape(4, 2),
    )
    message = protocol.encode_acquisition(acq)
    assert len(message) == 2 + 340 + 4 * 2 * 4 + 3 * 4 * 8
    channel, peer = channel_pair()
    peer.sendall(message)
    received = channel.read_message()
    assert received.raw == message
    assert received.value.data.dtype == np.complex64 and received.value.data.shape == (3, 4)
    np.testing.assert_array_equal(received.value.traj, np.arange(8, dtype=np.float32).reshape(4, 2))
    channel.close()
    peer.close()


def test_text_messages_strip_nul_and_config_file_is_1024_bytes():
    channel, peer = channel_pair()
    peer.sendall(protocol.encode_config_file("igrog") + protocol.encode_text_message(protocol.HEADER, "<x/>", True))
    first, second = channel.read_message(), channel.read_message()
    assert len(first.raw) == 2 + 1024 and first.value == "igrog"
    assert second.value == "<x/>"
    channel.close()
    peer.close()


def test_error_text_has_no_printf_conversions():
    # Gadgetron 4 logs an external peer's ERROR text as a printf format (Core.cpp ErrorSender):
    # "84% of" was logged as "8432000002220f", and "%s" crashed the connection's process.
    channel, peer = channel_pair()
    peer.sendall(protocol.encode_error("84% of the cells, need 90%; value '%s%n'"))
    message = channel.read_message()
    assert message.mid == protocol.ERROR and "%" not in message.value
    assert message.value == "84 percent of the cells, need 90 percent; value ' percents percentn'"
    channel.close()
    peer.close()


# --------------------------------------------------------------------------------------------
# Broken peers: each ends promptly with a named error, never a busy loop
# --------------------------------------------------------------------------------------------
def _send_paced(
    peer: socket.socket, message: bytes, bytes_per_second: float, chunk: int, stop: threading.Event | None = None
) -> None:
    """Send ``message`` in ``chunk``-byte pieces at about ``bytes_per_second`` (until ``stop`` is set)."""
    started = time.monotonic()
    for offset in range(0, len(message), chunk):
        if stop is not None and stop.is_set():
            return
        peer.sendall(message[offset : offset + chunk])
        ahead = (offset + chunk) / bytes_per_second - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)


def test_message_deadline_defaults_drop_a_trickle_and_pass_a_large_transfer():
    limits = ProtocolLimits()
    trickled = 2 + 4 + 400  # a small text message: id, length, 400 bytes
    assert limits.message_deadline_s + trickled / limits.min_message_rate < 30  # 1 byte per 2 s: dropped in 30 s
    large = 256 << 20  # a 256 MiB acquisition at 50 MB/s takes 5.4 s
    assert limits.message_deadline_s + large / limits.min_message_rate > large / 50e6


def test_the_deadline_grows_with_the_announced_size():
    """Scaled down: a 0.5 s base time and 10 MB/s; 40 MiB at 50 MB/s (0.8 s) arrives whole, a few
    bytes trickled at 20 per second are cut off after the base time."""
    limits = ProtocolLimits(read_timeout_s=2, idle_timeout_s=2, message_deadline_s=0.5, min_message_rate=10e6)
    channel, peer = channel_pair(limits)
    text = "x" * (40 << 20)
    sender = threading.Thread(target=_send_paced, args=(peer, protocol.encode_text_message(protocol.HEADER, text), 50e6, 1 << 20))
    started = time.monotonic()
    sender.start()
    message = channel.read_message()
    sender.join()
    assert message.value == text and time.monotonic() - started > limits.message_deadline_s

    stop = threading.Event()
    trickle = threading.Thread(
        target=_send_paced, args=(peer, protocol.encode_text_message(protocol.HEADER, "y" * 400), 20.0, 1, stop), daemon=True
    )
    started = time.monotonic()
    trickle.start()
    with pytest.raises(PeerTimeoutError, match=r"message deadline of 0\.5 s \(0\.5 s \+ 406 bytes"):
        channel.read_message()
    assert time.monotonic() - started < 1.5
    stop.set()
    trickle.join(10)  # before its socket closes under it
    channel.close()
    peer.close()


def test_eof_between_messages_is_peer_closed():
    channel, peer = channel_pair()
    peer.close()
    with pytest.raises(PeerClosedError, match="without a CLOSE"):
        channel.read_message()


def test_truncated_message_is_reported_with_sizes():
    channel, peer = channel_pair()
    message = protocol.encode_acquisition(ismrmrd.Acquisition.from_array(np.ones((2, 16), np.complex64)))
    peer.sendall(message[:200])
    peer.close()
    with pytest.raises(TruncatedMessageError, match=r"in the middle of an acquisition header: 198 of 340 bytes"):
        channel.read_message()


def test_absurd_lengths_are_refused_before_allocating():
    channel, peer = channel_pair(ProtocolLimits(max_text_bytes=1 << 20, max_message_bytes=1 << 24))
    peer.sendall(struct.pack("<HI", protocol.HEADER, 0xFFFFFFF0))
    with pytest.raises(MessageTooLargeError, match="4294967280 bytes"):
        channel.read_message()
    channel.close()
    peer.close()
    channel, peer = channel_pair(ProtocolLimits(max_message_bytes=1 << 24))
    head = ismrmrd.AcquisitionHeader()
    head.number_of_samples = 65535
    head.active_channels = 65535
    peer.sendall(struct.pack("<H", protocol.ACQUISITION) + bytes(head))
    with pytest.raises(MessageTooLargeError, match="acquisition 0 announces 34358689800 bytes"):
        channel.read_message()
    channel.close()
    peer.close()


def test_unknown_message_id_is_named():
    channel, peer = channel_pair()
    peer.sendall(struct.pack("<H", 1050))
    with pytest.raises(MalformedMessageError, match="unsupported message id 1050 \\(BUCKET\\)"):
        channel.read_message()
    channel.close()
    peer.close()


def test_stalled_peer_times_out_without_spinning():
    channel, peer = channel_pair(ProtocolLimits(read_timeout_s=0.5, idle_timeout_s=5))
    peer.sendall(struct.pack("<HI", protocol.TEXT, 100) + b"only a little")
    cpu_before = time.process_time()
    wall_before = time.perf_counter()
    with pytest.raises(PeerTimeoutError, match="stalled for 0.5 s"):
        channel.read_message()
    assert time.perf_counter() - wall_before < 3.0
    assert time.process_time() - cpu_before < 0.2  # waits in poll, never spins
    channel.close()
    peer.close()


class _InconsistentAcquisition:
    """An acquisition whose arrays do not match its header (as a buggy producer might make)."""

    def __init__(self) -> None:
        self.data = np.ones((2, 4), np.complex128)
        self.traj = np.zeros((4, 0), np.float32)

    def getHead(self) -> ismrmrd.AcquisitionHeader:
        head = ismrmrd.AcquisitionHeader()
        head.number_of_samples = 5
        head.active_channels = 2
        return head


def test_a_message_that_cannot_be_serialised_never_reaches_the_wire():
    channel, peer = channel_pair()
    good = protocol.encode_close()
    with pytest.raises(ValueError, match="do not match the header"):
        channel.send(good, protocol.encode_acquisition(_InconsistentAcquisition()))  # type: ignore[arg-type]
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(1)  # not even the CLOSE before it: messages are serialised before anything is sent
    channel.close()
    peer.close()


def test_close_wakes_a_blocked_reader():
    channel, peer = channel_pair(ProtocolLimits(idle_timeout_s=None))
    errors: list[Exception] = []

    def read() -> None:
        try:
            channel.read_message()
        except Exception as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    thread = threading.Thread(target=read)
    thread.start()
    time.sleep(0.1)
    channel.close()
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert errors and isinstance(errors[0], protocol.ProtocolError)
    peer.close()


def test_reading_and_sending_from_two_threads_never_fails():
    """A session reads the peer's data on one thread while another sends results on the same
    socket. Reads often wait (the peer sends each message in two halves) while sends go on; a
    channel that switched the socket's blocking mode per call failed such reads with EAGAIN."""
    channel, peer = channel_pair(ProtocolLimits(read_timeout_s=5, idle_timeout_s=5))
    count = 1000
    incoming = protocol.encode_text_message(protocol.TEXT, "data from the peer")
    results: list[object] = []

    def read() -> None:
        try:
            results.extend(channel.read_message().value for _ in range(count))
        except Exception as error:  # noqa: BLE001 - collected for the assertion
            results.append(error)

    def peer_sends() -> None:
        for _ in range(count):
            peer.sendall(incoming[:3])
            time.sleep(0)
            peer.sendall(incoming[3:])

    def peer_drains() -> None:
        while peer.recv(1 << 16):
            pass

    threads = [threading.Thread(target=target, daemon=True) for target in (read, peer_sends, peer_drains)]
    for thread in threads:
        thread.start()
    outgoing = protocol.encode_text_message(protocol.TEXT, "a result")
    while threads[0].is_alive():
        channel.send(outgoing)
    channel.close()
    threads[2].join(10)  # the drain sees the end of the stream before its socket closes
    peer.close()
    assert results == ["data from the peer"] * count, results[-1]
