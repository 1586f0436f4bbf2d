"""Baseline gridding methods for the benchmark: nearest neighbour and classic GROG.

Both methods move every non-Cartesian k-space sample onto its nearest Cartesian
grid point and average whatever lands on the same point.  They differ only in
what is moved: nearest neighbour moves the sample value as it is, classic GROG
(Seiberlich et al., MRM 2007;58:1257-1265 and MRM 2008;59:930-935) first shifts
it with GRAPPA operators learned from a Cartesian calibration block.

Conventions (shared with the rest of the benchmark)
---------------------------------------------------
* ``matrix`` is ``(nx, ny)``; the grid has ``ny`` rows and ``nx`` columns.
* k-space coordinates are in grid units (cycles per field of view); ``k = 0``
  sits at index ``n // 2`` along each axis.
* ``samples`` has shape ``(coils, n)`` (complex); ``coords`` has shape
  ``(n, 2)`` with columns ``(kx, ky)``.
* Gridded k-space has shape ``(coils, ny, nx)``; the sample that snaps to grid
  point ``(gx, gy)`` goes to index ``[gy + ny // 2, gx + nx // 2]``.
* Each grid point holds the MEAN of the samples moved onto it; points no sample
  reached are zero.  Samples whose nearest grid point lies outside the matrix
  are dropped; their number is reported as :attr:`GriddingResult.n_dropped`.
* "Nearest grid point" is ``numpy.rint`` of each coordinate (round half to
  even, like Python's ``round``).

Only numpy and scipy are used; everything is vectorised over samples.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Sequence, Tuple

import numpy as np
import scipy.linalg

__all__ = [
    "GriddingResult",
    "grid_nearest_neighbour",
    "fractional_matrix_power",
    "ClassicGrog",
]

#: Above this condition number of the eigenvector matrix, fractional powers of a
#: GRAPPA operator computed by eigendecomposition lose accuracy; we warn.
_EIGVEC_COND_WARN = 1e8


class GriddingResult(tuple):
    """Result of a gridding call; unpacks as ``kspace, hits = result``.

    It is a 2-tuple ``(kspace, hits)`` with one extra attribute:

    * ``kspace``: ``(coils, ny, nx)`` complex64, mean of the samples moved
      onto each grid point, zero where none arrived.
    * ``hits``: ``(ny, nx)`` int32, how many samples were averaged at each
      grid point.
    * ``n_dropped``: int, samples whose nearest grid point lies outside the
      matrix (not gridded).
    """

    n_dropped: int

    def __new__(cls, kspace: np.ndarray, hits: np.ndarray, n_dropped: int) -> "GriddingResult":
        self = super().__new__(cls, (kspace, hits))
        self.n_dropped = int(n_dropped)
        return self

    @property
    def kspace(self) -> np.ndarray:
        """``(coils, ny, nx)`` complex64 gridded k-space."""
        return self[0]

    @property
    def hits(self) -> np.ndarray:
        """``(ny, nx)`` int32 number of samples averaged at each grid point."""
        return self[1]

    def __repr__(self) -> str:
        return (
            f"GriddingResult(kspace={self[0].shape} {self[0].dtype}, "
            f"hits={self[1].shape} {self[1].dtype}, n_dropped={self.n_dropped})"
        )


# --------------------------------------------------------------------------
# Input checks and the shared accumulation step
# --------------------------------------------------------------------------


def _check_matrix(matrix: Sequence[int]) -> Tuple[int, int]:
    """Validate ``matrix = (nx, ny)`` (two positive integers) and return it."""
    try:
        items = tuple(matrix)
    except TypeError:
        raise ValueError(
            f"matrix must be a pair (nx, ny) of positive integers, got {matrix!r}"
        ) from None
    if len(items) != 2:
        raise ValueError(
            f"matrix must be a pair (nx, ny) of positive integers, got {len(items)} "
            f"entries: {matrix!r}"
        )
    out = []
    for name, value in zip(("nx", "ny"), items):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise ValueError(
                f"matrix {name} must be a positive integer, got {value!r} "
                f"(matrix={matrix!r})"
            )
        if int(value) < 1:
            raise ValueError(f"matrix {name} must be >= 1, got {int(value)} (matrix={matrix!r})")
        out.append(int(value))
    return out[0], out[1]


def _check_samples_coords(
    samples: np.ndarray, coords: np.ndarray, coords_name: str = "coords"
) -> Tuple[np.ndarray, np.ndarray]:
    """Validate ``samples (coils, n)`` and ``coords (n, 2)`` (called ``coords_name`` in errors).

    Returns ``samples`` as complex (its own precision, at least complex64) and
    ``coords`` as float64.
    """
    samples = np.asarray(samples)
    coords = np.asarray(coords)
    if samples.ndim != 2 or samples.shape[0] < 1:
        raise ValueError(
            f"samples must have shape (coils, n) with coils >= 1, got shape {samples.shape}"
        )
    if not (np.issubdtype(samples.dtype, np.number) or samples.dtype == np.bool_):
        raise ValueError(f"samples must be numeric, got dtype {samples.dtype}")
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"{coords_name} must have shape (n, 2), got shape {coords.shape}")
    if coords.shape[0] != samples.shape[1]:
        raise ValueError(
            f"{coords_name} has {coords.shape[0]} rows (shape {coords.shape}) but samples has "
            f"{samples.shape[1]} samples per coil (shape {samples.shape})"
        )
    if np.iscomplexobj(coords) or not (
        np.issubdtype(coords.dtype, np.floating) or np.issubdtype(coords.dtype, np.integer)
    ):
        raise ValueError(f"{coords_name} must be real-valued, got dtype {coords.dtype}")
    coords = coords.astype(np.float64, copy=False)
    if not np.all(np.isfinite(coords)):
        bad = int(np.count_nonzero(~np.isfinite(coords).all(axis=1)))
        raise ValueError(f"{coords_name} must be finite; {bad} of {coords.shape[0]} rows are not")
    if not np.iscomplexobj(samples):
        samples = samples.astype(np.complex64 if samples.dtype.itemsize <= 4 else np.complex128)
    return samples, coords


def _nearest_points(
    coords: np.ndarray, nx: int, ny: int
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest grid point of each sample and whether it lies inside the matrix.

    Parameters
    ----------
    coords : (n, 2) float64, columns (kx, ky) in grid units.

    Returns
    -------
    keep : (n,) bool, nearest grid point inside the matrix.
    grid_points : (m, 2) float64, nearest grid point (gx, gy) of the kept samples
        (integer-valued), m = keep.sum().
    flat_index : (m,) int64, row-major index ``iy * nx + ix`` of that point.
    """
    nearest = np.rint(coords)
    lo_x, lo_y = -(nx // 2), -(ny // 2)
    keep = (
        (nearest[:, 0] >= lo_x)
        & (nearest[:, 0] < lo_x + nx)
        & (nearest[:, 1] >= lo_y)
        & (nearest[:, 1] < lo_y + ny)
    )
    grid_points = nearest[keep]
    ix = grid_points[:, 0].astype(np.int64) - lo_x
    iy = grid_points[:, 1].astype(np.int64) - lo_y
    return keep, grid_points, iy * nx + ix


def _accumulate_mean(
    values: np.ndarray, flat_index: np.ndarray, nx: int, ny: int, n_dropped: int
) -> GriddingResult:
    """Average ``values (coils, m)`` per grid point ``flat_index (m,)``.

    Sums in float64 (one ``bincount`` each for real and imaginary parts over
    all coils at once), divides by the hit count, returns complex64.
    """
    coils, m = values.shape
    n_grid = nx * ny
    hits = np.bincount(flat_index, minlength=n_grid)
    if m:
        index = (np.arange(coils, dtype=np.int64)[:, None] * n_grid + flat_index[None, :]).ravel()
        flat_values = values.ravel()
        real = np.bincount(index, weights=flat_values.real.astype(np.float64), minlength=coils * n_grid)
        imag = np.bincount(index, weights=flat_values.imag.astype(np.float64), minlength=coils * n_grid)
        sums = (real + 1j * imag).reshape(coils, n_grid)
    else:
        sums = np.zeros((coils, n_grid), dtype=np.complex128)
    mean = np.divide(sums, hits[None, :], out=np.zeros_like(sums), where=hits[None, :] > 0)
    kspace = mean.astype(np.complex64).reshape(coils, ny, nx)
    return GriddingResult(kspace, hits.astype(np.int32).reshape(ny, nx), n_dropped)


# --------------------------------------------------------------------------
# Nearest neighbour
# --------------------------------------------------------------------------


def grid_nearest_neighbour(
    samples: np.ndarray, coords: np.ndarray, matrix: Sequence[int]
) -> GriddingResult:
    """Grid by snapping each sample to its nearest grid point and averaging.

    Parameters
    ----------
    samples : (coils, n) complex
        Non-Cartesian k-space samples.
    coords : (n, 2) real
        Sample positions ``(kx, ky)`` in grid units, k = 0 at index ``n // 2``.
    matrix : (nx, ny)
        Grid size.

    Returns
    -------
    GriddingResult
        Unpacks as ``kspace, hits``: ``kspace`` (coils, ny, nx) complex64 holds
        the mean of the samples whose ``rint(coords)`` is that grid point (zero
        where none); ``hits`` (ny, nx) int32 counts them.  ``n_dropped`` counts
        the samples whose nearest grid point is outside the matrix.

    Raises
    ------
    ValueError
        On a bad shape, dtype or value of ``samples``, ``coords`` or ``matrix``.
    """
    nx, ny = _check_matrix(matrix)
    samples, coords = _check_samples_coords(samples, coords)
    keep, _, flat_index = _nearest_points(coords, nx, ny)
    n_dropped = coords.shape[0] - int(np.count_nonzero(keep))
    return _accumulate_mean(samples[:, keep], flat_index, nx, ny, n_dropped)


# --------------------------------------------------------------------------
# Fractional matrix powers by eigendecomposition
# --------------------------------------------------------------------------


class _EigenPower:
    """Powers ``A**p`` of a diagonalisable matrix ``A = V diag(w) V^-1``.

    ``A**p = V diag(exp(p * log w)) V^-1`` with the principal logarithm
    ``log w = log|w| + i*angle(w)``, ``angle`` in (-pi, pi].  The logarithms
    are computed once, here, and reused for every exponent, so all powers come
    from the same branch: ``A**a @ A**b == A**(a + b)`` and ``A**1 == A`` up to
    rounding, for any real ``a`` and ``b``.
    """

    def __init__(self, matrix: np.ndarray, name: str) -> None:
        matrix = np.asarray(matrix, dtype=np.complex128)
        w, v = np.linalg.eig(matrix)
        if np.any(w == 0):
            raise ValueError(
                f"{name} is singular (an eigenvalue is exactly 0); its fractional "
                f"powers are undefined"
            )
        self.condition = float(np.linalg.cond(v))
        if not np.isfinite(self.condition) or self.condition > _EIGVEC_COND_WARN:
            warnings.warn(
                f"{name} is close to defective (eigenvector condition number "
                f"{self.condition:.3g}); its fractional powers may be inaccurate",
                RuntimeWarning,
                stacklevel=3,
            )
        self.eigenvalues = w
        self.log_eigenvalues = np.log(w)
        self.vectors = v
        self.inverse_vectors = np.linalg.inv(v)

    def matrix(self, exponent: float) -> np.ndarray:
        """``A**exponent`` as a (c, c) complex128 matrix."""
        scale = np.exp(float(exponent) * self.log_eigenvalues)
        return (self.vectors * scale[None, :]) @ self.inverse_vectors

    def apply(self, vectors: np.ndarray, exponents: np.ndarray) -> np.ndarray:
        """``A**exponents[j] @ vectors[:, j]`` for every column j.

        vectors : (c, m) complex; exponents : (m,) real.  Returns (c, m) complex128.
        Cost: two (c, c) x (c, m) products plus c*m complex exponentials.
        """
        eig_coords = self.inverse_vectors @ vectors
        eig_coords *= np.exp(exponents[None, :] * self.log_eigenvalues[:, None])
        return self.vectors @ eig_coords


def fractional_matrix_power(matrix: np.ndarray, exponent: float) -> np.ndarray:
    """Real power of a square matrix by eigendecomposition (principal branch).

    Parameters
    ----------
    matrix : (c, c) complex, diagonalisable with no zero eigenvalue.
    exponent : real exponent.

    Returns
    -------
    (c, c) complex128 ``matrix ** exponent``; ``result @ result == matrix`` for
    ``exponent = 0.5``.  Agrees with :func:`scipy.linalg.fractional_matrix_power`
    when no eigenvalue lies on the negative real axis.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 1:
        raise ValueError(f"matrix must be square (c, c), got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("matrix must be finite")
    if not isinstance(exponent, numbers.Real) or not np.isfinite(exponent):
        raise ValueError(f"exponent must be a finite real number, got {exponent!r}")
    return _EigenPower(matrix, "matrix").matrix(float(exponent))


# --------------------------------------------------------------------------
# Classic GROG
# --------------------------------------------------------------------------


def _fit_shift_operator(source: np.ndarray, target: np.ndarray, regularization: float) -> np.ndarray:
    """Least-squares ``G`` with ``target ~= G @ source``, relative Tikhonov.

    source, target : (c, m) complex128.  Solves
    ``G = T S^H (S S^H + lam I)^-1`` with ``lam = regularization * sigma_max(S)**2``.
    Returns (c, c) complex128.
    """
    gram = source @ source.conj().T  # (c, c), Hermitian PSD
    cross = target @ source.conj().T  # (c, c)
    if regularization > 0:
        lam = regularization * float(np.linalg.eigvalsh(gram)[-1])
        gram = gram + lam * np.eye(gram.shape[0])
        # G gram = cross  <=>  gram^H G^H = cross^H, gram Hermitian.
        return scipy.linalg.solve(gram, cross.conj().T, assume_a="pos").conj().T
    solution, *_ = np.linalg.lstsq(source.T, target.T, rcond=None)
    return solution.T


class ClassicGrog:
    """Classic GROG: self-calibrated GRAPPA operators for unit k-space shifts.

    ``gx`` and ``gy`` are (coils, coils) complex128 operators with
    ``s(kx + 1, ky) ~= gx @ s(kx, ky)`` and ``s(kx, ky + 1) ~= gy @ s(kx, ky)``
    for the coil vector ``s`` at a k-space position.  A sample at ``(kx, ky)``
    is moved to its nearest grid point ``(gx_, gy_) = rint(kx, ky)`` with

        s(gx_, gy_) = Gx**(gx_ - kx) @ Gy**(gy_ - ky) @ s(kx, ky)

    (Gy applied first).  The fractional powers (shifts in [-0.5, 0.5]) are
    computed EXACTLY per sample, not from a shift table: each operator is
    diagonalised once, ``G = V diag(w) V^-1``, and a sample is shifted as
    ``V (w**d * (V^-1 s))`` with ``w**d = exp(d log w)`` on the principal branch
    of the logarithm, fixed once per operator (see :class:`_EigenPower`).  Per
    sample this costs four (c x c) matrix-vector products, ~10 M complex
    multiply-adds for 50k samples x 8 coils.  A shift that is exactly zero
    along an axis skips that axis, so a sample sitting on a grid point is
    returned unchanged (bit for bit before the complex64 cast).

    Parameters
    ----------
    gx, gy : (coils, coils) complex, diagonalisable and nonsingular.
    regularization : the relative Tikhonov weight used to learn them (metadata).
    """

    def __init__(self, gx: np.ndarray, gy: np.ndarray, regularization: float = 0.0) -> None:
        gx = np.asarray(gx)
        gy = np.asarray(gy)
        for name, op in (("gx", gx), ("gy", gy)):
            if op.ndim != 2 or op.shape[0] != op.shape[1] or op.shape[0] < 1:
                raise ValueError(f"{name} must be square (coils, coils), got shape {op.shape}")
            if not np.issubdtype(op.dtype, np.number) or not np.all(np.isfinite(op)):
                raise ValueError(f"{name} must be finite and numeric (dtype {op.dtype})")
        if gx.shape != gy.shape:
            raise ValueError(f"gx and gy must have the same shape, got {gx.shape} and {gy.shape}")
        self.gx: np.ndarray = gx.astype(np.complex128)
        self.gy: np.ndarray = gy.astype(np.complex128)
        self.regularization = float(regularization)
        self._px = _EigenPower(self.gx, "gx")
        self._py = _EigenPower(self.gy, "gy")

    @property
    def coils(self) -> int:
        """Number of coils the operators act on."""
        return self.gx.shape[0]

    @classmethod
    def from_acs(cls, acs: np.ndarray, regularization: float = 1e-3) -> "ClassicGrog":
        """Learn ``gx`` and ``gy`` from a fully sampled Cartesian calibration block.

        Parameters
        ----------
        acs : (coils, ny_acs, nx_acs) complex
            Cartesian k-space block on the same grid spacing as the target grid
            (index [iy, ix]; its position in k-space does not matter).  Needs
            ny_acs >= 2 and nx_acs >= 2.
        regularization : float, default 1e-3
            Relative Tikhonov weight: ``lam = regularization * sigma_max(S)**2``
            where ``S`` (coils, pairs) stacks the source points.  0 gives plain
            least squares.

        Every pair of horizontally neighbouring ACS points, ``ny_acs *
        (nx_acs - 1)`` of them, is one equation ``s(kx+1, ky) = gx s(kx, ky)``
        (likewise ``nx_acs * (ny_acs - 1)`` vertical pairs for ``gy``); each
        operator is the regularised least-squares solution.
        """
        acs = np.asarray(acs)
        if acs.ndim != 3 or acs.shape[0] < 1 or acs.shape[1] < 2 or acs.shape[2] < 2:
            raise ValueError(
                "acs must have shape (coils, ny_acs, nx_acs) with coils >= 1, "
                f"ny_acs >= 2 and nx_acs >= 2, got shape {acs.shape}"
            )
        if not np.issubdtype(acs.dtype, np.number) or not np.all(np.isfinite(acs)):
            raise ValueError(f"acs must be finite and numeric (dtype {acs.dtype})")
        if (
            isinstance(regularization, (bool, np.bool_))
            or not isinstance(regularization, numbers.Real)
            or not np.isfinite(regularization)
            or regularization < 0
        ):
            raise ValueError(f"regularization must be a finite real >= 0, got {regularization!r}")
        acs = acs.astype(np.complex128)
        coils = acs.shape[0]
        gx = _fit_shift_operator(
            acs[:, :, :-1].reshape(coils, -1), acs[:, :, 1:].reshape(coils, -1), float(regularization)
        )
        gy = _fit_shift_operator(
            acs[:, :-1, :].reshape(coils, -1), acs[:, 1:, :].reshape(coils, -1), float(regularization)
        )
        return cls(gx, gy, regularization=float(regularization))

    def fractional_power(self, axis: str, shift: float) -> np.ndarray:
        """``Gx**shift`` (axis ``"x"``) or ``Gy**shift`` (axis ``"y"``), (coils, coils) complex128."""
        if axis not in ("x", "y"):
            raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
        if not isinstance(shift, numbers.Real) or not np.isfinite(shift):
            raise ValueError(f"shift must be a finite real number, got {shift!r}")
        return (self._px if axis == "x" else self._py).matrix(float(shift))

    def shift_operator(self, dx: float, dy: float) -> np.ndarray:
        """``Gx**dx @ Gy**dy`` (coils, coils) complex128: moves a sample by (dx, dy)."""
        return self.fractional_power("x", dx) @ self.fractional_power("y", dy)

    def shift(self, samples: np.ndarray, shifts: np.ndarray) -> np.ndarray:
        """Move each sample by its own k-space shift.

        Parameters
        ----------
        samples : (coils, n) complex
        shifts : (n, 2) real, ``(dx, dy)`` per sample in grid units.

        Returns
        -------
        (coils, n) complex128, column j = ``Gx**dx_j @ Gy**dy_j @ samples[:, j]``.
        Columns with a zero shift along an axis skip that axis exactly.
        """
        samples, shifts = _check_samples_coords(samples, shifts, "shifts")
        if samples.shape[0] != self.coils:
            raise ValueError(
                f"samples has {samples.shape[0]} coils (shape {samples.shape}) but the "
                f"operators are {self.gx.shape}"
            )
        out = samples.astype(np.complex128)  # always a copy
        for power, column in ((self._py, 1), (self._px, 0)):
            d = shifts[:, column]
            moving = np.flatnonzero(d != 0)
            if moving.size:
                out[:, moving] = power.apply(out[:, moving], d[moving])
        return out

    def grid(self, samples: np.ndarray, coords: np.ndarray, matrix: Sequence[int]) -> GriddingResult:
        """Shift each sample to its nearest grid point with GRAPPA operators and average.

        Parameters
        ----------
        samples : (coils, n) complex, coils == self.coils.
        coords : (n, 2) real, ``(kx, ky)`` in grid units, k = 0 at index n // 2.
        matrix : (nx, ny)

        Returns
        -------
        GriddingResult
            Unpacks as ``kspace, hits``: (coils, ny, nx) complex64 mean of the
            shifted samples at each grid point (zero where none), (ny, nx)
            int32 counts; ``n_dropped`` counts samples whose nearest grid point
            is outside the matrix (they are not shifted).

        Raises
        ------
        ValueError
            On a bad shape, dtype or value of an argument, or a coil count that
            does not match the operators.
        """
        nx, ny = _check_matrix(matrix)
        samples, coords = _check_samples_coords(samples, coords)
        if samples.shape[0] != self.coils:
            raise ValueError(
                f"samples has {samples.shape[0]} coils (shape {samples.shape}) but the "
                f"operators are {self.gx.shape}"
            )
        keep, grid_points, flat_index = _nearest_points(coords, nx, ny)
        n_dropped = coords.shape[0] - int(np.count_nonzero(keep))
        shifted = self.shift(samples[:, keep], grid_points - coords[keep])
        return _accumulate_mean(shifted, flat_index, nx, ny, n_dropped)
