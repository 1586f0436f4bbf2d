"""A PNG of the frames' images (SENSE or RSS), so a person can look at the result."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Sequence

import numpy as np

from igrog_gadget.numerics.fft import rss_image


def central_slices(image: np.ndarray) -> list[np.ndarray]:
    """The planes through an image's centre, float32: a 2D image (ny, nx) itself; a 3D image (nz,
    ny, nx) in three orientations, [y, x] at z = nz // 2, [z, x] at y = ny // 2 and [z, y] at
    x = nx // 2 (every way to fix all but two axes at their centre, first axis first)."""
    image = np.asarray(image)
    views = []
    for fixed in itertools.combinations(range(image.ndim), image.ndim - 2):
        centre = tuple(image.shape[axis] // 2 if axis in fixed else slice(None) for axis in range(image.ndim))
        views.append(image[centre].astype(np.float32))
    return views


def write_png(path: str | Path, magnitudes: Sequence[np.ndarray]) -> Path:
    """Write the frames' magnitude images side by side (each scaled to its 99.5th percentile); a
    3D image (nz, ny, nx) shows its three central slices (``central_slices``)."""
    from PIL import Image

    tiles: list[np.ndarray] = []
    for magnitude in magnitudes:
        magnitude = np.asarray(magnitude, np.float32)
        views = central_slices(magnitude)
        top = float(np.percentile(np.concatenate([v.reshape(-1) for v in views]), 99.5)) or 1.0
        tiles.extend(np.clip(view / top, 0.0, 1.0) for view in views)
    if not tiles:
        raise ValueError("no frames to draw")
    height = max(t.shape[0] for t in tiles)
    padded = [np.pad(t, ((0, height - t.shape[0]), (0, 2))) for t in tiles]
    mosaic = np.concatenate(padded, axis=1)[:, :-2]
    path = Path(path)
    Image.fromarray((mosaic * 255).astype(np.uint8)).save(path)  # row 0 on top, as Gadgetron shows images
    return path


def write_rss_png(path: str | Path, kspaces: Sequence[np.ndarray]) -> Path:
    """Write the RSS images of gridded k-spaces, (coils, ny, nx) or (coils, nz, ny, nx), as :func:`write_png`."""
    return write_png(path, [np.asarray(rss_image(np.asarray(kspace))) for kspace in kspaces])
