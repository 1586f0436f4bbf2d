"""The image of a gridded frame: SENSE of an undersampled frame, root-sum-of-squares of a fully sampled one.

``FrameImager.image(frame)`` decides per frame (``[recon] image``):
- ``rss``: the RSS of the zero-filled gridded k-space (``igrog_gadget.numerics.fft.rss_image``);
- ``sense``: Cartesian CG-SENSE (``igrog_gadget.recon.sense``) with ESPIRiT maps
  (``igrog_gadget.recon.coil_maps``) of the frame's calibration block (``GriddedFrame.calibration``);
- ``auto``: RSS when the gridded points cover ``full_coverage`` of the disc the samples reach
  (a fully sampled frame), else SENSE.
A frame whose maps cannot be made (no calibration block, a block too small, maps empty) gets its
RSS image with a warning naming why; never an exception.

Maps are cached per calibration key (the block of the key's first frame; a later frame of the
key pays only the iterations).
SENSE images have the scale of the RSS image (maps of unit norm across coils), so the two kinds
of image of one scan compare directly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from igrog_gadget.config import ReconConfig
from igrog_gadget.numerics.fft import rss_image
from igrog_gadget.recon.coil_maps import espirit_maps
from igrog_gadget.recon.sense import CartesianSense, sense_reconstruct
from igrog_gadget.scan import GriddedFrame

logger = logging.getLogger(__name__)

#: Smallest share of the block's own region where the maps must be non-zero to be used.
MIN_MAP_SUPPORT = 0.05
#: Sampled-disc radius used by the coverage test, as a share of the samples' largest radius
#: (the outermost ring of a radial or spiral trajectory is sparse by design).
COVERAGE_RADIUS = 0.9


@dataclass
class FrameImage:
    """The image of one frame and how it was made."""

    magnitude: np.ndarray
    """(ny, nx) or (nz, ny, nx) float32, pixel r = 0 at index n // 2."""
    method: str
    """"sense" or "rss"."""
    note: str = ""
    """Why RSS was used where SENSE was asked for (empty otherwise)."""


class FrameImager:
    """Makes the images of gridded frames (see the module docstring); one per output stream."""

    def __init__(self, config: ReconConfig, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.device = torch.device(device)
        self._maps: dict[tuple, torch.Tensor | str] = {}
        """Calibration key (+ grid) -> maps (coils, *shape), or why none could be made."""

    def image(self, frame: GriddedFrame) -> FrameImage:
        """The image of ``frame`` (kspace (coils, ny, nx) or (coils, nz, ny, nx), hits of its grid)."""
        method = self.config.image
        if method == "auto":
            method = "rss" if sampled_coverage(frame.hits) >= self.config.full_coverage else "sense"
        if method == "rss":
            return FrameImage(np.asarray(rss_image(frame.kspace), np.float32), "rss")
        maps = self.maps_for(frame)
        if isinstance(maps, str):
            return FrameImage(np.asarray(rss_image(frame.kspace), np.float32), "rss", maps)
        return FrameImage(self._sense(frame, maps), "sense")

    def maps_for(self, frame: GriddedFrame) -> torch.Tensor | str:
        """The coil maps of ``frame``'s calibration key, (coils, *shape) on the device (made from
        the key's first frame's block, then cached), or why there are none."""
        shape = tuple(int(n) for n in frame.kspace.shape[1:])
        key = (frame.calibration_key, shape, int(frame.kspace.shape[0]))
        if key not in self._maps:
            self._maps[key] = self._make_maps(frame, shape)
            if isinstance(self._maps[key], str):  # once per calibration key
                logger.warning(
                    "calibration %s: RSS images instead of SENSE: %s", frame.calibration_key, self._maps[key]
                )
        return self._maps[key]

    def _make_maps(self, frame: GriddedFrame, shape: tuple[int, ...]) -> torch.Tensor | str:
        block = frame.calibration
        if block is None:
            return "the frame has no calibration block to make coil maps of"
        if block.kspace.shape[0] != frame.kspace.shape[0]:
            return f"its calibration block has {block.kspace.shape[0]} coils, the gridded k-space {frame.kspace.shape[0]}"
        if min(block.shape) < self.config.map_kernel + 2:
            return f"its calibration block {' x '.join(map(str, block.shape))} is too small for ESPIRiT kernels of {self.config.map_kernel}"
        maps = espirit_maps(
            torch.as_tensor(block.kspace, device=self.device),
            shape,
            self.config.map_kernel,
            self.config.map_threshold,
            self.config.map_crop,
        )
        support = float((maps[0].abs() > 0).float().mean())
        if support < MIN_MAP_SUPPORT:
            return f"the ESPIRiT maps cover only {support:.1%} of the image (recon.map_crop = {self.config.map_crop:g})"
        return maps

    def _sense(self, frame: GriddedFrame, maps: torch.Tensor) -> np.ndarray:
        hits = np.asarray(frame.hits)
        weights = hits.astype(np.float32) if self.config.weighting == "hits" else (hits > 0).astype(np.float32)
        operator = CartesianSense(maps, torch.as_tensor(weights, device=self.device))
        sampled = weights[hits > 0]
        lam = self.config.regularization * (float(sampled.mean()) if sampled.size else 1.0)
        kspace = torch.as_tensor(np.asarray(frame.kspace), device=self.device)
        image = sense_reconstruct(kspace, operator, lam, self.config.iterations)
        return image.abs().to(torch.float32).cpu().numpy()


def sampled_coverage(hits: np.ndarray) -> float:
    """Share of the grid points inside the sampled disc (ellipse; ball in 3D) that hold a sample.

    The disc: ``COVERAGE_RADIUS`` x the largest normalised radius (|k_i| / (n_i / 2) per axis) of
    a point with hits; 1.0 for a frame with no hits (nothing to reconstruct better).
    """
    hits = np.asarray(hits)
    axes = [(np.arange(n) - n // 2) / max(n / 2, 1) for n in hits.shape]
    radius = np.sqrt(sum(a**2 for a in np.meshgrid(*axes, indexing="ij")))
    sampled = hits > 0
    if not sampled.any():
        return 1.0
    inside = radius <= COVERAGE_RADIUS * float(radius[sampled].max())
    return float(sampled[inside].mean())
