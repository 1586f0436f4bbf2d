"""MRD v2 (the yardl binary stream of ``ismrmrd/mrd``, Pingvin's format) ↔ ISMRMRD v1, both ways.

The product works on ISMRMRD v1 objects (``ismrmrd`` headers, acquisitions, images); an MRD v2
stream is converted item by item at the boundary. What differs and how it is mapped:

- **Header**: the same schema in both (v1 XML, v2 yardl records); every field is mapped by name
  (v1 ``fieldOfView_mm`` ↔ v2 ``field_of_view_mm``: names compared without case and
  underscores), enumerations by name (v1 ``radial`` ↔ v2 ``Trajectory.RADIAL``), dates and
  times (v2 ``Time`` in nanoseconds), user parameters (v2 keeps base64 parameters as their text,
  v1 as bytes) and the trajectory description with its parameters. v2 stores some numbers narrower than v1's XML (TR, TE, TI, flip angles and echo
  spacing as float32): a round trip keeps them to float32 precision. Fields v1 requires but v2 leaves optional get v1's defaults only where the v1
  reader needs them (experimentalConditions: ``DEFAULT_H1_RESONANCE_HZ``).
- **Acquisitions**: v2's ``trajectory`` is (basis, samples), v1's ``traj`` (samples, basis):
  transposed; v2's ``channel_order`` ↔ v1's ``active_channels`` and ``channel_mask`` bits;
  flags are the same bits (v2's ``AcquisitionFlags`` = v1's ``1 << (n - 1)``); time stamps
  are copied (mrd-python 2.1 keeps v1's 32-bit ticks); every other field by name.
- **Images**: v2's ``col_dir`` / ``line_dir`` ↔ v1's ``read_dir`` / ``phase_dir``; data
  (channels, z, y, x) in both; the matrix size is the data's; meta values keep their types.
- **Waveforms**: the same fields; data (channels, samples) uint32.

mrd-python (``pip install igrog-gadget[mrd]``) is imported on first use. The supported range is
``mrd-python>=2.1.1,<2.2``: 2.1.1 runs on every Python the product supports (3.10+), while 2.2
needs Python 3.12 and changes the time stamps to nanoseconds.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import enum
import functools
import logging
import os
import struct
import types
import typing
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable, Iterator

import ismrmrd
import ismrmrd.xsd
import numpy as np

from igrog_gadget.errors import ConfigError, InputDataError

if TYPE_CHECKING:
    from igrog_gadget.io.reader import RawDataset
    from igrog_gadget.limits import ResourceLimits
    from igrog_gadget.scan import ImageItem, Readout, ScanHeader

logger = logging.getLogger(__name__)

#: The first bytes of an MRD v2 binary stream.
MRD2_MAGIC = b"yardl"
#: What mrd-python raises on a stream that is cut or corrupt (it does not wrap them); MemoryError:
#: an array whose declared size cannot be allocated (mrd-python allocates before reading, so a
#: stream's arrays cost the memory of the bytes actually sent, or fail here at once).
STREAM_ERRORS: tuple[type[BaseException], ...] = (
    EOFError, ValueError, BufferError, OverflowError, struct.error, UnicodeDecodeError, KeyError, IndexError, TypeError,
    MemoryError,
)
#: Installing the optional dependency.
INSTALL_HINT = "MRD v2 needs the optional package mrd-python: pip install 'igrog-gadget[mrd]' (mrd-python>=2.1.1,<2.2)"


def require_mrd() -> types.ModuleType:
    """The ``mrd`` module (mrd-python), or ConfigError naming how to install it."""
    try:
        import mrd
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return mrd


def is_mrd2_item(item: Any) -> bool:
    """Whether ``item`` is an ``mrd.StreamItem`` (mrd-python already imported: it could not be
    one otherwise)."""
    import sys

    mrd = sys.modules.get("mrd")
    return mrd is not None and isinstance(item, mrd.StreamItem)


def is_mrd2_stream(first_bytes: bytes) -> bool:
    """Whether a stream starting with ``first_bytes`` is an MRD v2 binary stream."""
    return first_bytes[: len(MRD2_MAGIC)] == MRD2_MAGIC


# --------------------------------------------------------------------------------------------
# Header: records mapped field by field
# --------------------------------------------------------------------------------------------
def _key(name: str) -> str:
    """A field name compared across the schemas: lower case, no underscores."""
    return name.replace("_", "").lower()


@functools.lru_cache(maxsize=None)
def _v1_fields(cls: type) -> dict[str, tuple[str, Any]]:
    """key -> (field name, type) of an ``ismrmrd.xsd`` dataclass."""
    hints = typing.get_type_hints(cls)
    return {_key(f.name): (f.name, hints[f.name]) for f in dataclasses.fields(cls)}


@functools.lru_cache(maxsize=None)
def _v2_fields(cls: type) -> dict[str, tuple[str, Any]]:
    """key -> (argument name, type) of an mrd-python record (its ``__init__`` keywords)."""
    hints = typing.get_type_hints(cls.__init__)  # type: ignore[misc]  # the class's own, not an instance's
    return {_key(name): (name, hint) for name, hint in hints.items() if name != "return"}


def _unwrap(hint: Any) -> Any:
    """``X`` of ``Optional[X]`` / ``X | None`` (other hints unchanged)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        arguments = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(arguments) == 1:
            return arguments[0]
    return hint


def _attributes(record: Any) -> dict[str, Any]:
    """key -> value of the fields of a record of either schema."""
    if dataclasses.is_dataclass(record):
        return {_key(f.name): getattr(record, f.name) for f in dataclasses.fields(record)}
    return {_key(name): value for name, value in vars(record).items() if not name.startswith("_")}


def _convert(value: Any, hint: Any, to_v2: bool) -> Any:
    """``value`` of one schema as the type ``hint`` of the other."""
    if value is None:
        return None
    hint = _unwrap(hint)
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        values = value if isinstance(value, (list, tuple)) else [value]
        return [_convert(v, item, to_v2) for v in values]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum(value, hint)
    if isinstance(hint, type) and (dataclasses.is_dataclass(hint) or hint.__module__ == "mrd.types"):
        return _record(value, hint, to_v2)
    return _scalar(value, hint)


def _record(value: Any, cls: type, to_v2: bool) -> Any:
    fields = _v2_fields(cls) if to_v2 else _v1_fields(cls)
    source = _attributes(value)
    arguments = {}
    for key, (name, hint) in fields.items():
        if key in source and source[key] is not None:
            converted = _convert(source[key], hint, to_v2)
            if converted is not None and converted != []:
                arguments[name] = converted
    return cls(**arguments)


def _enum(value: Any, cls: type[enum.Enum]) -> enum.Enum:
    """The member of ``cls`` whose name or value matches ``value``'s (compared as ``_key``)."""
    wanted = {_key(str(getattr(value, "name", value))), _key(str(getattr(value, "value", value)))}
    for member in cls:
        if _key(member.name) in wanted or _key(str(member.value)) in wanted:
            return member
    raise InputDataError(f"header value {value!r} has no counterpart in {cls.__name__} ({', '.join(m.name for m in cls)})")


def _scalar(value: Any, hint: Any) -> Any:
    from xsdata.models.datatype import XmlDate, XmlTime

    if hint is XmlDate:
        return XmlDate.from_date(value)
    if hint is XmlTime:
        nanoseconds = int(value.numpy_value.astype(np.int64))
        seconds, rest = divmod(nanoseconds, 1_000_000_000)
        minutes, second = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        return XmlTime(hour, minute, second, rest)  # xsdata: fractional seconds in nanoseconds
    if hint is datetime.date:
        return value.to_date()
    if getattr(hint, "__name__", "") == "Time":  # yardl's time of day, nanoseconds
        seconds = (value.hour * 60 + value.minute) * 60 + value.second
        return hint(seconds * 1_000_000_000 + int(value.fractional_second or 0))
    if hint is bytes:  # v1's base64 parameters are bytes, v2's the base64 text
        return base64.b64decode(value) if isinstance(value, str) else bytes(value)
    if hint is str and isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if hint in (int, float, str):
        return hint(value)
    return value


def header_to_mrd2(header_xml: str | bytes) -> Any:
    """An ISMRMRD v1 XML header as an ``mrd.Header``."""
    mrd = require_mrd()
    v1 = ismrmrd.xsd.CreateFromDocument(header_xml)
    return _record(v1, mrd.Header, to_v2=True)


def header_from_mrd2(header: Any) -> str:
    """An ``mrd.Header`` as ISMRMRD v1 XML (experimentalConditions filled in when v2 has none)."""
    v1 = _record(_WithDefaults(header), ismrmrd.xsd.ismrmrdHeader, to_v2=False)
    return ismrmrd.xsd.ToXML(v1)


class _WithDefaults:
    """An ``mrd.Header`` seen with the fields v1 requires filled in."""

    def __init__(self, header: Any) -> None:
        from igrog_gadget.io.convert import DEFAULT_H1_RESONANCE_HZ

        self.__dict__.update({k: v for k, v in vars(header).items() if not k.startswith("_")})
        conditions = getattr(header, "experimental_conditions", None)
        if conditions is None or not getattr(conditions, "h1resonance_frequency_hz", 0):
            self.experimental_conditions = types.SimpleNamespace(h1resonance_frequency_hz=DEFAULT_H1_RESONANCE_HZ)


# --------------------------------------------------------------------------------------------
# Acquisitions, images, waveforms
# --------------------------------------------------------------------------------------------
_COUNTERS = ("kspace_encode_step_1", "kspace_encode_step_2", "average", "slice", "contrast", "phase", "repetition", "set", "segment")
_VECTORS = ("position", "read_dir", "phase_dir", "slice_dir", "patient_table_position")


def acquisition_to_mrd2(acquisition: ismrmrd.Acquisition) -> Any:
    """An ISMRMRD v1 acquisition as an ``mrd.Acquisition`` (trajectory transposed to (basis, samples))."""
    mrd = require_mrd()
    head = acquisition.getHead()
    channels = [word * 64 + bit for word in range(16) for bit in range(64) if int(head.channel_mask[word]) >> bit & 1]
    if len(channels) != int(head.active_channels):
        channels = list(range(int(head.active_channels)))
    counters = mrd.EncodingCounters(
        **{name: int(getattr(head.idx, name)) for name in _COUNTERS}, user=[int(v) for v in head.idx.user]
    )
    v2 = mrd.AcquisitionHeader(
        flags=mrd.AcquisitionFlags(int(head.flags)),
        idx=counters,
        measurement_uid=int(head.measurement_uid),
        scan_counter=int(head.scan_counter),
        acquisition_time_stamp=int(head.acquisition_time_stamp),
        physiology_time_stamp=[int(v) for v in head.physiology_time_stamp],
        channel_order=channels,
        discard_pre=int(head.discard_pre),
        discard_post=int(head.discard_post),
        center_sample=int(head.center_sample),
        encoding_space_ref=int(head.encoding_space_ref),
        sample_time_us=float(head.sample_time_us),
        **{name: np.array(getattr(head, name)[:], dtype=np.float32) for name in _VECTORS},
        user_int=[int(v) for v in head.user_int],
        user_float=[float(v) for v in head.user_float],
    )
    traj = np.asarray(acquisition.traj, dtype=np.float32)
    return mrd.Acquisition(
        head=v2,
        data=np.ascontiguousarray(acquisition.data, dtype=np.complex64),
        trajectory=np.ascontiguousarray(traj.T) if traj.size else np.zeros((0, int(head.number_of_samples)), np.float32),
    )


def acquisition_from_mrd2(acquisition: Any) -> ismrmrd.Acquisition:
    """An ``mrd.Acquisition`` as an ISMRMRD v1 acquisition (trajectory transposed to (samples, basis))."""
    head = acquisition.head
    data = np.asarray(acquisition.data, dtype=np.complex64)
    trajectory = np.asarray(acquisition.trajectory, dtype=np.float32)
    where = f"MRD v2 acquisition {head.scan_counter}"
    if data.ndim != 2:
        raise InputDataError(f"{where}: data of shape {data.shape}, not (coils, samples)")
    coils, samples = data.shape
    if trajectory.size and (trajectory.ndim != 2 or trajectory.shape[1] != samples):
        raise InputDataError(f"{where}: trajectory of shape {trajectory.shape} for {samples} samples (MRD v2: (basis, samples))")
    if any(not 0 <= int(channel) < 1024 for channel in head.channel_order):
        raise InputDataError(f"{where}: channel_order {list(head.channel_order)[:8]} outside 0..1023 (ISMRMRD's channel mask)")
    v1 = ismrmrd.AcquisitionHeader()
    v1.version = 1
    v1.flags = int(head.flags)
    v1.measurement_uid = int(head.measurement_uid)
    v1.scan_counter = int(head.scan_counter or 0)
    v1.acquisition_time_stamp = int(head.acquisition_time_stamp or 0)
    for index, value in enumerate(list(head.physiology_time_stamp)[:3]):
        v1.physiology_time_stamp[index] = int(value)
    v1.number_of_samples = samples
    v1.available_channels = coils
    v1.active_channels = coils
    for channel in list(head.channel_order) or range(coils):
        v1.channel_mask[int(channel) // 64] |= 1 << (int(channel) % 64)
    v1.discard_pre = int(head.discard_pre or 0)
    v1.discard_post = int(head.discard_post or 0)
    v1.center_sample = int(head.center_sample or 0)
    v1.encoding_space_ref = int(head.encoding_space_ref or 0)
    v1.trajectory_dimensions = int(trajectory.shape[0]) if trajectory.size else 0
    v1.sample_time_us = float(head.sample_time_us or 0.0)
    for name in _VECTORS:
        getattr(v1, name)[:] = [float(v) for v in np.asarray(getattr(head, name), np.float32)[:3]]
    for name in _COUNTERS:
        setattr(v1.idx, name, int(getattr(head.idx, name) or 0))
    for index, value in enumerate(list(head.idx.user)[:8]):
        v1.idx.user[index] = int(value)
    for index, value in enumerate(list(head.user_int)[:8]):
        v1.user_int[index] = int(value)
    for index, value in enumerate(list(head.user_float)[:8]):
        v1.user_float[index] = float(value)
    out = ismrmrd.Acquisition(v1)
    out.data[:] = data
    if v1.trajectory_dimensions:
        out.traj[:] = trajectory.T
    return out


#: numpy dtype of image data -> the StreamItem case that carries it.
_IMAGE_ITEMS = {
    np.dtype(np.uint16): "ImageUint16", np.dtype(np.int16): "ImageInt16", np.dtype(np.uint32): "ImageUint32",
    np.dtype(np.int32): "ImageInt32", np.dtype(np.float32): "ImageFloat", np.dtype(np.float64): "ImageDouble",
    np.dtype(np.complex64): "ImageComplexFloat", np.dtype(np.complex128): "ImageComplexDouble",
}
_IMAGE_FIELDS = ("measurement_uid", "average", "slice", "contrast", "phase", "repetition", "set",
                 "acquisition_time_stamp", "image_index", "image_series_index")


def image_to_mrd2(image: ismrmrd.Image) -> Any:
    """An ISMRMRD v1 image as the ``mrd.StreamItem`` of its data type."""
    mrd = require_mrd()
    head = image.getHead()
    data = np.asarray(image.data)
    case = _IMAGE_ITEMS.get(data.dtype)
    if case is None:
        raise InputDataError(f"image {head.image_index}: data type {data.dtype} has no MRD v2 image type")
    v2 = mrd.ImageHeader(
        flags=mrd.ImageFlags(int(head.flags)),
        image_type=mrd.ImageType(int(head.image_type)),
        field_of_view=np.array(head.field_of_view[:], np.float32),
        position=np.array(head.position[:], np.float32),
        col_dir=np.array(head.read_dir[:], np.float32),
        line_dir=np.array(head.phase_dir[:], np.float32),
        slice_dir=np.array(head.slice_dir[:], np.float32),
        patient_table_position=np.array(head.patient_table_position[:], np.float32),
        physiology_time_stamp=[int(v) for v in head.physiology_time_stamp],
        user_int=[int(v) for v in head.user_int],
        user_float=[float(v) for v in head.user_float],
        **{name: int(getattr(head, name)) for name in _IMAGE_FIELDS},
    )
    meta = {}
    for key in image.meta.keys():
        values = image.meta[key]
        meta[key] = [_meta_value(mrd, v) for v in (values if isinstance(values, list) else [values])]
    item = getattr(mrd.StreamItem, case)
    return item(mrd.Image[data.dtype.type](head=v2, data=np.ascontiguousarray(data), meta=meta))


def _meta_value(mrd: types.ModuleType, value: Any) -> Any:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return mrd.ImageMetaValue.Int64(int(value))
    if isinstance(value, (float, np.floating)):
        return mrd.ImageMetaValue.Float64(float(value))
    return mrd.ImageMetaValue.String(str(value))


def image_from_mrd2(image: Any) -> ismrmrd.Image:
    """An ``mrd.Image`` (the value of an image StreamItem) as an ISMRMRD v1 image."""
    data = np.ascontiguousarray(image.data)
    if data.ndim != 4:
        raise InputDataError(f"MRD v2 image {image.head.image_index}: data of shape {data.shape}, not (channels, z, y, x)")
    out = ismrmrd.Image.from_array(data, transpose=False)
    head = out.getHead()
    v2 = image.head
    head.flags = int(v2.flags)
    head.image_type = int(v2.image_type.value)
    for name in _IMAGE_FIELDS:
        setattr(head, name, int(getattr(v2, name) or 0))
    for v1_name, v2_name in (("field_of_view", "field_of_view"), ("position", "position"), ("read_dir", "col_dir"),
                             ("phase_dir", "line_dir"), ("slice_dir", "slice_dir"), ("patient_table_position", "patient_table_position")):
        getattr(head, v1_name)[:] = [float(v) for v in np.asarray(getattr(v2, v2_name), np.float32)[:3]]
    for index, value in enumerate(list(v2.physiology_time_stamp)[:3]):
        head.physiology_time_stamp[index] = int(value)
    for index, value in enumerate(list(v2.user_int)[:8]):
        head.user_int[index] = int(value)
    for index, value in enumerate(list(v2.user_float)[:8]):
        head.user_float[index] = float(value)
    out.setHead(head)
    meta = ismrmrd.Meta()
    for key, values in (image.meta or {}).items():
        meta[key] = [v.value for v in values] if len(values) != 1 else values[0].value
    out.meta = meta
    return out


def waveform_to_mrd2(waveform: ismrmrd.Waveform) -> Any:
    """An ISMRMRD v1 waveform as an ``mrd.StreamItem.WaveformUint32``."""
    mrd = require_mrd()
    head = waveform.getHead()
    v2 = mrd.Waveform[np.uint32](
        flags=int(head.flags), measurement_uid=int(head.measurement_uid), scan_counter=int(head.scan_counter),
        time_stamp=int(head.time_stamp), sample_time_us=float(head.sample_time_us), waveform_id=int(head.waveform_id),
        data=np.ascontiguousarray(waveform.data, dtype=np.uint32),
    )
    return mrd.StreamItem.WaveformUint32(v2)


def waveform_from_mrd2(waveform: Any) -> ismrmrd.Waveform:
    """An ``mrd.Waveform`` as an ISMRMRD v1 waveform."""
    data = np.ascontiguousarray(waveform.data, dtype=np.uint32)
    if data.ndim != 2:
        raise InputDataError(f"MRD v2 waveform {waveform.scan_counter}: data of shape {data.shape}, not (channels, samples)")
    head = ismrmrd.WaveformHeader()
    head.version = 1
    head.flags = int(waveform.flags)
    head.measurement_uid = int(waveform.measurement_uid)
    head.scan_counter = int(waveform.scan_counter)
    head.time_stamp = int(waveform.time_stamp)
    head.number_of_samples = int(data.shape[1])
    head.channels = int(data.shape[0])
    head.sample_time_us = float(waveform.sample_time_us)
    head.waveform_id = int(waveform.waveform_id)
    out = ismrmrd.Waveform(head)
    out.data[:] = data
    return out


# --------------------------------------------------------------------------------------------
# Streams
# --------------------------------------------------------------------------------------------
def item_from_mrd2(item: Any) -> ismrmrd.Acquisition | ismrmrd.Image | ismrmrd.Waveform | None:
    """An ``mrd.StreamItem`` as its ISMRMRD v1 object; None for items v1 has no counterpart of
    (recon data, image arrays, acquisition buckets: the caller passes those through)."""
    mrd = require_mrd()
    if isinstance(item, mrd.StreamItem.Acquisition):
        return acquisition_from_mrd2(item.value)
    if isinstance(getattr(item, "value", None), mrd.Image):
        return image_from_mrd2(item.value)
    if isinstance(item, mrd.StreamItem.WaveformUint32):
        return waveform_from_mrd2(item.value)
    return None


def item_to_mrd2(item: ismrmrd.Acquisition | ismrmrd.Image | ismrmrd.Waveform) -> Any:
    """An ISMRMRD v1 object as its ``mrd.StreamItem``."""
    mrd = require_mrd()
    if isinstance(item, ismrmrd.Acquisition):
        return mrd.StreamItem.Acquisition(acquisition_to_mrd2(item))
    if isinstance(item, ismrmrd.Image):
        return image_to_mrd2(item)
    if isinstance(item, ismrmrd.Waveform):
        return waveform_to_mrd2(item)
    raise TypeError(f"no MRD v2 stream item for {type(item).__name__}")


def as_mrd2_item(item: Any) -> Any:
    """``item`` as an ``mrd.StreamItem``: converted from ISMRMRD v1, or as it is when it is one."""
    return item if is_mrd2_item(item) else item_to_mrd2(item)


def read_mrd2(stream: BinaryIO | str) -> tuple[str, Iterator[Any]]:
    """(v1 XML header, the stream's items as they are read: ``mrd.StreamItem`` objects) of an
    MRD v2 binary stream or file.

    Raises:
        InputDataError: not an MRD v2 stream, or no header.
    """
    mrd = require_mrd()
    try:
        reader = mrd.BinaryMrdReader(stream)
        header = reader.read_header()
    except (*STREAM_ERRORS, mrd.ProtocolError) as error:
        raise InputDataError(f"not a readable MRD v2 stream: {type(error).__name__}: {error}") from None
    if header is None:
        raise InputDataError("the MRD v2 stream has no header (igrog needs the encoding it describes)")
    return header_from_mrd2(header), iter(reader.read_data())


def write_mrd2(stream: BinaryIO | str, header_xml: str, items: Iterable[Any]) -> None:
    """An MRD v2 binary stream of ``header_xml`` (v1 XML) and ``items`` (v1 objects, or
    ``mrd.StreamItem`` objects passed as they are), written as the items come."""
    mrd = require_mrd()
    with mrd.BinaryMrdWriter(stream) as writer:
        writer.write_header(header_to_mrd2(header_xml))
        writer.write_data(as_mrd2_item(item) for item in items)


def is_mrd2_file(path: str | os.PathLike[str]) -> bool:
    """Whether the file at ``path`` starts like an MRD v2 binary stream."""
    try:
        with open(path, "rb") as stream:
            return is_mrd2_stream(stream.read(len(MRD2_MAGIC)))
    except OSError:
        return False


def read_mrd2_dataset(
    path: str | os.PathLike[str],
    *,
    limits: "ResourceLimits | None" = None,
    on_header: "Callable[[ScanHeader], None] | None" = None,
) -> "RawDataset":
    """An MRD v2 file read as the ISMRMRD dataset ``igrog replay`` grids: header, acquisitions
    (``scan_counter`` = index in the stream), images (series from their meta ``SeriesName``)
    and waveforms; items v1 has no counterpart of are left out with a warning.

    Raises:
        InputDataError: not readable, no header, an acquisition beyond the limits (checked as
            each is read), more acquisitions than ``max_acquisitions``, a stream cut inside an item.
    """
    from igrog_gadget.io.convert import image_item_from_image, image_series_name, parse_header, readout_from_acquisition
    from igrog_gadget.io.reader import RawDataset
    from igrog_gadget.limits import ResourceLimits

    limits = limits if limits is not None else ResourceLimits()
    path = os.fspath(path)
    readouts: list[Readout] = []
    images: list[ImageItem] = []
    waveforms: list[ismrmrd.Waveform] = []
    skipped = 0
    with open(path, "rb") as stream:
        xml, items = read_mrd2(stream)
        header = parse_header(xml, source=path)
        if on_header is not None:
            on_header(header)
        try:
            for item in items:
                converted = item_from_mrd2(item)
                if isinstance(converted, ismrmrd.Acquisition):
                    where = f"{path}: acquisition {len(readouts)}"
                    limits.check_acquisition(int(converted.active_channels), int(converted.number_of_samples), where)
                    limits.check_acquisition_count(len(readouts) + 1, path)
                    readouts.append(readout_from_acquisition(converted, len(readouts), path))
                elif isinstance(converted, ismrmrd.Image):
                    images.append(image_item_from_image(converted, image_series_name(converted)))
                elif isinstance(converted, ismrmrd.Waveform):
                    waveforms.append(converted)
                else:
                    skipped += 1
        except STREAM_ERRORS as error:
            raise InputDataError(f"{path}: the MRD v2 stream ends inside an item after {len(readouts)} acquisitions: {error}") from None
    if not readouts:
        raise InputDataError(f"{path}: the MRD v2 stream holds no acquisitions")
    if skipped:
        logger.warning("%s: %d MRD v2 items without an ISMRMRD v1 form are left out", path, skipped)
    return RawDataset(path=path, header=header, readouts=readouts, images=images, waveforms=waveforms, header_xml=xml)
