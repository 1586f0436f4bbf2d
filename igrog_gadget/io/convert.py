"""Pure conversions between ISMRMRD objects and the typed containers of :mod:`igrog_gadget.scan`.

Nothing here touches files or sockets, so the same functions serve the HDF5 reader/writer
and a network (Gadgetron) stream.

Shapes used throughout:
- ``Readout.data``: ``(coils, samples)`` complex64
- ``Readout.traj``: ``(samples, dims)`` float32 (file units) or ``None``
- ``GriddedFrame.kspace``: ``(coils, ny, nx)`` or, 3D, ``(coils, nz, ny, nx)`` complex64, k = 0
  at index ``n // 2`` of every axis
- ``ImageItem.data``: ``(channels, nz, ny, nx)``
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import re
import xml.etree.ElementTree as ET
from typing import Any, Mapping

import ismrmrd
import ismrmrd.xsd
import numpy as np

from igrog_gadget.errors import InputDataError
from igrog_gadget.io.output_geometry import OutputGeometry
from igrog_gadget.numerics.dimensions import dimensions_of_grid, volume_shape
from igrog_gadget.scan import (
    FRAME_COUNTER_FIELDS,
    FRAME_KEY_FIELDS,
    GEOMETRY_FIELDS,
    IDX_FIELDS,
    EncodingGeometry,
    GriddedFrame,
    ImageItem,
    Readout,
    ScanHeader,
    flag_mask,
)

logger = logging.getLogger(__name__)

#: XML namespace of the ISMRMRD header.
ISMRMRD_NAMESPACE = "http://www.ismrm.org/ISMRMRD"

#: H1 resonance frequency (1.5 T) put into headers that lack ``experimentalConditions``.
DEFAULT_H1_RESONANCE_HZ = 63_870_000

#: Geometry / timing header fields a Cartesian output line copies from the template header.
_COPIED_HEADER_FIELDS = (
    "version",
    "measurement_uid",
    "acquisition_time_stamp",
    "physiology_time_stamp",
    "position",
    "read_dir",
    "phase_dir",
    "slice_dir",
    "patient_table_position",
    "channel_mask",
)

_LIMIT_NAMES = tuple(f.name for f in dataclasses.fields(ismrmrd.xsd.encodingLimitsType))

#: Aliases from EncodingCounters names (as in ``FRAME_KEY_FIELDS``) to encodingLimits names.
_LIMIT_ALIASES = {
    "kspace_encode_step_0": "kspace_encoding_step_0",
    "kspace_encode_step_1": "kspace_encoding_step_1",
    "kspace_encode_step_2": "kspace_encoding_step_2",
}

_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.DOTALL)
_MISSING_ARGUMENT = re.compile(r"(\w+)\.__init__\(\) missing \d+ required (?:keyword-only |positional )?arguments?: (.+)")


# --------------------------------------------------------------------------------------------
# Acquisitions -> Readout
# --------------------------------------------------------------------------------------------
def _where(source: str, index: int) -> str:
    """Location text for error messages: ``'file.h5': acquisition 12``."""
    return f"{source!r}: acquisition {index}" if source else f"acquisition {index}"


def readout_from_header_and_arrays(
    head: ismrmrd.AcquisitionHeader,
    data: np.ndarray,
    traj: np.ndarray | None,
    scan_counter: int,
    source: str = "",
) -> Readout:
    """Build and validate a :class:`Readout` from an acquisition header and its payload.

    Shared by :func:`readout_from_acquisition` and the fast HDF5 reader, which hands over the
    flat arrays of the file.

    Args:
        head: the acquisition header; stored as is in ``Readout.source_header`` (pass a copy).
        data: ``active_channels * number_of_samples`` complex samples, complex64, any shape
            with that many elements (flat or ``(coils, samples)``).
        traj: ``number_of_samples * trajectory_dimensions`` float32 values, any shape, or None /
            empty when ``trajectory_dimensions == 0``.
        scan_counter: position of the acquisition in the input (0-based), for messages.
        source: file name or stream name, for messages.

    Returns:
        The readout, ``data`` of shape (coils, samples), ``traj`` of shape (samples, dims).

    Raises:
        InputDataError: sizes inconsistent with the header or non-finite values, naming the
            source, the acquisition index and the field (``data`` / ``traj``).
    """
    coils = int(head.active_channels)
    samples = int(head.number_of_samples)
    dims = int(head.trajectory_dimensions)
    where = _where(source, scan_counter)

    data = np.asarray(data)
    if data.dtype != np.complex64:
        data = data.astype(np.complex64)
    if data.size != coils * samples:
        raise InputDataError(
            f"{where}: field 'data' holds {data.size} complex samples, but the header says "
            f"active_channels={coils} x number_of_samples={samples} = {coils * samples}"
        )
    data = data.reshape(coils, samples)
    if not np.isfinite(data.view(np.float32)).all():
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise InputDataError(f"{where}: field 'data' contains {bad} non-finite (NaN/Inf) samples")

    traj_out: np.ndarray | None = None
    traj_size = 0 if traj is None else int(np.size(traj))
    if dims == 0:
        if traj_size:
            raise InputDataError(
                f"{where}: field 'traj' holds {traj_size} values but trajectory_dimensions is 0"
            )
    else:
        if traj_size != samples * dims:
            raise InputDataError(
                f"{where}: field 'traj' holds {traj_size} values, but the header says "
                f"number_of_samples={samples} x trajectory_dimensions={dims} = {samples * dims}"
            )
        traj_out = np.asarray(traj, dtype=np.float32).reshape(samples, dims)
        if not np.isfinite(traj_out).all():
            bad = int(np.count_nonzero(~np.isfinite(traj_out)))
            raise InputDataError(f"{where}: field 'traj' contains {bad} non-finite (NaN/Inf) values")

    idx = head.idx
    return Readout(
        data=data,
        traj=traj_out,
        flags=int(head.flags),
        idx={name: int(getattr(idx, name)) for name in IDX_FIELDS},
        center_sample=int(head.center_sample),
        sample_time_us=float(head.sample_time_us),
        discard_pre=int(head.discard_pre),
        discard_post=int(head.discard_post),
        encoding_space_ref=int(head.encoding_space_ref),
        scan_counter=int(scan_counter),
        source_header=head,
    )


def readout_from_acquisition(acq: ismrmrd.Acquisition, scan_counter: int, source: str = "") -> Readout:
    """Convert one ISMRMRD acquisition to a :class:`Readout` (arrays are copied).

    Args:
        acq: the acquisition; data (coils, samples) complex64, traj (samples, dims) float32.
        scan_counter: position of the acquisition in the input (0-based), for messages.
        source: file or stream name, for messages.

    Returns:
        Readout with ``data`` (coils, samples) complex64, ``traj`` (samples, dims) float32 or
        None when ``trajectory_dimensions == 0``, and ``source_header`` a copy of acq's header.

    Raises:
        InputDataError: non-finite or inconsistent ``data`` / ``traj`` (field named).
    """
    head = acq.getHead()  # a deep copy
    traj = np.array(acq.traj, dtype=np.float32) if head.trajectory_dimensions else None
    return readout_from_header_and_arrays(
        head, np.array(acq.data, dtype=np.complex64), traj, scan_counter, source
    )


def acquisition_from_readout(readout: Readout) -> ismrmrd.Acquisition:
    """Turn a :class:`Readout` back into an ISMRMRD acquisition (for pass-through output).

    The header starts from ``readout.source_header`` (when present); the fields the readout
    carries (flags, counters, centre sample, dwell time, discards, sizes) override it.

    Args:
        readout: data (coils, samples), traj (samples, dims) or None.

    Returns:
        A new acquisition with copies of the arrays.
    """
    if isinstance(readout.source_header, ismrmrd.AcquisitionHeader):
        head = ismrmrd.AcquisitionHeader.from_buffer_copy(readout.source_header)
    else:
        head = ismrmrd.AcquisitionHeader()
        head.version = 1
    data = np.ascontiguousarray(readout.data, dtype=np.complex64)
    coils, samples = data.shape
    traj = (
        np.zeros((samples, 0), dtype=np.float32)
        if readout.traj is None
        else np.ascontiguousarray(readout.traj, dtype=np.float32).reshape(samples, -1)
    )
    head.number_of_samples = samples
    head.active_channels = coils
    if head.available_channels < coils:
        head.available_channels = coils
    head.trajectory_dimensions = traj.shape[1]
    head.flags = int(readout.flags)
    for name in IDX_FIELDS:
        if name in readout.idx:
            setattr(head.idx, name, int(readout.idx[name]))
    head.center_sample = int(readout.center_sample)
    head.sample_time_us = float(readout.sample_time_us)
    head.discard_pre = int(readout.discard_pre)
    head.discard_post = int(readout.discard_post)
    acq = ismrmrd.Acquisition(head)
    acq.data[:] = data
    acq.traj[:] = traj
    return acq


# --------------------------------------------------------------------------------------------
# XML header
# --------------------------------------------------------------------------------------------
def _header_location(source: str) -> str:
    return f"XML header of {source!r}" if source else "XML header"


def _with_experimental_conditions(xml: str, source: str) -> str:
    """Return ``xml`` (declaration removed) with an ``experimentalConditions`` element.

    ismrmrd 1.15's generated header class requires ``experimentalConditions``; a header
    without it fails to parse. Such headers get one with ``DEFAULT_H1_RESONANCE_HZ`` and a
    warning is logged.
    """
    text = _XML_DECLARATION.sub("", xml, count=1).strip()
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise InputDataError(f"{_header_location(source)} is not well-formed XML: {exc}") from exc
    namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    local = root.tag.rsplit("}", 1)[-1]
    if local != "ismrmrdHeader":
        raise InputDataError(f"{_header_location(source)}: root element is <{local}>, expected <ismrmrdHeader>")
    prefix = f"{{{namespace}}}" if namespace else ""
    if root.find(f"{prefix}experimentalConditions") is not None:
        return text
    logger.warning(
        "%s has no <experimentalConditions> (required by ismrmrd's header classes); "
        "adding one with H1resonanceFrequency_Hz=%d",
        _header_location(source),
        DEFAULT_H1_RESONANCE_HZ,
    )
    conditions = ET.Element(f"{prefix}experimentalConditions")
    ET.SubElement(conditions, f"{prefix}H1resonanceFrequency_Hz").text = str(DEFAULT_H1_RESONANCE_HZ)
    # Schema order: after acquisitionSystemInformation, before the first encoding.
    position = len(root)
    for i, child in enumerate(root):
        if child.tag.rsplit("}", 1)[-1] in ("encoding", "sequenceParameters", "userParameters", "waveformInformation"):
            position = i
            break
    root.insert(position, conditions)
    return ET.tostring(root, encoding="unicode")


def load_ismrmrd_header(xml: str | bytes, source: str = "") -> ismrmrd.xsd.ismrmrdHeader:
    """Parse an ISMRMRD XML header into ismrmrd's header object.

    Args:
        xml: header text (str, or UTF-8 bytes).
        source: file or stream name, for messages.

    Raises:
        InputDataError: not XML, not an ISMRMRD header, or a required element missing (named).
    """
    if isinstance(xml, (bytes, bytearray)):
        try:
            xml = bytes(xml).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputDataError(f"{_header_location(source)} is not valid UTF-8: {exc}") from exc
    xml = xml.rstrip("\x00")
    if not xml.strip():
        raise InputDataError(f"{_header_location(source)} is empty")
    text = _with_experimental_conditions(xml, source)
    try:
        return ismrmrd.xsd.CreateFromDocument(text)
    except TypeError as exc:
        match = _MISSING_ARGUMENT.search(str(exc))
        if match:
            raise InputDataError(
                f"{_header_location(source)}: required element {match.group(2)} missing in <{match.group(1)}>"
            ) from exc
        raise InputDataError(f"{_header_location(source)} is not a valid ISMRMRD header: {exc}") from exc
    except ValueError as exc:  # xsdata's ParserError is a ValueError
        raise InputDataError(f"{_header_location(source)} is not a valid ISMRMRD header: {exc}") from exc


def header_to_xml(header: ismrmrd.xsd.ismrmrdHeader) -> str:
    """Serialize a header object to XML text (UTF-8 declaration; ismrmrd's default 'ascii'
    declaration would be wrong for non-ASCII names)."""
    return ismrmrd.xsd.ToXML(header, encoding="utf-8")


def _first_encoding(header: ismrmrd.xsd.ismrmrdHeader, source: str) -> Any:
    if not header.encoding:
        raise InputDataError(f"{_header_location(source)} has no <encoding> element")
    if len(header.encoding) > 1:
        logger.info("%s has %d encodings; using the first", _header_location(source), len(header.encoding))
    return header.encoding[0]


def _matrix(space: Any, element: str, source: str) -> tuple[int, int, int]:
    m = space.matrixSize
    matrix = tuple(_whole_number(getattr(m, axis), f"<{element}><matrixSize><{axis}>", source) for axis in "xyz")
    if min(matrix) < 1:
        raise InputDataError(f"{_header_location(source)}: <{element}><matrixSize> must be >= 1, got {matrix}")
    return matrix[0], matrix[1], matrix[2]


def _whole_number(value: Any, element: str, source: str) -> int:
    """An integer header value (the XML parser may leave "64.5" or "large" as text)."""
    if isinstance(value, bool):
        raise InputDataError(f"{_header_location(source)}: {element} must be a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        number = float(str(value).strip())
    except ValueError:
        raise InputDataError(f"{_header_location(source)}: {element} must be a whole number, got {value!r}") from None
    if not math.isfinite(number) or not number.is_integer():
        raise InputDataError(f"{_header_location(source)}: {element} must be a whole number, got {value!r}")
    return int(number)


def _fov(space: Any) -> tuple[float, float, float]:
    f = space.fieldOfView_mm
    return (float(f.x), float(f.y), float(f.z))


def _trajectory_name(enc: Any) -> str:
    return str(getattr(enc.trajectory, "value", enc.trajectory)).lower()


def _step1_center(enc: Any) -> int | None:
    """encodingLimits.kspace_encoding_step_1.center when it is inside (minimum, maximum] (a centre
    of 0 on a multi-line encoding is a writer's default, not a position)."""
    limits = enc.encodingLimits
    step1 = getattr(limits, "kspace_encoding_step_1", None) if limits is not None else None
    if step1 is None or step1.center is None or step1.maximum is None:
        return None
    low = int(step1.minimum or 0)
    center, high = int(step1.center), int(step1.maximum)
    return center if low <= center <= high and center > 0 else None


def _encoding_geometry(enc: Any, index: int, source: str) -> EncodingGeometry:
    return EncodingGeometry(
        matrix=_matrix(enc.encodedSpace, f"encoding {index}: encodedSpace", source),
        fov_mm=_fov(enc.encodedSpace),
        trajectory=_trajectory_name(enc),
        step1_center=_step1_center(enc),
    )


def _user_parameters(header: ismrmrd.xsd.ismrmrdHeader) -> dict[str, Any]:
    params: dict[str, Any] = {}
    up = header.userParameters
    if up is None:
        return params
    for p in up.userParameterLong:
        params[p.name] = int(p.value)
    for p in up.userParameterDouble:
        params[p.name] = float(p.value)
    for p in up.userParameterString:
        params[p.name] = str(p.value)
    for p in up.userParameterBase64:
        params[p.name] = p.value
    return params


def parse_header(xml: str, source: str = "") -> ScanHeader:
    """Extract what the gridding needs from an ISMRMRD XML header (first encoding).

    Args:
        xml: the XML header text.
        source: file or stream name, for messages.

    Returns:
        ScanHeader with encoded/recon matrix (nx, ny, nz) and FOV (mm), the trajectory type as
        a lower-case string, receiverChannels (None when absent), user parameters (name ->
        int / float / str / bytes) and the original XML.

    Raises:
        InputDataError: invalid header or a missing element (named).
    """
    header = load_ismrmrd_header(xml, source)
    enc = _first_encoding(header, source)
    trajectory_name = _trajectory_name(enc)
    asi = header.acquisitionSystemInformation
    num_coils = None
    if asi is not None and asi.receiverChannels is not None:
        num_coils = _whole_number(asi.receiverChannels, "<receiverChannels>", source)
    step1 = getattr(enc.encodingLimits, "kspace_encoding_step_1", None) if enc.encodingLimits is not None else None
    step1_limits = _limits(step1)
    step2 = getattr(enc.encodingLimits, "kspace_encoding_step_2", None) if enc.encodingLimits is not None else None
    step2_limits = _limits(step2)
    return ScanHeader(
        encoded_matrix=_matrix(enc.encodedSpace, "encodedSpace", source),
        encoded_fov_mm=_fov(enc.encodedSpace),
        recon_matrix=_matrix(enc.reconSpace, "reconSpace", source),
        recon_fov_mm=_fov(enc.reconSpace),
        trajectory=trajectory_name,
        num_coils=num_coils,
        xml=xml if isinstance(xml, str) else bytes(xml).decode("utf-8", errors="replace"),
        user_parameters=_user_parameters(header),
        step1_limits=step1_limits,
        step2_limits=step2_limits,
        encodings=tuple(_encoding_geometry(e, i, source) for i, e in enumerate(header.encoding)),
    )


def _limits(limit) -> tuple[int, int] | None:
    """(minimum, maximum) of an encodingLimits entry, None when absent or not 0 <= min <= max."""
    if limit is None or limit.minimum is None or limit.maximum is None:
        return None
    low, high = int(limit.minimum), int(limit.maximum)
    return (low, high) if 0 <= low <= high else None


def cartesian_output_header(
    xml: str,
    geometry: OutputGeometry,
    limits: Mapping[str, tuple[int, int, int]],
    user_parameters: Mapping[str, str],
) -> str:
    """XML header of the Cartesian output, derived from the input header.

    Changes to the first encoding: trajectory = cartesian; trajectoryDescription removed;
    encodedSpace matrix/FOV = ``geometry.matrix`` / ``geometry.fov_mm``; reconSpace =
    ``geometry.recon_space`` (the input's recon FOV on the output's voxels); encodingLimits
    kspace_encoding_step_0 = 0..nx-1 (centre nx//2),
    kspace_encoding_step_1 = 0..ny-1 (centre ny//2), kspace_encoding_step_2 = 0..nz-1
    (centre nz//2) when nz > 1 (when nz == 1 the input's step-2 limits are kept, 0..0 if
    absent), then every entry of ``limits`` (applied last, so it may override).
    userParameters gain (or overwrite) userParameterString entries. Everything else (other
    encodings, sequence parameters, ...) is kept.

    Args:
        xml: input XML header.
        geometry: the output grid (``igrog_gadget.io.output_geometry``), built from this header.
        limits: encodingLimits name -> (minimum, maximum, center), e.g.
            ``{"slice": (0, 2, 1)}``; EncodingCounters spellings
            (``kspace_encode_step_2``) are accepted too.
        user_parameters: name -> value, written as userParameterString (value via ``str``).

    Returns:
        The output XML text.

    Raises:
        InputDataError: invalid input header.
        ValueError: bad ``matrix`` or an unknown / inconsistent limit.
    """
    nx, ny, nz = geometry.matrix
    if min(nx, ny, nz) < 1:
        raise ValueError(f"output matrix must be >= 1 in every dimension, got {geometry.matrix}")
    fx, fy, fz = geometry.fov_mm
    xsd = ismrmrd.xsd

    header = load_ismrmrd_header(xml, "input header")
    enc = _first_encoding(header, "input header")
    enc.trajectory = xsd.trajectoryType.CARTESIAN
    enc.trajectoryDescription = None
    enc.encodedSpace = xsd.encodingSpaceType(
        matrixSize=xsd.matrixSizeType(x=nx, y=ny, z=nz),
        fieldOfView_mm=xsd.fieldOfViewMm(x=fx, y=fy, z=fz),
    )
    recon_matrix, recon_fov = geometry.recon_space
    enc.reconSpace.matrixSize = xsd.matrixSizeType(x=recon_matrix[0], y=recon_matrix[1], z=recon_matrix[2])
    enc.reconSpace.fieldOfView_mm = xsd.fieldOfViewMm(x=recon_fov[0], y=recon_fov[1], z=recon_fov[2])

    enc_limits = enc.encodingLimits if enc.encodingLimits is not None else xsd.encodingLimitsType()
    enc.encodingLimits = enc_limits
    enc_limits.kspace_encoding_step_0 = xsd.limitType(minimum=0, maximum=nx - 1, center=nx // 2)
    enc_limits.kspace_encoding_step_1 = xsd.limitType(minimum=0, maximum=ny - 1, center=ny // 2)
    if nz > 1:
        enc_limits.kspace_encoding_step_2 = xsd.limitType(minimum=0, maximum=nz - 1, center=nz // 2)
    elif enc_limits.kspace_encoding_step_2 is None:
        # 2D output keeps the input's step-2 limits (stack-of-stars frames keep their kz
        # counter); only a missing one is filled in.
        enc_limits.kspace_encoding_step_2 = xsd.limitType(minimum=0, maximum=0, center=0)
    for name, value in limits.items():
        field_name = _LIMIT_ALIASES.get(name, name)
        if field_name not in _LIMIT_NAMES:
            raise ValueError(f"unknown encoding limit {name!r}; valid names: {', '.join(_LIMIT_NAMES)}")
        minimum, maximum, center = (int(v) for v in value)
        if not (0 <= minimum <= maximum) or not (minimum <= center <= maximum):
            raise ValueError(f"encoding limit {name!r}: need 0 <= min <= center <= max, got {tuple(value)}")
        setattr(enc_limits, field_name, xsd.limitType(minimum=minimum, maximum=maximum, center=center))

    if user_parameters:
        if header.userParameters is None:
            header.userParameters = xsd.userParametersType()
        strings = header.userParameters.userParameterString
        for name, parameter in user_parameters.items():
            for existing in strings:
                if existing.name == name:
                    existing.value = str(parameter)
                    break
            else:
                strings.append(xsd.userParameterStringType(name=str(name), value=str(parameter)))
    return header_to_xml(header)


# --------------------------------------------------------------------------------------------
# GriddedFrame -> Cartesian acquisitions
# --------------------------------------------------------------------------------------------
def line_template(frame: GriddedFrame, coils: int, nx: int) -> ismrmrd.AcquisitionHeader:
    """Header shared by all output lines of ``frame`` (step-1 counter, flags, scan counter unset)."""
    head = ismrmrd.AcquisitionHeader()
    source = frame.template.source_header
    if isinstance(source, ismrmrd.AcquisitionHeader):
        for name in _COPIED_HEADER_FIELDS:
            value = getattr(source, name)
            if hasattr(value, "_length_"):
                getattr(head, name)[:] = value[:]
            else:
                setattr(head, name, value)
    else:
        head.version = 1
    head.number_of_samples = nx
    head.available_channels = coils
    head.active_channels = coils
    head.center_sample = nx // 2
    head.trajectory_dimensions = 0
    head.encoding_space_ref = 0
    head.sample_time_us = float(frame.template.sample_time_us)
    head.discard_pre = 0
    head.discard_post = 0
    for name in FRAME_KEY_FIELDS:  # the counters of the frame; kspace_encode_step_1 is the line
        setattr(head.idx, name, int(frame.template.idx.get(name, 0)))
    return head


def cartesian_acquisitions(frame: GriddedFrame, first_scan_counter: int = 0) -> list[ismrmrd.Acquisition]:
    """One ISMRMRD acquisition per Cartesian line of a gridded frame: a full raster, 2D or 3D.

    A line is a row ``kspace[:, [kz,] ky, :]`` (coils, nx) of the frame; every line is emitted, also
    lines where no sample landed (they are zero), kz outer, ky inner. Line number ``l``:
    number_of_samples = nx, center_sample = nx // 2, idx.kspace_encode_step_1 = ky and, for a 3D
    frame, idx.kspace_encode_step_2 = kz (the encode counters of its dimension profile; a 2D
    frame keeps its own kspace_encode_step_2, the partition of a stack), the other counters
    (slice, contrast, repetition, average, set, phase) from ``frame.template.idx``,
    geometry/time stamps/measurement_uid/version/channel_mask from the template's source
    header, trajectory_dimensions = 0, sample_time_us from the template, discards 0,
    scan_counter = ``first_scan_counter + l``.
    Flags (as ismrmrd's Cartesian examples): FIRST_IN_ENCODE_STEP1 / LAST_IN_ENCODE_STEP1 on the
    first / last ky of every partition; FIRST_IN_SLICE (+ FIRST_IN_ENCODE_STEP2 in 3D) on the
    first line; LAST_IN_SLICE + LAST_IN_REPETITION (+ LAST_IN_ENCODE_STEP2 in 3D) on the last.

    Args:
        frame: kspace (coils, ny, nx) or (coils, nz, ny, nx) complex.
        first_scan_counter: scan counter of line 0.

    Returns:
        ny (x nz) acquisitions, kz outer, ky inner.
    """
    kspace = np.asarray(frame.kspace)
    if kspace.ndim not in (3, 4):
        raise ValueError(f"frame.kspace must have shape (coils, ny, nx) or (coils, nz, ny, nx), got {kspace.shape}")
    kspace = np.ascontiguousarray(kspace, dtype=np.complex64)
    counters = dimensions_of_grid(kspace.shape[1:]).encode_counters
    coils, nx = kspace.shape[0], kspace.shape[-1]
    lines = kspace.reshape(coils, -1, nx)
    last = tuple(n - 1 for n in kspace.shape[-2:0:-1])  # largest (ky[, kz])
    template = line_template(frame, coils, nx)
    acquisitions = []
    for number, position in enumerate(np.ndindex(*kspace.shape[1:-1])):  # ([kz,] ky)
        steps = position[::-1]  # (ky[, kz])
        head = ismrmrd.AcquisitionHeader.from_buffer_copy(template)
        for counter, step in zip(counters, steps):
            setattr(head.idx, counter, step)
        head.scan_counter = int(first_scan_counter) + number
        head.flags = _line_flags(steps, last)
        acq = ismrmrd.Acquisition(head)
        acq.data[:] = lines[:, number, :]
        acquisitions.append(acq)
    return acquisitions


#: (FIRST_IN_ENCODE_STEPn, LAST_IN_ENCODE_STEPn) for n = 1, 2.
_STEP_FLAGS = (
    (ismrmrd.ACQ_FIRST_IN_ENCODE_STEP1, ismrmrd.ACQ_LAST_IN_ENCODE_STEP1),
    (ismrmrd.ACQ_FIRST_IN_ENCODE_STEP2, ismrmrd.ACQ_LAST_IN_ENCODE_STEP2),
)


def _line_flags(steps: tuple[int, ...], last: tuple[int, ...]) -> int:
    """Flags of the Cartesian line at encode steps ``steps`` (ky[, kz]) of a raster whose largest
    steps are ``last``: FIRST/LAST_IN_ENCODE_STEPn where steps 1..n are all first / last, and
    FIRST_IN_SLICE / LAST_IN_SLICE + LAST_IN_REPETITION on the raster's first / last line."""
    flags = 0
    for n, (first_flag, last_flag) in enumerate(_STEP_FLAGS[: len(steps)], start=1):
        if all(step == 0 for step in steps[:n]):
            flags |= flag_mask(first_flag)
        if steps[:n] == last[:n]:
            flags |= flag_mask(last_flag)
    if not any(steps):
        flags |= flag_mask(ismrmrd.ACQ_FIRST_IN_SLICE)
    if steps == last:
        flags |= flag_mask(ismrmrd.ACQ_LAST_IN_SLICE) | flag_mask(ismrmrd.ACQ_LAST_IN_REPETITION)
    return flags


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------
def image_data(pixels: np.ndarray) -> np.ndarray:
    """An image of a 2D frame (ny, nx) or a 3D frame (nz, ny, nx) as ISMRMRD image data
    (channels = 1, nz, ny, nx) (nz = 1 for a 2D frame), a view where possible."""
    pixels = np.asarray(pixels)
    return pixels.reshape(1, *volume_shape(pixels.shape))


def frame_image_of(
    pixels: np.ndarray,
    frame: GriddedFrame,
    fov_mm: tuple[float, float, float],
    image_index: int,
    image_series_index: int,
    data_type: int,
    image_type: int,
) -> ismrmrd.Image:
    """An ISMRMRD image of ``frame`` holding ``pixels`` (1, nz, ny, nx): header matrix_size (nx,
    ny, nz), ``field_of_view`` ``fov_mm``, channels 1, ``data_type`` and ``image_type`` as given,
    ``image_index`` and ``image_series_index``; position / read, phase, slice directions / table
    position, measurement uid and time stamps from the frame's first readout, and its counters
    (``FRAME_COUNTER_FIELDS``). No meta attributes."""
    _, nz, ny, nx = pixels.shape
    image = ismrmrd.Image.from_array(np.ascontiguousarray(pixels))
    head = image.getHead()
    head.version = 1
    head.data_type = data_type
    head.matrix_size[:] = (nx, ny, nz)
    head.field_of_view[:] = tuple(float(v) for v in fov_mm)
    head.channels = 1
    head.image_type = image_type
    head.image_index = int(image_index)
    head.image_series_index = int(image_series_index)
    source = frame.template.source_header
    if isinstance(source, ismrmrd.AcquisitionHeader):
        for name in GEOMETRY_FIELDS:
            getattr(head, name)[:] = getattr(source, name)[:]
        head.measurement_uid = source.measurement_uid
        head.acquisition_time_stamp = source.acquisition_time_stamp
        head.physiology_time_stamp[:] = source.physiology_time_stamp[:]
    for name in FRAME_COUNTER_FIELDS:
        setattr(head, name, int(frame.template.idx.get(name, 0)))
    image.setHead(head)
    return image


def image_item_from_image(img: ismrmrd.Image, series: str) -> ImageItem:
    """Convert an ISMRMRD image to an :class:`ImageItem`.

    Args:
        img: the image; data (channels, nz, ny, nx).
        series: series name (HDF5 group name).

    Returns:
        ImageItem with a copy of the data (channels, nz, ny, nx), meta as a plain dict
        (values str or list of str, as ismrmrd's Meta stores them) and ``source`` = img.
    """
    data = np.array(img.data, copy=True)
    if data.ndim != 4:
        data = data.reshape((1,) * (4 - data.ndim) + data.shape)
    meta = {str(k): (list(v) if isinstance(v, list) else v) for k, v in dict(img.meta).items()}
    return ImageItem(series=series, data=data, meta=meta, source=img)


#: Meta attributes that name an incoming image's series (the first present wins).
SERIES_META_KEYS = ("SeriesName", "igrog.series", "GADGETRON_SeriesName")


def image_series_name(image: ismrmrd.Image) -> str:
    """The series an incoming image belongs to: its meta ``SeriesName`` (or ``igrog.series``,
    ``GADGETRON_SeriesName``), else ``image_<image_series_index>``."""
    meta = image.meta
    for key in SERIES_META_KEYS:
        value = meta.get(key) if hasattr(meta, "get") else None
        if value:
            return str(value[0] if isinstance(value, list) else value)
    return f"image_{int(image.image_series_index)}"


def image_from_item(item: ImageItem) -> ismrmrd.Image:
    """Turn an :class:`ImageItem` back into an ISMRMRD image.

    The header comes from ``item.source`` when it is an ``ismrmrd.Image`` (sizes and data type
    follow ``item.data``); the data is ``item.data`` (channels, nz, ny, nx) and the meta
    attributes ``item.meta``.
    """
    data = np.asarray(item.data)
    if data.ndim > 4:
        raise ValueError(f"image data must have at most 4 dimensions (channels, nz, ny, nx), got {data.shape}")
    data = np.ascontiguousarray(data.reshape((1,) * (4 - data.ndim) + data.shape))
    meta = ismrmrd.Meta()
    meta.update(copy.deepcopy(dict(item.meta)))
    if isinstance(item.source, ismrmrd.Image):
        return ismrmrd.Image(head=item.source.getHead(), meta=meta, data=data)
    image = ismrmrd.Image.from_array(data)
    image.meta = meta
    return image
