"""Training pairs at the trajectory's own sample positions, from full-k-space coil images.

With coil images that cover k-space beyond the centre (an image series or file), the pairs can
be exactly the gridding problems the kernels will solve: for random imaging samples j whose
grid point g_j lies in the central ``region`` of k-space, the sources are the images' k-space
at the sample's own source positions (NUFFT) and the target their value at g_j (FFT). Complex
Gaussian noise of std ``noise_std / sqrt(hits(g_j))`` is added to the sources: the gridded
value of g_j is the mean of ``hits(g_j)`` kernel outputs, so this is the noise the kernel's
output really carries, and training with it is a ridge on the kernels' noise gain weighted
the way the gridding weighs it.
"""

from __future__ import annotations

import logging

import numpy as np

from igrog_gadget.app.common.pairs import TrainingPairs, complex_noise, packed_pairs, rms_scale
from igrog_gadget.errors import CalibrationError
from igrog_gadget.gridding.geometry import SampleGeometry
from igrog_gadget.gridding.fft import centred_fft2
from igrog_gadget.gridding.nufft import nufft_forward

logger = logging.getLogger(__name__)


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
    """Pairs at the frame's own samples (see the module docstring).

    Args:
        images: shape (coils, my, mx), complex: coil images on the recon grid's field of view.
        geometry: the frame's sample geometry.
        num_pairs: pairs to make (samples are drawn with replacement).
        region: keep samples whose grid point has ``max(|gx|/nx, |gy|/ny) < region / 2``.
        edge_margin: grid units kept between a pair's positions and the images' k-space edge.
        jitter: std of Gaussian noise added to the offsets (grid units).
        noise_std: the data's complex noise std in the images' k-space units (0 = none).
        normalize: scale each pair to unit mean source power.
    Raises:
        CalibrationError: no imaging sample lies in the usable region.
    """
    coils, my, mx = images.shape
    nx, ny = geometry.matrix
    gx = geometry.grid_index % nx - nx // 2
    gy = geometry.grid_index // nx - ny // 2
    reach = float(np.max(np.abs(geometry.offsets))) if geometry.num_samples else 0.0
    limit_x = min(region * nx / 2, mx / 2 - edge_margin - reach)
    limit_y = min(region * ny / 2, my / 2 - edge_margin - reach)
    allowed = np.flatnonzero((np.abs(gx) < limit_x) & (np.abs(gy) < limit_y))
    if allowed.size == 0:
        raise CalibrationError(
            f"no imaging sample lies within the central {2 * limit_x:.0f} x {2 * limit_y:.0f} of k-space that the "
            f"{my} x {mx} calibration images cover (less edge_margin); use image_calibration.pair_positions = random"
        )
    pick = allowed[rng.integers(0, allowed.size, num_pairs)]
    num_sources = geometry.offsets.shape[1]
    offsets = geometry.offsets[pick].astype(np.float32)
    if jitter > 0:
        offsets = offsets + rng.normal(0.0, jitter, offsets.shape).astype(np.float32)
    targets_k = np.stack([gx[pick], gy[pick]], axis=1)
    positions = (targets_k[:, None, :] + offsets).reshape(-1, 2)
    sources = nufft_forward(images, positions).reshape(coils, num_pairs, num_sources)
    sources = sources.transpose(1, 0, 2).reshape(num_pairs, coils * num_sources)
    kspace = centred_fft2(images)
    targets = kspace[:, targets_k[:, 1] + my // 2, targets_k[:, 0] + mx // 2].T
    if noise_std > 0:
        hits = np.bincount(geometry.grid_index, minlength=nx * ny)[geometry.grid_index[pick]]
        std = (noise_std / np.sqrt(2.0 * np.maximum(hits, 1)))[:, None]
        sources = sources + std * complex_noise(rng, sources.shape)
    scale = rms_scale(kspace)
    logger.info(
        "trajectory pairs: %d of %d samples in the central %.0f x %.0f, noise std %.3g",
        allowed.size, geometry.num_samples, 2 * limit_x, 2 * limit_y, noise_std,
    )
    return packed_pairs(offsets, sources / scale, targets / scale, scale, normalize)
