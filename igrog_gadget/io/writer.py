"""Write the Cartesian ISMRMRD output file, atomically.

The file is written as ``<name>.partial-XXXXXXXX.h5`` next to the target and moved onto the
target with ``os.replace`` only when complete; on any exception (including one raised by the
lazily consumed frames iterable) the temporary file is removed and the exception re-raised,
so a partial output never exists under the target name.

Acquisitions are written in batches straight into ismrmrd's ``/<group>/data`` compound layout
(:class:`~igrog_gadget.io.acquisitions.AcquisitionSink`), about 5x faster than
``Dataset.append_acquisition``; the header, images and waveforms go through ``ismrmrd.Dataset``.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Any, Iterable

import h5py
import ismrmrd
import numpy as np

from igrog_gadget.io.acquisitions import AcquisitionSink
from igrog_gadget.io.acquisitions_output import AcquisitionsOutput
from igrog_gadget.io.convert import acquisition_from_readout, image_from_item, parse_header
from igrog_gadget.scan import GriddedFrame, ImageItem, Readout

logger = logging.getLogger(__name__)

def remove_quietly(path: str) -> None:
    """Remove a temporary file if it exists; a failure is logged, never raised."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        logger.error("could not remove temporary file %s: %s", path, error)


def _temporary_path(path: str) -> str:
    """Create (exclusively) and return an empty ``<name>.partial-XXXXXXXX.h5`` beside ``path``."""
    directory, name = os.path.split(os.path.abspath(path))
    for _ in range(100):
        candidate = os.path.join(directory, f"{name}.partial-{secrets.token_hex(4)}.h5")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"could not create a temporary file next to {path!r}")


def _fsync(path: str) -> None:
    """Flush a closed file's data to disk before it is renamed into place."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _as_acquisition(item: Any) -> ismrmrd.Acquisition:
    if isinstance(item, ismrmrd.Acquisition):
        return item
    if isinstance(item, Readout):
        return acquisition_from_readout(item)
    raise TypeError(f"pass-through acquisitions must be ismrmrd.Acquisition or Readout, got {type(item).__name__}")


def _as_image(item: Any) -> tuple[str, ismrmrd.Image]:
    if isinstance(item, ImageItem):
        return item.series, image_from_item(item)
    raise TypeError(f"images must be ImageItem, got {type(item).__name__}")


def write_cartesian_file(
    path: str | os.PathLike[str],
    header_xml: str,
    frames: Iterable[GriddedFrame],
    passthrough_acquisitions: Iterable[ismrmrd.Acquisition | Readout] = (),
    images: Iterable[ImageItem] = (),
    waveforms: Iterable[ismrmrd.Waveform] = (),
    *,
    calibration: bool = False,
    group: str = "dataset",
) -> int:
    """Write a Cartesian ISMRMRD file atomically.

    Order of the acquisitions: pass-through ones (e.g. noise scans) as given, then the
    Cartesian lines of every frame (``igrog_gadget.io.convert.cartesian_acquisitions``), with ``calibration``
    the frame's calibration block as calibration acquisitions before the first frame of each
    calibration key (``igrog_gadget.io.calibration_lines``), numbered with consecutive scan
    counters after the pass-through ones. Images are appended to their
    series (``ImageItem.series``), waveforms appended.

    Args:
        path: target file; replaced atomically if it exists.
        header_xml: output XML header (see :func:`cartesian_output_header`); its first
            encoding's encodedSpace (nx, ny) must match every frame's kspace (and nz a 3D frame's).
        frames: gridded frames, kspace (coils, ny, nx) or, 3D, (coils, nz, ny, nx) (one line per
            (ky, kz)); consumed lazily, one at a time.
        passthrough_acquisitions: ``ismrmrd.Acquisition`` or :class:`Readout` objects.
        images: image items, data (channels, nz, ny, nx).
        waveforms: ``ismrmrd.Waveform`` objects.
        group: ISMRMRD dataset group name.

    Returns:
        Number of acquisitions written (pass-through + Cartesian lines).

    Raises:
        ValueError: a frame whose (ny, nx) (3D: (nz, ny, nx)) differs from the header's encoded matrix.
        Whatever the frames iterable raises; in every case no file is left behind.
    """
    path = os.fspath(path)
    nx, ny, nz = parse_header(header_xml, source="output header").encoded_matrix
    temporary = _temporary_path(path)
    try:
        with h5py.File(temporary, "w") as h5:
            sink = AcquisitionSink(h5.create_group(group))
            sink.append([_as_acquisition(a) for a in passthrough_acquisitions])
            passthrough_count = sink.count
            frame_count = 0
            output = AcquisitionsOutput(calibration, weights=False, first_scan_counter=sink.count)
            for frame in frames:
                shape = np.shape(frame.kspace)
                if not (len(shape) == 3 and shape[1:] == (ny, nx)) and not (len(shape) == 4 and shape[1:] == (nz, ny, nx)):
                    raise ValueError(
                        f"frame {frame_count} (key {frame.frame_key}): kspace shape {shape} does not match "
                        f"(coils, ny={ny}, nx={nx}) or (coils, nz={nz}, ny={ny}, nx={nx}) of the output header"
                    )
                sink.append(output.items(frame))
                frame_count += 1
            total = sink.count
        dataset = ismrmrd.Dataset(temporary, group, create_if_needed=True)
        try:
            dataset.write_xml_header(header_xml.encode("utf-8"))
            image_count = 0
            for item in images:
                series, image = _as_image(item)
                dataset.append_image(series, image)
                image_count += 1
            waveform_count = 0
            for waveform in waveforms:
                dataset.append_waveform(waveform)
                waveform_count += 1
        finally:
            dataset.close()
        _fsync(temporary)
        os.replace(temporary, path)
    except BaseException:
        remove_quietly(temporary)
        raise
    logger.info(
        "wrote %s: %d pass-through + %d Cartesian and calibration acquisitions (%d frames), %d images, %d waveforms",
        path,
        passthrough_count,
        total - passthrough_count,
        frame_count,
        image_count,
        waveform_count,
    )
    return total
