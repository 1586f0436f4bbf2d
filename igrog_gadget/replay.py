"""Offline replay: an ISMRMRD file (HDF5, or an MRD v2 stream file) in, a Cartesian ISMRMRD file out, through the streaming pipeline."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from igrog_gadget import __version__
from igrog_gadget.config import IgrogConfig
from igrog_gadget.errors import InputDataError, OutputError
from igrog_gadget.io import OutputGeometry, RawDataset, cartesian_output_header, read_dataset, write_cartesian_file
from igrog_gadget.io.reader import array_coil_count
from igrog_gadget.io.frame_images import replay_image, weights_image
from igrog_gadget.io.mrd2 import is_mrd2_file, read_mrd2_dataset
from igrog_gadget.io.writer import remove_quietly
from igrog_gadget.limits import ResourceLimits
from igrog_gadget.scan import FRAME_COUNTER_FIELDS, FRAME_KEY_FIELDS, GriddedFrame, ImageItem, Readout

if TYPE_CHECKING:
    from igrog_gadget.recon.images import FrameImage

logger = logging.getLogger(__name__)


@dataclass
class ReplayReport:
    """What a replay did."""

    input_path: str
    output_path: str
    frames: list[GriddedFrame] = field(default_factory=list)
    passthrough: int = 0
    seconds: float = 0.0

    @property
    def training_seconds(self) -> float:
        return sum(f.report.training.seconds for f in self.frames if f.report is not None and f.report.training is not None)

    @property
    def gridding_seconds(self) -> float:
        return sum(f.report.gridding_s for f in self.frames if f.report is not None)


def output_limits(frames: list[GriddedFrame]) -> dict[str, tuple[int, int, int]]:
    """encodingLimits (min, max, centre) of the counters over the output frames."""
    limits: dict[str, tuple[int, int, int]] = {}
    for name in FRAME_COUNTER_FIELDS:  # the encodingLimits the output header states
        values = [dict(zip(FRAME_KEY_FIELDS, f.frame_key))[name] for f in frames]
        if values:
            low, high = min(values), max(values)
            limits[name] = (low, high, low + (high - low) // 2)
    return limits


def check_output_path(path: str | os.PathLike[str], what: str = "output") -> None:
    """Refuse an output path that cannot be written, before any work: its directory missing, not
    a directory or not writable (probed by creating and removing a file), or the path a directory.

    Raises:
        OutputError: naming the path and the problem.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a directory; give a file name")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.exists():
        raise OutputError(f"{what} {path}: directory {directory} does not exist")
    if not directory.is_dir():
        raise OutputError(f"{what} {path}: {directory} is not a directory")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{what} {path} exists and is not writable")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.probe-", dir=directory)
    except OSError as error:
        raise OutputError(f"{what} {path}: directory {directory} is not writable ({error.strerror or error})") from None
    os.close(fd)
    os.remove(probe)


def read_replay_input(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    config: IgrogConfig,
    *,
    png_path: str | os.PathLike[str] | None = None,
    limits: ResourceLimits | None = None,
) -> RawDataset:
    """What :func:`replay_file` checks and reads before any gridding work (torch is not imported):
    outputs that cannot be written, a configuration or a header beyond ``limits`` (default
    ``ResourceLimits()``) and bad input are refused here (``IgrogError``)."""
    limits = limits if limits is not None else ResourceLimits()
    input_path, output_path = str(input_path), str(output_path)
    if Path(output_path).resolve() == Path(input_path).resolve():
        raise InputDataError(f"output {output_path} is the input file; choose another output path")
    check_output_path(output_path)
    if png_path is not None:
        png_path = str(png_path)
        if Path(png_path).resolve() in (Path(output_path).resolve(), Path(input_path).resolve()):
            raise OutputError(f"--png {png_path} is the same file as the input or the output; choose another path")
        check_output_path(png_path, "--png")
    limits.check_config(config)
    check_header = lambda header: limits.check_header(header, config, input_path)  # noqa: E731
    if is_mrd2_file(input_path):  # an MRD v2 stream file (Pingvin's format)
        return read_mrd2_dataset(input_path, limits=limits, on_header=check_header)
    return read_dataset(input_path, limits=limits, on_header=check_header)


def replay_file(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    config: IgrogConfig,
    show_progress: bool = False,
    *,
    png_path: str | os.PathLike[str] | None = None,
    limits: ResourceLimits | None = None,
    dataset: RawDataset | None = None,
    with_images: bool = False,
) -> ReplayReport:
    """Grid every frame of ``input_path`` with the configured variant and write ``output_path``
    (and the frames' images, ``[recon]``: SENSE of undersampled frames, else RSS, to ``png_path``
    when given, and with ``with_images`` into the output as the image series ``igrog_image``).

    Refused before any work (``IgrogError``): see :func:`read_replay_input`, which reads the input
    here unless its ``dataset`` is given. The outputs are written atomically: on any error
    neither is left behind.
    """
    started = time.perf_counter()
    if dataset is None:
        dataset = read_replay_input(input_path, output_path, config, png_path=png_path, limits=limits)
    input_path, output_path = str(input_path), str(output_path)
    png_path = str(png_path) if png_path is not None else None
    from igrog_gadget.stream.pipeline import GriddingPipeline  # torch loads now: a bad input is refused without it

    pipeline = GriddingPipeline(
        dataset.header, config, source=input_path, array_coils=array_coil_count(dataset.readouts, dataset.header)
    )
    report = ReplayReport(input_path, output_path)
    passthrough: list[Readout] = []
    images: list[ImageItem] = []
    for image in dataset.images:  # image inputs (b0map, coil images) first: frames need them
        images.extend(pipeline.process(image))
    readouts = _progress(dataset.readouts, show_progress, "gridding")
    for readout in readouts:
        for out in pipeline.process(readout):
            _collect(out, report, passthrough)
    for out in pipeline.close():
        _collect(out, report, passthrough)
    if not report.frames:
        raise InputDataError(f"{input_path}: no imaging acquisitions to grid")
    header = dataset.header
    partitions = {dict(zip(FRAME_KEY_FIELDS, f.frame_key))["kspace_encode_step_2"] for f in report.frames}
    geometry = OutputGeometry.of_frames(
        header, config.gridding.grid_oversampling, report.frames[0].kspace.shape[1:], stacked=partitions != {0}
    )
    xml = cartesian_output_header(
        dataset.header_xml,
        geometry,
        output_limits(report.frames),
        {
            "igrog.variant": config.variant,
            "igrog.version": __version__,
            "igrog.config": config.to_toml(),
            "igrog.frames": frames_summary(report.frames),
            **coil_compression_parameters(report.frames),
        },
    )
    pictures = frame_pictures(report.frames, config, pipeline.gridder.device) if png_path or with_images else []
    png_temporary = _write_png(png_path, [p.magnitude for p in pictures]) if png_path is not None else None
    try:
        try:
            if config.output.weights:
                images += [weights_image(frame, geometry, number) for number, frame in enumerate(report.frames, start=1)]
            if with_images:
                images += [
                    replay_image(frame, picture, geometry, number)
                    for number, (frame, picture) in enumerate(zip(report.frames, pictures), start=1)
                ]
            write_cartesian_file(
                output_path, xml, report.frames, passthrough, images, dataset.waveforms, calibration=config.output.calibration
            )
        except OSError as error:
            raise OutputError(f"cannot write {output_path}: {error.strerror or error}") from None
        if png_temporary is not None and png_path is not None:
            try:
                os.replace(png_temporary, png_path)
            except OSError as error:  # the .h5 is in place: take it back, nothing half-written stays
                remove_quietly(output_path)
                raise OutputError(f"cannot write --png {png_path}: {error.strerror or error}") from None
            png_temporary = None
    finally:
        if png_temporary is not None:
            remove_quietly(png_temporary)
    report.passthrough = len(passthrough)
    report.seconds = time.perf_counter() - started
    return report


def frames_summary(frames: list[GriddedFrame]) -> str:
    """JSON list, one entry per output frame: its counters and how it was gridded
    (``FrameReport.header_facts``)."""
    entries = []
    for frame in frames:
        entry: dict = dict(zip(FRAME_KEY_FIELDS, (int(v) for v in frame.frame_key)))
        if frame.report is not None:
            entry.update(frame.report.header_facts())
        entries.append(entry)
    return json.dumps(entries)


def coil_compression_parameters(frames: list[GriddedFrame]) -> dict[str, str]:
    """``igrog.coil_compression.<slice>.<contrast>.<e2>`` per calibration key of frames written in
    virtual coils: JSON ``{"real": [[...]], "imag": [[...]]}`` of the (virtual, physical) matrix
    with ``virtual = matrix @ physical``."""
    parameters: dict[str, str] = {}
    for frame in frames:
        matrix = frame.report.coils.compression if frame.report is not None and frame.report.coils is not None else None
        if matrix is None:
            continue
        counters = dict(zip(FRAME_KEY_FIELDS, frame.frame_key))
        name = "igrog.coil_compression.{}.{}.{}".format(
            counters["slice"], counters["contrast"], counters["kspace_encode_step_2"]
        )
        parameters[name] = json.dumps({"real": np.real(matrix).tolist(), "imag": np.imag(matrix).tolist()})
    return parameters


def frame_pictures(frames: list[GriddedFrame], config: IgrogConfig, device: object) -> list["FrameImage"]:
    """The image of each frame (``igrog_gadget.recon.images``: ``[recon]``)."""
    from igrog_gadget.recon.images import FrameImager

    imager = FrameImager(config.recon, device)  # type: ignore[arg-type]
    return [imager.image(frame) for frame in frames]


def _write_png(path: str, magnitudes: list[np.ndarray]) -> str:
    """The frames' images written beside ``path`` under a temporary name (returned); nothing
    is left behind when writing fails."""
    from igrog_gadget import preview

    directory, name = os.path.split(os.path.abspath(path))
    # a fresh name beside the target, created with the usual permissions (mkstemp's are 0600)
    temporary = os.path.join(directory, f".{name}.partial-{uuid.uuid4().hex}.png")
    try:
        preview.write_png(temporary, magnitudes)
    except BaseException as error:
        remove_quietly(temporary)
        if isinstance(error, OSError):
            raise OutputError(f"cannot write --png {path}: {error.strerror or error}") from None
        raise
    return temporary


def _collect(out, report: ReplayReport, passthrough: list[Readout]) -> None:
    if isinstance(out, GriddedFrame):
        report.frames.append(out)
    elif isinstance(out, Readout):
        passthrough.append(out)


def _progress(items, enabled: bool, label: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label, unit="acq", leave=False)
