"""Whether a trained model has seen a frame's offsets: the trajectory check of early training.

A model trained from the first readouts of a frame (training starts while the scan streams)
knows the offsets those readouts produce. Another frame, or the rest of the same frame, may
produce offsets the model has never seen (a linear-order radial scan whose first spokes span
a few degrees, a different trajectory in a later repetition); ``offset_distance`` measures
that (``offset_distance_ratio``, deterministic), and the runner retrains when it exceeds
``training.offset_coverage_max``.
"""

from __future__ import annotations

import numpy as np

#: Offsets (of each side) used by the check: a deterministic stride through the arrays.
MAX_CHECKED_OFFSETS = 20000
#: Quantile of the nearest-neighbour distances compared.
COVERAGE_QUANTILE = 0.99
#: Smallest spacing of the trained offsets the ratio divides by (grid units): repeated offsets.
MIN_SPACING = 1e-3


def _strided(offsets: np.ndarray, count: int) -> np.ndarray:
    """At most ``count`` rows of ``offsets`` (n, sources, 2), evenly spaced, as (m, sources * 2)."""
    flat = offsets.reshape(offsets.shape[0], -1)
    step = max(1, -(-flat.shape[0] // count))
    return np.ascontiguousarray(flat[::step], dtype=np.float64)


def offset_distance_ratio(trained: np.ndarray, frame: np.ndarray) -> float:
    """How far a frame's offsets lie from those a model was trained on, relative to how far the
    trained offsets lie from each other.

    Both distances are nearest-neighbour distances in offset space (RMS over the sources, grid
    units), taken at their ``COVERAGE_QUANTILE`` quantile: from each frame offset to the nearest
    trained offset, and from each trained offset to the nearest other one. Offsets drawn from the
    same trajectory give a ratio near 1-2 (golden-angle radial: 1.3-2.1 from the first 16-64
    spokes); offsets the training never saw give far more (a linear-order radial frame against
    its first 32 spokes: 10-45).

    Args:
        trained: shape (n, sources, 2): the offsets the training pairs were drawn from.
        frame: shape (m, sources, 2): the offsets of the frame to grid.
    Returns:
        The ratio; 0 for an empty frame, inf for fewer than two trained offsets.
    """
    from scipy.spatial import cKDTree  # only the network fit's check needs it (0.4 s to import)

    if frame.shape[0] == 0:
        return 0.0
    if trained.shape[0] < 2:
        return float("inf")
    tree = cKDTree(_strided(trained, 5 * MAX_CHECKED_OFFSETS))
    to_frame, _ = tree.query(_strided(frame, MAX_CHECKED_OFFSETS), k=1)
    to_others, _ = tree.query(_strided(trained, MAX_CHECKED_OFFSETS), k=2)
    spacing = max(float(np.quantile(to_others[:, 1], COVERAGE_QUANTILE)), MIN_SPACING * np.sqrt(trained.shape[1]))
    return float(np.quantile(to_frame, COVERAGE_QUANTILE)) / spacing
