"""Forward model: k-space samples of a fine-grid object, noise and off-resonance, 2D or 3D.

Conventions (see the package docstring): the object ``x`` lives on the fine grid
(``M = 2 N`` per axis, same FOV as the gridding matrix ``N``; 3D: ``(Mz, My, Mx)`` over
``(nz, ny, nx)``), pixel ``r'`` integer with ``r' = 0`` at index ``M // 2``, arrays ``[y, x]``
(``[z, y, x]``). Its k-space at any ``k = (kx, ky[, kz])`` in grid units (cycles/FOV) is

    X(k) = sqrt(prod N) / prod M * sum_{r'} x[r'] exp(-2 pi i sum_d k_d r'_d / M_d)

(in 2D ``N / M^2``) so that at integer ``k`` it is the centred orthonormal FFT of the ``N``-grid
image (``K = fftshift(fftn(ifftshift(x_N), norm="ortho"))``) and an orthonormal centred inverse
FFT of the truth has the magnitude of ``x``. The positions' column count (2 or 3) or the matrix
(one size: a square 2D matrix; an array shape) gives the dimensionality.

With off-resonance ``f(r)`` (Hz) and per-sample times ``t_j`` (seconds):

    s(k_j, t_j) = sqrt(prod N) / prod M * sum_{r'} x[r'] exp(-2 pi i sum_d k_d r'_d / M_d) exp(-2 pi i f(r') t_j)
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import finufft
import numpy as np

from igrog_gadget.numerics.fft import centred_fft2, centred_fftn, centred_ifft2
from igrog_gadget.numerics.nufft import UPSAMPLING
from igrog_gadget.numerics.segmentation import TimeSegmentation, segments_for_tolerance

from .phantoms import grid_coordinates, grid_shape


#: Fine-grid factor: the object is simulated on ``M = FINE_FACTOR * N`` pixels per axis.
FINE_FACTOR = 2
#: Requested NUFFT precision (2D).
NUFFT_EPS = 1e-9
#: Target sup-norm error of the time-segmentation interpolator (2D).
TIME_SEGMENT_TOL = 1e-7
#: (NUFFT precision, time-segmentation error) per dimensionality. A volume's fine grid is large
#: (every transform, and every time segment, costs a whole volume): 1e-7 and 1e-6 lie far below
#: any simulated noise.
PRECISION = {2: (NUFFT_EPS, TIME_SEGMENT_TOL), 3: (1e-7, 1e-6)}

Matrix = int | Sequence[int]
"""The gridding matrix: one size ``N`` of a square 2D grid, or an array shape ``([nz,] ny, nx)``."""


def _positions(k: np.ndarray) -> tuple[np.ndarray, int]:
    """``k`` as float64 (n, dims) and its dimensionality."""
    k = np.asarray(k, dtype=np.float64)
    if k.ndim != 2 or k.shape[1] not in (2, 3):
        raise ValueError(f"k must have shape (n, 2) = (kx, ky) or (n, 3) = (kx, ky, kz), got shape {k.shape}")
    return k, int(k.shape[1])


def _stacked(images: np.ndarray, dims: int) -> tuple[np.ndarray, bool]:
    """``images`` (fine grid) or (C, fine grid) as (C, fine grid), and whether it was one image."""
    arr = np.asarray(images)
    if arr.ndim == dims:
        return arr[None], True
    if arr.ndim == dims + 1:
        return arr, False
    grid = ", ".join(["M"] * dims)
    raise ValueError(f"images must have shape ({grid}) or (C, {grid}), got shape {arr.shape}")


def _check_reach(k: np.ndarray, fine: tuple[int, ...]) -> None:
    """Refuse positions at or beyond the fine grid's Nyquist limit ``M / 2`` along an axis."""
    for axis, M in enumerate(reversed(fine)):  # (Mx, My[, Mz]) pairs with the columns (kx, ky[, kz])
        if k.size and np.abs(k[:, axis]).max() >= M / 2:
            raise ValueError(
                f"k along axis {'xyz'[axis]} reaches {np.abs(k[:, axis]).max():.3f} >= M/2 = {M / 2} (beyond the fine grid)"
            )


def _scale(matrix: tuple[int, ...], fine: tuple[int, ...]) -> float:
    """``sqrt(prod N) / prod M``: orthonormal on the ``matrix`` grid (``N / M^2`` in 2D)."""
    return float(np.sqrt(np.prod(np.asarray(matrix, dtype=np.float64)))) / float(np.prod(np.asarray(fine, dtype=np.float64)))


def _nufft_plan(fine: tuple[int, ...], k: np.ndarray, n_trans: int, eps: float) -> finufft.Plan:
    """Type-2 plan for ``n_trans`` fine-grid images with the points of ``k`` set."""
    plan = finufft.Plan(2, fine, n_trans=n_trans, eps=eps, isign=-1, dtype="complex128", upsampfac=UPSAMPLING)
    # finufft: the first coordinate pairs with the first mode axis ([z,] y), the last with x.
    dims = len(fine)
    plan.setpts(*(np.ascontiguousarray(2.0 * np.pi * k[:, dims - 1 - axis] / M) for axis, M in enumerate(fine)))
    return plan


def nufft_forward(images: np.ndarray, k: np.ndarray, matrix: Matrix, eps: float | None = None) -> np.ndarray:
    """Noiseless, field-free samples of fine-grid images at arbitrary k.

    Args:
        images: complex ``(My, Mx)`` or ``(C, My, Mx)`` indexed ``[.., y, x]``; 3D ``(Mz, My, Mx)``
            or ``(C, Mz, My, Mx)``.
        k: ``(n, 2)`` = ``(kx, ky)`` or ``(n, 3)`` = ``(kx, ky, kz)`` in grid units of the matrix.
        matrix: the gridding matrix (sets the ``sqrt(prod N) / prod M`` scale).
        eps: NUFFT precision (default ``PRECISION``'s). All images go through one transform.

    Returns:
        Complex128 array ``(n,)`` for one image or ``(C, n)`` for a stack.
    """
    k, dims = _positions(k)
    imgs, single = _stacked(images, dims)
    fine = tuple(int(M) for M in imgs.shape[1:])
    _check_reach(k, fine)
    if k.shape[0] == 0:
        out = np.zeros((imgs.shape[0], 0), dtype=np.complex128)
    else:
        plan = _nufft_plan(fine, k, imgs.shape[0], PRECISION[dims][0] if eps is None else eps)
        f = np.ascontiguousarray(imgs, dtype=np.complex128)
        out = np.asarray(plan.execute(f if f.shape[0] > 1 else f[0])).reshape(imgs.shape[0], -1)
        out *= _scale(grid_shape(matrix), fine)
    return out[0] if single else out


def cartesian_kspace(images: np.ndarray, matrix: Matrix) -> np.ndarray:
    """Exact k-space of fine-grid images on the integer grid of ``matrix``.

    Equals :func:`nufft_forward` at integer ``k`` in ``[-n/2, n/2)`` per axis, arranged
    ``[[kz + nz//2,] ky + ny//2, kx + nx//2]`` (computed exactly with an FFT of the fine grid
    cropped to the central frequencies).

    Returns:
        Complex128 array of the matrix's shape, with the input's leading axis (coils) if any.
    """
    shape = grid_shape(matrix)
    dims = len(shape)
    imgs, single = _stacked(images, dims)
    fine = tuple(int(M) for M in imgs.shape[1:])
    if any(M < n for M, n in zip(fine, shape)):
        raise ValueError(f"images of size {fine} are smaller than the matrix {shape}")
    full = centred_fftn(imgs, tuple(range(-dims, 0)), norm="backward")
    crop = (slice(None),) + tuple(slice(M // 2 - n // 2, M // 2 - n // 2 + n) for M, n in zip(fine, shape))
    out = full[crop] * _scale(shape, fine)
    return out[0] if single else out


#: The simulator's names of the package's centred orthonormal FFTs (one implementation,
#: :mod:`igrog_gadget.numerics.fft`).
fft2c = centred_fft2
ifft2c = centred_ifft2


#: The smooth off-resonance: a linear gradient (x, y, z coefficients) plus a strong positive
#: "sinus" lobe at the front and a weaker negative lobe at the back (amplitude, centre (x, y, z),
#: width); a plane sees the x and y terms.
_B0_GRADIENT = (0.25, -0.15, 0.2)
_B0_LOBES = ((1.0, (0.05, -0.55, -0.2), 0.22), (-0.45, (-0.3, 0.45, 0.25), 0.3))
#: Dense grids the map's maximum is normalised on (the same function for every grid size).
_B0_REFERENCE = {2: (512, 512), 3: (96, 96, 96)}


def _sum(terms: Sequence[np.ndarray]) -> np.ndarray:
    """``terms[0] + terms[1] + ...``, in that order."""
    return functools.reduce(np.add, terms)


def _b0_shape(coords: Sequence[np.ndarray]) -> np.ndarray:
    """The unscaled off-resonance at normalised coordinates ``(x, y[, z])``."""
    value = _sum([coefficient * coord for coefficient, coord in zip(_B0_GRADIENT, coords)])
    for amplitude, centre, width in _B0_LOBES:
        distance = _sum([(coord - c) ** 2 for coord, c in zip(coords, centre)])
        value = value + amplitude * np.exp(-distance / (2 * width**2))
    return value


def smooth_b0_map(shape: Matrix, max_hz: float) -> np.ndarray:
    """A smooth off-resonance map in Hz on a 2D or 3D grid (``_B0_GRADIENT``, ``_B0_LOBES``),
    scaled so ``max |f| = max_hz`` over the FOV (the same analytic function for every grid size,
    so fine-grid and ``N``-grid maps agree at common pixel centres).

    Args:
        shape: array shape ``(ny, nx)`` or ``(nz, ny, nx)``, or one size of a square 2D grid.

    Returns:
        Float64 array of the grid's shape indexed ``[y, x]`` (``[z, y, x]``), pixel ``r = 0`` at ``n // 2``.
    """
    if not np.isfinite(max_hz) or max_hz < 0:
        raise ValueError(f"max_hz must be a finite value >= 0, got {max_hz!r}")
    coords = grid_coordinates(shape)
    reference = _b0_shape(grid_coordinates(_B0_REFERENCE[len(coords)]))
    return _b0_shape(coords) * (max_hz / np.abs(reference).max())


def time_segment_coefficients(
    times_s: np.ndarray,
    f_min_hz: float,
    f_max_hz: float,
    tol: float = TIME_SEGMENT_TOL,
    max_segments: int = 200,
) -> TimeSegmentation:
    """Time segmentation of ``exp(-2 pi i f t)`` for every ``f`` in ``[f_min, f_max]``, with
    phases relative to the centre frequency: the segmentation of the gridder
    (:func:`igrog_gadget.numerics.segmentation.segments_for_tolerance`) fitted on a dense
    uniform frequency grid over the range, to RMS phase error ``tol``.

    Args:
        times_s: sample times, shape ``(n,)`` in seconds.
    """
    t = np.asarray(times_s, dtype=np.float64).reshape(-1)
    fc = 0.5 * (f_min_hz + f_max_hz)
    half = 0.5 * (f_max_hz - f_min_hz)
    span = float(t.max() - t.min()) if t.size else 0.0
    if half * span < 1e-12:  # a constant field (or one time): one segment, exact
        frequencies = np.array([fc])
    else:
        frequencies = np.linspace(f_min_hz, f_max_hz, int(max(256, 16 * half * 2 * span + 64)))
    weights = np.full(frequencies.shape, 1.0 / frequencies.size)
    return segments_for_tolerance(t, frequencies, weights, tol, max_segments=max_segments, centre_hz=fc)


def forward_b0(
    images: np.ndarray,
    k: np.ndarray,
    times_s: np.ndarray,
    b0_hz: np.ndarray,
    matrix: Matrix,
    tol: float | None = None,
    eps: float | None = None,
) -> np.ndarray:
    """Samples with off-resonance, by least-squares time segmentation.

    ``s_j = sum_l b_l(t_j) NUFFT[x * exp(-2 pi i (f - fc) tau_l)](k_j)`` with the
    interpolator of :func:`time_segment_coefficients` (RMS error < ``tol``
    over the map's frequency range, so the relative error of the samples is of
    the same order).

    Args:
        images: fine-grid complex images, ``(My, Mx)`` or ``(C, My, Mx)``; 3D ``(Mz, My, Mx)``
            or ``(C, Mz, My, Mx)``.
        k: ``(n, 2)`` = ``(kx, ky)`` or ``(n, 3)`` = ``(kx, ky, kz)`` grid units.
        times_s: ``(n,)`` sample times in seconds (phase accrues from t = 0).
        b0_hz: off-resonance map on the fine grid (its shape).
        matrix: gridding matrix.
        tol, eps: segmentation error and NUFFT precision (default ``PRECISION``'s).

    Returns:
        ``(n,)`` or ``(C, n)`` complex128 samples.
    """
    k, dims = _positions(k)
    imgs, single = _stacked(images, dims)
    b0 = np.asarray(b0_hz, dtype=np.float64)
    if b0.shape != imgs.shape[1:]:
        raise ValueError(f"b0_hz must have the images' shape {imgs.shape[1:]}, got shape {b0.shape}")
    times = np.asarray(times_s, dtype=np.float64).reshape(-1)
    _check_reach(k, tuple(int(M) for M in imgs.shape[1:]))
    if times.shape[0] != k.shape[0]:
        raise ValueError(f"times_s must have {k.shape[0]} entries (one per k sample), got {times.shape[0]}")
    out = np.zeros((imgs.shape[0], k.shape[0]), dtype=np.complex128)
    if k.shape[0] > 0:
        default_eps, default_tol = PRECISION[dims]
        segmentation = time_segment_coefficients(times, float(b0.min()), float(b0.max()), default_tol if tol is None else tol)
        _B0_SEGMENTS[dims](out, imgs, k, b0, segmentation, grid_shape(matrix), default_eps if eps is None else eps)
    return out[0] if single else out


def _segments_batched(
    out: np.ndarray, imgs: np.ndarray, k: np.ndarray, b0: np.ndarray, segmentation: TimeSegmentation,
    matrix: tuple[int, ...], eps: float,
) -> None:
    """Add the segments' samples to ``out`` (C, n): as many segments per transform as fit in
    ~256 MB of images, all coils together; the sum scaled once."""
    tau, coeffs, fc = segmentation.tau_s, segmentation.coefficients, segmentation.centre_hz
    C, fine = imgs.shape[0], imgs.shape[1:]
    per_segment = C * int(np.prod(fine)) * 16
    batch = int(max(1, min(len(tau), (256 << 20) // per_segment)))
    plan = _nufft_plan(fine, k, C * batch, eps)
    for start in range(0, len(tau), batch):
        taus = tau[start : start + batch]
        stack = np.zeros((batch, C, *fine), dtype=np.complex128)
        for i, tau_l in enumerate(taus):
            stack[i] = imgs * np.exp(-2j * np.pi * (b0 - fc) * tau_l)[None]
        res = np.asarray(plan.execute(stack.reshape(batch * C, *fine))).reshape(batch, C, -1)
        for i in range(len(taus)):
            out += coeffs[start + i][None, :] * res[i]
    out *= _scale(matrix, fine)


def _segments_one_by_one(
    out: np.ndarray, imgs: np.ndarray, k: np.ndarray, b0: np.ndarray, segmentation: TimeSegmentation,
    matrix: tuple[int, ...], eps: float,
) -> None:
    """Add the segments' samples to ``out`` (C, n): one transform (scaled) per segment and image,
    so that a volume's large fine grid is held once or twice."""
    fc = segmentation.centre_hz
    for tau_l, coefficients in zip(segmentation.tau_s, segmentation.coefficients):
        for c, image in enumerate(imgs):
            modulated = image * np.exp(-2j * np.pi * (b0 - fc) * tau_l)
            out[c] += coefficients * nufft_forward(modulated, k, matrix, eps)


#: How the segments are summed, per dimensionality (kept as two orders of summation, as the
#: simulated data were made: a plane's transforms batch segments and coils, a volume's take one
#: image each; the results differ in their last bits).
_B0_SEGMENTS: dict[int, Callable[..., None]] = {2: _segments_batched, 3: _segments_one_by_one}


def direct_forward(
    images: np.ndarray,
    k: np.ndarray,
    matrix: Matrix,
    times_s: np.ndarray | None = None,
    b0_hz: np.ndarray | None = None,
) -> np.ndarray:
    """Brute-force evaluation of the forward model (slow; for tests on small cases).

    Same arguments and result as :func:`nufft_forward` / :func:`forward_b0`.
    """
    k, dims = _positions(k)
    imgs, single = _stacked(images, dims)
    fine = imgs.shape[1:]
    r = np.meshgrid(*(np.arange(M) - M // 2 for M in fine), indexing="ij")  # ([z,] y, x)
    out = np.empty((imgs.shape[0], k.shape[0]), dtype=np.complex128)
    for j, position in enumerate(k):
        cycles = _sum([position[axis] * r[dims - 1 - axis] / fine[dims - 1 - axis] for axis in range(dims)])
        kern = np.exp(-2j * np.pi * cycles)
        if b0_hz is not None and times_s is not None:
            kern = kern * np.exp(-2j * np.pi * b0_hz * times_s[j])
        out[:, j] = np.sum(imgs * kern[None], axis=tuple(range(1, dims + 1)))
    out *= _scale(grid_shape(matrix), fine)
    return out[0] if single else out


def noise_covariance(num_coils: int, std: float, correlation: float = 0.0) -> np.ndarray:
    """Coil noise covariance ``(C, C)``: ``std^2 * correlation^(ring distance)``, real symmetric."""
    if not 0.0 <= correlation < 1.0:
        raise ValueError(f"correlation must be in [0, 1), got {correlation!r}")
    idx = np.arange(num_coils)
    dist = np.abs(idx[:, None] - idx[None, :])
    dist = np.minimum(dist, num_coils - dist)
    cov = np.where(dist == 0, 1.0, correlation**dist)
    return float(std) ** 2 * cov


def complex_noise(
    shape: tuple[int, ...],
    std: float,
    rng: np.random.Generator,
    correlation: float = 0.0,
) -> np.ndarray:
    """Circular complex Gaussian noise with ``E|n|^2 = std^2`` per sample.

    Real and imaginary parts each have standard deviation ``std / sqrt(2)``.
    With ``correlation > 0`` the first axis (coils) is correlated with the
    covariance of :func:`noise_covariance` (per-coil variance still ``std^2``).

    Returns:
        Complex128 array of ``shape``.
    """
    if not np.isfinite(std) or std < 0:
        raise ValueError(f"std must be a finite value >= 0, got {std!r}")
    white = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * (std / np.sqrt(2.0))
    if correlation and shape and shape[0] > 1:
        chol = np.linalg.cholesky(noise_covariance(shape[0], 1.0, correlation))
        white = np.tensordot(chol, white, axes=(1, 0))
    return white
