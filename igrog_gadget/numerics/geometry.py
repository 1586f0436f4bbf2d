"""Where each non-Cartesian sample goes: its target grid point and its source window.

A sample at k (grid units) is moved to the nearest grid point g = round(k). Its
sources are ``num_sources`` consecutive samples of the same readout centred on it
(the window is shifted inwards at the readout ends; readouts of different lengths each
have their own ends). The kernel input is the set of
offsets ``k_source - g``.

In 3D a readout's own samples lie on a line: they tell the kernel nothing about the two
directions across it, which the coils alone must bridge. ``add_neighbour_sources`` appends the
samples of *other* readouts nearest to g (within a radius) as further sources; in the densely
sampled part of a kooshball or a stack those lie well within a grid unit of g.

The same code serves 2D and 3D: positions are ``(kx, ky)`` or ``(kx, ky, kz)`` (the last axis of
the trajectory), the matrix ``(nx, ny)`` or ``(nx, ny, nz)``, and flat grid indices run x fastest
(``iy * nx + ix``, in 3D ``(iz * ny + iy) * nx + ix``): the C order of a ``(.., ny, nx)`` /
``(.., nz, ny, nx)`` k-space array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from igrog_gadget.errors import InputDataError

#: Grid points whose neighbours are looked up at once (bounds the look-up's memory: a few
#: hundred bytes per point).
NEIGHBOUR_CHUNK = 131072


@dataclass
class SampleGeometry:
    """Gridding geometry of all samples of one frame."""

    grid_index: np.ndarray
    """Shape (n,), int64: flat index ``iy * nx + ix`` (3D: ``(iz * ny + iy) * nx + ix``) of each
    kept sample's target grid point."""
    source_index: np.ndarray
    """Shape (n, sources), int64: flat index ``readout * samples + i`` of each source sample."""
    offsets: np.ndarray
    """Shape (n, sources, dims), float32: source position minus target grid point, (kx, ky[, kz]) grid units."""
    sample_index: np.ndarray
    """Shape (n,), int64: flat index of the sample being gridded (for sample times)."""
    matrix: tuple[int, ...]
    """(nx, ny) or (nx, ny, nz) of the grid."""
    num_dropped: int
    """Samples whose nearest grid point lies outside the matrix."""

    @property
    def num_samples(self) -> int:
        return int(self.grid_index.shape[0])


def source_windows(samples_per_readout: int, num_sources: int) -> np.ndarray:
    """Indices of the source samples of every sample along one readout.

    Returns shape (samples_per_readout, num_sources), int64: window ``i - (S-1)//2 ...``
    clipped so that it stays inside the readout.
    """
    if num_sources < 1:
        raise InputDataError(f"num_sources must be >= 1, got {num_sources}")
    if samples_per_readout < num_sources:
        raise InputDataError(
            f"readouts have {samples_per_readout} samples, fewer than num_sources={num_sources}"
        )
    centre = np.arange(samples_per_readout)
    start = np.clip(centre - (num_sources - 1) // 2, 0, samples_per_readout - num_sources)
    return start[:, None] + np.arange(num_sources)[None, :]


def nearest_grid_points(coords: np.ndarray, matrix: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Nearest grid point of each position.

    Args:
        coords: shape (..., dims), (kx, ky[, kz]) in grid units.
        matrix: (nx, ny[, nz]), one size per column of ``coords``.
    Returns:
        ``(grid (..., dims) int64 as (kx, ky[, kz]), inside (...) bool)`` where ``inside`` marks
        grid points within the matrix (index ``k + n//2`` in ``[0, n)`` on every axis).
    """
    grid = np.floor(coords + 0.5).astype(np.int64)
    inside = np.ones(grid.shape[:-1], dtype=bool)
    for axis, n in enumerate(matrix):
        index = grid[..., axis] + n // 2
        inside &= (index >= 0) & (index < n)
    return grid, inside


def box_index(points: np.ndarray, low, extent) -> np.ndarray:
    """Flat index (x fastest) of integer points (..., dims) (kx, ky[, kz]) in the box whose
    corner is ``low`` and whose sides are ``extent`` (dims each) → (...) int64: the C order of
    a ``([nz,] ny, nx)`` array of that box."""
    flat = np.zeros(points.shape[:-1], dtype=np.int64)
    for axis in reversed(range(points.shape[-1])):
        flat = flat * int(extent[axis]) + (points[..., axis] - int(low[axis]))
    return flat


def flat_grid_index(grid: np.ndarray, matrix: tuple[int, ...]) -> np.ndarray:
    """Flat index (x fastest) of grid points ``grid`` (..., dims) int64 (kx, ky[, kz]) → (...) int64."""
    return box_index(grid, [-(n // 2) for n in matrix], matrix)


def build_geometry(
    traj: np.ndarray, matrix: tuple[int, ...], num_sources: int, lengths: np.ndarray | None = None
) -> SampleGeometry:
    """Target grid points and source windows for every sample of a frame.

    Args:
        traj: shape (readouts, samples, dims), (kx, ky[, kz]) in grid units.
        matrix: (nx, ny[, nz]) of the grid, one size per trajectory column.
        num_sources: consecutive readout samples feeding each kernel.
        lengths: shape (readouts,), int: samples of each readout when readouts differ in length
            (the rest of its row is padding: never a target, never a source); None = all.
    """
    if traj.ndim != 3 or traj.shape[-1] not in (2, 3) or traj.shape[-1] != len(matrix):
        raise InputDataError(
            f"trajectory must have shape (readouts, samples, {len(matrix)}) for a {len(matrix)}D grid {tuple(matrix)}, "
            f"got {traj.shape}"
        )
    num_readouts, samples, _ = traj.shape
    if lengths is None:
        windows = np.broadcast_to(source_windows(samples, num_sources), (num_readouts, samples, num_sources))
        valid = np.ones((num_readouts, samples), dtype=bool)
    else:
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.shape != (num_readouts,) or lengths.max(initial=0) > samples:
            raise InputDataError(f"readout lengths of shape {lengths.shape} do not fit a trajectory of shape {traj.shape}")
        if lengths.min(initial=num_sources) < num_sources:
            raise InputDataError(
                f"a readout has {int(lengths.min())} samples, fewer than num_sources={num_sources}"
            )
        centre = np.arange(samples)
        start = np.clip(centre[None, :] - (num_sources - 1) // 2, 0, (lengths - num_sources)[:, None])
        windows = start[:, :, None] + np.arange(num_sources)[None, None, :]  # (R, L, S)
        valid = centre[None, :] < lengths[:, None]
    grid, inside = nearest_grid_points(traj, matrix)  # (R, L, D), (R, L)
    source_pos = traj[np.arange(num_readouts)[:, None, None], windows, :]  # (R, L, S, D)
    offsets = source_pos - grid[:, :, None, :].astype(traj.dtype)
    readout_base = (np.arange(num_readouts, dtype=np.int64) * samples)[:, None, None]
    source_index = readout_base + windows  # (R, L, S)
    dims = len(matrix)
    flat_grid = flat_grid_index(grid, matrix)
    keep = (inside & valid).reshape(-1)
    sample_index = np.arange(num_readouts * samples, dtype=np.int64)[keep]
    return SampleGeometry(
        grid_index=flat_grid.reshape(-1)[keep],
        source_index=source_index.reshape(-1, num_sources)[keep],
        offsets=offsets.reshape(-1, num_sources, dims)[keep].astype(np.float32),
        sample_index=sample_index,
        matrix=tuple(int(n) for n in matrix),
        num_dropped=int((valid & ~inside).sum()),
    )


def add_neighbour_sources(
    geometry: SampleGeometry, traj: np.ndarray, count: int, radius: float, chunk: int = NEIGHBOUR_CHUNK
) -> SampleGeometry:
    """``geometry`` with ``count`` more sources per sample: the samples of other readouts nearest
    to its target grid point, nearest first, within ``radius`` grid units (where fewer lie that
    close, the sample itself stands in: a repeated source adds nothing).

    Args:
        geometry: built by ``build_geometry`` from ``traj``.
        traj: shape (readouts, samples, dims), grid units (padding samples lie far outside every radius).
        count: sources to add (0: ``geometry`` unchanged).
        radius: largest distance (grid units) of a neighbour from the target grid point.
        chunk: grid points looked up at once (memory bound).
    Returns:
        The geometry with ``source_index`` (n, S + count) and ``offsets`` (n, S + count, dims).
    """
    if count <= 0 or geometry.num_samples == 0:
        return geometry
    from scipy.spatial import cKDTree  # only 3D gridding needs it

    num_readouts, samples, dims = traj.shape
    flat = traj.reshape(-1, dims).astype(np.float64)
    tree = cKDTree(flat)
    # own-readout samples within the radius: about 2 * radius per readout sample spacing
    spacing = float(np.median(np.linalg.norm(np.diff(traj[: min(num_readouts, 64)], axis=1), axis=-1))) if samples > 1 else 1.0
    query = count + int(np.ceil(2 * radius / max(spacing, 1e-3))) + 4
    extra = np.empty((geometry.num_samples, count), dtype=np.int64)
    positions = np.empty((geometry.num_samples, count, dims), dtype=np.float32)
    for start in range(0, geometry.num_samples, chunk):
        stop = min(start + chunk, geometry.num_samples)
        own = geometry.sample_index[start:stop]
        grid = np.floor(flat[own] + 0.5)
        distance, index = tree.query(grid, k=min(query, flat.shape[0]), distance_upper_bound=radius)
        index = index.reshape(grid.shape[0], -1)
        valid = np.isfinite(distance.reshape(index.shape)) & (index // samples != (own // samples)[:, None])
        rank = np.cumsum(valid, axis=1)
        rows = np.arange(grid.shape[0])
        for j in range(count):
            hit = valid & (rank == j + 1)
            found = hit.any(axis=1)
            chosen = np.where(found, index[rows, np.argmax(hit, axis=1)], own)
            extra[start:stop, j] = chosen
            positions[start:stop, j] = flat[chosen] - grid
    return SampleGeometry(
        grid_index=geometry.grid_index,
        source_index=np.concatenate([geometry.source_index, extra], axis=1),
        offsets=np.concatenate([geometry.offsets, positions], axis=1),
        sample_index=geometry.sample_index,
        matrix=geometry.matrix,
        num_dropped=geometry.num_dropped,
    )
