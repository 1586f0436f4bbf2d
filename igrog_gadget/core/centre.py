"""The centre of gridded k-space taken from the calibration block (``calibration.fill_centre``).

A k-space calibration block (joint or self-calibration: a least-squares fit of the samples of the
k-space centre, with the ACS lines when there are some; or the ACS lines themselves) already
holds the Cartesian values where the image's energy is. Kernels moving each sample onto a grid
point add their shift error there, the block does not: grid points inside the block (less a
margin, where its truncation makes it less reliable) that samples reached take its value.
"""

from __future__ import annotations

import math

import numpy as np

from igrog_gadget.numerics.calibration import CalibrationBlock
from igrog_gadget.numerics.geometry import SampleGeometry


def block_interior(block: CalibrationBlock, margin: float, matrix_shape: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Where the block's interior lies in a grid and in the block.

    Args:
        block: the calibration block.
        margin: grid units kept from the block's edge.
        matrix_shape: ``([nz,] ny, nx)`` of the grid (k = 0 at index n//2).
    Returns:
        ``(grid slices, block slices)``, each per array axis ``([z,] y, x)``; empty slices when
        nothing of the interior lies in the grid.
    """
    grid_slices, block_slices = [], []
    for n, origin, extent in zip(matrix_shape, reversed(block.origin), block.shape):
        low = max(math.ceil(origin + margin), -(n // 2))
        high = min(math.floor(origin + extent - 1 - margin), n - 1 - n // 2)
        high = max(high, low - 1)  # empty when the margin leaves nothing
        grid_slices.append(slice(low + n // 2, high + 1 + n // 2))
        block_slices.append(slice(low - origin, high + 1 - origin))
    return tuple(grid_slices), tuple(block_slices)


def fill_margin(block: CalibrationBlock, edge_margin: float) -> float:
    """Grid units kept from the block's edge: ``edge_margin`` for a block fitted with calibration
    lines (acs, joint); for a self-calibration block (the non-Cartesian samples alone, whose fit
    loses accuracy towards its edge: 128^2 spirals, error at 8 <= |k| < 16 1.6-2.8x the kernels')
    at least a quarter of its side, so that its central half fills."""
    if block.source == "self-calibration":
        return max(edge_margin, min(block.shape) / 4)
    return edge_margin


def filled_region(block: CalibrationBlock, edge_margin: float, geometry: SampleGeometry) -> tuple[slice, ...]:
    """The grid slices ``([z,] y, x)`` whose sampled points ``fill_from_block`` sets from ``block``."""
    return block_interior(block, fill_margin(block, edge_margin), tuple(reversed(geometry.matrix)))[0]


def samples_in_region(geometry: SampleGeometry, region: tuple[slice, ...]) -> np.ndarray:
    """Shape (samples,) bool: the samples whose grid point lies in ``region`` (``filled_region``):
    their gridded values are replaced, so they need no kernel."""
    shape = tuple(reversed(geometry.matrix))
    indices = np.unravel_index(geometry.grid_index, shape)  # ([z,] y, x) per sample
    inside = np.ones(geometry.grid_index.shape[0], dtype=bool)
    for index, span in zip(indices, region):
        inside &= (index >= span.start) & (index < span.stop)
    return inside


def fill_from_block(kspace: np.ndarray, hits: np.ndarray, block: CalibrationBlock, edge_margin: float) -> np.ndarray:
    """Set the sampled grid points inside ``block`` (``fill_margin`` from its edge) to the
    block's values, in place; returns where (([nz,] ny, nx) bool).

    Args:
        kspace: shape (coils, [nz,] ny, nx), complex: gridded k-space in the block's coils.
        hits: shape ([nz,] ny, nx): samples averaged into each point.
        block: kspace (coils, [az,] ay, ax) on the same grid.
    """
    if block.dims != hits.ndim or block.kspace.shape[0] != kspace.shape[0]:
        raise ValueError(
            f"calibration block of shape {block.kspace.shape} does not fit gridded k-space of shape {kspace.shape}"
        )
    grid_region, block_region = block_interior(block, fill_margin(block, edge_margin), hits.shape)
    sampled = hits[grid_region] > 0
    target = kspace[(slice(None),) + grid_region]  # a view
    target[:, sampled] = block.kspace[(slice(None),) + block_region][:, sampled]
    filled = np.zeros(hits.shape, dtype=bool)
    filled[grid_region] = sampled
    return filled
