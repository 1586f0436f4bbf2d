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

import numpy as np

from igrog_gadget.errors import CalibrationError
from igrog_gadget.gridding.fft import centred_fft2, centred_ifft2
from igrog_gadget.gridding.nufft import nufft_adjoint, nufft_forward
from igrog_gadget.gridding.solve import conjugate_gradients

logger = logging.getLogger(__name__)


@dataclass
class CalibrationBlock:
    """A fully sampled Cartesian k-space block."""

    kspace: np.ndarray
    """Shape (coils, ay, ax), complex64: ``kspace[:, iy, ix]`` lies at k = (kx0 + ix, ky0 + iy)."""
    kx0: int
    """kx (grid units) of column 0."""
    ky0: int
    """ky (grid units) of row 0."""
    source: str
    """How it was obtained: "acs", "self-calibration" or "joint"."""
    noise_std: float | None = None
    """Estimated complex noise std of one k-space sample (from the CG fit residual), if known."""

    @property
    def shape(self) -> tuple[int, int]:
        """(ay, ax)."""
        return int(self.kspace.shape[1]), int(self.kspace.shape[2])


def acs_from_cartesian_lines(
    lines: list[tuple[np.ndarray, np.ndarray]], min_size: int = 8
) -> CalibrationBlock:
    """Assemble the largest fully sampled block around k = 0 from Cartesian lines.

    Args:
        lines: per calibration readout, ``(data (coils, samples), positions (samples, 2))``
            with positions in grid units; samples off integer positions are ignored.
        min_size: smallest acceptable block side.
    Raises:
        CalibrationError: no block of at least ``min_size`` x ``min_size`` around k = 0.
    """
    if not lines:
        raise CalibrationError("no calibration lines were given")
    coils = lines[0][0].shape[0]
    sums: dict[tuple[int, int], np.ndarray] = {}
    counts: dict[tuple[int, int], int] = {}
    for number, (data, positions) in enumerate(lines):
        if data.shape[0] != coils:
            raise CalibrationError(
                f"calibration line {number} has {data.shape[0]} coils, the first has {coils}"
            )
        rounded = np.rint(positions)
        on_grid = np.all(np.abs(positions - rounded) < 1e-3, axis=1)
        for sample in np.flatnonzero(on_grid):
            key = (int(rounded[sample, 1]), int(rounded[sample, 0]))  # (ky, kx)
            if key in sums:
                sums[key] = sums[key] + data[:, sample]
                counts[key] += 1
            else:
                sums[key] = data[:, sample].astype(np.complex128)
                counts[key] = 1
    if (0, 0) not in sums:
        raise CalibrationError("calibration lines do not sample k = 0 on the grid")

    def covered(ky: int, kx_lo: int, kx_hi: int) -> bool:
        return all((ky, kx) in sums for kx in range(kx_lo, kx_hi + 1))

    # Grow a rectangle around the origin, one side at a time, while fully sampled.
    ky_lo = ky_hi = kx_lo = kx_hi = 0
    grown = True
    while grown:
        grown = False
        if all((ky, kx_hi + 1) in sums for ky in range(ky_lo, ky_hi + 1)):
            kx_hi += 1
            grown = True
        if all((ky, kx_lo - 1) in sums for ky in range(ky_lo, ky_hi + 1)):
            kx_lo -= 1
            grown = True
        if covered(ky_hi + 1, kx_lo, kx_hi):
            ky_hi += 1
            grown = True
        if covered(ky_lo - 1, kx_lo, kx_hi):
            ky_lo -= 1
            grown = True
    ay, ax = ky_hi - ky_lo + 1, kx_hi - kx_lo + 1
    if min(ay, ax) < min_size:
        raise CalibrationError(
            f"calibration lines give a fully sampled block of only {ay} x {ax} around k = 0 "
            f"(need at least {min_size} x {min_size})"
        )
    block = np.zeros((coils, ay, ax), dtype=np.complex64)
    for iy, ky in enumerate(range(ky_lo, ky_hi + 1)):
        for ix, kx in enumerate(range(kx_lo, kx_hi + 1)):
            block[:, iy, ix] = sums[(ky, kx)] / counts[(ky, kx)]
    return CalibrationBlock(kspace=block, kx0=kx_lo, ky0=ky_lo, source="acs")


def centre_coverage(coords: np.ndarray, radius: float) -> float:
    """Fraction of the grid cells within ``radius`` of k = 0 that hold at least one sample.

    Args:
        coords: shape (n, 2), grid units.
    """
    r = int(np.ceil(radius))
    ky, kx = np.mgrid[-r : r + 1, -r : r + 1]
    in_disc = kx**2 + ky**2 <= radius**2
    hit = np.zeros_like(in_disc)
    cells = np.floor(coords + 0.5).astype(np.int64)
    inside = np.all(np.abs(cells) <= r, axis=1)
    hit[cells[inside, 1] + r, cells[inside, 0] + r] = True
    return float(hit[in_disc].mean())


def _density_weights(coords: np.ndarray, cell: float = 0.5) -> np.ndarray:
    """Rough density compensation: 1 / (samples in the same ``cell``-sized bin). Shape (n,)."""
    bins = np.floor(coords / cell).astype(np.int64)
    _, inverse, counts = np.unique(bins, axis=0, return_inverse=True, return_counts=True)
    return (1.0 / counts[inverse.reshape(-1)]).astype(np.float64)


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


def calibration_radius(size: int) -> float:
    """Radius (grid units) around k = 0 whose cells must hold samples to reconstruct a ``size`` block."""
    return size / np.sqrt(2.0) + 1.0


@dataclass
class CentreFit:
    """A regularised CG-NUFFT reconstruction of the k-space centre (see ``fit_centre``)."""

    image: np.ndarray
    """Shape (coils, grid, grid), complex: the image whose k-space fits the samples in the band."""
    noise_std: float
    """Complex noise std of one sample estimated from the fit residual."""
    num_samples: int
    """Samples within the band ``|k| < grid / 2`` that were fitted."""

    def block(self, size: int, source: str) -> CalibrationBlock:
        """The central ``size`` x ``size`` block of the fit's k-space."""
        grid = self.image.shape[-1]
        lo = grid // 2 - size // 2
        kspace = centred_fft2(self.image)[:, lo : lo + size, lo : lo + size].astype(np.complex64)
        return CalibrationBlock(kspace=kspace, kx0=-(size // 2), ky0=-(size // 2), source=source, noise_std=self.noise_std)


def fit_centre(
    samples: np.ndarray, coords: np.ndarray, grid: int = 64, iterations: int = 15, regularization: float = 1e-4
) -> CentreFit:
    """Solve ``min_x ||W^1/2 (F x - y)||^2 + lambda ||x||^2`` by conjugate gradients.

    ``x`` is a ``grid`` x ``grid`` image over the full FOV (its k-space spans
    ``[-grid/2, grid/2)``), ``F`` the NUFFT to the samples within that band, ``W`` a density
    compensation. The noise estimate is the residual power per degree of freedom (samples
    minus the k-space cells they hit).

    Args:
        samples: shape (coils, n), complex.
        coords: shape (n, 2), (kx, ky) grid units.
    Raises:
        CalibrationError: no sample within the band.
    """
    band = np.max(np.abs(coords), axis=1) < grid / 2 - 0.5
    if not band.any():
        raise CalibrationError(f"no sample lies within the central {grid} x {grid} band of k-space")
    used_coords = coords[band]
    used = samples[:, band].astype(np.complex64)
    weights = _density_weights(used_coords)
    shape = (grid, grid)

    def normal(image: np.ndarray) -> np.ndarray:
        return nufft_adjoint(weights * nufft_forward(image, used_coords), used_coords, shape) + regularization * image

    rhs = nufft_adjoint(weights * used, used_coords, shape)
    scale = float(np.max(np.abs(rhs))) or 1.0
    x = conjugate_gradients(normal, rhs, iterations, stop=lambda rr: np.sqrt(rr) < 1e-6 * scale)
    residual_samples = used - nufft_forward(x, used_coords)
    # Unknowns per coil: the k-space cells the samples constrain (grid * grid when the band is
    # densely sampled; fewer for undersampled data, whose residual would else count as noise).
    cells = np.unique(np.floor(used_coords + 0.5).astype(np.int64), axis=0).shape[0]
    dof = max(used.shape[1] - min(cells, grid * grid), 1)
    noise_std = float(np.sqrt(np.sum(np.abs(residual_samples) ** 2) / (used.shape[0] * dof)))
    return CentreFit(image=x, noise_std=noise_std, num_samples=int(used.shape[1]))


def largest_calibration_size(coords: np.ndarray, size: int, min_size: int, min_coverage: float) -> tuple[int, float]:
    """Largest even block side in ``[min_size, size]`` whose centre disc is densely sampled, and
    that disc's coverage; ``(0, coverage at min_size)`` when none is.

    Args:
        coords: shape (n, 2), grid units.
    """
    coverage = 0.0
    for side in range(size, min_size - 1, -2):
        coverage = centre_coverage(coords, calibration_radius(side))
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
        coords: shape (n, 2), (kx, ky) grid units.
    Raises:
        CalibrationError: the centre is not densely sampled (coverage below ``min_coverage``
            even for the smallest block allowed).
    """
    if size > grid:
        raise CalibrationError(f"self-calibration size {size} exceeds its grid {grid}")
    side, coverage = largest_calibration_size(coords, size, min_size or size, min_coverage)
    if side == 0:
        smallest = min_size or size
        reason = sparse_centre(coverage, calibration_radius(smallest), min_coverage, smallest)
        raise SparseCentreError(
            f"no calibration data: no ACS lines and {reason}; acquire ACS lines or give image-domain calibration",
            reason,
        )
    if side < size:
        logger.warning(
            "the centre of k-space is densely sampled only within radius %.1f: low-resolution "
            "self-calibration block %d x %d instead of %d x %d (the estimated error says how well it serves)",
            calibration_radius(side), side, side, size, size,
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
        coils, ay, ax = block.kspace.shape
        self.block = block
        self.grid = (int(padding * ay), int(padding * ax))
        padded = np.zeros((coils, *self.grid), dtype=np.complex64)
        oy = self.grid[0] // 2 + block.ky0
        ox = self.grid[1] // 2 + block.kx0
        padded[:, oy : oy + ay, ox : ox + ax] = block.kspace
        self._image = centred_ifft2(padded)

    def __call__(self, coords: np.ndarray) -> np.ndarray:
        """Values at ``coords`` (n, 2) (kx, ky) grid units → shape (coils, n), complex64."""
        return nufft_forward(self._image, coords)
