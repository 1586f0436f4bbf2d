"""``IsmrmrdReconData`` (message 1023): the gridded buffer handed to Gadgetron's Cartesian recon gadgets.

Byte layout, as Gadgetron 4 writes and reads it (``BufferWriter`` / ``BufferReader`` with
``core/io/primitives.hpp``; all little-endian)::

    uint16  1023                                   message id
    uint64  number of recon bits
    per bit:
        buffer  data                               (IsmrmrdDataBuffered, below)
        bool    has reference  (1 byte)
        [buffer reference]
    buffer:
        array<complex64> data      [E0, E1, E2, CHA, N, S, LOC]
        bool  has trajectory;  [array<float32> trajectory  [TRAJ, E0, E1, E2, N, S, LOC]]
        bool  has density;     [array<float32> density     [E0, E1, E2, N, S, LOC]]
        array<AcquisitionHeader> headers [E1, E2, N, S, LOC]   (340 bytes each)
        SamplingDescription  (56 bytes: float encoded_FOV[3], float recon_FOV[3],
            uint16 encoded_matrix[3], uint16 recon_matrix[3],
            {uint16 min, center, max} sampling_limits[3], 2 padding bytes)
    array<T>:
        uint64 number of dimensions, uint64 each dimension,
        the elements in hoNDArray order (first dimension fastest: Fortran order)

What the receiving gadgets rely on (``SimpleReconGadget``, the Generic Cartesian gadgets):
k = 0 at ``E0 // 2`` and ``E1 // 2``; the image is E0 x E1 (no readout oversampling left);
``headers(sampling_limits[1].center, sampling_limits[2].center, n, s, loc)`` exists (read
without a bounds check) and supplies the image's geometry, slice and repetition;
``recon_FOV`` becomes the image's field of view.
"""

from __future__ import annotations

import dataclasses
import logging
import mmap
import struct
from dataclasses import dataclass, field
from typing import Any, Callable

import ismrmrd
import numpy as np

from igrog_gadget.gadget.wire import (
    ACQUISITION_HEADER_SIZE,
    BOOL,
    ID,
    RECONDATA,
    U64,
    MalformedMessageError,
    MessageTooLargeError,
    ProtocolLimits,
)
from igrog_gadget.io import cartesian_acquisitions
from igrog_gadget.io.calibration_lines import calibration_acquisitions
from igrog_gadget.io.output_geometry import OutputGeometry
from igrog_gadget.numerics.dimensions import volume_shape
from igrog_gadget.scan import GriddedFrame

logger = logging.getLogger(__name__)

#: encoded_FOV[3], recon_FOV[3] (float32), encoded_matrix[3], recon_matrix[3],
#: sampling_limits[3] x (min, center, max) (uint16), then 2 padding bytes (sizeof 56, alignment 4).
_SAMPLING = struct.Struct("<3f3f3H3H9H2x")
SAMPLING_DESCRIPTION_SIZE = _SAMPLING.size  # 56

#: Dimension names of the arrays of a buffer (Gadgetron's fixed orders).
DATA_AXES = ("E0", "E1", "E2", "CHA", "N", "S", "LOC")
HEADER_AXES = ("E1", "E2", "N", "S", "LOC")


@dataclass
class SamplingDescription:
    """Gadgetron's SamplingDescription: matrix, FOV and sampled range per encoding axis."""

    encoded_fov_mm: tuple[float, float, float]
    recon_fov_mm: tuple[float, float, float]
    encoded_matrix: tuple[int, int, int]
    recon_matrix: tuple[int, int, int]
    limits: tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]
    """(min, center, max) along E0, E1, E2."""

    def to_bytes(self) -> bytes:
        flat_limits = [int(v) for limit in self.limits for v in limit]
        return _SAMPLING.pack(
            *(float(v) for v in self.encoded_fov_mm),
            *(float(v) for v in self.recon_fov_mm),
            *(int(v) for v in self.encoded_matrix),
            *(int(v) for v in self.recon_matrix),
            *flat_limits,
        )

    @classmethod
    def from_bytes(cls, payload: bytes | memoryview) -> "SamplingDescription":
        values = _SAMPLING.unpack(payload)
        limits = values[12:21]
        return cls(
            encoded_fov_mm=_three(values[0:3]),
            recon_fov_mm=_three(values[3:6]),
            encoded_matrix=tuple(values[6:9]),
            recon_matrix=tuple(values[9:12]),
            limits=(tuple(limits[0:3]), tuple(limits[3:6]), tuple(limits[6:9])),
        )


@dataclass
class ReconBuffer:
    """IsmrmrdDataBuffered with numpy arrays in Gadgetron's logical axis order."""

    data: np.ndarray
    """Shape [E0, E1, E2, CHA, N, S, LOC], complex64 (logical order; serialised Fortran-order)."""
    headers: np.ndarray
    """Shape [E1, E2, N, S, LOC], object array of ismrmrd.AcquisitionHeader."""
    sampling: SamplingDescription
    trajectory: np.ndarray | None = None
    """Shape [TRAJ, E0, E1, E2, N, S, LOC], float32, or None."""
    density: np.ndarray | None = None
    """Shape [E0, E1, E2, N, S, LOC], float32, or None."""


@dataclass
class ReconBit:
    """One recon bit: the data buffer and an optional reference buffer."""

    data: ReconBuffer
    reference: ReconBuffer | None = None


@dataclass
class ReconData:
    """A whole IsmrmrdReconData message."""

    bits: list[ReconBit] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------
def _encode_array(array: np.ndarray, dtype: np.dtype) -> bytes:
    """uint64 ndim, uint64 dims, elements of exactly ``dtype`` in Fortran order."""
    typed = np.asarray(array).astype(dtype, copy=False)
    if typed.dtype != dtype:  # pragma: no cover - astype guarantees it
        raise TypeError(f"array must be {dtype}, got {typed.dtype}")
    dims = b"".join(U64.pack(int(d)) for d in typed.shape)
    return U64.pack(typed.ndim) + dims + typed.tobytes(order="F")


def _encode_optional_array(array: np.ndarray | None, dtype: np.dtype) -> bytes:
    if array is None:
        return BOOL.pack(False)
    return BOOL.pack(True) + _encode_array(array, dtype)


def _encode_headers(headers: np.ndarray) -> bytes:
    headers = np.asarray(headers, dtype=object)
    dims = b"".join(U64.pack(int(d)) for d in headers.shape)
    parts = [U64.pack(headers.ndim), dims]
    for head in headers.reshape(-1, order="F"):
        if not isinstance(head, ismrmrd.AcquisitionHeader):
            raise TypeError(f"recon buffer headers must be ismrmrd.AcquisitionHeader, got {type(head).__name__}")
        parts.append(bytes(head))
    return b"".join(parts)


def encode_buffer(buffer: ReconBuffer) -> bytes:
    """Bytes of one IsmrmrdDataBuffered."""
    if buffer.data.ndim != 7:
        raise ValueError(f"recon buffer data must be 7D {list(DATA_AXES)}, got shape {buffer.data.shape}")
    if buffer.headers.ndim != 5:
        raise ValueError(f"recon buffer headers must be 5D {list(HEADER_AXES)}, got shape {buffer.headers.shape}")
    return b"".join(
        (
            _encode_array(buffer.data, np.dtype(np.complex64)),
            _encode_optional_array(buffer.trajectory, np.dtype(np.float32)),
            _encode_optional_array(buffer.density, np.dtype(np.float32)),
            _encode_headers(buffer.headers),
            buffer.sampling.to_bytes(),
        )
    )


def encode_recon_data(recon: ReconData) -> bytes:
    """The complete RECONDATA message (id first), serialised in memory."""
    parts = [ID.pack(RECONDATA), U64.pack(len(recon.bits))]
    for bit in recon.bits:
        parts.append(encode_buffer(bit.data))
        if bit.reference is None:
            parts.append(BOOL.pack(False))
        else:
            parts.append(BOOL.pack(True) + encode_buffer(bit.reference))
    return b"".join(parts)


# --------------------------------------------------------------------------------------------
# From a gridded frame
# --------------------------------------------------------------------------------------------
def _three(values: Any) -> tuple[float, float, float]:
    """A field of view (x, y, z) as three floats."""
    x, y, z = (float(v) for v in values)
    return x, y, z


def recon_buffer_from_frame(
    frame: GriddedFrame, fov_mm: tuple[float, float, float], first_scan_counter: int = 0
) -> ReconBuffer:
    """The recon buffer of one gridded frame, 2D or 3D.

    Args:
        frame: kspace (coils, ny, nx) or (coils, nz, ny, nx), k = 0 at index n // 2.
        fov_mm: field of view of the gridded image (x, y, z) (``OutputGeometry``, after its crop).
        first_scan_counter: scan counter of the first line header.

    Returns:
        data [E0=nx, E1=ny, E2=nz, CHA=coils, 1, 1, 1] complex64 (nz = 1 for a 2D frame); headers
        [ny, nz, 1, 1, 1]: the headers of the frame's Cartesian lines (``cartesian_acquisitions``:
        geometry, counters and time stamps of the frame's template readout,
        ``kspace_encode_step_1`` (and in 3D ``_2``) = line), so the centre header (E1 = ny // 2,
        E2 = nz // 2) is a real acquisition header; sampling: encoded = recon matrix (nx, ny, nz)
        and FOV ``fov_mm``, limits (0, n // 2, n - 1) along E0, E1 and E2 ((0, 0, 0) in 2D).
    """
    kspace = np.ascontiguousarray(frame.kspace, dtype=np.complex64)
    if kspace.ndim not in (3, 4):
        raise ValueError(f"frame.kspace must have shape (coils, ny, nx) or (coils, nz, ny, nx), got {kspace.shape}")
    coils = kspace.shape[0]
    nz, ny, nx = volume_shape(kspace.shape[1:])
    # (coils, nz, ny, nx) in C order is [nx, ny, nz, coils] in Fortran order: no copy needed.
    data = kspace.reshape(coils, nz, ny, nx).transpose(3, 2, 1, 0).reshape(nx, ny, nz, coils, 1, 1, 1, order="F")
    headers = np.empty((ny, nz, 1, 1, 1), dtype=object)
    for number, line in enumerate(cartesian_acquisitions(frame, first_scan_counter)):  # kz outer, ky inner
        iz, iy = divmod(number, ny)
        headers[iy, iz, 0, 0, 0] = line.getHead()
    sampling = SamplingDescription(
        encoded_fov_mm=_three(fov_mm),
        recon_fov_mm=_three(fov_mm),
        encoded_matrix=(nx, ny, nz),
        recon_matrix=(nx, ny, nz),
        limits=((0, nx // 2, nx - 1), (0, ny // 2, ny - 1), (0, nz // 2, nz - 1)),
    )
    return ReconBuffer(data=data, headers=headers, sampling=sampling)


def reference_buffer(frame: GriddedFrame, fov_mm: tuple[float, float, float], first_scan_counter: int = 0) -> ReconBuffer | None:
    """The frame's calibration block as a recon bit's reference buffer (Gadgetron's ``ref``), or
    None when the frame has none.

    data [E0=nx, E1=ay, E2=az (1 in 2D), CHA, 1, 1, 1]: the block's rows on the frame's full
    readout (zero outside the block's columns), row ``iy`` at ky = ky0 + iy; headers [ay, az, 1, 1,
    1]: the calibration acquisitions' (``calibration_acquisitions``: ``kspace_encode_step_1`` the
    output grid's line); sampling: the frame's matrix and FOV, limits E0 = the block's columns
    (centre nx // 2), E1 = (0, -ky0, ay - 1) (centre: the row at ky = 0), E2 likewise (0 in 2D).
    """
    block = frame.calibration
    if block is None:
        return None
    nz, ny, nx = volume_shape(frame.kspace.shape[1:])
    kspace = np.asarray(block.kspace, np.complex64)
    coils = kspace.shape[0]
    az, ay, ax = volume_shape(kspace.shape[1:])
    rows = np.zeros((coils, az, ay, nx), np.complex64)
    x0 = block.kx0 + nx // 2
    rows[..., x0 : x0 + ax] = kspace.reshape(coils, az, ay, ax)
    data = rows.transpose(3, 2, 1, 0).reshape(nx, ay, az, coils, 1, 1, 1, order="F")
    headers = np.empty((ay, az, 1, 1, 1), dtype=object)
    for row, line in enumerate(calibration_acquisitions(frame, first_scan_counter)):
        iz, iy = divmod(row, ay)
        headers[iy, iz, 0, 0, 0] = line.getHead()
    sampling = SamplingDescription(
        encoded_fov_mm=_three(fov_mm),
        recon_fov_mm=_three(fov_mm),
        encoded_matrix=(nx, ny, nz),
        recon_matrix=(nx, ny, nz),
        limits=((x0, nx // 2, x0 + ax - 1), (0, -block.ky0, ay - 1), (0, -block.kz0, az - 1)),  # a 2D block's kz0 is 0
    )
    return ReconBuffer(data=np.asfortranarray(data), headers=headers, sampling=sampling)


def frame_in_recon_fov(frame: GriddedFrame, geometry: OutputGeometry) -> tuple[GriddedFrame, tuple[float, float, float]]:
    """The frame with oversampling beyond the input's reconSpace FOV removed
    (``OutputGeometry.crop_kspace``) and its FOV.

    Where the image is cropped, the coarser k-space grid's point (i, j) gets as weight the hits
    of the finer grid's points nearest to it (their sum), and the calibration block is dropped
    (it lies on the finer grid; a block resampled by the crop would be smeared at its edges).
    """
    kspace, fov = geometry.crop_kspace(frame.kspace)
    if kspace.shape == frame.kspace.shape:
        return frame, fov
    hits = _binned_hits(np.asarray(frame.hits), kspace.shape[1:])
    logger.debug("frame %s: reconSpace FOV crop %s -> %s; no reference buffer", frame.frame_key, frame.kspace.shape, kspace.shape)
    return dataclasses.replace(frame, kspace=kspace, hits=hits, calibration=None), fov


def _binned_hits(hits: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Hits of a grid of ``shape`` whose spacing is (fine n / coarse n) fine points: each fine point
    adds to the coarse point nearest to it (k = 0 at n // 2 on both)."""
    out = np.zeros(shape, np.int32)
    index = []
    for fine, coarse in zip(hits.shape, shape):
        k = (np.arange(fine) - fine // 2) * (coarse / fine)
        target = np.rint(k).astype(np.int64) + coarse // 2
        index.append(np.clip(target, 0, coarse - 1))
    np.add.at(out, tuple(np.meshgrid(*index, indexing="ij")), hits.astype(np.int32))
    return out


def encode_frame(
    frame: GriddedFrame,
    fov_mm: tuple[float, float, float],
    first_scan_counter: int = 0,
    *,
    reference: bool = False,
    density: bool = False,
) -> bytes:
    """One RECONDATA message (a single recon bit) for a gridded frame: with ``reference`` its
    calibration block as the bit's reference buffer (``reference_buffer``; none when the frame
    has no block), with ``density`` its hits as the data buffer's density array
    [E0, E1, E2, 1, 1, 1] float32 (the samples gridded onto each point)."""
    buffer = recon_buffer_from_frame(frame, fov_mm, first_scan_counter)
    if density:
        hits = np.asarray(frame.hits, np.float32)
        hits = hits.reshape(volume_shape(hits.shape))  # (nz, ny, nx)
        buffer.density = np.asfortranarray(hits.transpose(2, 1, 0).reshape(*hits.shape[::-1], 1, 1, 1, order="F"))
    ref = reference_buffer(frame, fov_mm, first_scan_counter) if reference else None
    return encode_recon_data(ReconData([ReconBit(buffer, ref)]))


# --------------------------------------------------------------------------------------------
# Decoding (pass-through sizing and tests)
# --------------------------------------------------------------------------------------------
ReadInto = Callable[[memoryview, str], None]
"""Fills a buffer from the stream (``MessageChannel._recv_into``); ``what`` names it in errors."""


class _Reader:
    """Reads a recon-data payload through ``read_into(view, what)``, checking sizes first.

    Everything read lands in one anonymous memory map reserved at the message limit: pages
    are committed only as they are written, so the message costs its own size in memory and
    is never copied to be joined.
    """

    def __init__(self, read_into: ReadInto, limits: ProtocolLimits, peer: str, prefix: bytes = b"") -> None:
        self.read_into = read_into
        self.limits = limits
        self.peer = peer
        self.total = 0
        self.store = mmap.mmap(-1, len(prefix) + max(limits.max_message_bytes, 1))
        self.store[: len(prefix)] = prefix
        self.size = len(prefix)

    def take(self, n: int, what: str) -> memoryview:
        if self.total + n > self.limits.max_message_bytes:
            raise MessageTooLargeError(
                f"recon data message grows beyond the limit of {self.limits.max_message_bytes} bytes "
                f"at {what} ({n} more bytes); the stream is corrupt or the message is too large"
            )
        view = memoryview(self.store)[self.size : self.size + n]
        self.read_into(view, what)
        self.size += n
        self.total += n
        return view

    def message(self) -> memoryview:
        """Everything read (prefix first)."""
        return memoryview(self.store)[: self.size]

    def count(self, shape: tuple[int, ...], itemsize: int, what: str) -> int:
        """Elements of ``shape``, refusing dimensions or products beyond the message limit (a
        dimension of 2**63 with another of 0 must not reach numpy)."""
        limit = self.limits.max_message_bytes
        elements = 1
        for size in shape:
            if size > limit:
                raise MessageTooLargeError(f"recon data: {what} declares a dimension of {size} (shape {shape})")
            elements *= size
        if elements * itemsize > limit:
            raise MessageTooLargeError(
                f"recon data: {what} of shape {shape} exceeds the limit of {limit} bytes"
            )
        return elements

    def u64(self, what: str) -> int:
        return U64.unpack(self.take(8, what))[0]

    def flag(self, what: str) -> bool:
        value = self.take(1, what)[0]
        if value not in (0, 1):
            raise MalformedMessageError(f"recon data: {what} is {value}, expected a bool (0 or 1)")
        return bool(value)

    def dims(self, what: str) -> tuple[int, ...]:
        ndim = self.u64(f"the dimension count of {what}")
        if ndim > self.limits.max_array_dimensions:
            raise MalformedMessageError(
                f"recon data: {what} declares {ndim} dimensions (limit {self.limits.max_array_dimensions})"
            )
        return tuple(self.u64(f"a dimension of {what}") for _ in range(ndim))

    def array(self, dtype: np.dtype, what: str) -> np.ndarray:
        shape = self.dims(what)
        count = self.count(shape, dtype.itemsize, what)
        payload = self.take(count * dtype.itemsize, what)
        return np.frombuffer(payload, dtype=dtype).reshape(shape, order="F")

    def headers(self, what: str) -> np.ndarray:
        shape = self.dims(what)
        count = self.count(shape, ACQUISITION_HEADER_SIZE, what)
        payload = self.take(count * ACQUISITION_HEADER_SIZE, what)
        flat = np.empty(count, dtype=object)
        for i in range(count):
            flat[i] = ismrmrd.AcquisitionHeader.from_buffer_copy(
                payload[i * ACQUISITION_HEADER_SIZE : (i + 1) * ACQUISITION_HEADER_SIZE]
            )
        return flat.reshape(shape, order="F")

    def buffer(self, what: str) -> ReconBuffer:
        data = self.array(np.dtype(np.complex64), f"{what} data")
        trajectory = (
            self.array(np.dtype(np.float32), f"{what} trajectory") if self.flag(f"{what} has-trajectory") else None
        )
        density = self.array(np.dtype(np.float32), f"{what} density") if self.flag(f"{what} has-density") else None
        headers = self.headers(f"{what} headers")
        sampling = SamplingDescription.from_bytes(self.take(SAMPLING_DESCRIPTION_SIZE, f"{what} sampling description"))
        return ReconBuffer(data=data, headers=headers, sampling=sampling, trajectory=trajectory, density=density)

    def recon_data(self) -> ReconData:
        count = self.u64("the recon bit count")
        if count > 65535:
            raise MalformedMessageError(f"recon data declares {count} recon bits")
        bits = []
        for i in range(count):
            data = self.buffer(f"recon bit {i}")
            reference = self.buffer(f"recon bit {i} reference") if self.flag(f"recon bit {i} has-reference") else None
            bits.append(ReconBit(data, reference))
        return ReconData(bits)


def read_recon_data_bytes(
    read_into: ReadInto, limits: ProtocolLimits, peer: str = "peer", prefix: bytes = b""
) -> memoryview:
    """Read one recon-data payload (after its id); returns ``prefix`` + its exact bytes."""
    reader = _Reader(read_into, limits, peer, prefix)
    reader.recon_data()
    return reader.message()


def decode_recon_data(payload: bytes, limits: ProtocolLimits | None = None) -> ReconData:
    """Decode a recon-data payload (the bytes after the message id)."""
    position = 0

    def read_into(view: memoryview, what: str) -> None:
        nonlocal position
        n = len(view)
        if position + n > len(payload):
            raise MalformedMessageError(f"recon data ends in the middle of {what}")
        view[:] = payload[position : position + n]
        position += n

    reader = _Reader(read_into, _limits_within(limits, len(payload)), "recon data")
    recon = reader.recon_data()
    if position != len(payload):
        raise MalformedMessageError(f"recon data has {len(payload) - position} bytes after its last recon bit")
    return recon


def _limits_within(limits: ProtocolLimits | None, size: int) -> ProtocolLimits:
    """``limits`` with the message limit lowered to ``size`` (decoding a payload in memory)."""
    limits = limits or ProtocolLimits()
    return dataclasses.replace(limits, max_message_bytes=min(limits.max_message_bytes, max(size, 1)))
