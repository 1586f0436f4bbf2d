"""Forward model: k-space samples of a fine-grid object, noise and off-resonance.

Conventions (see the package docstring): the object ``x`` lives on the fine
``M x M`` grid (``M = 2 N``, same FOV as the ``N x N`` gridding matrix), pixel
``r'`` integer with ``r' = 0`` at index ``M // 2``, arrays ``[y, x]``. Its k-space
at any ``k = (kx, ky)`` in grid units (cycles/FOV) is

    X(k) = (N / M^2) * sum_{r'} x[r'] exp(-2 pi i k . r' / M)

so that at integer ``k`` it is the centred orthonormal FFT of the ``N``-grid
image (``K = fftshift(fft2(ifftshift(x_N), norm="ortho"))``) and an orthonormal
centred inverse FFT of the truth has the magnitude of ``x``.

With off-resonance ``f(r)`` (Hz) and per-sample times ``t_j`` (seconds):

    s(k_j, t_j) = (N / M^2) * sum_{r'} x[r'] exp(-2 pi i k_j . r' / M) exp(-2 pi i f(r') t_j)
"""

from __future__ import annotations


import finufft
import numpy as np

from igrog_gadget.numerics.fft import centred_fft2, centred_fftn, centred_ifft2
from igrog_gadget.numerics.segmentation import TimeSegmentation, segments_for_tolerance

from .phantoms import grid_coordinates


#: Fine-grid factor: the object is simulated on ``M = FINE_FACTOR * N`` pixels.
FINE_FACTOR = 2
#: Requested NUFFT precision.
NUFFT_EPS = 1e-9
#: Target sup-norm error of the time-segmentation interpolator.
TIME_SEGMENT_TOL = 1e-7


def _as_images(images: np.ndarray) -> tuple[np.ndarray, bool]:
    arr = np.asarray(images)
    if arr.ndim == 2:
        return arr[None], True
    if arr.ndim == 3:
        return arr, False
    raise ValueError(f"images must have shape (M, M) or (C, M, M), got shape {arr.shape}")


def _check_k(k: np.ndarray, M: int) -> np.ndarray:
    k = np.asarray(k, dtype=np.float64)
    if k.ndim != 2 or k.shape[1] != 2:
        raise ValueError(f"k must have shape (n, 2) = (kx, ky), got shape {k.shape}")
    if k.size and np.abs(k).max() >= M / 2:
        raise ValueError(f"k reaches |k| = {np.abs(k).max():.3f} >= M/2 = {M / 2} (beyond the fine grid)")
    return k


def _nufft_plan(M: int, k: np.ndarray, n_trans: int, eps: float) -> finufft.Plan:
    """Type-2 plan for ``n_trans`` fine-grid images with the points of ``k`` set."""
    plan = finufft.Plan(2, (M, M), n_trans=n_trans, eps=eps, isign=-1, dtype="complex128")
    # finufft: the first coordinate pairs with the first mode axis (y), the second with x.
    plan.setpts(
        np.ascontiguousarray(2.0 * np.pi * k[:, 1] / M),
        np.ascontiguousarray(2.0 * np.pi * k[:, 0] / M),
    )
    return plan


def nufft_forward(images: np.ndarray, k: np.ndarray, N: int, eps: float = NUFFT_EPS) -> np.ndarray:
    """Noiseless, field-free samples of fine-grid images at arbitrary k.

    Args:
        images: complex array ``(M, M)`` or ``(C, M, M)`` indexed ``[.., y, x]``.
        k: ``(n, 2)`` = ``(kx, ky)`` in grid units of the ``N`` matrix.
        N: the gridding matrix (sets the ``N / M^2`` scale).
        eps: NUFFT precision.

    Returns:
        Complex128 array ``(n,)`` for a 2D input or ``(C, n)`` for a 3D input.
    """
    imgs, single = _as_images(images)
    M = imgs.shape[-1]
    if imgs.shape[-2] != M:
        raise ValueError(f"images must be square, got shape {imgs.shape}")
    k = _check_k(k, M)
    if k.shape[0] == 0:
        out = np.zeros((imgs.shape[0], 0), dtype=np.complex128)
    else:
        plan = _nufft_plan(M, k, imgs.shape[0], eps)
        f = np.ascontiguousarray(imgs, dtype=np.complex128)
        out = np.asarray(plan.execute(f if f.shape[0] > 1 else f[0])).reshape(imgs.shape[0], -1)
        out *= N / float(M) ** 2
    return out[0] if single else out


def cartesian_kspace(images: np.ndarray, N: int) -> np.ndarray:
    """Exact k-space of fine-grid images on the integer ``N x N`` grid.

    Equals :func:`nufft_forward` at ``k = (kx, ky)`` integers in ``[-N/2, N/2)``,
    arranged ``[ky + N//2, kx + N//2]`` (computed exactly with an FFT of the fine
    grid cropped to the central ``N x N`` frequencies).

    Returns:
        Complex128 array ``(N, N)`` or ``(C, N, N)`` matching the input's leading axes.
    """
    imgs, single = _as_images(images)
    M = imgs.shape[-1]
    if M < N:
        raise ValueError(f"images of size {M} are smaller than N={N}")
    full = centred_fftn(imgs, (-2, -1), norm="backward")
    lo = M // 2 - N // 2
    out = full[:, lo : lo + N, lo : lo + N] * (N / float(M) ** 2)
    return out[0] if single else out


#: The simulator's names of the package's centred orthonormal FFTs (one implementation,
#: :mod:`igrog_gadget.numerics.fft`).
fft2c = centred_fft2
ifft2c = centred_ifft2


def smooth_b0_map(size: int, max_hz: float) -> np.ndarray:
    """A smooth off-resonance map in Hz on a ``size x size`` grid.

    A linear gradient plus a strong positive "sinus" lobe at the front and a
    weaker negative lobe at the back, scaled so ``max |f| = max_hz`` over the FOV
    (the same analytic function for every grid size, so fine-grid and ``N``-grid
    maps agree at common pixel centres).

    Returns:
        Float64 array ``(size, size)`` indexed ``[y, x]``, pixel ``r = 0`` at ``size // 2``.
    """
    if not np.isfinite(max_hz) or max_hz < 0:
        raise ValueError(f"max_hz must be a finite value >= 0, got {max_hz!r}")
    x, y = grid_coordinates(size)
    shape = (
        0.25 * x
        - 0.15 * y
        + np.exp(-((x - 0.05) ** 2 + (y + 0.55) ** 2) / (2 * 0.22**2))
        - 0.45 * np.exp(-((x + 0.3) ** 2 + (y - 0.45) ** 2) / (2 * 0.3**2))
    )
    # Normalise with the analytic maximum over a dense reference grid so the scale
    # does not depend on ``size``.
    xr, yr = grid_coordinates(512)
    ref = (
        0.25 * xr
        - 0.15 * yr
        + np.exp(-((xr - 0.05) ** 2 + (yr + 0.55) ** 2) / (2 * 0.22**2))
        - 0.45 * np.exp(-((xr + 0.3) ** 2 + (yr - 0.45) ** 2) / (2 * 0.3**2))
    )
    return shape * (max_hz / np.abs(ref).max())


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
    N: int,
    tol: float = TIME_SEGMENT_TOL,
    eps: float = NUFFT_EPS,
) -> np.ndarray:
    """Samples with off-resonance, by least-squares time segmentation.

    ``s_j = sum_l b_l(t_j) NUFFT[x * exp(-2 pi i (f - fc) tau_l)](k_j)`` with the
    interpolator of :func:`time_segment_coefficients` (sup-norm error < ``tol``
    over the map's frequency range, so the relative error of the samples is of
    the same order).

    Args:
        images: ``(M, M)`` or ``(C, M, M)`` fine-grid complex images.
        k: ``(n, 2)`` = ``(kx, ky)`` grid units.
        times_s: ``(n,)`` sample times in seconds (phase accrues from t = 0).
        b0_hz: ``(M, M)`` off-resonance map on the fine grid.
        N: gridding matrix.

    Returns:
        ``(n,)`` or ``(C, n)`` complex128 samples.
    """
    imgs, single = _as_images(images)
    b0 = np.asarray(b0_hz, dtype=np.float64)
    if b0.shape != imgs.shape[-2:]:
        raise ValueError(f"b0_hz must have shape {imgs.shape[-2:]}, got shape {b0.shape}")
    M = imgs.shape[-1]
    times = np.asarray(times_s, dtype=np.float64).reshape(-1)
    k = _check_k(k, M)
    if times.shape[0] != k.shape[0]:
        raise ValueError(f"times_s must have {k.shape[0]} entries (one per k sample), got {times.shape[0]}")
    C = imgs.shape[0]
    out = np.zeros((C, k.shape[0]), dtype=np.complex128)
    if k.shape[0] == 0:
        return out[0] if single else out
    segmentation = time_segment_coefficients(times, float(b0.min()), float(b0.max()), tol)
    tau, coeffs, fc = segmentation.tau_s, segmentation.coefficients, segmentation.centre_hz
    # Batch as many segments per NUFFT execution as fit in ~256 MB of images.
    per_segment = C * M * M * 16
    batch = int(max(1, min(len(tau), (256 << 20) // per_segment)))
    plan = _nufft_plan(M, k, C * batch, eps)
    scale = N / float(M) ** 2
    for start in range(0, len(tau), batch):
        taus = tau[start : start + batch]
        stack = np.zeros((batch, C, M, M), dtype=np.complex128)
        for i, tau_l in enumerate(taus):
            stack[i] = imgs * np.exp(-2j * np.pi * (b0 - fc) * tau_l)[None]
        res = np.asarray(plan.execute(stack.reshape(batch * C, M, M))).reshape(batch, C, -1)
        for i in range(len(taus)):
            out += coeffs[start + i][None, :] * res[i]
    out *= scale
    return out[0] if single else out


def direct_forward(
    images: np.ndarray,
    k: np.ndarray,
    N: int,
    times_s: np.ndarray | None = None,
    b0_hz: np.ndarray | None = None,
) -> np.ndarray:
    """Brute-force evaluation of the forward model (slow; for tests on small cases).

    Same arguments and result as :func:`nufft_forward` / :func:`forward_b0`.
    """
    imgs, single = _as_images(images)
    M = imgs.shape[-1]
    k = np.asarray(k, dtype=np.float64)
    r = np.arange(M) - M // 2
    ry, rx = np.meshgrid(r, r, indexing="ij")
    out = np.empty((imgs.shape[0], k.shape[0]), dtype=np.complex128)
    for j, (kx, ky) in enumerate(k):
        kern = np.exp(-2j * np.pi * (kx * rx + ky * ry) / M)
        if b0_hz is not None and times_s is not None:
            kern = kern * np.exp(-2j * np.pi * b0_hz * times_s[j])
        out[:, j] = np.sum(imgs * kern[None], axis=(-2, -1))
    out *= N / float(M) ** 2
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


# --- 3D: one fine-grid volume at a time (fine grids of 3D scans are large) --------------------


def _volume_scale(volume_shape: tuple[int, ...], shape: tuple[int, int, int]) -> float:
    """``sqrt(prod N) / prod M``: the 3D form of ``N / M^2`` (orthonormal on the ``shape`` grid)."""
    return float(np.sqrt(np.prod(np.asarray(shape, dtype=np.float64)))) / float(np.prod(np.asarray(volume_shape, dtype=np.float64)))


def nufft_forward_3d(
    volume: np.ndarray, k: np.ndarray, shape: tuple[int, int, int], eps: float = 1e-7
) -> np.ndarray:
    """Noiseless samples of a fine-grid volume at arbitrary 3D k.

    ``X(k) = sqrt(nz ny nx) / (Mz My Mx) * sum_r' x[r'] exp(-2 pi i sum_d k_d r'_d / M_d)``: at
    integer k the centred orthonormal 3D FFT of the ``shape`` grid image of the same FOV.

    Args:
        volume: complex ``(Mz, My, Mx)`` fine-grid object, r' = 0 at index ``M // 2``.
        k: ``(n, 3)`` = ``(kx, ky, kz)`` grid units of the ``shape`` matrix.
        shape: ``(nz, ny, nx)`` of the gridding matrix.

    Returns:
        Complex128 ``(n,)``.
    """
    volume = np.asarray(volume)
    k = np.asarray(k, dtype=np.float64)
    if volume.ndim != 3 or k.ndim != 2 or k.shape[1] != 3:
        raise ValueError(f"need a volume (Mz, My, Mx) and k (n, 3), got shapes {volume.shape} and {k.shape}")
    Mz, My, Mx = volume.shape
    for axis, (column, M) in enumerate(zip((0, 1, 2), (Mx, My, Mz))):
        if k.size and np.abs(k[:, column]).max() >= M / 2:
            raise ValueError(f"k along axis {'xyz'[axis]} reaches {np.abs(k[:, column]).max():.3f} >= M/2 = {M / 2}")
    if k.shape[0] == 0:
        return np.zeros(0, dtype=np.complex128)
    plan = finufft.Plan(2, (Mz, My, Mx), n_trans=1, eps=eps, isign=-1, dtype="complex128")
    plan.setpts(
        np.ascontiguousarray(2.0 * np.pi * k[:, 2] / Mz),
        np.ascontiguousarray(2.0 * np.pi * k[:, 1] / My),
        np.ascontiguousarray(2.0 * np.pi * k[:, 0] / Mx),
    )
    out = np.asarray(plan.execute(np.ascontiguousarray(volume, dtype=np.complex128))).reshape(-1)
    return out * _volume_scale(volume.shape, shape)


def cartesian_kspace_3d(volume: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Exact k-space of a fine-grid volume on the integer ``shape`` = ``(nz, ny, nx)`` grid.

    Equals :func:`nufft_forward_3d` at integer k in ``[-n/2, n/2)`` per axis, arranged
    ``[kz + nz//2, ky + ny//2, kx + nx//2]`` (an FFT of the fine grid cropped to the central
    frequencies).

    Returns:
        Complex128 ``(nz, ny, nx)``.
    """
    volume = np.asarray(volume)
    full = centred_fftn(volume, (0, 1, 2), norm="backward")
    crop = tuple(slice(M // 2 - n // 2, M // 2 - n // 2 + n) for M, n in zip(volume.shape, shape))
    return full[crop] * _volume_scale(volume.shape, shape)


def _b0_shape_3d(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The unscaled 3D off-resonance of :func:`smooth_b0_map_3d` at normalised coordinates."""
    return (
        0.25 * x
        - 0.15 * y
        + 0.2 * z
        + np.exp(-((x - 0.05) ** 2 + (y + 0.55) ** 2 + (z + 0.2) ** 2) / (2 * 0.22**2))
        - 0.45 * np.exp(-((x + 0.3) ** 2 + (y - 0.45) ** 2 + (z - 0.25) ** 2) / (2 * 0.3**2))
    )


def smooth_b0_map_3d(shape: tuple[int, int, int], max_hz: float) -> np.ndarray:
    """A smooth 3D off-resonance map in Hz on a ``(nz, ny, nx)`` grid: the 2D map's gradient and
    lobes (:func:`smooth_b0_map`) made 3D (a z gradient, the lobes as blobs at z = -0.2 and
    0.25), scaled so ``max |f| = max_hz`` over the FOV (the same analytic function for every
    grid, so fine-grid and ``N``-grid maps agree at common pixel centres).

    Returns:
        Float64 array ``(nz, ny, nx)`` indexed ``[z, y, x]``, pixel ``r = 0`` at ``n // 2``.
    """
    from .phantoms import grid_coordinates_3d

    if not np.isfinite(max_hz) or max_hz < 0:
        raise ValueError(f"max_hz must be a finite value >= 0, got {max_hz!r}")
    reference = _b0_shape_3d(*grid_coordinates_3d((96, 96, 96)))
    return _b0_shape_3d(*grid_coordinates_3d(shape)) * (max_hz / np.abs(reference).max())


def forward_b0_3d(
    volume: np.ndarray,
    k: np.ndarray,
    times_s: np.ndarray,
    b0_hz: np.ndarray,
    shape: tuple[int, int, int],
    tol: float = 1e-6,
    eps: float = 1e-7,
) -> np.ndarray:
    """3D samples with off-resonance, by least-squares time segmentation (:func:`forward_b0` for a
    fine-grid volume): ``s_j = sum_l b_l(t_j) NUFFT3[x * exp(-2 pi i (f - fc) tau_l)](k_j)``.

    Args:
        volume: complex ``(Mz, My, Mx)`` fine-grid object (one coil).
        k: ``(n, 3)`` = ``(kx, ky, kz)`` grid units of the ``shape`` matrix.
        times_s: ``(n,)`` sample times in seconds (phase accrues from t = 0).
        b0_hz: ``(Mz, My, Mx)`` off-resonance on the fine grid.
        shape: ``(nz, ny, nx)`` of the gridding matrix.
        tol: RMS error of the segmentation (1e-6: far below any simulated noise; 3D volumes
            make each segment a costly transform).

    Returns:
        Complex128 ``(n,)``.
    """
    volume = np.asarray(volume)
    b0 = np.asarray(b0_hz, dtype=np.float64)
    if b0.shape != volume.shape:
        raise ValueError(f"b0_hz must have the volume's shape {volume.shape}, got shape {b0.shape}")
    times = np.asarray(times_s, dtype=np.float64).reshape(-1)
    k = np.asarray(k, dtype=np.float64)
    if times.shape[0] != k.shape[0]:
        raise ValueError(f"times_s must have {k.shape[0]} entries (one per k sample), got {times.shape[0]}")
    out = np.zeros(k.shape[0], dtype=np.complex128)
    if k.shape[0] == 0:
        return out
    segmentation = time_segment_coefficients(times, float(b0.min()), float(b0.max()), tol)
    fc = segmentation.centre_hz
    for tau_l, coefficients in zip(segmentation.tau_s, segmentation.coefficients):
        modulated = volume * np.exp(-2j * np.pi * (b0 - fc) * tau_l)
        out += coefficients * nufft_forward_3d(modulated, k, shape, eps)
    return out
