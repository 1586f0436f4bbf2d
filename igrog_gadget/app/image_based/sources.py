"""Where the image_based variant gets its coil images, in order of preference.

1. **Image series in the input** (file or stream; ``FrameInputs.images``):

   - ``coil_images``: complex, one channel per receive coil (one multi-channel image or
     one single-channel image per coil, in coil order), shape (coils, my, mx);
   - ``sensitivity_maps`` (complex, one channel per coil) times ``reference_image``
     (one channel, complex or real magnitude, same matrix as the maps). Without a
     ``reference_image`` the maps are multiplied by a reference the variant makes from
     the data (see 3.), or by a uniform image when the data cannot give one.

   ISMRMRD image type: any (complex images are read as they are; real images as real).
2. **A file named in the configuration** (``image_calibration.image_file``):

   - ``.npy``: complex array (coils, my, mx) (or (coils, 1, my, mx)) of coil images;
   - ``.npz``: arrays named ``coil_images``, or ``sensitivity_maps`` (+ optional
     ``reference_image``), same shapes as the series;
   - ``.h5`` / ``.hdf5`` / ``.mrd``: an ISMRMRD dataset (group ``dataset``) holding image
     series of those names, or a plain HDF5 file with datasets of those names at its root.
3. **Made from the data** when neither exists: the central ``lowres_size`` x ``lowres_size``
   region of k-space (samples with ``max(|kx|, |ky|) < lowres_size / 2 - 0.5``) is
   reconstructed per coil on a ``lowres_size`` x ``lowres_size`` image grid with the same
   field of view, by ``cg_iterations`` of conjugate gradients on the density-compensated
   normal equations ``(F^H W F + lambda I) x = F^H W y`` (``F`` the NUFFT to those samples,
   ``W`` a 1/(samples per half-grid-unit cell) density compensation). Its k-space then spans
   ``[-lowres_size/2, lowres_size/2)``.

Every image has the field of view of the recon grid: an image of matrix (my, mx) covers
k in ``[-m/2, m/2)`` grid units of the recon grid, pixel r = 0 at index m//2 (the package's
convention). Matrices up to the recon grid's are accepted (a low-resolution calibration
scan); larger ones, wrong channel counts and non-finite values are ``CalibrationError``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from igrog_gadget.app.common.frame import FrameInputs
from igrog_gadget.config import ImageCalibrationConfig
from igrog_gadget.errors import CalibrationError, ConfigError
from igrog_gadget.gridding.nufft import centred_fft2, centred_ifft2, nufft_adjoint, nufft_forward

logger = logging.getLogger(__name__)

#: Image series names the variant reads (see the module docstring).
COIL_IMAGES = "coil_images"
SENSITIVITY_MAPS = "sensitivity_maps"
REFERENCE_IMAGE = "reference_image"


@dataclass
class CalibrationImages:
    """Coil images that training pairs are synthesised from."""

    images: np.ndarray
    """Shape (coils, my, mx), complex64, field of view of the recon grid."""
    source: str
    """Where they came from: "series:coil_images", "series:sensitivity_maps", "file:<path>", "data"."""

    @property
    def matrix(self) -> tuple[int, int]:
        """(mx, my) of the images."""
        return int(self.images.shape[2]), int(self.images.shape[1])


def calibration_images(frame: FrameInputs, config: ImageCalibrationConfig) -> CalibrationImages:
    """Coil images for ``frame`` by ``config.source`` (auto: series, then file, then data).

    Raises:
        CalibrationError: images of the wrong shape or with non-finite values, or none available.
        ConfigError: ``image_file`` unreadable or of an unknown format.
    """
    source = config.source
    if source in ("auto", "series"):
        found = _from_series(frame, config)
        if found is not None:
            return found
        if source == "series":
            raise CalibrationError(
                "image_calibration.source = series but the input has no "
                f"{COIL_IMAGES!r} or {SENSITIVITY_MAPS!r} image series "
                f"(series present: {sorted(frame.images) or 'none'})"
            )
    if source in ("auto", "file") and config.image_file:
        arrays = read_image_file(config.image_file)
        return _from_arrays(arrays, frame, config, f"file:{config.image_file}", f"image_calibration.image_file {config.image_file}")
    if source == "file":
        raise ConfigError("image_calibration.source = file but image_calibration.image_file is empty")
    images = coil_images_from_data(
        frame.flat_samples(),
        frame.flat_coords(),
        size=min(config.lowres_size, *frame.matrix),
        iterations=config.cg_iterations,
        min_coverage=config.min_coverage,
    )
    return CalibrationImages(images=images, source="data")


def _from_series(frame: FrameInputs, config: ImageCalibrationConfig) -> CalibrationImages | None:
    arrays = {name: frame.images[name] for name in (COIL_IMAGES, SENSITIVITY_MAPS, REFERENCE_IMAGE) if name in frame.images}
    if COIL_IMAGES not in arrays and SENSITIVITY_MAPS not in arrays:
        return None
    what = COIL_IMAGES if COIL_IMAGES in arrays else SENSITIVITY_MAPS
    return _from_arrays(arrays, frame, config, f"series:{what}", "image series")


def _from_arrays(
    arrays: dict[str, np.ndarray], frame: FrameInputs, config: ImageCalibrationConfig, source: str, origin: str
) -> CalibrationImages:
    """Coil images from ``coil_images`` or ``sensitivity_maps`` (+ ``reference_image``)."""
    if COIL_IMAGES in arrays:
        images = _check_channels(arrays[COIL_IMAGES], f"{origin} {COIL_IMAGES!r}", frame)
        return CalibrationImages(images=images, source=source)
    if SENSITIVITY_MAPS not in arrays:
        raise CalibrationError(f"{origin}: holds neither {COIL_IMAGES!r} nor {SENSITIVITY_MAPS!r}")
    maps = _check_channels(arrays[SENSITIVITY_MAPS], f"{origin} {SENSITIVITY_MAPS!r}", frame)
    if REFERENCE_IMAGE in arrays:
        reference = np.asarray(arrays[REFERENCE_IMAGE])
        name = f"{origin} {REFERENCE_IMAGE!r}"
        reference = reference.reshape(-1, *reference.shape[-2:]) if reference.ndim >= 2 else reference
        if reference.ndim != 3 or reference.shape[0] != 1 or reference.shape[1:] != maps.shape[1:]:
            raise CalibrationError(
                f"{name} has shape {tuple(np.shape(arrays[REFERENCE_IMAGE]))}; expected one channel of "
                f"{maps.shape[1]} x {maps.shape[2]} (the matrix of the sensitivity maps)"
            )
        _check_finite(reference, name)
        reference = reference[0]
        how = "given reference image"
    else:
        reference = reference_from_data(maps, frame, config)
        how = "reference image made from the data" if reference is not None else "uniform reference"
        if reference is None:
            reference = np.ones(maps.shape[1:], dtype=np.complex64)
    logger.info("coil images = sensitivity maps x %s", how)
    return CalibrationImages(images=(maps * reference[None]).astype(np.complex64), source=f"{source}+{how}")


def _check_finite(array: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(array)
    if np.any(bad):
        raise CalibrationError(f"{name} has {int(bad.sum())} non-finite values (NaN or inf) of {array.size}")


def _check_channels(array: np.ndarray, name: str, frame: FrameInputs) -> np.ndarray:
    """``array`` as (coils, my, mx) complex64, validated against the frame."""
    array = np.asarray(array)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    nx, ny = frame.matrix
    if array.ndim != 3:
        raise CalibrationError(f"{name} has shape {array.shape}; expected (coils, ny, nx) = ({frame.num_coils}, {ny}, {nx})")
    if array.shape[0] != frame.num_coils:
        raise CalibrationError(
            f"{name} has {array.shape[0]} channels but the data have {frame.num_coils} coils "
            f"(shape {array.shape}; expected ({frame.num_coils}, {ny}, {nx}))"
        )
    if array.shape[1] > ny or array.shape[2] > nx or min(array.shape[1:]) < 8:
        raise CalibrationError(
            f"{name} has matrix {array.shape[1]} x {array.shape[2]} (ny x nx); expected the recon grid's "
            f"{ny} x {nx} or a smaller one (at least 8 x 8) with the same field of view"
        )
    _check_finite(array, name)
    if not np.any(array):
        raise CalibrationError(f"{name} is all zero")
    return array.astype(np.complex64)


def reference_from_data(maps: np.ndarray, frame: FrameInputs, config: ImageCalibrationConfig) -> np.ndarray | None:
    """A reference image for ``maps`` from the data: the SENSE combination of the variant's own
    low-resolution coil images, zero-padded in k-space to the maps' matrix.

    Args:
        maps: shape (coils, my, mx) complex.
    Returns:
        shape (my, mx) complex64, or None when the data's centre is not densely sampled.
    """
    my, mx = maps.shape[1:]
    try:
        lowres = coil_images_from_data(
            frame.flat_samples(),
            frame.flat_coords(),
            size=min(config.lowres_size, mx, my),
            iterations=config.cg_iterations,
            min_coverage=config.min_coverage,
        )
    except CalibrationError as error:
        logger.info("no reference image from the data (%s)", error)
        return None
    upsampled = centred_ifft2(_zero_pad(centred_fft2(lowres), (my, mx)))
    power = np.sum(np.abs(maps) ** 2, axis=0)
    combined = np.sum(np.conj(maps) * upsampled, axis=0) / np.maximum(power, 1e-6 * power.max())
    return combined.astype(np.complex64)


def _zero_pad(kspace: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centred zero padding of (..., ay, ax) k-space to (..., ny, nx) (k = 0 stays at n//2)."""
    ay, ax = kspace.shape[-2:]
    ny, nx = shape
    out = np.zeros((*kspace.shape[:-2], ny, nx), dtype=kspace.dtype)
    oy, ox = ny // 2 - ay // 2, nx // 2 - ax // 2
    out[..., oy : oy + ay, ox : ox + ax] = kspace
    return out


def _density_weights(coords: np.ndarray, cell: float = 0.5) -> np.ndarray:
    """Density compensation 1 / (samples in the same ``cell``-sized bin); shape (n,)."""
    bins = np.floor(coords / cell).astype(np.int64)
    _, inverse, counts = np.unique(bins, axis=0, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse.reshape(-1)]


def centre_coverage(coords: np.ndarray, size: int) -> float:
    """Share of the grid cells with ``max(|kx|, |ky|) < size / 2`` (less one) that hold a sample.

    Args:
        coords: shape (n, 2), grid units.
    """
    half = size // 2 - 1
    cells = np.floor(coords + 0.5).astype(np.int64)
    inside = np.all(np.abs(cells) <= half, axis=1)
    hit = np.zeros((2 * half + 1, 2 * half + 1), dtype=bool)
    hit[cells[inside, 1] + half, cells[inside, 0] + half] = True
    return float(hit.mean())


def coil_images_from_data(
    samples: np.ndarray,
    coords: np.ndarray,
    size: int = 48,
    iterations: int = 15,
    min_coverage: float = 0.9,
    regularization: float = 1e-4,
) -> np.ndarray:
    """Low-resolution coil images from the central region of non-Cartesian data.

    Solves ``(F^H W F + lambda I) x = F^H W y`` by conjugate gradients, ``x`` a
    ``size`` x ``size`` image per coil over the full field of view, ``F`` the NUFFT to the
    samples with ``max(|kx|, |ky|) < size/2 - 0.5``, ``W`` a density compensation and
    ``lambda = regularization`` times the largest eigenvalue estimate (1 for the weights used).

    Args:
        samples: shape (coils, n), complex.
        coords: shape (n, 2), (kx, ky) grid units.
        size: image matrix (even, >= 8).
    Returns:
        shape (coils, size, size), complex64.
    Raises:
        CalibrationError: the central region is not densely sampled (cell coverage below
            ``min_coverage``), so the reconstruction would be aliased.
    """
    size = int(size) - int(size) % 2
    if size < 8:
        raise CalibrationError(f"image_calibration.lowres_size gives a {size} x {size} grid; need at least 8")
    coverage = centre_coverage(coords, size)
    if coverage < min_coverage:
        raise CalibrationError(
            "cannot make coil images from the data: the central "
            f"{size} x {size} region of k-space is not densely sampled ({coverage:.0%} of its grid cells hold a "
            f"sample, need {min_coverage:.0%}); give a coil_images or sensitivity_maps image series, "
            "image_calibration.image_file, or lower image_calibration.lowres_size"
        )
    band = np.max(np.abs(coords), axis=1) < size / 2 - 0.5
    used_coords = coords[band]
    used = samples[:, band].astype(np.complex64)
    weights = _density_weights(used_coords)
    weights = weights / weights.max()
    shape = (size, size)

    def normal(image: np.ndarray) -> np.ndarray:
        return nufft_adjoint(weights * nufft_forward(image, used_coords), used_coords, shape) + regularization * image

    rhs = nufft_adjoint(weights * used, used_coords, shape)
    x = np.zeros_like(rhs)
    residual = rhs.copy()
    direction = residual.copy()
    rr = float(np.vdot(residual, residual).real)
    stop = 1e-12 * rr
    for _ in range(iterations):
        if rr <= stop:
            break
        a_dir = normal(direction)
        alpha = rr / max(float(np.vdot(direction, a_dir).real), 1e-30)
        x = x + alpha * direction
        residual = residual - alpha * a_dir
        rr_new = float(np.vdot(residual, residual).real)
        direction = residual + (rr_new / rr) * direction
        rr = rr_new
    logger.info(
        "coil images from the data: %d samples in the central %d x %d, coverage %.0f%%, %d CG iterations",
        used.shape[1], size, size, 100 * coverage, iterations,
    )
    return x.astype(np.complex64)


def read_image_file(path: str) -> dict[str, np.ndarray]:
    """Arrays by series name from a configured file (layouts in the module docstring).

    Raises:
        ConfigError: missing file, unknown suffix, unreadable content or no known array in it.
    """
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"image_calibration.image_file {path} does not exist")
    suffix = file.suffix.lower()
    names = (COIL_IMAGES, SENSITIVITY_MAPS, REFERENCE_IMAGE)
    try:
        if suffix == ".npy":
            return {COIL_IMAGES: np.load(file, allow_pickle=False)}
        if suffix == ".npz":
            with np.load(file, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in names if name in archive.files}
            if not arrays:
                raise ConfigError(f"image_calibration.image_file {path} holds none of {', '.join(names)}")
            return arrays
        if suffix in (".h5", ".hdf5", ".mrd"):
            arrays = read_hdf5_arrays(file, names)
            if not arrays:
                raise ConfigError(
                    f"image_calibration.image_file {path} holds no ISMRMRD image series or HDF5 dataset named "
                    f"{', '.join(names)}"
                )
            return arrays
    except (OSError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"image_calibration.image_file {path} cannot be read: {error}") from None
    raise ConfigError(f"image_calibration.image_file {path}: unknown format {suffix!r}; use .npy, .npz, .h5 or .mrd")


def read_hdf5_arrays(file: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Named arrays from an HDF5 file: ISMRMRD image series in group ``dataset`` (each series'
    images stacked along channels), else datasets of those names at the root."""
    import h5py

    from igrog_gadget.io.reader import _image_series, _read_images_and_waveforms

    with h5py.File(file, "r") as handle:
        root = {name: np.asarray(handle[name]) for name in names if name in handle and isinstance(handle[name], h5py.Dataset)}
        group = handle.get("dataset")
        series = [s for s in _image_series(group) if s in names] if isinstance(group, h5py.Group) else []
    if series:
        items, _ = _read_images_and_waveforms(str(file), "dataset", series, False)
        arrays: dict[str, list[np.ndarray]] = {}
        for item in items:
            data = np.asarray(item.data)
            arrays.setdefault(item.series, []).append(data.reshape(-1, *data.shape[-2:]))
        return {name: np.concatenate(parts) for name, parts in arrays.items()}
    return root
