"""Least-squares time segmentation of the off-resonance phase ``exp(-2 pi i f t)``.

The phase a field ``f(r)`` (Hz) puts on a sample acquired at time ``t`` is approximated by
``L`` segments at times ``tau_l``::

    exp(-2 pi i f t) ~= sum_l b_l(t) exp(-2 pi i f tau_l)

with ``tau_l`` evenly spaced over the time range and ``b_l(t)`` the least-squares
coefficients over the frequencies present in the field map, weighted by how many pixels have
them (Fessler et al., "Toeplitz-based iterative image reconstruction for MRI with correction
for magnetic field inhomogeneity", IEEE TSP 2005; Sutton et al., IEEE TMI 2003).

References:
    Sutton, Noll, Fessler, "Fast, iterative image reconstruction for MRI in the presence of
    field inhomogeneities", IEEE TMI 22(2), 2003.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


@dataclass
class TimeSegmentation:
    """Segment times and per-time coefficients."""

    tau_s: np.ndarray
    """Shape (L,), float64: segment times, seconds."""
    coefficients: np.ndarray
    """Shape (L, n), complex128: ``b_l(t_j)`` for each requested time."""
    max_error: float
    """Largest weighted-RMS phase error over the requested times (fraction of 1)."""
    centre_hz: float = 0.0
    """Frequency the segments are taken relative to: ``exp(-2 pi i f t) ~= sum_l b_l(t)
    exp(-2 pi i (f - centre_hz) tau_l)`` (the carrier ``exp(-2 pi i centre_hz t)`` is in ``b_l(t)``)."""

    @property
    def num_segments(self) -> int:
        return int(self.tau_s.shape[0])


def frequency_histogram(field_hz: np.ndarray, bins: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies present in a field map and their pixel counts.

    Args:
        field_hz: any shape, real, Hz.
    Returns:
        ``(frequencies (m,), weights (m,))``, weights summing to 1 (bins with pixels only).
    """
    values = np.asarray(field_hz, dtype=np.float64).reshape(-1)
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-9:
        return np.array([low]), np.array([1.0])
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    centres = 0.5 * (edges[:-1] + edges[1:])
    keep = counts > 0
    # The extremes themselves, so the fit covers the whole range.
    frequencies = np.concatenate([[low], centres[keep], [high]])
    weights = np.concatenate([[counts.max() * 0.05], counts[keep].astype(np.float64), [counts.max() * 0.05]])
    return frequencies, weights / weights.sum()


def time_segmentation(
    times_s: np.ndarray,
    frequencies_hz: np.ndarray,
    weights: np.ndarray,
    num_segments: int,
    centre_hz: float = 0.0,
) -> TimeSegmentation:
    """Coefficients ``b_l(t)`` for ``num_segments`` evenly spaced segment times.

    Args:
        times_s: shape (n,), seconds.
        frequencies_hz: shape (m,), the frequencies to fit (e.g. ``frequency_histogram``).
        weights: shape (m,), their weights.
        num_segments: L >= 1.
        centre_hz: the segments' phases are ``exp(-2 pi i (f - centre_hz) tau_l)`` (a carrier
            at the centre of the field's range needs fewer segments for the same error).
    """
    times = np.asarray(times_s, dtype=np.float64).reshape(-1)
    unique, inverse = np.unique(times, return_inverse=True)
    t0, t1 = (float(unique[0]), float(unique[-1])) if unique.size else (0.0, 0.0)
    if num_segments == 1 or t1 - t0 <= 0:
        tau = np.array([0.5 * (t0 + t1)])[:num_segments] if num_segments == 1 else np.linspace(t0, t1, num_segments)
    else:
        tau = np.linspace(t0, t1, num_segments)
    root = np.sqrt(np.asarray(weights, dtype=np.float64))[:, None]
    freqs = np.asarray(frequencies_hz, dtype=np.float64)[:, None]
    basis = root * np.exp(-2j * np.pi * (freqs - centre_hz) * tau[None, :])  # (m, L)
    target = root * np.exp(-2j * np.pi * freqs * unique[None, :])  # (m, T)
    coefficients, *_ = np.linalg.lstsq(basis, target, rcond=1e-10)  # (L, T)
    errors = np.sqrt(np.sum(np.abs(basis @ coefficients - target) ** 2, axis=0))
    return TimeSegmentation(
        tau_s=tau,
        coefficients=coefficients[:, inverse.reshape(-1)],
        max_error=float(errors.max()) if errors.size else 0.0,
        centre_hz=centre_hz,
    )


def segments_for_tolerance(
    times_s: np.ndarray,
    frequencies_hz: np.ndarray,
    weights: np.ndarray,
    tolerance: float,
    max_segments: int = 64,
    centre_hz: float = 0.0,
) -> TimeSegmentation:
    """The fewest evenly spaced segments whose phase error stays below ``tolerance``
    (``centre_hz``: see :func:`time_segmentation`)."""
    times = np.asarray(times_s, dtype=np.float64).reshape(-1)
    span = float(times.max() - times.min()) if times.size else 0.0
    spread = float(np.max(frequencies_hz) - np.min(frequencies_hz))
    count = max(1, int(np.ceil(spread * span)) + 2)
    while True:
        segmentation = time_segmentation(times, frequencies_hz, weights, count, centre_hz)
        if segmentation.max_error <= tolerance or count >= max_segments:
            break
        count += 1
    if segmentation.max_error > tolerance:
        logger.warning(
            "time segmentation: error %.2g above tolerance %.2g with %d segments", segmentation.max_error, tolerance, count
        )
    return segmentation
