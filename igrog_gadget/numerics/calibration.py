"""Calibration data: a Cartesian k-space block (ACS) and off-grid values taken from it.

Two ways to get the block:
- ``acs_from_cartesian_lines``: the Cartesian calibration lines of the scan
  (``ACQ_IS_PARALLEL_CALIBRATION``), positions already resolved to grid units.
- ``self_calibrate``: reconstruct the densely sampled centre of the non-Cartesian data
  by a conjugate-gradient NUFFT solve (``fit_centre``) and take the central block of its
  k-space (a smaller, low-resolution block when only a small centre is densely sampled).

``OffGridInterpolator`` evaluates the block at arbitrary k positions by sinc
(zero-padded Fourier) interpolation through finufft.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from igrog_gadget.errors import CalibrationError
from igrog_gadget.numerics.fft import centred_fftn
from igrog_gadget.numerics.geometry import box_index
from igrog_gadget.numerics.nufft import nufft_adjoint, nufft_forward
from igrog_gadget.numerics.solve import conjugate_gradients
from igrog_gadget.numerics.toeplitz import ToeplitzNormal

logger = logging.getLogger(__name__)


@dataclass
class CalibrationBlock:
    """A fully sampled Cartesian k-space block (2D, or 3D with ``kz0``)."""

    kspace: np.ndarray
    """Shape (coils, ay, ax), complex64: ``kspace[:, iy, ix]`` lies at k = (kx0 + ix, ky0 + iy);
    3D: (coils, az, ay, ax), ``kspace[:, iz, iy, ix]`` at (kx0 + ix, ky0 + iy, kz0 + iz)."""
    kx0: int
    """kx (grid units) of column 0."""
    ky0: int
    """ky (grid units) of row 0."""
    source: str
    """How it was obtained: "acs", "self-calibration" or "joint"."""
    noise_std: float | None = None
    """Estimated complex noise std of one k-space sample (from the CG fit residual), if known."""
    kz0: int = 0
    """kz (grid units) of plane 0 of a 3D block."""

    @classmethod
    def at(
        cls, kspace: np.ndarray, origin: Sequence[int] | np.ndarray, source: str, noise_std: float | None = None
    ) -> "CalibrationBlock":
        """The block ``kspace`` (coils, [az,] ay, ax) whose first entry lies at ``origin`` (x, y[, z])."""
        return cls(kspace=kspace, source=source, noise_std=noise_std, **origin_fields(origin))

    @property
    def dims(self) -> int:
        """2 or 3."""
        return int(self.kspace.ndim - 1)

    @property
    def shape(self) -> tuple[int, ...]:
        """(ay, ax), or (az, ay, ax) for a 3D block."""
        return tuple(int(n) for n in self.kspace.shape[1:])

    @property
    def origin(self) -> tuple[int, ...]:
        """k (grid units) of the first entry: (kx0, ky0), or (kx0, ky0, kz0)."""
        return (self.kx0, self.ky0, self.kz0)[: self.dims]

    @property
    def extent(self) -> tuple[int, ...]:
        """Entries per axis in (x, y[, z]) order (the reverse of ``shape``)."""
        return tuple(reversed(self.shape))


def origin_fields(origin: Sequence[int] | np.ndarray) -> dict[str, int]:
    """``kx0``, ``ky0``, ``kz0`` of a block origin (x, y[, z]) (``kz0`` = 0 for a 2D block)."""
    kx0, ky0, kz0 = (*(int(v) for v in origin), 0, 0)[:3]
    return {"kx0": kx0, "ky0": ky0, "kz0": kz0}


def acs_from_cartesian_lines(
    lines: list[tuple[np.ndarray, np.ndarray]], min_size: int = 8
) -> CalibrationBlock:
    """Assemble the largest fully sampled block around k = 0 from Cartesian lines.

    The block (a rectangle, or a box for 3D positions) grows from k = 0 one side at a time
    (x high, x low, y high, y low[, z high, z low]) while the new side is fully sampled; points
    sampled more than once hold the mean.

    Args:
        lines: per calibration readout, ``(data (coils, samples), positions (samples, dims))``
            with positions in grid units ((kx, ky) or (kx, ky, kz)); samples off integer
            positions are ignored.
        min_size: smallest acceptable block side.
    Raises:
        CalibrationError: no block of at least ``min_size`` per side around k = 0.
    """
    if not lines:
        raise CalibrationError("no calibration lines were given")
    coils = lines[0][0].shape[0]
    dims = int(lines[0][1].shape[1])
    points, values = [], []
    for number, (data, positions) in enumerate(lines):
        if data.shape[0] != coils:
            raise CalibrationError(
                f"calibration line {number} has {data.shape[0]} coils, the first has {coils}"
            )
        rounded = np.rint(positions)
        on_grid = np.all(np.abs(positions - rounded) < 1e-3, axis=1)
        points.append(rounded[on_grid].astype(np.int64))
        values.append(data[:, on_grid])
    grid = np.concatenate(points, axis=0)  # (m, dims), in line order
    if grid.shape[0] == 0 or not np.any(np.all(grid == 0, axis=1)):
        raise CalibrationError("calibration lines do not sample k = 0 on the grid")
    low = grid.min(axis=0)
    extent = grid.max(axis=0) - low + 1
    shape = tuple(int(n) for n in reversed(extent))  # array axes ([z,] y, x)
    flat = box_index(grid, low, extent)
    sums = np.zeros((coils, int(np.prod(extent))), dtype=np.complex128)
    np.add.at(sums.T, flat, np.concatenate(values, axis=1).T)  # in sample order, as a running sum
    counts = np.bincount(flat, minlength=sums.shape[1]).reshape(shape)
    sampled = counts > 0

    def array_slices(lo: np.ndarray, hi: np.ndarray) -> tuple[slice, ...]:
        # (x, y[, z]) bounds in k → array slices ([z,] y, x)
        return tuple(slice(int(lo[a] - low[a]), int(hi[a] - low[a]) + 1) for a in reversed(range(dims)))

    def full(lo: np.ndarray, hi: np.ndarray) -> bool:
        if np.any(lo < low) or np.any(hi > low + extent - 1):
            return False
        return bool(np.all(sampled[array_slices(lo, hi)]))

    box_lo = np.zeros(dims, dtype=np.int64)
    box_hi = np.zeros(dims, dtype=np.int64)
    grown = True
    while grown:
        grown = False
        for axis in range(dims):
            for side in (1, -1):
                lo, hi = box_lo.copy(), box_hi.copy()
                if side > 0:
                    lo[axis] = hi[axis] = box_hi[axis] + 1
                else:
                    lo[axis] = hi[axis] = box_lo[axis] - 1
                if full(lo, hi):
                    if side > 0:
                        box_hi[axis] += 1
                    else:
                        box_lo[axis] -= 1
                    grown = True
    sides = box_hi - box_lo + 1
    if int(sides.min()) < min_size:
        size = " x ".join(str(int(n)) for n in reversed(sides))
        need = " x ".join([str(min_size)] * dims)
        raise CalibrationError(
            f"calibration lines give a fully sampled block of only {size} around k = 0 (need at least {need})"
        )
    region = array_slices(box_lo, box_hi)
    mean = sums.reshape(coils, *shape)[(slice(None),) + region] / counts[region]
    return CalibrationBlock.at(mean.astype(np.complex64), box_lo, "acs")


def centre_coverage(coords: np.ndarray, radius: float) -> float:
    """Fraction of the grid cells within ``radius`` of k = 0 (a disc, or a ball for 3D
    positions) that hold at least one sample.

    Args:
        coords: shape (n, 2) or (n, 3), grid units.
    """
    r = int(np.ceil(radius))
    dims = int(coords.shape[1])
    axes = np.mgrid[(slice(-r, r + 1),) * dims]  # ([kz,] ky, kx) order
    in_disc = np.sum(axes**2, axis=0) <= radius**2
    hit = np.zeros_like(in_disc)
    cells = np.floor(coords + 0.5).astype(np.int64)
    inside = np.all(np.abs(cells) <= r, axis=1)
    hit[tuple(cells[inside, axis] + r for axis in reversed(range(dims)))] = True
    return float(hit[in_disc].mean())


def _density_weights(coords: np.ndarray, cell: float = 0.5) -> np.ndarray:
    """Rough density compensation: 1 / (samples in the same ``cell``-sized bin). Shape (n,)."""
    bins = np.floor(coords / cell).astype(np.int64)
    _, inverse, counts = np.unique(_row_keys(bins), return_inverse=True, return_counts=True)
    return (1.0 / counts[inverse.reshape(-1)]).astype(np.float64)


def _row_keys(cells: np.ndarray) -> np.ndarray:
    """One int64 per row of integer cells (n, dims), equal exactly for equal rows: a flat index
    into their bounding box (np.unique of these is many times faster than of the rows)."""
    low = cells.min(axis=0, initial=0)
    return box_index(cells, low, cells.max(axis=0, initial=0) - low + 1)


class SparseCentreError(CalibrationError):
    """The centre of k-space is too sparsely sampled to calibrate from; ``reason`` says how."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def sparse_centre(coverage: float, radius: float, min_coverage: float, block: int | None = None) -> str:
    """Why a centre is too sparse to calibrate from (for messages): its coverage and the need."""
    need = f"need {min_coverage:.0%}" + (f" for the smallest calibration block {block} x {block}" if block else "")
    return (
        f"the centre of k-space is not densely sampled ({coverage:.0%} of the grid cells within radius "
        f"{radius:.1f} hold a sample, {need})"
    )


def calibration_radius(size: int, dims: int = 2) -> float:
    """Radius (grid units) around k = 0 whose cells must hold samples to reconstruct a ``size``
    block (square, or cube for ``dims`` = 3): its half-diagonal plus one."""
    return size * np.sqrt(float(dims)) / 2.0 + 1.0


@dataclass
class CentreFit:
    """A regularised CG-NUFFT reconstruction of the k-space centre (see ``fit_centre``)."""

    image: np.ndarray
    """Shape (coils, grid, grid) (3D: (coils, grid, grid, grid)), complex: the image whose
    k-space fits the samples in the band."""
    noise_std: float
    """Complex noise std of one sample estimated from the fit residual (all coils)."""
    coil_noise_std: np.ndarray
    """Shape (coils,): the same estimate for each coil."""
    num_samples: int
    """Samples within the band ``|k| < grid / 2`` that were fitted."""

    def block(self, size: int, source: str) -> CalibrationBlock:
        """The central ``size`` x ``size`` (3D: x ``size``) block of the fit's k-space."""
        grid = self.image.shape[-1]
        dims = self.image.ndim - 1
        lo = grid // 2 - size // 2
        crop = (slice(None),) + (slice(lo, lo + size),) * dims
        kspace = centred_fftn(self.image, tuple(range(-dims, 0)))[crop].astype(np.complex64)
        return CalibrationBlock.at(kspace, (-(size // 2),) * dims, source, self.noise_std)


def fit_centre(
    samples: np.ndarray, coords: np.ndarray, grid: int = 64, iterations: int = 15, regularization: float = 1e-4
) -> CentreFit:
    """Solve ``min_x ||W^1/2 (F x - y)||^2 + lambda ||x||^2`` by conjugate gradients.

    ``x`` is a ``grid`` x ``grid`` image (3D positions: ``grid``^3) over the full FOV (its
    k-space spans ``[-grid/2, grid/2)``), ``F`` the NUFFT to the samples within that band, ``W`` a density
    compensation; ``F^H W F`` is applied as a Toeplitz convolution (``ToeplitzNormal``). The noise estimate is the residual power per degree of freedom (samples
    minus the k-space cells they hit).

    Args:
        samples: shape (coils, n), complex.
        coords: shape (n, 2) = (kx, ky) or (n, 3) = (kx, ky, kz), grid units.
    Raises:
        CalibrationError: no sample within the band.
    """
    dims = int(coords.shape[1])
    band = np.max(np.abs(coords), axis=1) < grid / 2 - 0.5
    if not band.any():
        raise CalibrationError(f"no sample lies within the central {' x '.join([str(grid)] * dims)} band of k-space")
    used_coords = coords[band]
    used = samples[:, band].astype(np.complex64)
    weights = _density_weights(used_coords)
    shape = (grid,) * dims

    toeplitz = ToeplitzNormal(used_coords, weights, shape)  # F^H W F as an FFT convolution: two FFTs per step, no NUFFT

    def normal(image: np.ndarray) -> np.ndarray:
        return toeplitz(image) + regularization * image

    rhs = nufft_adjoint(weights * used, used_coords, shape)
    scale = float(np.max(np.abs(rhs))) or 1.0
    x = conjugate_gradients(normal, rhs, iterations, stop=lambda rr: np.sqrt(rr) < 1e-6 * scale)
    residual_samples = used - nufft_forward(x, used_coords)
    # Unknowns per coil: the k-space cells the samples constrain (grid * grid when the band is
    # densely sampled; fewer for undersampled data, whose residual would else count as noise).
    cells = np.unique(_row_keys(np.floor(used_coords + 0.5).astype(np.int64))).shape[0]
    dof = max(used.shape[1] - min(cells, grid**dims), 1)
    coil_power = np.sum(np.abs(residual_samples) ** 2, axis=1) / dof
    noise_std = float(np.sqrt(np.mean(coil_power)))
    return CentreFit(image=x, noise_std=noise_std, coil_noise_std=np.sqrt(coil_power), num_samples=int(used.shape[1]))


def largest_calibration_size(coords: np.ndarray, size: int, min_size: int, min_coverage: float) -> tuple[int, float]:
    """Largest even block side in ``[min_size, size]`` whose centre disc (3D: ball) is densely
    sampled, and that disc's coverage; ``(0, coverage at min_size)`` when none is.

    Args:
        coords: shape (n, 2) or (n, 3), grid units.
    """
    coverage = 0.0
    for side in range(size, min_size - 1, -2):
        coverage = centre_coverage(coords, calibration_radius(side, int(coords.shape[1])))
        if coverage >= min_coverage:
            return side, coverage
    return 0, coverage


def self_calibrate(
    samples: np.ndarray,
    coords: np.ndarray,
    size: int = 32,
    grid: int = 64,
    iterations: int = 15,
    min_coverage: float = 0.9,
    regularization: float = 1e-4,
    min_size: int | None = None,
) -> CalibrationBlock:
    """Cartesian calibration block from the densely sampled centre of non-Cartesian data.

    The central ``size`` x ``size`` block of a ``fit_centre`` reconstruction. When the centre is
    not densely sampled that far (undersampled radial) and ``min_size`` is given, the block
    shrinks to the largest side >= ``min_size`` that is (a low-resolution calibration, logged
    as a warning).

    Args:
        samples: shape (coils, n), complex.
        coords: shape (n, 2) = (kx, ky) or (n, 3) = (kx, ky, kz), grid units.
    Raises:
        CalibrationError: the centre is not densely sampled (coverage below ``min_coverage``
            even for the smallest block allowed).
    """
    if size > grid:
        raise CalibrationError(f"self-calibration size {size} exceeds its grid {grid}")
    dims = int(coords.shape[1])
    side, coverage = largest_calibration_size(coords, size, min_size or size, min_coverage)
    if side == 0:
        smallest = min_size or size
        reason = sparse_centre(coverage, calibration_radius(smallest, dims), min_coverage, smallest)
        raise SparseCentreError(
            f"no calibration data: no ACS lines and {reason}; acquire ACS lines or give image-domain calibration",
            reason,
        )
    if side < size:
        logger.warning(
            "the centre of k-space is densely sampled only within radius %.1f: low-resolution "
            "self-calibration block %d x %d instead of %d x %d (the estimated error says how well it serves)",
            calibration_radius(side, dims), side, side, size, size,
        )
    fit = fit_centre(samples, coords, grid, iterations, regularization)
    logger.info(
        "calibration solve: %d samples, %dx%d block, centre coverage %.0f%%, noise std %.3g",
        fit.num_samples, side, side, 100 * coverage, fit.noise_std,
    )
    return fit.block(side, "self-calibration")


class OffGridInterpolator:
    """Sinc interpolation of a calibration block at arbitrary k positions.

    The block is zero-padded to ``padding`` times its size, taken to the image domain,
    and evaluated at the requested positions with a type-2 NUFFT: a Dirichlet (periodic
    sinc) interpolation that is exact for k-space band-limited to the FOV, up to the
    truncation of the block (poor within a few grid units of its edge).
    """

    def __init__(self, block: CalibrationBlock, padding: int = 4) -> None:
        coils = block.kspace.shape[0]
        self.block = block
        self.grid = tuple(int(padding * n) for n in block.shape)  # ([az,] ay, ax) padded
        padded = np.zeros((coils, *self.grid), dtype=np.complex64)
        corner = tuple(reversed(block.origin))  # ([kz0,] ky0, kx0)
        region = tuple(slice(g // 2 + o, g // 2 + o + n) for g, o, n in zip(self.grid, corner, block.shape))
        padded[(slice(None),) + region] = block.kspace
        self._image = centred_fftn(padded, tuple(range(-block.dims, 0)), inverse=True)

    def __call__(self, coords: np.ndarray) -> np.ndarray:
        """Values at ``coords`` (n, 2) (kx, ky) (3D block: (n, 3) (kx, ky, kz)) grid units →
        shape (coils, n), complex64."""
        return nufft_forward(self._image, coords)
