"""Numerical phantom: a smooth-edged, textured, complex modified Shepp-Logan.

The phantom is an analytic object evaluated at pixel centres, so it can be
sampled on any grid that covers the same field of view (FOV). The simulator
evaluates it on the fine ``M x M`` grid (``M = 2 N``) so that the object is not
band-limited to the ``N x N`` gridding matrix.

Coordinates (shared with :mod:`igrog_gadget.simulate.coils` and the B0 map):
pixel index ``i`` of a ``size``-long axis sits at the normalised position
``u = 2 (i - size // 2) / size`` in ``[-1, 1)``: ``u = 0`` at index
``size // 2`` and ``u = +-1`` at the FOV edges. Arrays are indexed ``[y, x]``.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.special import erfc

logger = logging.getLogger(__name__)

#: Modified Shepp-Logan (Toft) ellipses:
#: (intensity, semi-axis a, semi-axis b, centre x0, centre y0, angle in degrees).
_ELLIPSES = np.array(
    [
        [1.00, 0.6900, 0.9200, 0.00, 0.0000, 0.0],
        [-0.80, 0.6624, 0.8740, 0.00, -0.0184, 0.0],
        [-0.20, 0.1100, 0.3100, 0.22, 0.0000, -18.0],
        [-0.20, 0.1600, 0.4100, -0.22, 0.0000, 18.0],
        [0.10, 0.2100, 0.2500, 0.00, 0.3500, 0.0],
        [0.10, 0.0460, 0.0460, 0.00, 0.1000, 0.0],
        [0.10, 0.0460, 0.0460, 0.00, -0.1000, 0.0],
        [0.10, 0.0460, 0.0230, -0.08, -0.6050, 0.0],
        [0.10, 0.0230, 0.0230, 0.00, -0.6060, 0.0],
        [0.10, 0.0230, 0.0460, 0.06, -0.6050, 0.0],
    ]
)

#: Additive relaxation rates (1/s) per ellipse, summed like the intensities:
#: skull ring 40/s, brain 10/s, ventricles 5/s, small structures 20-25/s.
_RATES = np.array([40.0, -30.0, -5.0, -5.0, 10.0, 15.0, 15.0, 15.0, 15.0, 15.0])

#: Echo spacing between contrasts (seconds) used for the contrast weighting.
CONTRAST_ECHO_SPACING_S = 0.010

#: The ellipse table is scaled by this factor so the support stays inside ~85% of the FOV.
SUPPORT_SCALE = 0.9

#: Texture plane waves (fixed, independent of any seed): frequency in cycles/FOV, angle, phase.
_TEXTURE_RNG_SEED = 20240611
_TEXTURE_WAVES = 14


def grid_coordinates(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised pixel-centre coordinates of a ``size x size`` grid.

    Returns ``(x, y)``, each of shape ``(size, size)``, indexed ``[y, x]``, with
    value ``2 (i - size // 2) / size`` (FOV spans ``[-1, 1)``).
    """
    if int(size) < 2:
        raise ValueError(f"size must be >= 2, got {size!r}")
    u = 2.0 * (np.arange(size) - size // 2) / size
    y, x = np.meshgrid(u, u, indexing="ij")
    return x, y


def _ellipse_indicator(
    x: np.ndarray,
    y: np.ndarray,
    a: float,
    b: float,
    x0: float,
    y0: float,
    phi_rad: float,
    edge_sigma: float,
) -> np.ndarray:
    """Smooth (Gaussian-blurred edge) indicator of one ellipse, shape of ``x``."""
    c, s = np.cos(phi_rad), np.sin(phi_rad)
    dx, dy = x - x0, y - y0
    u = c * dx + s * dy
    v = -s * dx + c * dy
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    # First-order signed distance to the boundary: (rho - 1) / |grad rho|.
    grad = np.sqrt((u / a**2) ** 2 + (v / b**2) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(rho > 1e-12, (rho - 1.0) * rho / np.maximum(grad, 1e-300), -min(a, b))
    if edge_sigma <= 0:
        return (dist <= 0).astype(np.float64)
    return 0.5 * erfc(dist / (np.sqrt(2.0) * edge_sigma))


def _ellipse_table(slice_index: int) -> np.ndarray:
    """Ellipse table of one slice: scaled to the support and varied per slice.

    Slice ``s`` rotates the whole object by ``4 s`` degrees and shrinks the inner
    structures by ``3 s`` percent, so slices are distinguishable.
    """
    table = _ELLIPSES.copy()
    table[:, 1:5] *= SUPPORT_SCALE
    rot = np.deg2rad(4.0 * slice_index)
    shrink = 1.0 - 0.03 * slice_index
    table[2:, 1:3] *= shrink
    x0, y0 = table[:, 3].copy(), table[:, 4].copy()
    table[:, 3] = np.cos(rot) * x0 - np.sin(rot) * y0
    table[:, 4] = np.sin(rot) * x0 + np.cos(rot) * y0
    table[:, 5] += np.rad2deg(rot)
    return table


def _texture(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Smooth texture in ``[-1, 1]``: a fixed sum of plane waves of 3-20 cycles/FOV."""
    rng = np.random.default_rng(_TEXTURE_RNG_SEED)
    freqs = rng.uniform(3.0, 20.0, _TEXTURE_WAVES)
    angles = rng.uniform(0.0, np.pi, _TEXTURE_WAVES)
    phases = rng.uniform(0.0, 2 * np.pi, _TEXTURE_WAVES)
    weights = rng.uniform(0.5, 1.0, _TEXTURE_WAVES)
    out = np.zeros_like(x)
    # Normalised coordinates span 2 per FOV, so f cycles/FOV = pi f rad per unit.
    for f, ang, ph, w in zip(freqs, angles, phases, weights):
        out += w * np.cos(np.pi * f * (np.cos(ang) * x + np.sin(ang) * y) + ph)
    return out / weights.sum()


def phantom(
    size: int,
    slice_index: int = 0,
    contrast_index: int = 0,
    *,
    complex_valued: bool = True,
    edge_sigma_px: float = 1.0,
    texture_amplitude: float = 0.15,
) -> np.ndarray:
    """The numerical phantom on a ``size x size`` grid.

    Args:
        size: grid size (the simulator uses the fine grid ``M = 2 N``).
        slice_index: slice number; each slice is slightly rotated/scaled.
        contrast_index: contrast number ``c``; region ``j`` is weighted by
            ``exp(-c * 10 ms * R_j)`` with per-region rates of 5-40 /s.
        complex_valued: add a smooth (quadratic + linear) phase of up to ~1.5 rad.
        edge_sigma_px: standard deviation of the Gaussian edge blur, in pixels of
            this grid (1 pixel of the fine grid keeps substantial energy beyond the
            ``N``-grid Nyquist limit while avoiding pixel-level staircase edges).
        texture_amplitude: relative amplitude of the smooth texture inside the head.

    Returns:
        Complex128 array of shape ``(size, size)`` indexed ``[y, x]``, pixel
        ``r = 0`` at index ``size // 2``. Magnitudes are in ``[0, ~1.1]``.
    """
    size = int(size)
    if slice_index < 0:
        raise ValueError(f"slice_index must be >= 0, got {slice_index!r}")
    if contrast_index < 0:
        raise ValueError(f"contrast_index must be >= 0, got {contrast_index!r}")
    x, y = grid_coordinates(size)
    # Standard Shepp-Logan orientation: y axis points up (row index grows downwards).
    yp = -y
    if edge_sigma_px < 0:
        raise ValueError(f"edge_sigma_px must be >= 0, got {edge_sigma_px!r}")
    sigma = edge_sigma_px * 2.0 / size
    table = _ellipse_table(slice_index)
    mag = np.zeros((size, size))
    rate = np.zeros((size, size))
    inner = None
    for j, (row, r) in enumerate(zip(table, _RATES)):
        amp, a, b, x0, y0, phi = row
        ind = _ellipse_indicator(x, yp, a, b, x0, y0, np.deg2rad(phi), sigma)
        if j == 1:
            inner = ind
        mag += amp * ind
        rate += r * ind
    assert inner is not None
    mag *= 1.0 + texture_amplitude * inner * _texture(x, y)
    if contrast_index:
        mag *= np.exp(-contrast_index * CONTRAST_ECHO_SPACING_S * np.clip(rate, 0.0, None))
    mag = np.clip(mag, 0.0, None)
    if not complex_valued:
        return mag.astype(np.complex128)
    phase = 0.5 * np.pi * (0.45 * x**2 - 0.3 * y**2 + 0.25 * x * y) + 0.3 * np.pi * y + 0.1 * np.pi * slice_index
    return mag * np.exp(1j * phase)


def object_support(size: int, slice_index: int = 0) -> np.ndarray:
    """Boolean mask ``(size, size)`` of the phantom's support (outer ellipse, edge at 50%)."""
    x, y = grid_coordinates(size)
    table = _ellipse_table(slice_index)
    _, a, b, x0, y0, phi = table[0]
    return _ellipse_indicator(x, -y, a, b, x0, y0, np.deg2rad(phi), 0.0) > 0.5


# --- 3D -----------------------------------------------------------------------------------

#: Modified 3D Shepp-Logan ellipsoids (Kak & Slaney; Toft intensities): intensity, semi-axes
#: (a, b, c), centre (x0, y0, z0), rotation about z in degrees.
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


def grid_coordinates_3d(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised pixel-centre coordinates of a ``(nz, ny, nx)`` grid (FOV ``[-1, 1)`` per axis).

    Returns ``(x, y, z)``, each of shape ``(nz, ny, nx)``, value ``2 (i - n // 2) / n`` along its axis.
    """
    axes = []
    for n in shape:
        if int(n) < 2:
            raise ValueError(f"grid sizes must be >= 2, got {shape!r}")
        axes.append(2.0 * (np.arange(int(n)) - int(n) // 2) / int(n))
    z, y, x = np.meshgrid(*axes, indexing="ij")
    return x, y, z


def _ellipsoid_indicator(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, row: np.ndarray, edge_sigma: float
) -> np.ndarray:
    """Smooth (Gaussian-blurred edge) indicator of one ellipsoid of ``_ELLIPSOIDS``."""
    _, a, b, c, x0, y0, z0, phi = row
    cs, sn = np.cos(np.deg2rad(phi)), np.sin(np.deg2rad(phi))
    dx, dy, dz = x - x0, y - y0, z - z0
    u = cs * dx + sn * dy
    v = -sn * dx + cs * dy
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2 + (dz / c) ** 2)
    grad = np.sqrt((u / a**2) ** 2 + (v / b**2) ** 2 + (dz / c**2) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(rho > 1e-12, (rho - 1.0) * rho / np.maximum(grad, 1e-300), -min(a, b, c))
    if edge_sigma <= 0:
        return (dist <= 0).astype(np.float64)
    return 0.5 * erfc(dist / (np.sqrt(2.0) * edge_sigma))


def _texture_3d(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Smooth 3D texture in ``[-1, 1]``: a fixed sum of plane waves of 3-20 cycles/FOV."""
    rng = np.random.default_rng(_TEXTURE_RNG_SEED)
    freqs = rng.uniform(3.0, 20.0, _TEXTURE_WAVES)
    directions = rng.standard_normal((_TEXTURE_WAVES, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    phases = rng.uniform(0.0, 2 * np.pi, _TEXTURE_WAVES)
    weights = rng.uniform(0.5, 1.0, _TEXTURE_WAVES)
    out = np.zeros_like(x)
    for f, d, ph, w in zip(freqs, directions, phases, weights):
        out += w * np.cos(np.pi * f * (d[0] * x + d[1] * y + d[2] * z) + ph)
    return out / weights.sum()


def phantom_3d(
    shape: tuple[int, int, int],
    *,
    edge_sigma_px: float = 1.0,
    texture_amplitude: float = 0.15,
) -> np.ndarray:
    """The 3D numerical phantom (modified 3D Shepp-Logan) on a ``(nz, ny, nx)`` grid.

    Smooth edges (Gaussian blur of ``edge_sigma_px`` pixels of the in-plane axis), a smooth
    texture inside the head and a smooth phase of up to ~1.5 rad, as :func:`phantom`.

    Returns:
        Complex128 array ``(nz, ny, nx)`` indexed ``[z, y, x]``, r = 0 at index ``n // 2``.
    """
    x, y, z = grid_coordinates_3d(shape)
    yp = -y
    sigma = edge_sigma_px * 2.0 / int(shape[-1])
    mag = np.zeros(x.shape)
    inner = None
    for j, row in enumerate(_ELLIPSOIDS):
        scaled = row.copy()
        scaled[1:7] *= SUPPORT_SCALE
        ind = _ellipsoid_indicator(x, yp, z, scaled, sigma)
        if j == 1:
            inner = ind
        mag += row[0] * ind
    assert inner is not None
    mag *= 1.0 + texture_amplitude * inner * _texture_3d(x, y, z)
    mag = np.clip(mag, 0.0, None)
    phase = 0.5 * np.pi * (0.45 * x**2 - 0.3 * y**2 + 0.25 * x * y + 0.2 * z**2) + 0.3 * np.pi * y + 0.2 * np.pi * z
    return mag * np.exp(1j * phase)


def object_support_3d(shape: tuple[int, int, int]) -> np.ndarray:
    """Boolean mask ``(nz, ny, nx)`` of the 3D phantom's support (outer ellipsoid, edge at 50%)."""
    x, y, z = grid_coordinates_3d(shape)
    scaled = _ELLIPSOIDS[0].copy()
    scaled[1:7] *= SUPPORT_SCALE
    return _ellipsoid_indicator(x, -y, z, scaled, 0.0) > 0.5
