"""Where the image_based variant gets its coil images, in order of preference.

1. **Image series in the input** (file or stream; ``FrameInputs.images``):

   - ``coil_images``: complex, one channel per receive coil (one multi-channel image or
     one single-channel image per coil, in coil order), shape (coils, my, mx); for a 3D frame
     (kooshball, 3D stack of spirals, cones) 3D images (coils, mz, my, mx) (ISMRMRD images
     with ``matrix_size[2]`` = mz > 1);
   - ``sensitivity_maps`` (complex, one channel per coil) times ``reference_image``
     (one channel, complex or real magnitude, same matrix as the maps). To give every
     spatial frequency energy, 10 % (of its RMS) of white noise is added to the reference.
     Maps without a ``reference_image`` are a last resort (with ``source = auto``): the
     configured file and images made from the data come first, and only when neither exists
     are the maps multiplied by white noise alone (see ``broadband_reference``; measured
     about 1.5x the error of images made from the data).

   ISMRMRD image type: any (complex images are read as they are; real images as real).
2. **A file named in the configuration** (``image_calibration.image_file``):

   - ``.npy``: complex array (coils, my, mx) (or (coils, 1, my, mx)) of coil images; a 3D
     frame's: (coils, mz, my, mx);
   - ``.npz``: arrays named ``coil_images``, or ``sensitivity_maps`` (+ optional
     ``reference_image``), same shapes as the series;
   - ``.h5`` / ``.hdf5`` / ``.mrd``: an ISMRMRD dataset (group ``dataset``) holding image
     series of those names, or a plain HDF5 file with datasets of those names at its root.
3. **Made from the data** when neither exists: the central ``lowres_size`` x ``lowres_size``
   region of k-space (samples with ``max(|kx|, |ky|) < lowres_size / 2 - 0.5``) is
   reconstructed per coil on a ``lowres_size`` x ``lowres_size`` image grid with the same
   field of view, by ``cg_iterations`` of conjugate gradients on the density-compensated
   normal equations ``(F^H W F + lambda I) x = F^H W y`` (``F`` the NUFFT to those samples,
   ``W`` a 1/(samples per half-grid-unit cell) density compensation; the solver of
   ``gridding.calibration.fit_centre``). Its k-space then spans
   ``[-lowres_size/2, lowres_size/2)``. The central ``target_size`` square (where the training
   targets lie) must be densely sampled: ``min_coverage`` of the grid cells within radius
   ``target_size / sqrt(2) + 1`` hold a sample, else ``CalibrationError``. A 3D frame's images
   are ``lowres_size``^3 (at most the matrix) from its central cube; a kooshball's densely
   sampled ball grows only with the square root of its spokes (radius about
   ``sqrt(spokes / 2 pi)``), so there the dense cube is the largest even side from
   ``target_size`` down to 8 whose ball (radius ``side * sqrt(3) / 2 + 1``) is covered, and the
   targets lie in it (``CalibrationImages.dense_size``).

Noise level: training adds noise to the sources (see ``ImageBasedDataModule``). Its level is
the data's noise std estimated from the residual of that CG fit (degrees of freedom
corrected); for images given in a series or file it is converted to the images' units by
the ratio of the images' and the data's k-space RMS over the fitted region.

Every image has the field of view of the recon grid: an image of matrix (my, mx) (3D:
(mz, my, mx)) covers k in ``[-m/2, m/2)`` grid units of the recon grid, pixel r = 0 at index
m//2 (the package's convention). Matrices up to the recon grid's are accepted (a low-resolution calibration
scan); larger ones, wrong channel counts and non-finite values are ``CalibrationError``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from igrog_gadget.core.frame import FrameInputs
from igrog_gadget.core.pairs import complex_noise, rms_scale
from igrog_gadget.config import ImageCalibrationConfig
from igrog_gadget.errors import CalibrationError, ConfigError
from igrog_gadget.numerics.calibration import (
    calibration_radius,
    centre_coverage,
    fit_centre,
    largest_calibration_size,
    sparse_centre,
)
from igrog_gadget.numerics.dimensions import dimensions, volume_shape
from igrog_gadget.numerics.fft import centred_fftn
from igrog_gadget.numerics.nufft import nufft_forward

logger = logging.getLogger(__name__)

#: Image series names the variant reads (see the module docstring).
COIL_IMAGES = "coil_images"
SENSITIVITY_MAPS = "sensitivity_maps"
REFERENCE_IMAGE = "reference_image"


@dataclass
class CalibrationImages:
    """Coil images that training pairs are synthesised from."""

    images: np.ndarray
    """Shape (coils, my, mx) (3D: (coils, mz, my, mx)), complex64, field of view of the recon grid."""
    source: str
    """Where they came from: "series:coil_images", "series:sensitivity_maps+...", "file:<path>", "data"."""
    noise_std: float | None = None
    """The data's complex noise std per k-space sample in the units of the images' k-space
    (estimated; None when unknown). Training adds noise of this level to the sources."""
    weak: bool = False
    """Sensitivity maps without a reference image (x white noise): used only when nothing better exists."""
    dense_size: int | None = None
    """Side of the central block of the images' k-space the data determine, where it is less than
    the images' (3D images made from a kooshball's centre; None: all of it)."""

    @property
    def matrix(self) -> tuple[int, ...]:
        """(mx, my) of the images; (mx, my, mz) of 3D images."""
        return tuple(int(n) for n in reversed(self.images.shape[1:]))


def calibration_images(frame: FrameInputs, config: ImageCalibrationConfig, seed: int = 0) -> CalibrationImages:
    """Coil images for ``frame`` by ``config.source`` (auto: series, then file, then data).

    ``seed`` (``training.seed``) seeds the white reference of sensitivity maps.

    Raises:
        CalibrationError: images of the wrong shape or with non-finite values, or none available.
        ConfigError: ``image_file`` unreadable or of an unknown format.
    """
    source = config.source
    found: CalibrationImages | None = None
    weak: CalibrationImages | None = None  # sensitivity maps without a reference image: a last resort
    if source in ("auto", "series"):
        found = _from_series(frame, seed)
        if found is None and source == "series":
            raise CalibrationError(
                "image_calibration.source = series but the input has no "
                f"{COIL_IMAGES!r} or {SENSITIVITY_MAPS!r} image series "
                f"(series present: {', '.join(sorted(frame.images)) or 'none'})"
            )
        if found is not None and found.weak and source == "auto":
            weak, found = found, None
    if found is None and source in ("auto", "file") and config.image_file:
        arrays = read_image_file(config.image_file)
        found = _from_arrays(
            arrays, frame, f"file:{config.image_file}", f"image_calibration.image_file {config.image_file}", seed
        )
        if found.weak and source == "auto":
            weak, found = weak or found, None
    if found is None and source == "file":
        raise ConfigError("image_calibration.source = file but image_calibration.image_file is empty")
    if found is None:
        try:
            images, noise_std, dense = _images_from_frame(frame, config)
            if weak is not None:
                logger.info("sensitivity maps without a reference image: coil images made from the data instead")
            return CalibrationImages(images=images, source="data", noise_std=noise_std, dense_size=dense)
        except CalibrationError:
            if weak is None:
                raise
            logger.warning("the data cannot give coil images: using sensitivity maps x white noise (no reference image)")
            found = weak
    found.noise_std = data_noise_in_image_units(frame, found.images, config)
    return found


def _from_series(frame: FrameInputs, seed: int) -> CalibrationImages | None:
    arrays = {name: frame.images[name] for name in (COIL_IMAGES, SENSITIVITY_MAPS, REFERENCE_IMAGE) if name in frame.images}
    if COIL_IMAGES not in arrays and SENSITIVITY_MAPS not in arrays:
        return None
    what = COIL_IMAGES if COIL_IMAGES in arrays else SENSITIVITY_MAPS
    return _from_arrays(arrays, frame, f"series:{what}", "image series", seed)


def _from_arrays(
    arrays: dict[str, np.ndarray], frame: FrameInputs, source: str, origin: str, seed: int
) -> CalibrationImages:
    """Coil images from ``coil_images`` or ``sensitivity_maps`` (+ ``reference_image``)."""
    if COIL_IMAGES in arrays:
        images = _check_channels(arrays[COIL_IMAGES], f"{origin} {COIL_IMAGES!r}", frame)
        return CalibrationImages(images=images, source=source)
    if SENSITIVITY_MAPS not in arrays:
        raise CalibrationError(f"{origin}: holds neither {COIL_IMAGES!r} nor {SENSITIVITY_MAPS!r}")
    maps = _check_channels(arrays[SENSITIVITY_MAPS], f"{origin} {SENSITIVITY_MAPS!r}", frame)
    reference = None
    if REFERENCE_IMAGE in arrays:
        name = f"{origin} {REFERENCE_IMAGE!r}"
        given = np.asarray(arrays[REFERENCE_IMAGE])
        axes = maps.ndim - 1  # image axes: 2, or 3 for a 3D frame's maps
        reference = given.reshape(-1, *given.shape[-axes:]) if given.ndim >= axes else given
        if reference.ndim != maps.ndim or reference.shape[0] != 1 or reference.shape[1:] != maps.shape[1:]:
            raise CalibrationError(
                f"{name} has shape {given.shape}; expected one channel of "
                f"{' x '.join(str(n) for n in maps.shape[1:])} (the matrix of the sensitivity maps)"
            )
        _check_finite(reference, name)
        reference = reference[0]
    images = maps * broadband_reference(reference, maps.shape[1:], seed=seed)[None]
    how = "reference image" if reference is not None else "white reference"
    logger.info("coil images = sensitivity maps x %s", how)
    return CalibrationImages(images=images.astype(np.complex64), source=f"{source}+{how}", weak=reference is None)


#: Offset of the white reference's random stream from ``training.seed`` (seed 0 draws what
#: the fixed seed 12345 drew before the seed was configurable).
_REFERENCE_STREAM = 12345


def broadband_reference(
    reference: np.ndarray | None, shape: tuple[int, ...], floor: float = 0.1, seed: int = 0
) -> np.ndarray:
    """The image sensitivity maps are multiplied by: ``reference`` plus white noise.

    Training pairs are normalised to unit power, so k-space regions where the coil images have
    (almost) no energy would train on round-off. Multiplying the maps by an image with energy at
    every spatial frequency keeps every pair consistent with the coil model ``S_c * rho``:
    ``reference + floor * rms(reference) * w`` with ``w`` white complex Gaussian (a local
    generator seeded from ``seed``, the configuration's ``training.seed``),
    or ``w`` alone without a reference.

    Returns:
        shape ``shape`` (my, mx) (3D: (mz, my, mx)), complex64.
    """
    rng = np.random.default_rng((_REFERENCE_STREAM + seed) % 2**63)
    white = complex_noise(rng, shape) / np.sqrt(2.0)
    if reference is None:
        return white.astype(np.complex64)
    rms = rms_scale(reference)
    return (reference + floor * rms * white).astype(np.complex64)


def _check_finite(array: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(array)
    if np.any(bad):
        raise CalibrationError(f"{name} has {int(bad.sum())} non-finite values (NaN or inf) of {array.size}")


def _check_channels(array: np.ndarray, name: str, frame: FrameInputs) -> np.ndarray:
    """``array`` as (coils, my, mx) complex64 (a 3D frame's: (coils, mz, my, mx)), validated
    against the frame."""
    array = np.asarray(array)
    profile = dimensions(frame.dims)
    dims = profile.dims
    grid = profile.grid_shape(frame.matrix)  # ([nz,] ny, nx)
    if array.ndim == 4 and array.shape[1] == 1 and volume_shape(grid)[0] == 1:
        array = array[:, 0]  # a plane's images as ISMRMRD stores them: (coils, nz = 1, ny, nx)
    transform = frame.coil_transform
    if array.ndim == dims + 1 and transform is not None and array.shape[0] == transform.num_physical != frame.num_coils:
        array = transform.to_virtual(array)  # physical-coil images of a file, data in virtual coils
    axes = profile.array_label()
    expected = f"(coils, {axes.replace(' x ', ', ')}) = ({', '.join(str(n) for n in (frame.num_coils, *grid))})"
    if array.ndim != dims + 1:
        what = f"; a {dims}D frame needs {dims}D images" if array.ndim in (3, 4) else ""
        raise CalibrationError(f"{name} has shape {array.shape}; expected {expected}{what}")
    if array.shape[0] != frame.num_coils:
        raise CalibrationError(
            f"{name} has {array.shape[0]} channels but the data have {frame.num_coils} coils "
            f"(shape {array.shape}; expected {expected})"
        )
    if any(m > n for m, n in zip(array.shape[1:], grid)) or min(array.shape[1:]) < 8:
        raise CalibrationError(
            f"{name} has matrix {' x '.join(str(n) for n in array.shape[1:])} ({axes}); expected the recon grid's "
            f"{' x '.join(str(n) for n in grid)} or a smaller one (at least {' x '.join(['8'] * dims)}) with the same field of view"
        )
    _check_finite(array, name)
    if not np.any(array):
        raise CalibrationError(f"{name} is all zero")
    return array.astype(np.complex64)


#: Smallest side of the dense central cube 3D coil images are made from (see the module docstring).
MIN_DENSE_SIZE_3D = 8


def min_dense_size(frame: FrameInputs) -> int | None:
    """The smallest dense centre ``frame``'s coil images may come from (``coil_images_from_data``'s
    ``min_dense_size``). Kept per dimensionality (the sampling differs, see the module docstring):
    a kooshball's dense ball grows only with the square root of its spokes, so a 3D frame's images
    come from the largest dense cube down to ``MIN_DENSE_SIZE_3D``; a 2D frame's central
    ``target_size`` square must be dense (None)."""
    return MIN_DENSE_SIZE_3D if frame.dims == 3 else None


def coil_images_from_data(
    samples: np.ndarray,
    coords: np.ndarray,
    size: int = 48,
    iterations: int = 15,
    min_coverage: float = 0.9,
    dense_size: int | None = None,
    min_dense_size: int | None = None,
) -> tuple[np.ndarray, float]:
    """Low-resolution coil images from the central region of non-Cartesian data, 2D or 3D.

    The CG-NUFFT solve of ``igrog_gadget.numerics.calibration.fit_centre`` with an image
    grid of ``size`` x ``size`` (3D positions: ``size``^3; the whole k-space of the solution,
    ``[-size/2, size/2)``, is kept): ``(F^H W F + lambda I) x = F^H W y`` over the samples with
    ``max(|k_d|) < size/2 - 0.5``, ``W`` a density compensation.

    Args:
        samples: shape (coils, n), complex.
        coords: shape (n, 2) = (kx, ky) or (n, 3) = (kx, ky, kz), grid units.
        size: image matrix (made even, >= 8).
        dense_size: the central square (cube) that must be densely sampled (default ``size``):
            ``min_coverage`` of the grid cells within radius ``calibration_radius(dense_size, dims)``
            must hold a sample (beyond it the solution is regularised, not aliased, but less exact).
        min_dense_size: when given, a sparser centre is accepted down to this side (the largest
            even side whose ball is covered; ``dense_size`` exact otherwise).
    Returns:
        ``(images (coils, size, size[, size]) complex64, noise_std)``: the images and the complex
        noise std of one k-space sample estimated from the fit residual (data units).
    Raises:
        CalibrationError: the centre is not densely sampled.
    """
    images, noise_std, _ = _coil_images(samples, coords, size, iterations, min_coverage, dense_size, min_dense_size)
    return images, noise_std


def _coil_images(
    samples: np.ndarray,
    coords: np.ndarray,
    size: int,
    iterations: int,
    min_coverage: float,
    dense_size: int | None,
    min_dense_size: int | None,
) -> tuple[np.ndarray, float, int]:
    """``coil_images_from_data`` and the side of the densely sampled centre it used."""
    dims = int(coords.shape[1])
    size = int(size) - int(size) % 2
    if size < 8:
        grid = " x ".join([str(size)] * dims)
        raise CalibrationError(f"image_calibration.lowres_size gives a {grid} grid; need at least 8")
    dense = min(size, dense_size or size)
    if min_dense_size is not None:
        top = dense - dense % 2
        side, coverage = largest_calibration_size(coords, top, min(min_dense_size, top), min_coverage)
        dense = side or min(min_dense_size, top)
    radius = calibration_radius(dense, dims)
    coverage = centre_coverage(coords, radius)
    if coverage < min_coverage:
        raise CalibrationError(
            f"cannot make coil images from the data: {sparse_centre(coverage, radius, min_coverage)}; "
            f"give a {COIL_IMAGES!r} or {SENSITIVITY_MAPS!r} image series or image_calibration.image_file"
        )
    fit = fit_centre(samples, coords, grid=size, iterations=iterations)
    axes = tuple(range(-dims, 0))
    images = centred_fftn(fit.block(size, "coil images").kspace, axes, inverse=True).astype(np.complex64)  # its whole k-space
    logger.info(
        "coil images from the data: %s, dense centre %d, coverage %.0f%%, noise std %.3g",
        " x ".join([str(size)] * dims), dense, 100 * coverage, fit.noise_std,
    )
    return images, fit.noise_std, dense


def _images_from_frame(frame: FrameInputs, config: ImageCalibrationConfig) -> tuple[np.ndarray, float, int | None]:
    """Coil images made from ``frame``'s centre: ``(images, noise std, dense side)``; the dense
    side is None where the targets may use all of the images' k-space (2D: the central
    ``target_size`` square must be dense; 3D: the largest dense cube, see the module docstring)."""
    smallest = min_dense_size(frame)
    images, noise_std, dense = _coil_images(
        frame.flat_samples(),
        frame.flat_coords(),
        size=min(config.lowres_size, *frame.matrix),
        iterations=config.cg_iterations,
        min_coverage=config.min_coverage,
        dense_size=config.target_size or None,
        min_dense_size=smallest,
    )
    return images, noise_std, dense if smallest is not None and dense < images.shape[-1] else None


def data_noise_in_image_units(frame: FrameInputs, images: np.ndarray, config: ImageCalibrationConfig) -> float | None:
    """The data's noise level expressed in the k-space units of ``images`` (for given images).

    A central CG fit of the data (``coil_images_from_data``) gives the noise std and the RMS of
    the samples it used; their ratio times the RMS of the images' k-space at the same positions
    is the noise std the images would have at the data's SNR. None when the centre is not dense.
    """
    coords = frame.flat_coords()
    size = min(config.lowres_size, *frame.matrix, *images.shape[1:])
    try:
        _, noise_std = coil_images_from_data(
            frame.flat_samples(),
            coords,
            size=size,
            iterations=config.cg_iterations,
            min_coverage=config.min_coverage,
            dense_size=config.target_size or None,
            min_dense_size=min_dense_size(frame),
        )
    except CalibrationError as error:
        logger.info("no noise estimate for the calibration images: %s", error)
        return None
    band = np.max(np.abs(coords), axis=1) < size / 2 - 0.5
    data_rms = float(np.sqrt(np.mean(np.abs(frame.flat_samples()[:, band]) ** 2)))
    image_rms = float(np.sqrt(np.mean(np.abs(nufft_forward(images, coords[band])) ** 2)))
    if data_rms <= 0:
        return None
    return noise_std / data_rms * image_rms


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
            from igrog_gadget.io import read_named_arrays  # the I/O layer only when a file is named

            arrays = read_named_arrays(file, names)
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
