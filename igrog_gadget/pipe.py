"""``igrog pipe``: a gridding stage in a Unix pipe of MRD streams, as Pingvin chains its stages.

Reads an MRD v2 binary stream (magic ``yardl``: Pingvin, ``mrd-python``) or an ISMRMRD v1 stream
(``ismrmrd_hdf5_to_stream``, Gadgetron's ``--from_stream``: HEADER, then ACQUISITION / IMAGE /
WAVEFORM messages, CLOSE) and writes the same format (or the one ``output_format`` names): the
input header made Cartesian (trajectory cartesian, the grid's matrix, FOV and encoding limits, as
``igrog replay`` writes it, without the per-frame facts a stream cannot know in advance), then, in
stream order, what ``igrog serve`` would send: the gridded frames as Cartesian acquisitions (with
the calibration block and the weights images, ``igrog_gadget.io.acquisitions_output``) or as
images (``output = "images"``), and everything it does not grid (noise scans, waveforms, images
it does not consume, MRD v2 items v1 has no counterpart of) passed through. The same pipeline as
``igrog serve`` (training in the background while items keep coming, early training, warm
start, error estimate), so the k-space equals ``igrog replay``'s.

A stream cut inside an item ends with an error after every frame completed before the cut has
been written (frames still open at the cut are not gridded).
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

import ismrmrd

from igrog_gadget import __version__
from igrog_gadget.config import IgrogConfig
from igrog_gadget.errors import InputDataError
from igrog_gadget.gadget import protocol
from igrog_gadget.gadget.images import ImagesOutput
from igrog_gadget.gadget.protocol import PeerClosedError, ProtocolError, ProtocolLimits, StreamFileReader
from igrog_gadget.io import (
    acquisition_from_readout,
    cartesian_output_header,
    image_from_item,
    image_item_from_image,
    image_series_name,
    parse_header,
    readout_from_acquisition,
    readout_from_header_and_arrays,
)
from igrog_gadget.io import mrd2
from igrog_gadget.io.acquisitions_output import AcquisitionsOutput
from igrog_gadget.io.output_geometry import OutputGeometry
from igrog_gadget.limits import ResourceLimits
from igrog_gadget.numerics.dimensions import dimensions
from igrog_gadget.scan import GriddedFrame, ImageItem, Readout, ScanHeader

logger = logging.getLogger(__name__)

#: Stream formats: MRD v2 (yardl binary) and ISMRMRD v1 (the Gadgetron protocol's messages).
FORMATS = ("mrd2", "ismrmrd")
PIPE_OUTPUTS = ("acquisitions", "images")


@dataclass
class PipeReport:
    """What a pipe run did."""

    input_format: str = ""
    output_format: str = ""
    items_in: int = 0
    items_out: int = 0
    frames: int = 0
    """Frames gridded (each is written and let go: a stream's frames are never all held)."""
    seconds: float = 0.0


#: Errors of reading a stream (a cut or corrupt one), whichever format it is in.
_READ_ERRORS: tuple[type[BaseException], ...] = (ProtocolError, *mrd2.STREAM_ERRORS)


def run_pipe(
    source: BinaryIO,
    sink: BinaryIO,
    config: IgrogConfig,
    *,
    output: str = "acquisitions",
    output_format: str | None = None,
    limits: ResourceLimits | None = None,
    name: str = "stdin",
) -> PipeReport:
    """Grid the stream ``source`` into ``sink`` (see the module docstring).

    Args:
        source: a binary stream (``sys.stdin.buffer``, a file opened ``"rb"``).
        sink: a binary stream; written as outputs are ready, flushed after each.
        config: the variant's configuration.
        output: ``acquisitions`` or ``images``.
        output_format: ``mrd2`` or ``ismrmrd`` (default: the input's).
        limits: resource limits (default ``ResourceLimits()``).
        name: the input's name in messages.

    Raises:
        InputDataError: an unreadable or cut stream, a bad header or acquisition (after the
            frames completed before it were written).
    """
    started = time.perf_counter()
    limits = limits if limits is not None else ResourceLimits()
    limits.check_config(config)
    if output not in PIPE_OUTPUTS:
        raise InputDataError(f"output must be one of {', '.join(PIPE_OUTPUTS)}, got {output!r}")
    report = PipeReport()
    first = source.read(len(mrd2.MRD2_MAGIC))  # blocks until the magic's length or the end
    source = io.BufferedReader(_Prefixed(first, source))  # type: ignore[arg-type]
    report.input_format = "mrd2" if mrd2.is_mrd2_stream(first) else "ismrmrd"
    report.output_format = output_format or report.input_format
    if report.output_format not in FORMATS:
        raise InputDataError(f"output format must be one of {', '.join(FORMATS)}, got {report.output_format!r}")
    if report.input_format == "mrd2":
        xml, items = mrd2.read_mrd2(source)
    else:
        xml, items = _read_ismrmrd_stream(source, limits, name)
    header = parse_header(xml, source=name)
    limits.check_header(header, config, name)
    from igrog_gadget.stream.pipeline import GriddingPipeline  # torch loads now: a bad header is refused without it

    pipeline = GriddingPipeline(header, config, source=name, resource_limits=limits, background_training=True)
    writer = _StreamWriter(sink, report.output_format, xml, header, config, output, pipeline.gridder.device)
    try:
        failure: InputDataError | None = None
        while failure is None:
            try:
                item = next(items)
            except StopIteration:
                break
            except _READ_ERRORS as error:  # only the reading: a cut or corrupt stream
                failure = InputDataError(f"{name}: the stream ends inside item {report.items_in}: {type(error).__name__}: {error}")
                break
            report.items_in += 1
            try:
                writer.write(pipeline.process(_typed(item, report.items_in - 1, name, limits)), report)
            except InputDataError as error:
                failure = error
        if failure is None:
            writer.write(pipeline.close(), report)
        else:
            writer.write(pipeline.completed_frames(), report)
    except BaseException:
        pipeline.gridder.close()  # a bug or an interrupt: the training worker must not outlive the call
        raise
    writer.close()
    report.seconds = time.perf_counter() - started
    if failure is not None:
        raise failure
    return report


class _Prefixed(io.RawIOBase):
    """``prefix`` (bytes already read to tell the format), then the rest of ``stream``."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = memoryview(prefix)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if len(self._prefix):
            count = min(len(buffer), len(self._prefix))
            buffer[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
            return count
        data = self._stream.read1(len(buffer)) if hasattr(self._stream, "read1") else self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _read_ismrmrd_stream(source: BinaryIO, limits: ResourceLimits, name: str) -> tuple[str, Iterator[Any]]:
    """(XML header, the data messages' values until CLOSE or the end) of an ISMRMRD v1 stream."""
    reader = StreamFileReader(
        source, ProtocolLimits(max_acquisition_channels=limits.max_coils, max_acquisition_samples=limits.max_readout_samples), name
    )
    while True:
        try:
            message = reader.read_message()
        except PeerClosedError:
            raise InputDataError(f"{name}: the stream ends before its HEADER message") from None
        except ProtocolError as error:
            raise InputDataError(f"{name}: not an MRD v2 or ISMRMRD v1 stream ({error})") from None
        if message.mid == protocol.HEADER:
            break
        if message.mid not in (protocol.CONFIG_FILE, protocol.CONFIG_TEXT, protocol.TEXT):
            raise InputDataError(f"{name}: {message.name} before the stream's HEADER message")

    def values() -> Iterator[Any]:
        while True:
            try:
                message = reader.read_message()
            except PeerClosedError:
                return  # the end of the data between messages: as CLOSE
            if message.mid == protocol.CLOSE:
                return
            if message.mid == protocol.TEXT:
                logger.info("%s: TEXT %s", name, str(message.value)[:200])
                continue
            yield message.value

    return message.value, values()


def _typed(item: Any, index: int, name: str, limits: ResourceLimits) -> Any:
    """The pipeline's item for a stream item: a ``Readout``, an ``ImageItem``, or the item itself
    (waveforms and MRD v2 items without a v1 counterpart pass through)."""
    if mrd2.is_mrd2_item(item):
        converted = mrd2.item_from_mrd2(item)
        if converted is None:
            return item
        item = converted
    if isinstance(item, protocol.WireAcquisition):
        limits.check_acquisition(int(item.head.active_channels), int(item.head.number_of_samples), f"{name}: acquisition {index}")
        return readout_from_header_and_arrays(item.head, item.data, item.traj, index, name)
    if isinstance(item, ismrmrd.Acquisition):
        limits.check_acquisition(int(item.active_channels), int(item.number_of_samples), f"{name}: acquisition {index}")
        return readout_from_acquisition(item, index, name)
    if isinstance(item, ismrmrd.Image):
        return image_item_from_image(item, image_series_name(item))
    return item


class _StreamWriter:
    """Writes the output stream: its header before the first item (once the first frame tells
    the grid), then the items in order."""

    def __init__(
        self, sink: BinaryIO, stream_format: str, xml: str, header: ScanHeader, config: IgrogConfig, output: str, device: Any
    ) -> None:
        self.sink = sink
        self.format = stream_format
        self.xml = xml
        self.header = header
        self.config = config
        self.output = output
        self.acquisitions = AcquisitionsOutput(config.output.calibration, config.output.weights)
        self.images = ImagesOutput(config.recon, device)
        self._held: list[Any] = []
        """Items before the first frame (the output header needs the grid a frame shows)."""
        self._mrd_writer: Any = None
        self._started = False

    def write(self, outputs: list[Any], report: PipeReport) -> None:
        items: list[Any] = []
        for out in outputs:
            if isinstance(out, GriddedFrame):
                report.frames += 1
                if not self._started:
                    self._start(out)
                items += self._frame_items(out)
            elif isinstance(out, Readout):
                items.append(acquisition_from_readout(out))
                self.acquisitions.count_passed_through()
            elif isinstance(out, ImageItem):
                items.append(image_from_item(out))
            else:
                items.append(out)
        if not self._started:
            self._held += items
            return
        report.items_out += len(items)
        self._emit(items)

    def close(self) -> None:
        if not self._started:
            self._start(None)
        if self.format == "mrd2":
            self._mrd_writer.close()
        else:
            self.sink.write(protocol.encode_close())
        self.sink.flush()

    def _frame_items(self, frame: GriddedFrame) -> list[Any]:
        geometry = stream_geometry(self.header, self.config, frame.kspace.shape[1:])
        if self.output == "acquisitions":
            return self.acquisitions.items(frame, geometry)
        return [self.images.image(frame, geometry)]

    def _start(self, first: GriddedFrame | None) -> None:
        """Write the output header (from the first frame's grid; without frames, the input's 2D grid)."""
        self._started = True
        header_xml = stream_output_header(self.xml, self.header, self.config, first)
        if self.format == "mrd2":
            mrd = mrd2.require_mrd()
            self._mrd_writer = mrd.BinaryMrdWriter(self.sink)
            self._mrd_writer.write_header(mrd2.header_to_mrd2(header_xml))
        else:
            self.sink.write(protocol.encode_text_message(protocol.HEADER, header_xml))
        held, self._held = self._held, []
        self._emit(held)

    def _emit(self, items: list[Any]) -> None:
        if not items:
            return
        if self.format == "mrd2":
            self._mrd_writer.write_data([mrd2.as_mrd2_item(item) for item in items])
        else:
            for item in items:
                if mrd2.is_mrd2_item(item):
                    logger.warning("an MRD v2 %s has no ISMRMRD v1 form: left out of the output", type(item).__name__)
                    continue
                self.sink.write(_encode_v1(item))
        self.sink.flush()


def _encode_v1(item: Any) -> bytes:
    if isinstance(item, ismrmrd.Acquisition):
        return protocol.encode_acquisition(item)
    if isinstance(item, ismrmrd.Image):
        return protocol.encode_image(item)
    if isinstance(item, ismrmrd.Waveform):
        return protocol.encode_waveform(item)
    raise TypeError(f"no ISMRMRD v1 message for {type(item).__name__}")


def stream_geometry(header: ScanHeader, config: IgrogConfig, frame_shape: tuple[int, ...]) -> OutputGeometry:
    """The output geometry of a stream whose frames are gridded onto ``frame_shape``: 2D frames of
    a header with partitions are taken as a stack's (a stream cannot wait for its last frame)."""
    return OutputGeometry.of_frames(
        header, config.gridding.grid_oversampling, frame_shape, stacked=header.encoded_matrix[2] > 1
    )


def stream_output_header(xml: str, header: ScanHeader, config: IgrogConfig, first: GriddedFrame | None) -> str:
    """The output header of a stream: the input's made Cartesian on the grid of its first frame
    (``stream_geometry``; without frames the header's 2D grid), the input's counters' limits, and
    the user parameters ``igrog.variant``, ``igrog.version``, ``igrog.config``."""
    factor = config.gridding.grid_oversampling
    planes = dimensions(2).grid_shape([int(round(n * factor)) for n in header.encoded_matrix])
    shape = first.kspace.shape[1:] if first is not None else planes
    return cartesian_output_header(
        xml,
        stream_geometry(header, config, shape),
        {},
        {"igrog.variant": config.variant, "igrog.version": __version__, "igrog.config": config.to_toml()},
    )
