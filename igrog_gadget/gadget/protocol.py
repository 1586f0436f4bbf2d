"""The Gadgetron / MRD streaming wire protocol, implemented here (not borrowed from ``gadgetron``).

Every message is a little-endian ``uint16`` message id followed by its payload:

=====================  ====  ==========================================================
message                id    payload
=====================  ====  ==========================================================
CONFIG_FILE            1     1024 bytes, NUL-padded config name
CONFIG_TEXT            2     uint32 length + text (MRD clients add a terminating NUL)
HEADER                 3     uint32 length + ISMRMRD XML header (MRD: NUL-terminated)
CLOSE                  4     none
TEXT                   5     uint32 length + text
ERROR                  8     uint64 length + text (Gadgetron: an external peer's error)
ACQUISITION            1008  340-byte AcquisitionHeader, traj float32 (samples, dims),
                             data complex64 (channels, samples)
IMAGE                  1022  198-byte ImageHeader, uint64 attribute length, attributes,
                             data (channels, z, y, x) of the header's data type
RECONDATA              1023  IsmrmrdReconData (see :mod:`igrog_gadget.gadget.recondata`)
WAVEFORM               1026  40-byte WaveformHeader, data uint32 (channels, samples)
=====================  ====  ==========================================================

What this module guarantees, unlike ``gadgetron`` 1.4.1's Python package:

- a message is serialised completely in memory, in exactly the dtype the wire needs,
  before its id is written (:meth:`MessageChannel.send` takes whole messages), so a
  serialisation error can never leave half a message on the wire;
- a peer that vanishes (EOF / reset), stalls in the middle of a message (timeout),
  sends a truncated message or announces an absurd length ends only its own
  connection, with a :class:`ProtocolError` naming what happened; reading waits in
  ``poll`` with a timeout and never spins, while another thread may send on the same socket.

Sizes are checked against :class:`ProtocolLimits` *before* any buffer is allocated.
"""

from __future__ import annotations

import logging
import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, Callable

import ismrmrd
import numpy as np
from ismrmrd.image import get_dtype_from_data_type

from igrog_gadget.gadget.recondata import read_recon_data_bytes
from igrog_gadget.gadget.wire import (  # noqa: F401  (re-exported: the protocol's public names)
    ACQUISITION,
    ACQUISITION_HEADER_SIZE,
    BUCKET,
    CLOSE,
    CONFIG_FILE,
    CONFIG_FILE_SIZE,
    CONFIG_TEXT,
    ERROR,
    HEADER,
    ID,
    IMAGE,
    IMAGE_ARRAY,
    IMAGE_HEADER_SIZE,
    MESSAGE_NAMES,
    QUERY,
    RECONDATA,
    RESPONSE,
    TEXT,
    U32,
    U64,
    WAVEFORM,
    WAVEFORM_HEADER_SIZE,
    MalformedMessageError,
    MessageTooLargeError,
    PeerClosedError,
    PeerTimeoutError,
    ProtocolError,
    ProtocolLimits,
    TruncatedMessageError,
    message_name,
)

logger = logging.getLogger(__name__)

#: Messages to send are joined into one write up to this total; larger ones are sent one by one.
SEND_JOIN_MAX_BYTES = 1 << 20


# --------------------------------------------------------------------------------------------
# Decoded payloads
# --------------------------------------------------------------------------------------------
@dataclass
class WireAcquisition:
    """An acquisition as read from the wire (arrays are views of the message bytes)."""

    head: ismrmrd.AcquisitionHeader
    traj: np.ndarray
    """Shape (samples, dims), float32 (dims may be 0)."""
    data: np.ndarray
    """Shape (channels, samples), complex64."""


#: The bytes of a message as read: small fields as ``bytes``, large ones in the buffer they were
#: read into, recon data as views of one buffer.
WireBytes = bytes | bytearray | memoryview


@dataclass
class Message:
    """One complete message: its id, its decoded value and its exact bytes (id included)."""

    mid: int
    value: Any
    """str for config/header/text/error, WireAcquisition, ismrmrd.Image, ismrmrd.Waveform,
    bytes (recon data payload), None for CLOSE."""
    raw: WireBytes
    """The whole message as received, 2-byte id first (pass-through sends exactly this). Large
    messages are read into one buffer that also backs ``value``'s arrays: a message costs
    about its own size in memory."""

    @property
    def name(self) -> str:
        return message_name(self.mid)


# --------------------------------------------------------------------------------------------
# Encoding: whole messages as bytes
# --------------------------------------------------------------------------------------------
def _text_bytes(text: str | bytes) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else bytes(text)


def encode_close() -> bytes:
    """A CLOSE message."""
    return ID.pack(CLOSE)


def encode_text_message(mid: int, text: str | bytes, nul_terminate: bool = False) -> bytes:
    """A CONFIG_TEXT / HEADER / TEXT message: id, uint32 length, text (UTF-8)."""
    payload = _text_bytes(text)
    if nul_terminate and not payload.endswith(b"\x00"):
        payload += b"\x00"
    return ID.pack(mid) + U32.pack(len(payload)) + payload


def encode_config_file(name: str) -> bytes:
    """A CONFIG_FILE message: id and the NUL-padded 1024-byte name."""
    payload = _text_bytes(name)
    if len(payload) >= CONFIG_FILE_SIZE:
        raise ValueError(f"config file name is {len(payload)} bytes; at most {CONFIG_FILE_SIZE - 1} fit")
    return ID.pack(CONFIG_FILE) + payload.ljust(CONFIG_FILE_SIZE, b"\x00")


def printf_safe(text: str) -> str:
    """``text`` without ``%``: Gadgetron 4 logs an external peer's error with the text as a
    printf *format* (``connection/Core.cpp`` ``ErrorSender`` -> ``GERROR_STREAM`` ->
    ``GERROR(text)``), so ``84% of`` is logged as garbage and ``%s`` crashes the connection's
    process before the error reaches the client. ``%`` becomes `` percent``."""
    return text.replace("%", " percent")


def encode_error(text: str) -> bytes:
    """A Gadgetron ERROR message (id 8, uint64 length, text): how an external peer reports failure.

    ``%`` is spelt out (:func:`printf_safe`): Gadgetron uses the text as a printf format."""
    payload = _text_bytes(printf_safe(text))
    return ID.pack(ERROR) + U64.pack(len(payload)) + payload


def encode_acquisition(acq: ismrmrd.Acquisition) -> bytes:
    """An ACQUISITION message: header, traj float32 (samples, dims), data complex64 (channels, samples)."""
    head = acq.getHead()
    data = np.ascontiguousarray(acq.data, dtype=np.complex64)
    traj = np.ascontiguousarray(acq.traj, dtype=np.float32)
    samples, channels, dims = int(head.number_of_samples), int(head.active_channels), int(head.trajectory_dimensions)
    if data.size != samples * channels or traj.size != samples * dims:
        raise ValueError(
            f"acquisition {head.scan_counter}: data {data.shape} / traj {traj.shape} do not match the header "
            f"(samples={samples}, active_channels={channels}, trajectory_dimensions={dims})"
        )
    return b"".join((ID.pack(ACQUISITION), bytes(head), traj.tobytes(), data.tobytes()))


def encode_image(image: ismrmrd.Image) -> bytes:
    """An IMAGE message: header, uint64 attribute length, attributes, data (channels, z, y, x)."""
    head = image.getHead()
    attributes = _text_bytes(image.attribute_string or "")
    head.attribute_string_len = len(attributes)
    dtype = np.dtype(get_dtype_from_data_type(head.data_type))
    data = np.ascontiguousarray(image.data, dtype=dtype)
    expected = int(head.channels) * int(np.prod([int(v) for v in head.matrix_size]))
    if data.size != expected:
        raise ValueError(f"image data has {data.size} values, header says {expected} (channels x matrix_size)")
    return b"".join((ID.pack(IMAGE), bytes(head), U64.pack(len(attributes)), attributes, data.tobytes()))


def encode_waveform(waveform: ismrmrd.Waveform) -> bytes:
    """A WAVEFORM message: header and uint32 data (channels, samples)."""
    head = waveform.getHead()
    data = np.ascontiguousarray(waveform.data, dtype=np.uint32)
    if data.size != int(head.channels) * int(head.number_of_samples):
        raise ValueError(f"waveform data has {data.size} values, header says channels x samples")
    return b"".join((ID.pack(WAVEFORM), bytes(head), data.tobytes()))


# --------------------------------------------------------------------------------------------
# The channel: a socket with exact reads, limits and timeouts
# --------------------------------------------------------------------------------------------
class MessageChannel:
    """Reads and writes whole protocol messages on one connected socket.

    Reads wait in ``poll`` with a timeout (idle timeout before a message starts, read timeout
    inside one); EOF, reset, timeouts, truncation and oversized lengths raise
    :class:`ProtocolError` subclasses. Writes send complete, pre-serialised messages.

    One thread may read while another writes (a session receives data while it sends
    results): the socket is made non-blocking once, here, and never switched again, since
    ``socket.settimeout`` from one thread would change the blocking mode under the other's
    ``recv`` or ``send`` (it then fails with EAGAIN).
    """

    def __init__(
        self, sock: socket.socket, limits: ProtocolLimits | None = None, peer: str = "", shared: bool = False
    ) -> None:
        """``shared``: another process holds the same connection (a worker process serving it for
        the server's front process): ``close`` then only closes this process's descriptor and
        leaves the connection to the other, which can still tell the peer why a session ended."""
        self.sock = sock
        self.shared = shared
        self.limits = limits or ProtocolLimits()
        self.peer = peer or _peer_name(sock)
        self.bytes_received = 0
        self.bytes_sent = 0
        self.closed = False
        self._deadline = float("inf")
        """When the message being read must be complete (monotonic clock): ``_message_started`` +
        the base deadline + its size at the minimum rate (``_extend_deadline``)."""
        self._message_started = 0.0
        self._announced = 0
        """Bytes the message being read has announced so far."""
        self._message_received = 0
        """Bytes of the message being read received so far."""
        self._until: float | None = None
        """Handshake deadline of the message being read, if any."""
        _enable_keepalive(sock)
        sock.setblocking(False)

    # --- low level ------------------------------------------------------------------------
    def _recv_exact(self, n: int, what: str, first: bool = False) -> bytes | bytearray:
        """Exactly ``n`` bytes; ``first`` marks the start of a message (idle timeout applies)."""
        buffer = bytearray(n)
        self._recv_into(memoryview(buffer), what, first)
        return bytes(buffer) if n <= 4096 else buffer  # small fields as bytes; large ones not copied

    def _recv_into(self, view: memoryview, what: str, first: bool = False) -> None:
        """Fill ``view`` from the socket; ``first`` marks the start of a message (idle timeout
        applies to its first byte, and the message deadline starts with it)."""
        n = len(view)
        got = 0
        while got < n:
            started = first and got == 0
            timeout = self._recv_timeout(started)
            if timeout is not None and timeout <= 0:
                raise self._timeout_error(what, got, n, started)
            try:
                if not _wait_until_ready(self.sock, select.POLLIN, timeout):
                    raise self._timeout_error(what, got, n, started)
                count = self.sock.recv_into(view[got:], n - got)
            except BlockingIOError:
                continue  # woken without data (another reader, or a spurious wake-up): wait again
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as error:
                raise TruncatedMessageError(
                    f"connection reset by the peer while reading {what} ({got} of {n} bytes): {error}"
                ) from None
            except (OSError, ValueError) as error:  # ValueError: the socket was closed (fd -1)
                if self.closed:
                    raise PeerClosedError("connection closed locally") from None
                raise ProtocolError(f"socket error while reading {what}: {error}") from None
            if count == 0:
                if started:
                    raise PeerClosedError("the peer closed the connection without a CLOSE message")
                raise TruncatedMessageError(f"connection ended in the middle of {what}: {got} of {n} bytes received")
            if started:
                self._message_started = time.monotonic()
                self._announced = self._message_received = 0
            got += count
            self._message_received += count
            self._extend_deadline()
        self.bytes_received += n

    def _extend_deadline(self) -> None:
        """The message's deadline: its base time plus its size (announced, or received so far if
        more) at ``min_message_rate``."""
        size = max(self._announced, self._message_received)
        self._deadline = self._message_started + self.limits.message_deadline_s + size / self.limits.min_message_rate

    def _recv_timeout(self, started: bool) -> float | None:
        """How long the next ``recv`` may wait: the idle timeout before a message's first byte,
        the read timeout inside it, never past the message deadline or the handshake deadline
        (None: forever)."""
        timeout = self.limits.idle_timeout_s if started else self.limits.read_timeout_s
        deadlines = [self._until] if started else [self._until, self._deadline]
        now = time.monotonic()
        for deadline in deadlines:
            if deadline is not None and deadline != float("inf"):
                timeout = deadline - now if timeout is None else min(timeout, deadline - now)
        return timeout

    def _timeout_error(self, what: str, got: int, n: int, started: bool) -> PeerTimeoutError:
        """The timeout that ended a read: the handshake deadline, the idle timeout, the message
        deadline or the read timeout (in that order of precedence)."""
        now = time.monotonic()
        if self._until is not None and now >= self._until:
            return PeerTimeoutError(
                f"the handshake (configuration and header) did not arrive in time ({what}: {got} of {n} bytes); closing"
            )
        if started:
            return PeerTimeoutError(f"no message for {self.limits.idle_timeout_s:g} s (idle timeout); closing")
        if now >= self._deadline:
            allowed = self._deadline - self._message_started
            return PeerTimeoutError(
                f"{what} did not arrive within the message deadline of {allowed:.3g} s ({self.limits.message_deadline_s:g} s "
                f"+ {max(self._announced, self._message_received)} bytes at {self.limits.min_message_rate:g} bytes/s; "
                f"{got} of {n} bytes received); closing"
            )
        return PeerTimeoutError(
            f"peer stalled for {self.limits.read_timeout_s:g} s in the middle of {what} ({got} of {n} bytes received)"
        )

    def _check_size(self, size: int, limit: int, what: str) -> None:
        """Refuse a part of a message larger than ``limit``; else count it into the message's
        announced size (its deadline)."""
        if size > limit:
            raise MessageTooLargeError(
                f"{what} announces {size} bytes, more than the limit of {limit} bytes; "
                "the stream is corrupt or the message is too large"
            )
        self._announced = max(self._announced, self._message_received) + size
        self._extend_deadline()

    # --- messages -------------------------------------------------------------------------
    def read_message(self, until: float | None = None) -> Message:
        """The next complete message (blocks; raises ProtocolError subclasses).

        Args:
            until: ``time.monotonic()`` by which the whole message must have arrived (the
                handshake deadline), on top of the idle timeout and the message deadline.
        """
        self._until = until
        try:
            return self._read_message()
        finally:
            self._until = None

    def _read_message(self) -> Message:
        id_bytes = self._recv_exact(2, "a message id", first=True)
        mid = ID.unpack(id_bytes)[0]
        reader = self._READERS.get(mid)
        if reader is None:
            raise MalformedMessageError(
                f"unsupported message id {mid}"
                + (f" ({MESSAGE_NAMES[mid]})" if mid in MESSAGE_NAMES else "")
                + "; the gadget reads CONFIG_FILE, CONFIG_TEXT, HEADER, CLOSE, TEXT, ACQUISITION, IMAGE, "
                "WAVEFORM and RECONDATA"
            )
        value, body = reader(self)
        if mid in (ACQUISITION, RECONDATA, IMAGE, WAVEFORM):  # read with their id into one buffer
            return Message(mid, value, body)
        return Message(mid, value, id_bytes + body)

    def _read_close(self) -> tuple[None, WireBytes]:
        return None, b""

    def _read_sized_text(self, length_struct: struct.Struct, what: str) -> tuple[str, WireBytes]:
        length_bytes = self._recv_exact(length_struct.size, f"the length of {what}")
        length = length_struct.unpack(length_bytes)[0]
        self._check_size(length, self.limits.max_text_bytes, what)
        payload = self._recv_exact(length, what)
        text = payload.split(b"\x00", 1)[0]
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise MalformedMessageError(f"{what} is not valid UTF-8: {error}") from None
        return decoded, length_bytes + payload

    def _read_config_text(self) -> tuple[str, WireBytes]:
        return self._read_sized_text(U32, "the CONFIG_TEXT message")

    def _read_header(self) -> tuple[str, WireBytes]:
        return self._read_sized_text(U32, "the HEADER message")

    def _read_text(self) -> tuple[str, WireBytes]:
        return self._read_sized_text(U32, "a TEXT message")

    def _read_error(self) -> tuple[str, WireBytes]:
        return self._read_sized_text(U64, "an ERROR message")

    def _read_config_file(self) -> tuple[str, WireBytes]:
        payload = self._recv_exact(CONFIG_FILE_SIZE, "the CONFIG_FILE message")
        try:
            name = payload.split(b"\x00", 1)[0].decode("utf-8")
        except UnicodeDecodeError as error:
            raise MalformedMessageError(f"the CONFIG_FILE name is not valid UTF-8: {error}") from None
        return name, payload

    def _read_acquisition(self) -> tuple[WireAcquisition, bytearray]:
        head_bytes = self._recv_exact(ACQUISITION_HEADER_SIZE, "an acquisition header")
        head = ismrmrd.AcquisitionHeader.from_buffer_copy(head_bytes)
        samples, channels, dims = (
            int(head.number_of_samples),
            int(head.active_channels),
            int(head.trajectory_dimensions),
        )
        if self.limits.max_acquisition_channels is not None and channels > self.limits.max_acquisition_channels:
            raise MessageTooLargeError(
                f"acquisition {head.scan_counter}: active_channels = {channels} exceeds the resource limit "
                f"max_coils = {self.limits.max_acquisition_channels}"
            )
        if self.limits.max_acquisition_samples is not None and samples > self.limits.max_acquisition_samples:
            raise MessageTooLargeError(
                f"acquisition {head.scan_counter}: number_of_samples = {samples} exceeds the resource limit "
                f"max_readout_samples = {self.limits.max_acquisition_samples}"
            )
        traj_size = samples * dims * 4
        data_size = samples * channels * 8
        self._check_size(traj_size + data_size, self.limits.max_message_bytes, f"acquisition {head.scan_counter}")
        # one buffer for the whole message (id, header, traj, data); the arrays are views of it
        start = 2 + ACQUISITION_HEADER_SIZE
        buffer = bytearray(start + traj_size + data_size)
        buffer[:2] = ID.pack(ACQUISITION)
        buffer[2:start] = head_bytes
        self._recv_into(memoryview(buffer)[start:], f"acquisition {head.scan_counter}")
        traj = np.frombuffer(buffer, dtype=np.float32, count=samples * dims, offset=start).reshape(samples, dims)
        data = np.frombuffer(buffer, dtype=np.complex64, count=samples * channels, offset=start + traj_size)
        return WireAcquisition(head, traj, data.reshape(channels, samples)), buffer

    def _read_image(self) -> tuple[ismrmrd.Image, bytearray]:
        head_bytes = self._recv_exact(IMAGE_HEADER_SIZE, "an image header")
        head = ismrmrd.ImageHeader.from_buffer_copy(head_bytes)
        length_bytes = self._recv_exact(8, "an image attribute length")
        attribute_length = U64.unpack(length_bytes)[0]
        self._check_size(attribute_length, self.limits.max_text_bytes, f"image {head.image_index}'s attributes")
        try:
            itemsize = np.dtype(get_dtype_from_data_type(head.data_type)).itemsize
        except TypeError:
            raise MalformedMessageError(f"image {head.image_index} has unknown data_type {head.data_type}") from None
        values = int(head.channels) * int(np.prod([int(v) for v in head.matrix_size], dtype=np.int64))
        data_size = values * itemsize
        self._check_size(data_size, self.limits.max_message_bytes, f"image {head.image_index}")
        # one buffer for the message: header, attribute length, attributes, data
        start = 2 + IMAGE_HEADER_SIZE + 8
        body = bytearray(start + attribute_length + data_size)
        body[:2] = ID.pack(IMAGE)
        body[2 : 2 + IMAGE_HEADER_SIZE] = head_bytes
        body[2 + IMAGE_HEADER_SIZE : start] = length_bytes
        self._recv_into(memoryview(body)[start : start + attribute_length], f"image {head.image_index}'s attributes")
        self._recv_into(memoryview(body)[start + attribute_length :], f"image {head.image_index}'s data")
        try:
            image = ismrmrd.Image.from_bytes(memoryview(body)[2:])
        except (ValueError, UnicodeDecodeError) as error:
            raise MalformedMessageError(f"image {head.image_index} cannot be decoded: {error}") from None
        return image, body

    def _read_waveform(self) -> tuple[ismrmrd.Waveform, bytearray]:
        head_bytes = self._recv_exact(WAVEFORM_HEADER_SIZE, "a waveform header")
        head = ismrmrd.WaveformHeader.from_buffer_copy(head_bytes)
        data_size = int(head.channels) * int(head.number_of_samples) * 4
        self._check_size(data_size, self.limits.max_message_bytes, f"waveform {head.scan_counter}")
        body = bytearray(2 + WAVEFORM_HEADER_SIZE + data_size)
        body[:2] = ID.pack(WAVEFORM)
        body[2 : 2 + WAVEFORM_HEADER_SIZE] = head_bytes
        self._recv_into(memoryview(body)[2 + WAVEFORM_HEADER_SIZE :], f"waveform {head.scan_counter}'s data")
        return ismrmrd.Waveform.from_bytes(memoryview(body)[2:]), body

    def _read_recon_data(self) -> tuple[memoryview, memoryview]:
        body = read_recon_data_bytes(self._recv_into, self.limits, self.peer, prefix=ID.pack(RECONDATA))
        return body[2:], body

    _READERS: dict[int, Callable[["MessageChannel"], tuple[Any, WireBytes]]] = {
        CONFIG_FILE: _read_config_file,
        CONFIG_TEXT: _read_config_text,
        HEADER: _read_header,
        CLOSE: _read_close,
        TEXT: _read_text,
        ERROR: _read_error,
        ACQUISITION: _read_acquisition,
        IMAGE: _read_image,
        RECONDATA: _read_recon_data,
        WAVEFORM: _read_waveform,
    }

    # --- writing --------------------------------------------------------------------------
    def send(self, *messages: bytes | bytearray | memoryview) -> None:
        """Send complete messages (each already serialised, id first), in order. Small ones go in
        one write; large ones are written from their own buffers (never copied)."""
        total = sum(len(m) for m in messages)
        if not total:
            return
        pieces = [b"".join(messages)] if total <= SEND_JOIN_MAX_BYTES else [m for m in messages if len(m)]
        for piece in pieces:
            self._send_piece(memoryview(piece).cast("B"))
        self.bytes_sent += total

    def _send_piece(self, view: memoryview) -> None:
        """Write all of ``view`` within the send timeout (for the whole piece, as ``sendall``)."""
        timeout_s = self.limits.send_timeout_s
        deadline = time.monotonic() + timeout_s
        sent = 0
        while sent < len(view):
            try:
                if not _wait_until_ready(self.sock, select.POLLOUT, deadline - time.monotonic()):
                    raise PeerTimeoutError(f"the peer did not read for {timeout_s:g} s; closing")
                sent += self.sock.send(view[sent:])
            except BlockingIOError:
                continue
            except (OSError, ValueError) as error:
                raise PeerClosedError(f"cannot send, the peer has gone: {error}") from None

    def linger(self, timeout_s: float = 2.0, max_bytes: int = 64 << 20) -> None:
        """After a final message: stop sending and discard what the peer still sends until it
        closes (or ``timeout_s`` / ``max_bytes``), so that its last write (Gadgetron answers an
        ERROR with a CLOSE) does not hit a closed socket and hide the error it reads. Never raises."""
        if self.closed:
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return
        deadline = time.monotonic() + timeout_s
        discarded = 0
        while discarded < max_bytes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                if not _wait_until_ready(self.sock, select.POLLIN, remaining):
                    return
                chunk = self.sock.recv(1 << 16)
            except BlockingIOError:
                continue
            except (OSError, ValueError):
                return
            if not chunk:
                return
            discarded += len(chunk)

    def close(self) -> None:
        """Shut the socket down and close it (idempotent; never raises)."""
        if self.closed:
            return
        self.closed = True
        if not self.shared:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self.sock.close()
        except OSError:
            pass


class StreamFileReader(MessageChannel):
    """Reads protocol messages from a binary file or pipe instead of a socket: an ISMRMRD v1
    stream (``ismrmrd_hdf5_to_stream``, Gadgetron's ``--from_stream`` / ``--to_stream``), with the
    message decoders and size limits of :class:`MessageChannel`. No timeouts: a pipe's writer
    sets the pace. End of data between messages raises :class:`PeerClosedError`, inside one
    :class:`TruncatedMessageError`. It cannot send."""

    def __init__(self, stream: Any, limits: ProtocolLimits | None = None, name: str = "stream") -> None:
        self.stream = stream
        self.sock = None  # type: ignore[assignment]
        self.limits = limits or ProtocolLimits()
        self.peer = name
        self.bytes_received = 0
        self.bytes_sent = 0
        self.closed = False
        self._deadline = float("inf")
        self._message_started = 0.0
        self._announced = 0
        self._message_received = 0
        self._until = None

    def _recv_into(self, view: memoryview, what: str, first: bool = False) -> None:
        n, got = len(view), 0
        while got < n:
            count = self.stream.readinto(view[got:])
            if not count:
                if first and got == 0:
                    raise PeerClosedError(f"{self.peer} ended")
                raise TruncatedMessageError(f"{self.peer} ended in the middle of {what}: {got} of {n} bytes")
            got += count
        self.bytes_received += n

    def send(self, *messages: bytes | bytearray | memoryview) -> None:
        raise ProtocolError("a stream file reader cannot send")

    def close(self) -> None:
        self.closed = True


def _peer_name(sock: socket.socket) -> str:
    try:
        address = sock.getpeername()
    except OSError:
        return "peer"
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
    return str(address)


def _wait_until_ready(sock: socket.socket, events: int, timeout_s: float | None) -> bool:
    """Wait until ``sock`` can be read (``POLLIN``) or written (``POLLOUT``), or has hung up or
    failed (the next call then says how), for at most ``timeout_s`` seconds (None: forever).
    False: the time ran out."""
    if timeout_s is not None and timeout_s <= 0:
        return False
    poller = select.poll()
    poller.register(sock.fileno(), events)
    return bool(poller.poll(None if timeout_s is None else max(1, int(timeout_s * 1000 + 0.999))))


def _enable_keepalive(sock: socket.socket) -> None:
    """TCP keepalive so that a peer that vanished without FIN/RST is noticed within minutes."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
    except OSError as error:  # not a TCP socket (e.g. a socketpair in tests)
        logger.debug("keepalive not enabled: %s", error)
