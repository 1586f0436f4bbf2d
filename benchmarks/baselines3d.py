"""3D baselines of the benchmark: nearest neighbour and classic GROG on a 3D grid.

The 3D forms of :mod:`benchmarks.baselines` (same conventions, one more axis):

* ``matrix`` is ``(nx, ny, nz)``; gridded k-space has shape ``(coils, nz, ny, nx)``, the sample
  that snaps to ``(gx, gy, gz)`` goes to ``[gz + nz // 2, gy + ny // 2, gx + nx // 2]``.
* ``coords`` has shape ``(n, 3)``, columns ``(kx, ky, kz)`` in grid units; "nearest" is
  ``numpy.rint`` per coordinate; each grid point holds the mean of what lands on it.
* Classic 3D GROG learns three unit-shift GRAPPA operators ``gx``, ``gy``, ``gz`` from a
  Cartesian 3D block and moves a sample by ``Gx**dx Gy**dy Gz**dz`` (Gz first), the fractional
  powers exact per sample (eigendecomposition, :class:`benchmarks.baselines._EigenPower`).

References:
    Seiberlich, Breuer, Blaimer, Jakob, Griswold, "Self-calibrating GRAPPA operator gridding for
    radial and spiral trajectories", MRM 59:930-935 (2008) (3D: Seiberlich et al., MRM 58:1257, 2007).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from benchmarks.baselines import GriddingResult, _EigenPower, _fit_shift_operator

__all__ = ["grid_nearest_neighbour_3d", "ClassicGrog3d"]


def _check(samples: np.ndarray, coords: np.ndarray, matrix: Sequence[int]) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
    samples, coords = np.asarray(samples), np.asarray(coords, dtype=np.float64)
    if samples.ndim != 2 or coords.ndim != 2 or coords.shape != (samples.shape[1], 3):
        raise ValueError(f"need samples (coils, n) and coords (n, 3), got shapes {samples.shape} and {coords.shape}")
    size = tuple(int(n) for n in matrix)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"matrix must be (nx, ny, nz) of positive integers, got {matrix!r}")
    if not np.all(np.isfinite(coords)):
        raise ValueError("coords must be finite")
    return samples, coords, size  # type: ignore[return-value]


def _nearest(coords: np.ndarray, matrix: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(keep (n,), grid points (m, 3), flat index (m,))`` of the samples whose nearest grid point is inside."""
    nearest = np.rint(coords)
    index = nearest.astype(np.int64) + np.array([n // 2 for n in matrix])
    keep = np.all((index >= 0) & (index < np.array(matrix)), axis=1)
    nx, ny, _ = matrix
    inside = index[keep]
    return keep, nearest[keep], (inside[:, 2] * ny + inside[:, 1]) * nx + inside[:, 0]


def _mean(values: np.ndarray, flat_index: np.ndarray, matrix: tuple[int, int, int], dropped: int) -> GriddingResult:
    """Mean of ``values (coils, m)`` per grid point, (coils, nz, ny, nx) complex64, and the hits."""
    nx, ny, nz = matrix
    points = nx * ny * nz
    hits = np.bincount(flat_index, minlength=points)
    sums = np.zeros((values.shape[0], points), dtype=np.complex128)
    for coil in range(values.shape[0]):  # one coil at a time: bounded memory
        sums[coil] = np.bincount(flat_index, weights=values[coil].real, minlength=points) + 1j * np.bincount(
            flat_index, weights=values[coil].imag, minlength=points
        )
    mean = np.divide(sums, hits[None, :], out=np.zeros_like(sums), where=hits[None, :] > 0)
    return GriddingResult(mean.astype(np.complex64).reshape(-1, nz, ny, nx), hits.astype(np.int32).reshape(nz, ny, nx), dropped)


def grid_nearest_neighbour_3d(samples: np.ndarray, coords: np.ndarray, matrix: Sequence[int]) -> GriddingResult:
    """Snap each sample (coils, n) at coords (n, 3) to its nearest point of the (nx, ny, nz) grid and average."""
    samples, coords, size = _check(samples, coords, matrix)
    keep, _, flat = _nearest(coords, size)
    return _mean(samples[:, keep], flat, size, int(coords.shape[0] - keep.sum()))


class ClassicGrog3d:
    """Classic 3D GROG: unit-shift operators ``gx``, ``gy``, ``gz`` (coils, coils) complex128."""

    def __init__(self, gx: np.ndarray, gy: np.ndarray, gz: np.ndarray) -> None:
        self.operators = tuple(np.asarray(g, dtype=np.complex128) for g in (gx, gy, gz))
        self._powers = tuple(_EigenPower(g, name) for g, name in zip(self.operators, ("gx", "gy", "gz")))

    @classmethod
    def from_acs(cls, acs: np.ndarray, regularization: float = 1e-3) -> "ClassicGrog3d":
        """Learn the operators from a Cartesian block ``acs`` (coils, az, ay, ax), each side >= 2:
        every pair of neighbouring block points along an axis is one equation."""
        acs = np.asarray(acs, dtype=np.complex128)
        if acs.ndim != 4 or min(acs.shape[1:]) < 2:
            raise ValueError(f"acs must have shape (coils, az, ay, ax) with sides >= 2, got {acs.shape}")
        coils = acs.shape[0]
        operators = []
        for axis in (3, 2, 1):  # x, y, z
            low = [slice(None)] * 4
            high = [slice(None)] * 4
            low[axis], high[axis] = slice(None, -1), slice(1, None)
            operators.append(
                _fit_shift_operator(acs[tuple(low)].reshape(coils, -1), acs[tuple(high)].reshape(coils, -1), regularization)
            )
        return cls(*operators)

    def grid(self, samples: np.ndarray, coords: np.ndarray, matrix: Sequence[int], chunk: int = 262144) -> GriddingResult:
        """Shift each sample to its nearest grid point (Gz, then Gy, then Gx) and average
        (``chunk`` samples at a time)."""
        samples, coords, size = _check(samples, coords, matrix)
        keep, grid_points, flat = _nearest(coords, size)
        kept, shifts = samples[:, keep], grid_points - coords[keep]
        shifted = np.empty(kept.shape, dtype=np.complex128)
        for start in range(0, kept.shape[1], chunk):
            part = kept[:, start : start + chunk].astype(np.complex128)
            for power, column in zip(reversed(self._powers), (2, 1, 0)):
                d = shifts[start : start + chunk, column]
                moving = np.flatnonzero(d != 0)
                if moving.size:
                    part[:, moving] = power.apply(part[:, moving], d[moving])
            shifted[:, start : start + chunk] = part
        return _mean(shifted, flat, size, int(coords.shape[0] - keep.sum()))
