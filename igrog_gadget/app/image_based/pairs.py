"""Training pairs from coil images, at the trajectory's own samples or at given targets, 2D or 3D.

With coil images that cover k-space beyond the centre (an image series or file), the pairs can
be exactly the gridding problems the kernels will solve: for random imaging samples j whose
grid point g_j lies in a central region of k-space, the sources are the images' k-space
at the sample's own source positions (NUFFT) and the target their value at g_j (FFT). Complex
Gaussian noise of std ``noise_std / sqrt(hits(g_j))`` is added to the sources: the gridded
value of g_j is the mean of ``hits(g_j)`` kernel outputs, so this is the noise the kernel's
output really carries, and training with it is a ridge on the kernels' noise gain weighted
the way the gridding weighs it.

One implementation serves image_based (``trajectory_pairs``: field-free sources, samples in the
central ``image_calibration.trajectory_region``) and fieldcorr's kernel mode (sources with the
B0 field's phase at their own times, samples anywhere the images cover): ``sample_targets``
draws the samples, ``image_pairs`` makes the pairs; the region limits and the source values are
the caller's. Positions are (kx, ky) or (kx, ky, kz) (the geometry's), images (coils, my, mx) or
(coils, mz, my, mx).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from igrog_gadget.core.pairs import TrainingPairs, complex_noise, packed_pairs, rms_scale
from igrog_gadget.errors import CalibrationError
from igrog_gadget.numerics.fft import centred_fftn
from igrog_gadget.numerics.geometry import SampleGeometry
from igrog_gadget.numerics.nufft import nufft_forward

logger = logging.getLogger(__name__)


def image_kspace(images: np.ndarray) -> np.ndarray:
    """The centred orthonormal FFT of coil images over their 2 or 3 image axes: (coils, [mz,] my, mx)."""
    return centred_fftn(images, tuple(range(1 - images.ndim, 0)))


def grid_points(geometry: SampleGeometry) -> np.ndarray:
    """Each kept sample's target grid point in grid units, k = 0 at index n//2: shape (n, dims),
    int64, columns (gx, gy[, gz])."""
    columns, index = [], geometry.grid_index
    for n in geometry.matrix:  # (nx, ny[, nz]): x fastest in the flat index
        columns.append(index % n - n // 2)
        index = index // n
    return np.stack(columns, axis=1)


def hits_at(geometry: SampleGeometry, samples: np.ndarray) -> np.ndarray:
    """Samples gridded onto the grid point of each of ``samples`` (indices of kept samples): (m,) int64."""
    return np.bincount(geometry.grid_index, minlength=int(np.prod(geometry.matrix)))[geometry.grid_index[samples]]


def sample_targets(
    geometry: SampleGeometry, num_pairs: int, limits: Sequence[float], rng: np.random.Generator, region: str
) -> tuple[np.ndarray, np.ndarray]:
    """Random imaging samples (with replacement) whose grid point g has ``|g_d| < limits[d]`` on
    every axis (x, y[, z]).

    Returns:
        ``(pick (num_pairs,) int64 kept-sample indices, targets (num_pairs, dims) int64 grid points)``.
    Raises:
        CalibrationError: no sample's grid point lies in the region (``region`` says which, in words).
    """
    points = grid_points(geometry)
    inside = np.all(np.abs(points) < np.asarray(limits, dtype=np.float64)[None, :], axis=1)
    allowed = np.flatnonzero(inside)
    if allowed.size == 0:
        box = " x ".join(f"{2 * limit:.0f}" for limit in limits)
        raise CalibrationError(f"no imaging sample lies within the central {box} of k-space {region}")
    pick = allowed[rng.integers(0, allowed.size, num_pairs)]
    logger.info("pairs at %d of %d samples (grid points within the central %s)", allowed.size, geometry.num_samples,
                " x ".join(f"{2 * limit:.0f}" for limit in limits))
    return pick, points[pick]


def image_pairs(
    kspace: np.ndarray,
    offsets: np.ndarray,
    targets: np.ndarray,
    values: Callable[[np.ndarray], np.ndarray],
    jitter: float,
    component_std: np.ndarray | None,
    rng: np.random.Generator,
    normalize: bool = True,
    extra: dict[str, np.ndarray] | None = None,
) -> TrainingPairs:
    """Pairs of sources at ``targets + offsets`` and the images' k-space at ``targets``.

    Args:
        kspace: shape (coils, [mz,] my, mx): the images' centred k-space (``image_kspace``), k = 0
            at index m//2; the targets' values and the scale.
        offsets: shape (pairs, sources, dims), grid units: the pairs' source offsets (jittered here).
        targets: shape (pairs, dims), int: target grid points (gx, gy[, gz]) inside ``kspace``.
        values: the sources' values, positions (pairs * sources, dims) → (coils, pairs * sources).
        jitter: std of Gaussian noise added to the offsets (grid units).
        component_std: shape (pairs,): std of the real and of the imaginary part of the noise
            added to each pair's sources (None: none).
        normalize: scale each pair to unit mean source power.
        extra: per-pair inputs kept with the pairs (e.g. fieldcorr's times).
    """
    count, num_sources, dims = offsets.shape
    coils = kspace.shape[0]
    offsets = offsets.astype(np.float32)
    if jitter > 0:
        offsets = offsets + rng.normal(0.0, jitter, offsets.shape).astype(np.float32)
    positions = (targets[:, None, :] + offsets).reshape(-1, dims)
    per_coil = values(positions).reshape(coils, count, num_sources)
    sources = per_coil.transpose(1, 0, 2).reshape(count, coils * num_sources)
    if component_std is not None:
        sources = sources + component_std[:, None] * complex_noise(rng, sources.shape)
    index = tuple(targets[:, axis] + kspace.shape[-1 - axis] // 2 for axis in reversed(range(dims)))  # ([iz,] iy, ix)
    on_grid = kspace[(slice(None),) + index].T
    scale = rms_scale(kspace)
    return packed_pairs(offsets, sources / scale, on_grid / scale, scale, normalize, extra=extra)


def trajectory_pairs(
    images: np.ndarray,
    geometry: SampleGeometry,
    num_pairs: int,
    region: float,
    edge_margin: float,
    jitter: float,
    noise_std: float,
    rng: np.random.Generator,
    normalize: bool = True,
) -> TrainingPairs:
    """Field-free pairs at the frame's own samples (see the module docstring), 2D or 3D.

    Args:
        images: shape (coils, my, mx) (3D: (coils, mz, my, mx)), complex: coil images on the
            recon grid's field of view.
        geometry: the frame's sample geometry.
        num_pairs: pairs to make (samples are drawn with replacement).
        region: keep samples whose grid point has ``max_d |g_d| / n_d < region / 2``.
        edge_margin: grid units kept between a pair's positions and the images' k-space edge.
        jitter: std of Gaussian noise added to the offsets (grid units).
        noise_std: the data's complex noise std in the images' k-space units (0 = none).
        normalize: scale each pair to unit mean source power.
    Raises:
        CalibrationError: no imaging sample lies in the usable region.
    """
    image_matrix = tuple(reversed(images.shape[1:]))  # (mx, my[, mz])
    reach = float(np.max(np.abs(geometry.offsets))) if geometry.num_samples else 0.0
    limits = [min(region * n / 2, m / 2 - edge_margin - reach) for n, m in zip(geometry.matrix, image_matrix)]
    pick, targets = sample_targets(
        geometry, num_pairs, limits, rng,
        f"that the {' x '.join(str(m) for m in images.shape[1:])} calibration images cover (less edge_margin); "
        "use image_calibration.pair_positions = random",
    )
    component_std = None
    if noise_std > 0:
        component_std = noise_std / np.sqrt(2.0 * np.maximum(hits_at(geometry, pick), 1))
    logger.info("trajectory pairs: noise std %.3g", noise_std)
    return image_pairs(
        image_kspace(images), geometry.offsets[pick], targets, lambda positions: nufft_forward(images, positions),
        jitter, component_std, rng, normalize,
    )
