"""Inputs of the fieldcorr variant: the B0 map and the per-sample times.

B0 map (in this order of preference):

1. the ``b0map`` image series of the input (file or stream): one real channel, Hz, on the
   recon grid (ny, nx), pixel [y, x] with r = 0 at index n//2 (DESIGN.md); a 3D frame's
   (kooshball, stack of spirals gridded in 3D, cones) is one 3D image (nz, ny, nx), pixel
   [z, y, x];
2. ``fieldcorr.b0map_file``: ``.npy`` (ny, nx) (3D: (nz, ny, nx)) real Hz; ``.npz`` with an array ``b0map`` or
   ``b0map_hz`` (the simulator's truth file works); ``.h5`` / ``.mrd``: an ISMRMRD image
   series ``b0map`` or an HDF5 dataset ``b0map`` / ``b0map_hz`` at the root.

A missing map, a map of another matrix, several channels, an imaginary part or non-finite
values are errors (``InputDataError``), never a silent fallback to field-free gridding.

Sample times: sample i of an acquisition is acquired ``i * sample_time_us`` after its first
kept sample (discard_pre/post samples are removed before gridding, so with discard_pre = d the
times count from the ADC's sample d, an offset of d dwell times). The phase is taken to accrue
from the first sample (t = 0), the convention of ``igrog simulate``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from igrog_gadget.core.frame import FrameInputs
from igrog_gadget.config import FieldCorrectionConfig
from igrog_gadget.errors import ConfigError, InputDataError
from igrog_gadget.numerics.dimensions import dimensions, volume_shape

logger = logging.getLogger(__name__)

#: Image series name of the B0 map.
B0MAP_SERIES = "b0map"


def field_map(frame: FrameInputs, config: FieldCorrectionConfig) -> tuple[np.ndarray, str]:
    """The frame's B0 map: ``(map (ny, nx) (3D: (nz, ny, nx)) float32 Hz, where it came from)``.

    Raises:
        InputDataError: no map anywhere, or a map of the wrong shape, type or values.
        ConfigError: ``b0map_file`` missing or unreadable.
    """
    if B0MAP_SERIES in frame.images:
        return check_field_map(frame.images[B0MAP_SERIES], frame, f"image series {B0MAP_SERIES!r}"), f"series:{B0MAP_SERIES}"
    if config.b0map_file:
        data = read_field_map_file(config.b0map_file)
        return check_field_map(data, frame, f"fieldcorr.b0map_file {config.b0map_file}"), f"file:{config.b0map_file}"
    present = ", ".join(sorted(frame.images)) or "none"
    raise InputDataError(
        f"fieldcorr needs a B0 map: the input has no {B0MAP_SERIES!r} image series (image series present: {present}) "
        "and fieldcorr.b0map_file is empty"
    )


def check_field_map(data: np.ndarray, frame: FrameInputs, name: str) -> np.ndarray:
    """``data`` as a (ny, nx) float32 map in Hz (a 3D frame's: (nz, ny, nx)), checked against
    the frame's recon grid."""
    array = np.asarray(data)
    profile = dimensions(len(frame.matrix))
    dims = profile.dims
    grid = profile.grid_shape(frame.matrix)  # ([nz,] ny, nx)
    axes = profile.array_label()
    size = " x ".join(str(n) for n in grid)
    squeezed = array.reshape(-1, *array.shape[-dims:]) if array.ndim >= dims else array
    if squeezed.ndim != dims + 1 or squeezed.shape[0] != 1:
        raise InputDataError(f"{name} has shape {array.shape}; expected one real channel of {size} ({axes}) in Hz")
    if squeezed.shape[1:] != grid:
        flat = volume_shape(squeezed.shape[1:])[0] == 1 and volume_shape(grid)[0] > 1  # a plane where a volume belongs
        what = f" (a {dims}D frame needs a {dims}D map)" if flat else ""
        raise InputDataError(
            f"{name} has matrix {' x '.join(str(n) for n in squeezed.shape[1:])} ({axes}) but the recon grid is {size}{what}; "
            "the B0 map must be on the recon grid"
        )
    field = squeezed[0]
    if np.iscomplexobj(field):
        imaginary = float(np.max(np.abs(field.imag))) if field.size else 0.0
        if imaginary > 1e-6 * max(float(np.max(np.abs(field.real))), 1.0):
            raise InputDataError(f"{name} is complex (largest imaginary part {imaginary:.3g}); a B0 map is real, in Hz")
        field = field.real
    bad = ~np.isfinite(field)
    if np.any(bad):
        raise InputDataError(f"{name} has {int(bad.sum())} non-finite values (NaN or inf) of {field.size}")
    return field.astype(np.float32)


def read_field_map_file(path: str) -> np.ndarray:
    """The array of a B0 map file (layouts in the module docstring).

    Raises:
        ConfigError: missing file, unknown suffix, unreadable or without a map.
    """
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"fieldcorr.b0map_file {path} does not exist")
    suffix = file.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(file, allow_pickle=False)
        if suffix == ".npz":
            with np.load(file, allow_pickle=False) as archive:
                for key in ("b0map", "b0map_hz"):
                    if key in archive.files:
                        return archive[key]
            raise ConfigError(f"fieldcorr.b0map_file {path} has no array named b0map or b0map_hz")
        if suffix in (".h5", ".hdf5", ".mrd"):
            from igrog_gadget.io import read_named_arrays  # the I/O layer only when a file is named

            arrays = read_named_arrays(file, ("b0map", "b0map_hz"))
            for key in ("b0map", "b0map_hz"):
                if key in arrays:
                    return arrays[key]
            raise ConfigError(f"fieldcorr.b0map_file {path} has no b0map image series or b0map/b0map_hz dataset")
    except ConfigError:
        raise
    except (OSError, ValueError) as error:
        raise ConfigError(f"fieldcorr.b0map_file {path} cannot be read: {error}") from None
    raise ConfigError(f"fieldcorr.b0map_file {path}: unknown format {suffix!r}; use .npy, .npz, .h5 or .mrd")


def sample_times_s(frame: FrameInputs) -> np.ndarray:
    """Acquisition time of every sample, seconds after its readout's first sample (plus the
    readout start when known): shape (readouts, samples), float64.

    Raises:
        InputDataError: no sample times, or readouts whose ``sample_time_us`` is 0.
    """
    times = frame.sample_times_us
    if times is None:
        raise InputDataError("fieldcorr needs per-sample times but the frame has none (acquisition sample_time_us)")
    times = np.asarray(times, dtype=np.float64)
    if times.shape != frame.traj.shape[:2]:
        raise InputDataError(f"sample times have shape {times.shape}, the trajectory {frame.traj.shape[:2]}")
    if times.shape[1] > 1:
        missing = np.flatnonzero(np.all(times[:, 1:] <= 0, axis=1) | ~np.all(np.isfinite(times), axis=1))
        if missing.size:
            listed = ", ".join(str(i) for i in missing[:8]) + (" ..." if missing.size > 8 else "")
            raise InputDataError(
                f"fieldcorr needs per-sample times but sample_time_us is 0 (or not finite) in {missing.size} of "
                f"{times.shape[0]} readouts of the frame (readouts {listed})"
            )
    return times * 1e-6
