"""Numerical phantom: a smooth-edged, textured, complex modified Shepp-Logan, 2D or 3D.

The phantom is an analytic object evaluated at pixel centres, so it can be
sampled on any grid that covers the same field of view (FOV). The simulator
evaluates it on the fine grid (``M = 2 N`` per axis) so that the object is not
band-limited to the gridding matrix. One object for both dimensionalities: the 2D
phantom is the modified 3D Shepp-Logan's ellipsoids seen in the x-y plane (their
in-plane semi-axes and centres), each slice of a 2D scan rotated and scaled a little.

Coordinates (shared with :mod:`igrog_gadget.simulate.coils` and the B0 map):
pixel index ``i`` of a ``size``-long axis sits at the normalised position
``u = 2 (i - size // 2) / size`` in ``[-1, 1)``: ``u = 0`` at index
``size // 2`` and ``u = +-1`` at the FOV edges. Arrays are indexed ``[y, x]``
(``[z, y, x]`` in 3D); a grid is given by its array shape, or by one size for a
square 2D grid.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.special import erfc

logger = logging.getLogger(__name__)

#: Modified 3D Shepp-Logan ellipsoids (Kak & Slaney; Toft intensities): intensity, semi-axes
#: (a, b, c), centre (x0, y0, z0), rotation about z in degrees. The 2D phantom's ellipses are
#: their (a, b) and (x0, y0): the modified Shepp-Logan (Toft) of the plane.
_ELLIPSOIDS = np.array(
    [
        [1.00, 0.6900, 0.9200, 0.8100, 0.00, 0.0000, 0.00, 0.0],
        [-0.80, 0.6624, 0.8740, 0.7800, 0.00, -0.0184, 0.00, 0.0],
        [-0.20, 0.1100, 0.3100, 0.2200, 0.22, 0.0000, 0.00, -18.0],
        [-0.20, 0.1600, 0.4100, 0.2800, -0.22, 0.0000, 0.00, 18.0],
        [0.10, 0.2100, 0.2500, 0.4100, 0.00, 0.3500, -0.15, 0.0],
        [0.10, 0.0460, 0.0460, 0.0500, 0.00, 0.1000, 0.25, 0.0],
        [0.10, 0.0460, 0.0460, 0.0500, 0.00, -0.1000, 0.25, 0.0],
        [0.10, 0.0460, 0.0230, 0.0500, -0.08, -0.6050, 0.00, 0.0],
        [0.10, 0.0230, 0.0230, 0.0200, 0.00, -0.6060, 0.00, 0.0],
        [0.10, 0.0230, 0.0460, 0.0200, 0.06, -0.6050, 0.00, 0.0],
    ]
)

#: Additive relaxation rates (1/s) per ellipsoid, summed like the intensities:
#: skull ring 40/s, brain 10/s, ventricles 5/s, small structures 20-25/s.
_RATES = np.array([40.0, -30.0, -5.0, -5.0, 10.0, 15.0, 15.0, 15.0, 15.0, 15.0])

#: Echo spacing between contrasts (seconds) used for the contrast weighting.
CONTRAST_ECHO_SPACING_S = 0.010

#: The ellipsoid table is scaled by this factor so the support stays inside ~85% of the FOV.
SUPPORT_SCALE = 0.9

#: Texture plane waves (fixed, independent of any seed): frequency in cycles/FOV, direction, phase.
_TEXTURE_RNG_SEED = 20240611
_TEXTURE_WAVES = 14

#: The phase's z terms (3D): ``0.5 pi * 0.2 z^2 + 0.2 pi z``.
_PHASE_Z_QUADRATIC = 0.2
_PHASE_Z_LINEAR = 0.2


def grid_shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    """A grid's array shape ``([nz,] ny, nx)``; one ``size`` is the square 2D grid ``(size, size)``."""
    if isinstance(shape, (int, np.integer)):
        return (int(shape), int(shape))
    return tuple(int(n) for n in shape)


def grid_coordinates(shape: int | Sequence[int]) -> tuple[np.ndarray, ...]:
    """Normalised pixel-centre coordinates of a grid (FOV ``[-1, 1)`` per axis).

    Args:
        shape: array shape ``(ny, nx)`` or ``(nz, ny, nx)``, or one size of a square 2D grid.

    Returns:
        ``(x, y)`` or ``(x, y, z)`` (axis order), each of the grid's shape, value
        ``2 (i - n // 2) / n`` along its axis.
    """
    shape = grid_shape(shape)
    if len(shape) not in (2, 3) or min(shape) < 2:
        raise ValueError(f"grid sizes must be >= 2 along 2 or 3 axes, got {shape!r}")
    axes = [2.0 * (np.arange(n) - n // 2) / n for n in shape]
    return tuple(reversed(np.meshgrid(*axes, indexing="ij")))


@dataclass(frozen=True)
class _Ellipsoids:
    """The phantom's ellipsoids (ellipses in 2D), on the normalised coordinates."""

    amplitude: np.ndarray
    """(k,) intensities."""
    semi_axes: np.ndarray
    """(k, dims) semi-axes along x, y[, z] before the rotation."""
    centres: np.ndarray
    """(k, dims) centres (x, y[, z])."""
    angles_deg: np.ndarray
    """(k,) rotations about z (in the x-y plane), degrees."""


def _ellipsoids(dims: int, slice_index: int) -> _Ellipsoids:
    """The ellipsoids of a ``dims``-dimensional phantom, scaled to the support and varied per slice.

    Slice ``s`` rotates the whole object by ``4 s`` degrees and shrinks the inner
    structures' in-plane semi-axes by ``3 s`` percent, so slices are distinguishable.
    """
    semi_axes = _ELLIPSOIDS[:, 1 : 1 + dims] * SUPPORT_SCALE
    centres = _ELLIPSOIDS[:, 4 : 4 + dims] * SUPPORT_SCALE
    angles = _ELLIPSOIDS[:, 7].copy()
    rot = np.deg2rad(4.0 * slice_index)
    shrink = 1.0 - 0.03 * slice_index
    semi_axes[2:, :2] *= shrink
    x0, y0 = centres[:, 0].copy(), centres[:, 1].copy()
    centres[:, 0] = np.cos(rot) * x0 - np.sin(rot) * y0
    centres[:, 1] = np.sin(rot) * x0 + np.cos(rot) * y0
    angles += np.rad2deg(rot)
    return _Ellipsoids(_ELLIPSOIDS[:, 0], semi_axes, centres, angles)


def _sum(terms: Sequence[np.ndarray]) -> np.ndarray:
    """``terms[0] + terms[1] + ...``, in that order."""
    return functools.reduce(np.add, terms)


def _indicator(
    coords: Sequence[np.ndarray], semi_axes: np.ndarray, centre: np.ndarray, angle_deg: float, edge_sigma: float
) -> np.ndarray:
    """Smooth (Gaussian-blurred edge) indicator of one ellipsoid (ellipse in 2D), shape of the
    coordinates ``(x, y[, z])``; the rotation turns x and y."""
    c, s = np.cos(np.deg2rad(angle_deg)), np.sin(np.deg2rad(angle_deg))
    d = [coord - c0 for coord, c0 in zip(coords, centre)]
    rotated = [c * d[0] + s * d[1], -s * d[0] + c * d[1], *d[2:]]
    rho = np.sqrt(_sum([(r / a) ** 2 for r, a in zip(rotated, semi_axes)]))
    # First-order signed distance to the boundary: (rho - 1) / |grad rho|.
    grad = np.sqrt(_sum([(r / a**2) ** 2 for r, a in zip(rotated, semi_axes)]))
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(rho > 1e-12, (rho - 1.0) * rho / np.maximum(grad, 1e-300), -min(semi_axes))
    if edge_sigma <= 0:
        return (dist <= 0).astype(np.float64)
    return 0.5 * erfc(dist / (np.sqrt(2.0) * edge_sigma))


def _directions_in_plane(rng: np.random.Generator) -> np.ndarray:
    """Texture wave directions of the plane (x, y): uniform angles in [0, pi)."""
    angles = rng.uniform(0.0, np.pi, _TEXTURE_WAVES)
    return np.array([(np.cos(angle), np.sin(angle)) for angle in angles])


def _directions_in_space(rng: np.random.Generator) -> np.ndarray:
    """Texture wave directions of a volume: normalised Gaussian vectors (x, y, z)."""
    directions = rng.standard_normal((_TEXTURE_WAVES, 3))
    return directions / np.linalg.norm(directions, axis=1, keepdims=True)


#: How the texture's wave directions are drawn, per dimensionality (the draws, and with them the
#: recorded test data, differ: a circle's angles, a sphere's Gaussian vectors).
_TEXTURE_DIRECTIONS: dict[int, Callable[[np.random.Generator], np.ndarray]] = {
    2: _directions_in_plane,
    3: _directions_in_space,
}


def _texture(coords: Sequence[np.ndarray]) -> np.ndarray:
    """Smooth texture in ``[-1, 1]``: a fixed sum of plane waves of 3-20 cycles/FOV."""
    rng = np.random.default_rng(_TEXTURE_RNG_SEED)
    freqs = rng.uniform(3.0, 20.0, _TEXTURE_WAVES)
    directions = _TEXTURE_DIRECTIONS[len(coords)](rng)
    phases = rng.uniform(0.0, 2 * np.pi, _TEXTURE_WAVES)
    weights = rng.uniform(0.5, 1.0, _TEXTURE_WAVES)
    out = np.zeros_like(coords[0])
    # Normalised coordinates span 2 per FOV, so f cycles/FOV = pi f rad per unit.
    for f, direction, ph, w in zip(freqs, directions, phases, weights):
        projection = _sum([component * coord for component, coord in zip(direction, coords)])
        out += w * np.cos(np.pi * f * projection + ph)
    return out / weights.sum()


def _phase(coords: Sequence[np.ndarray], slice_index: int) -> np.ndarray:
    """The smooth phase (radians, up to ~1.5 rad): quadratic and linear in x and y (and z), plus
    ``0.1 pi`` per slice."""
    x, y, *z = coords
    quadratic = 0.45 * x**2 - 0.3 * y**2 + 0.25 * x * y
    for depth in z:
        quadratic = quadratic + _PHASE_Z_QUADRATIC * depth**2
    phase = 0.5 * np.pi * quadratic + 0.3 * np.pi * y
    for depth in z:
        phase = phase + _PHASE_Z_LINEAR * np.pi * depth
    return phase + 0.1 * np.pi * slice_index


def phantom(
    shape: int | Sequence[int],
    slice_index: int = 0,
    contrast_index: int = 0,
    *,
    complex_valued: bool = True,
    edge_sigma_px: float = 1.0,
    texture_amplitude: float = 0.15,
) -> np.ndarray:
    """The numerical phantom on a 2D or 3D grid.

    Args:
        shape: array shape ``(ny, nx)`` or ``(nz, ny, nx)``, or one size of a square 2D grid (the
            simulator uses the fine grid, ``2 N`` per axis).
        slice_index: slice number; each slice is slightly rotated/scaled.
        contrast_index: contrast number ``c``; region ``j`` is weighted by
            ``exp(-c * 10 ms * R_j)`` with per-region rates of 5-40 /s.
        complex_valued: add a smooth (quadratic + linear) phase of up to ~1.5 rad.
        edge_sigma_px: standard deviation of the Gaussian edge blur, in pixels of
            this grid's x axis (1 pixel of the fine grid keeps substantial energy beyond the
            ``N``-grid Nyquist limit while avoiding pixel-level staircase edges).
        texture_amplitude: relative amplitude of the smooth texture inside the head.

    Returns:
        Complex128 array of the grid's shape indexed ``[y, x]`` (``[z, y, x]``), pixel
        ``r = 0`` at index ``n // 2``. Magnitudes are in ``[0, ~1.1]``.
    """
    shape = grid_shape(shape)
    if slice_index < 0:
        raise ValueError(f"slice_index must be >= 0, got {slice_index!r}")
    if contrast_index < 0:
        raise ValueError(f"contrast_index must be >= 0, got {contrast_index!r}")
    if edge_sigma_px < 0:
        raise ValueError(f"edge_sigma_px must be >= 0, got {edge_sigma_px!r}")
    coords = grid_coordinates(shape)
    # Standard Shepp-Logan orientation: y axis points up (row index grows downwards).
    upright = (coords[0], -coords[1], *coords[2:])
    sigma = edge_sigma_px * 2.0 / shape[-1]
    shapes = _ellipsoids(len(shape), slice_index)
    mag = np.zeros(shape)
    rate = np.zeros(shape)
    inner = None
    for j, (amplitude, semi_axes, centre, angle, r) in enumerate(
        zip(shapes.amplitude, shapes.semi_axes, shapes.centres, shapes.angles_deg, _RATES)
    ):
        ind = _indicator(upright, semi_axes, centre, angle, sigma)
        if j == 1:
            inner = ind
        mag += amplitude * ind
        if contrast_index:
            rate += r * ind
    assert inner is not None
    mag *= 1.0 + texture_amplitude * inner * _texture(coords)
    if contrast_index:
        mag *= np.exp(-contrast_index * CONTRAST_ECHO_SPACING_S * np.clip(rate, 0.0, None))
    mag = np.clip(mag, 0.0, None)
    if not complex_valued:
        return mag.astype(np.complex128)
    return mag * np.exp(1j * _phase(coords, slice_index))


def object_support(shape: int | Sequence[int], slice_index: int = 0) -> np.ndarray:
    """Boolean mask of the grid's shape: the phantom's support (outer ellipsoid, edge at 50%)."""
    coords = grid_coordinates(shape)
    shapes = _ellipsoids(len(coords), slice_index)
    upright = (coords[0], -coords[1], *coords[2:])
    return _indicator(upright, shapes.semi_axes[0], shapes.centres[0], shapes.angles_deg[0], 0.0) > 0.5
