"""Non-Cartesian and Cartesian k-space trajectories in grid units.

All trajectories are ``(kx, ky)`` pairs (the 3D ones ``(kx, ky, kz)``) in grid
units (cycles/FOV) of an ``N x N`` matrix (``N x N x nz``), k = 0 at grid index
``N // 2``; the gridded frequency range is ``[-N/2, N/2)``.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

#: Golden angle for radial spokes: 180 deg * (sqrt(5) - 1) / 2 = 111.246... deg.
GOLDEN_ANGLE_RAD = np.pi * (np.sqrt(5.0) - 1.0) / 2.0
GOLDEN_ANGLE_DEG = float(np.rad2deg(GOLDEN_ANGLE_RAD))

#: Default largest distance between neighbouring spiral samples (grid units)
#: targeted when the spiral dwell time is chosen automatically.
SPIRAL_TARGET_SPACING = 0.45
#: Hard bound on the neighbouring-sample distance of a spiral (grid units).
SPIRAL_MAX_SPACING = 0.5
#: Fraction of the spiral readout spent accelerating along the arc from k = 0.
SPIRAL_RAMP_FRACTION = 0.1


def _check_positive_int(name: str, value: int) -> int:
    if int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _spoke_radius(samples_per_spoke: int, N: int, readout_oversampling: float) -> np.ndarray:
    """Signed distance of each sample of a spoke from the centre, shape (samples_per_spoke,):
    ``(i - samples // 2) / readout_oversampling``, refused when it reaches twice the gridded range."""
    samples_per_spoke = _check_positive_int("samples_per_spoke", samples_per_spoke)
    N = _check_positive_int("N", N)
    if not readout_oversampling > 0:
        raise ValueError(f"readout_oversampling must be > 0, got {readout_oversampling!r}")
    radius = (np.arange(samples_per_spoke) - samples_per_spoke // 2) / float(readout_oversampling)
    if np.abs(radius).max() >= N:
        raise ValueError(
            f"samples_per_spoke={samples_per_spoke} with readout_oversampling={readout_oversampling} "
            f"reaches |k| >= N={N} (beyond twice the gridded range)"
        )
    return radius


def radial_angles(num_spokes: int) -> np.ndarray:
    """Golden-angle spoke angles ``s * 111.246 deg`` in radians, shape ``(spokes,)``."""
    num_spokes = _check_positive_int("num_spokes", num_spokes)
    return np.arange(num_spokes) * GOLDEN_ANGLE_RAD


def radial_golden_angle(
    num_spokes: int,
    samples_per_spoke: int,
    N: int,
    readout_oversampling: float = 2,
) -> np.ndarray:
    """Golden-angle radial trajectory.

    Spoke ``s`` points along ``(cos(s * GA), sin(s * GA))``; sample ``i`` is at
    distance ``(i - samples // 2) / readout_oversampling`` from the centre, so the
    sample at index ``samples // 2`` is k = 0 and ``samples = 2 N`` with 2x
    oversampling covers ``[-N/2, N/2 - 1/2]``.

    Returns:
        Float64 array of shape ``(num_spokes, samples_per_spoke, 2)`` = ``(kx, ky)``.
    """
    radius = _spoke_radius(samples_per_spoke, N, readout_oversampling)
    angles = radial_angles(num_spokes)
    direction = np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # (spokes, 2)
    return radius[None, :, None] * direction[:, None, :]


def cartesian_lines(phase_encodes: np.ndarray, N: int, readout_oversampling: int = 2) -> np.ndarray:
    """Fully sampled Cartesian readout lines along kx (as a scanner records them), 2D or 3D.

    Line ``l`` is at ``phase_encodes[l]``: ``ky`` (a 1-D array: 2D lines), or ``(ky, kz)`` (an
    ``(lines, 2)`` array: the lines of a 3D block). It has ``readout_oversampling * N`` samples
    and sample ``i`` is at ``kx = (i - N * readout_oversampling // 2) / readout_oversampling``
    (``center_sample = N`` for 2x oversampling).

    Returns:
        Float64 array ``(lines, readout_oversampling * N, 2)`` = ``(kx, ky)``, or ``(lines,
        readout_oversampling * N, 3)`` = ``(kx, ky, kz)``.
    """
    N = _check_positive_int("N", N)
    readout_oversampling = _check_positive_int("readout_oversampling", readout_oversampling)
    steps = np.asarray(phase_encodes, dtype=np.float64)
    steps = steps.reshape(-1, 1) if steps.ndim <= 1 else steps
    if steps.ndim != 2 or steps.shape[1] not in (1, 2):
        raise ValueError(f"phase_encodes must be (lines,) ky or (lines, 2) (ky, kz), got shape {np.shape(phase_encodes)}")
    n = readout_oversampling * N
    kx = (np.arange(n) - n // 2) / readout_oversampling
    out = np.empty((steps.shape[0], n, 1 + steps.shape[1]))
    out[..., 0] = kx[None, :]
    out[..., 1:] = steps[:, None, :]
    return out


def _archimedean_arc_length(theta: np.ndarray, lam: float) -> np.ndarray:
    """Arc length of ``r = lam * theta`` from 0 to ``theta``."""
    return 0.5 * lam * (theta * np.sqrt(1.0 + theta**2) + np.arcsinh(theta))


def spiral_turns(num_interleaves: int, N: int) -> float:
    """Turns per interleaf giving a radial spacing of 1 grid unit (Nyquist): ``N / (2 I)``."""
    return N / (2.0 * num_interleaves)


def spiral(
    num_interleaves: int,
    N: int,
    readout_duration_ms: float = 10.0,
    sample_time_us: float | None = None,
    *,
    turns: float | None = None,
) -> tuple[np.ndarray, float]:
    """Archimedean spiral-out trajectory reaching ``|k| = N/2``.

    Each interleaf follows ``k = lam * theta * exp(i theta)`` for ``theta`` in
    ``[0, 2 pi turns]``; with the default ``turns = N / (2 I)`` the radial gap
    between neighbouring interleaves is exactly 1 grid unit everywhere (the whole
    disc, centre included, is Nyquist sampled). Interleaf ``j`` is rotated by
    ``2 pi j / I + pi / I`` (the half-step offset keeps the end points off the
    axes, so no sample lands on ``kx`` or ``ky = +N/2``).

    Along the readout the arc length grows quadratically in time during the first
    10% of the readout (constant angular velocity near the centre, like a
    slew-limited design) and then linearly (constant gradient amplitude), so the
    largest sample spacing is at the edge.

    Args:
        num_interleaves: number of interleaves ``I``.
        N: matrix size.
        readout_duration_ms: readout length; ``samples = round(duration / dwell)``.
        sample_time_us: dwell time; ``None`` picks the longest dwell (0.1 us steps)
            keeping neighbouring samples <= 0.45 grid units apart.
        turns: turns per interleaf (default ``N / (2 I)``, Nyquist-dense).

    Returns:
        ``(traj, sample_time_us)``: traj float64 of shape ``(I, samples, 2)`` =
        ``(kx, ky)``, sample 0 at k = 0; the dwell time in microseconds.

    Raises:
        ValueError: on non-positive sizes, or when the given ``sample_time_us``
            would put neighbouring samples more than 0.5 grid units apart.
    """
    num_interleaves = _check_positive_int("num_interleaves", num_interleaves)
    N = _check_positive_int("N", N)
    if not readout_duration_ms > 0:
        raise ValueError(f"readout_duration_ms must be > 0, got {readout_duration_ms!r}")
    if turns is None:
        turns = spiral_turns(num_interleaves, N)
    if not turns > 0:
        raise ValueError(f"turns must be > 0, got {turns!r}")
    kmax = N / 2.0
    theta_max = 2.0 * np.pi * turns
    lam = kmax / theta_max
    total_arc = float(_archimedean_arc_length(np.array(theta_max), lam))
    duration_us = readout_duration_ms * 1000.0
    ramp = SPIRAL_RAMP_FRACTION

    def edge_speed(n_samples: int, dwell: float) -> float:
        # Arc length per microsecond in the constant-speed part.
        t_end = (n_samples - 1) * dwell
        return total_arc / (t_end * (1.0 - ramp / 2.0))

    if sample_time_us is None:
        dwell = np.floor(10.0 * SPIRAL_TARGET_SPACING * duration_us * (1.0 - ramp / 2.0) / total_arc) / 10.0
        if dwell <= 0:
            raise ValueError(
                f"readout_duration_ms={readout_duration_ms} is too short for a {N}-matrix spiral with "
                f"{num_interleaves} interleaves (needs a dwell below 0.1 us)"
            )
        sample_time_us = float(dwell)
        # Rounding of the sample count may push the spacing slightly: shorten the dwell until it fits.
        while sample_time_us > 0.1:
            n = int(round(duration_us / sample_time_us))
            if edge_speed(n, sample_time_us) * sample_time_us <= SPIRAL_TARGET_SPACING:
                break
            sample_time_us = round(sample_time_us - 0.1, 1)
    if not sample_time_us > 0:
        raise ValueError(f"sample_time_us must be > 0, got {sample_time_us!r}")
    n_samples = int(round(duration_us / sample_time_us))
    if n_samples < 8:
        raise ValueError(
            f"readout_duration_ms={readout_duration_ms} with sample_time_us={sample_time_us} gives only "
            f"{n_samples} samples"
        )
    speed = edge_speed(n_samples, sample_time_us)
    spacing = speed * sample_time_us
    if spacing > SPIRAL_MAX_SPACING + 1e-9:
        raise ValueError(
            f"sample_time_us={sample_time_us} puts neighbouring spiral samples {spacing:.3f} grid units apart "
            f"(> {SPIRAL_MAX_SPACING}); use a shorter dwell or a longer readout_duration_ms"
        )

    t = np.arange(n_samples) * sample_time_us
    t_end = t[-1]
    t_ramp = ramp * t_end
    arc = np.where(
        t < t_ramp,
        speed * t**2 / (2.0 * t_ramp),
        speed * (t - t_ramp / 2.0),
    )
    arc = np.clip(arc, 0.0, total_arc)
    # Invert the arc-length function on a dense table, then polish with Newton steps.
    theta_tab = np.linspace(0.0, theta_max, 200001)
    arc_tab = _archimedean_arc_length(theta_tab, lam)
    theta = np.interp(arc, arc_tab, theta_tab)
    for _ in range(3):
        f = _archimedean_arc_length(theta, lam) - arc
        dsdtheta = lam * np.sqrt(1.0 + theta**2)
        theta = np.clip(theta - f / dsdtheta, 0.0, theta_max)
    radius = lam * theta
    rot = 2.0 * np.pi * np.arange(num_interleaves) / num_interleaves + np.pi / num_interleaves
    phi = theta[None, :] + rot[:, None]
    traj = np.stack([radius[None, :] * np.cos(phi), radius[None, :] * np.sin(phi)], axis=-1)
    logger.debug(
        "spiral: %d interleaves x %d samples, dwell %.2f us, turns %.3f, edge spacing %.3f",
        num_interleaves,
        n_samples,
        sample_time_us,
        turns,
        spacing,
    )
    return traj, float(sample_time_us)


# --- 3D trajectories: (kx, ky, kz) in grid units -------------------------------------------

#: The two golden means of 3D golden-means radial ordering (Chan et al., MRM 61:354, 2009):
#: the eigenvector ratios of the 3D Fibonacci matrix, 0.4656... and 0.6823...
GOLDEN_MEANS_3D = (0.465571231876768, 0.682327803828019)


def kooshball_directions(num_spokes: int) -> np.ndarray:
    """Golden-means spoke directions on the upper hemisphere, shape ``(spokes, 3)`` unit vectors.

    Spoke ``s`` has ``cos(polar) = frac(s * phi1)`` and azimuth ``2 pi frac(s * phi2)``; full
    spokes through the centre cover the whole sphere from the hemisphere.

    References:
        Chan, Ramsay, Cunningham, Plewes, "Temporal stability of adaptive 3D radial MRI using
        multidimensional golden means", MRM 61:354-363 (2009).
    """
    num_spokes = _check_positive_int("num_spokes", num_spokes)
    s = np.arange(num_spokes, dtype=np.float64)
    cos_polar = np.mod(s * GOLDEN_MEANS_3D[0], 1.0)
    azimuth = 2.0 * np.pi * np.mod(s * GOLDEN_MEANS_3D[1], 1.0)
    sin_polar = np.sqrt(1.0 - cos_polar**2)
    return np.stack([sin_polar * np.cos(azimuth), sin_polar * np.sin(azimuth), cos_polar], axis=-1)


def kooshball_golden_means(
    num_spokes: int, samples_per_spoke: int, N: int, readout_oversampling: float = 2
) -> np.ndarray:
    """3D radial (kooshball) trajectory of full spokes in golden-means order.

    Sample ``i`` of a spoke lies ``(i - samples // 2) / readout_oversampling`` from the centre
    along the spoke's direction (:func:`kooshball_directions`), as the 2D radial spokes do.

    Returns:
        Float64 array ``(num_spokes, samples_per_spoke, 3)`` = ``(kx, ky, kz)``.
    """
    radius = _spoke_radius(samples_per_spoke, N, readout_oversampling)
    return radius[None, :, None] * kooshball_directions(num_spokes)[:, None, :]


def stack_of_spirals(
    num_interleaves: int,
    N: int,
    partitions: int,
    readout_duration_ms: float = 10.0,
    sample_time_us: float | None = None,
) -> tuple[np.ndarray, float]:
    """Stack of 2D spirals (:func:`spiral`) on the integer kz planes ``p - partitions // 2``.

    Partition ``p`` repeats the interleaves rotated by ``p`` golden angles (so neighbouring
    planes do not share their sample positions). Readout ``p * I + j`` is interleaf ``j`` of
    partition ``p``.

    Returns:
        ``(traj, sample_time_us)``: traj float64 ``(partitions * I, samples, 3)`` = ``(kx, ky, kz)``.
    """
    partitions = _check_positive_int("partitions", partitions)
    planar, dwell = spiral(num_interleaves, N, readout_duration_ms, sample_time_us)
    out = np.empty((partitions, planar.shape[0], planar.shape[1], 3))
    for p in range(partitions):
        angle = p * GOLDEN_ANGLE_RAD
        c, s = np.cos(angle), np.sin(angle)
        out[p, :, :, 0] = c * planar[..., 0] - s * planar[..., 1]
        out[p, :, :, 1] = s * planar[..., 0] + c * planar[..., 1]
        out[p, :, :, 2] = p - partitions // 2
    return out.reshape(-1, planar.shape[1], 3), dwell
