"""Offline replay: an ISMRMRD file in, a Cartesian ISMRMRD file out, through the streaming pipeline."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from igrog_gadget import __version__
from igrog_gadget.config import IgrogConfig
from igrog_gadget.errors import InputDataError
from igrog_gadget.io import cartesian_output_header, read_dataset, write_cartesian_file
from igrog_gadget.io.reader import array_coil_count
from igrog_gadget.scan import FRAME_KEY_FIELDS, GriddedFrame, ImageItem, Readout
from igrog_gadget.stream.pipeline import GriddingPipeline

logger = logging.getLogger(__name__)

#: Counters whose encodingLimits the output header states (FRAME_KEY_FIELDS minus encode step 2).
_LIMIT_FIELDS = ("slice", "contrast", "phase", "set", "repetition", "average")


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
        return sum(f.info.get("training_s", 0.0) for f in self.frames)

    @property
    def gridding_seconds(self) -> float:
        return sum(f.info.get("gridding_s", 0.0) for f in self.frames)


def output_limits(frames: list[GriddedFrame]) -> dict[str, tuple[int, int, int]]:
    """encodingLimits (min, max, centre) of the counters over the output frames."""
    limits: dict[str, tuple[int, int, int]] = {}
    for name in _LIMIT_FIELDS:
        values = [dict(zip(FRAME_KEY_FIELDS, f.frame_key))[name] for f in frames]
        if values:
            low, high = min(values), max(values)
            limits[name] = (low, high, low + (high - low) // 2)
    return limits


def replay_file(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    config: IgrogConfig,
    show_progress: bool = False,
) -> ReplayReport:
    """Grid every frame of ``input_path`` with the configured variant and write ``output_path``.

    The output is written atomically: on any error nothing is left at ``output_path``.
    """
    started = time.perf_counter()
    input_path, output_path = str(input_path), str(output_path)
    if Path(output_path).resolve() == Path(input_path).resolve():
        raise InputDataError(f"output {output_path} is the input file; choose another output path")
    dataset = read_dataset(input_path)
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
    nx, ny = report.frames[0].kspace.shape[-1], report.frames[0].kspace.shape[-2]
    factor = config.gridding.grid_oversampling
    fov = (header.encoded_fov_mm[0] * factor, header.encoded_fov_mm[1] * factor, header.encoded_fov_mm[2])
    partitions = {dict(zip(FRAME_KEY_FIELDS, f.frame_key))["kspace_encode_step_2"] for f in report.frames}
    nz = header.encoded_matrix[2] if partitions != {0} else 1  # stack-of-stars: the partitions' kz grid
    xml = cartesian_output_header(
        dataset.header_xml,
        (nx, ny, nz),
        fov,
        output_limits(report.frames),
        {
            "igrog.variant": config.variant,
            "igrog.version": __version__,
            "igrog.config": config.to_toml(),
            "igrog.frames": frames_summary(report.frames),
            **coil_compression_parameters(report.frames),
        },
    )
    write_cartesian_file(output_path, xml, report.frames, passthrough, images, dataset.waveforms)
    report.passthrough = len(passthrough)
    report.seconds = time.perf_counter() - started
    return report


#: Facts of each frame's run written to the output header (``igrog.frames``, JSON list).
FRAME_FACTS = (
    "path", "training_s", "gridding_s", "training_steps", "training_stop", "warm_start", "estimated_nrmse", "calibration",
    "coils", "virtual_coils", "prewhitened", "compression_energy",
)


def frames_summary(frames: list[GriddedFrame]) -> str:
    """JSON list, one entry per output frame: its counters and how it was gridded (``FRAME_FACTS``)."""
    entries = []
    for frame in frames:
        entry: dict = dict(zip(FRAME_KEY_FIELDS, (int(v) for v in frame.frame_key)))
        for name in FRAME_FACTS:
            value = frame.info.get(name)
            if isinstance(value, (float, np.floating)):
                value = None if not np.isfinite(value) else round(float(value), 6)
            elif isinstance(value, (bool, np.bool_)):
                value = bool(value)
            elif isinstance(value, (int, np.integer)):
                value = int(value)
            if value is not None:
                entry[name] = value
        entries.append(entry)
    return json.dumps(entries)


def coil_compression_parameters(frames: list[GriddedFrame]) -> dict[str, str]:
    """``igrog.coil_compression.<slice>.<contrast>.<e2>`` per calibration key of frames written in
    virtual coils: JSON ``{"real": [[...]], "imag": [[...]]}`` of the (virtual, physical) matrix
    with ``virtual = matrix @ physical``."""
    parameters: dict[str, str] = {}
    for frame in frames:
        matrix = frame.info.get("coil_compression")
        if matrix is None:
            continue
        counters = dict(zip(FRAME_KEY_FIELDS, frame.frame_key))
        name = "igrog.coil_compression.{}.{}.{}".format(
            counters["slice"], counters["contrast"], counters["kspace_encode_step_2"]
        )
        parameters[name] = json.dumps({"real": np.real(matrix).tolist(), "imag": np.imag(matrix).tolist()})
    return parameters


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
