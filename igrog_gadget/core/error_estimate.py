"""A frame's estimated gridding error, from its own output (no ground truth).

Two parts, added in quadrature:
- the noise: each grid point holds the mean of ``hits`` kernel outputs of samples of complex
  noise std ``sigma`` (estimated by the calibration fit), so its noise power is ``coils * sigma^2
  * gain / hits``, ``gain`` the kernels' mean noise gain there (``||K||_F^2 / coils``: 1 for a
  kernel that copies a sample, below 1 where the ridge shrinks them; the noise the overlapping
  sources of neighbouring samples share is not counted); where
  kernels in fewer virtual coils made a point of a physical-coil output, only the share of the
  noise those coils keep (``CoilTransform.kept_noise_share``: about virtual / physical);
- the kernels' misfit: their error on held-out noise-free pairs of the calibration (energy
  weighted, as the k-space error is), where no calibration value replaced the gridded one.

Relative to the signal power of the sampled points (their gridded power less the noise's).
Reported for the whole frame and for its centre (|k| < ``CENTRE_RADIUS``), where the image's
energy is.
"""

from __future__ import annotations

import math

import numpy as np

#: Radius (grid units) of the centre the second estimate covers.
CENTRE_RADIUS = 8.0


def radius_from_centre(shape: tuple[int, ...]) -> np.ndarray:
    """|k| (grid units) of each point of a ``([nz,] ny, nx)`` grid (k = 0 at index n//2)."""
    axes = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    return np.sqrt(sum(axis.astype(np.float64) ** 2 for axis in axes))


def estimated_nrmse(
    kspace: np.ndarray, hits: np.ndarray, noise_std: float, misfit: float, filled: np.ndarray | None, region: np.ndarray | None = None,
    kept_noise: float = 1.0, noise_gain: np.ndarray | None = None,
) -> float:
    """Estimated NRMSE of the gridded k-space over its sampled points (within ``region``).

    Args:
        kspace: shape (coils, [nz,] ny, nx), complex: the gridded k-space.
        hits: shape ([nz,] ny, nx): samples averaged into each point.
        noise_std: complex noise std of one sample, in ``kspace``'s units.
        misfit: the kernels' relative error on noise-free held-out pairs (nan: unknown, taken as 0).
        filled: ([nz,] ny, nx) bool: points that took a calibration value (no kernel misfit), or None.
        region: ([nz,] ny, nx) bool: the points to cover (None: all).
        kept_noise: share of the coils' noise power in the points the kernels made (not ``filled``).
        noise_gain: shape like ``hits``: the kernels' mean noise gain on each point (None: 1); the
            ``filled`` points' noise is the calibration's, gain 1.
    Returns:
        The estimate; nan when the region holds no sampled point or no signal above the noise.
    """
    sampled = hits > 0 if region is None else (hits > 0) & region
    if not sampled.any():
        return math.nan
    coils = kspace.shape[0]
    power = np.sum(np.abs(kspace[:, sampled]) ** 2, axis=0)  # per point, over coils
    kernel_points = ~filled[sampled] if filled is not None else np.ones(power.shape, bool)
    gain = kept_noise * (1.0 if noise_gain is None else noise_gain[sampled])
    noise = coils * noise_std**2 / hits[sampled] * np.where(kernel_points, gain, 1.0)
    signal = np.maximum(power - noise, 0.0)
    total = float(signal.sum())
    if total <= 0:
        return math.nan
    misfit_power = (0.0 if not math.isfinite(misfit) else misfit**2) * float(signal[kernel_points].sum())
    return math.sqrt((float(noise.sum()) + misfit_power) / total)
