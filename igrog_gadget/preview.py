"""A root-sum-of-squares PNG of gridded k-space, so a person can look at the result."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from igrog_gadget.gridding.fft import rss_image


def write_rss_png(path: str | Path, kspaces: Sequence[np.ndarray]) -> Path:
    """Write the RSS images of the frames side by side (each scaled to its 99.5th percentile)."""
    from PIL import Image

    tiles = []
    for kspace in kspaces:
        image = rss_image(kspace)
        top = float(np.percentile(image, 99.5)) or 1.0
        tiles.append(np.clip(image / top, 0.0, 1.0))
    if not tiles:
        raise ValueError("no frames to draw")
    height = max(t.shape[0] for t in tiles)
    padded = [np.pad(t, ((0, height - t.shape[0]), (0, 2))) for t in tiles]
    mosaic = np.concatenate(padded, axis=1)[:, :-2]
    path = Path(path)
    Image.fromarray((mosaic * 255).astype(np.uint8)).save(path)  # row 0 on top, as Gadgetron shows images
    return path
