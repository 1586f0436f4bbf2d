"""Smooth complex receive-coil sensitivities, 2D or 3D.

Each coil is a circular surface loop on a ring around the object, facing the
centre. Its magnitude follows the on-axis Biot-Savart field of a loop,
``a^2 / (a^2 + d^2)^(3/2)`` with ``d`` the distance from the loop centre, and its
phase is a constant coil phase plus a gentle linear and quadratic phase (and a
gentle z phase in 3D). In 3D the loops lie on one ring (up to 4 coils) or on two
rings at ``z = -0.5, +0.5`` (coils alternating between them). The maps are
normalised so that ``sum_c |S_c|^2 = 1`` at every pixel.

Coordinates are the normalised pixel-centre coordinates of
:func:`igrog_gadget.simulate.phantoms.grid_coordinates` (FOV = ``[-1, 1)``), so
maps evaluated on the fine grid and on the ``N`` grid describe the same function.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from .phantoms import grid_coordinates

logger = logging.getLogger(__name__)

#: Radius of the ring of coil centres (normalised units, FOV half-width = 1).
COIL_RING_RADIUS = 1.25
#: Radius of each loop (normalised units).
COIL_LOOP_RADIUS = 0.7
#: More coils than this are spread over two rings (z = -0.5, +0.5) around a volume.
COILS_PER_RING = 4
#: The 3D maps' z phase (radians per normalised unit).
Z_PHASE = 0.4


def coil_sensitivities(
    num_coils: int, shape: int | Sequence[int], coil: int | None = None, *, normalize: bool = True
) -> np.ndarray:
    """Coil sensitivity maps on a 2D or 3D grid.

    Args:
        num_coils: number of coils ``C`` (>= 1), spread evenly on a ring (two rings around a
            volume of more than ``COILS_PER_RING`` coils).
        shape: array shape ``(ny, nx)`` or ``(nz, ny, nx)``, or one size of a square 2D grid;
            pixel ``r = 0`` at index ``n // 2``.
        coil: only this coil's map (normalised over all ``num_coils``), to keep the memory of
            large fine grids at one map.
        normalize: divide by ``sqrt(sum_c |S_c|^2)`` so the sum of squares is 1.

    Returns:
        Complex128 array ``(C, *shape)`` indexed ``[coil, ([z,] y, x)]``, or ``shape`` for one ``coil``.
    """
    if int(num_coils) < 1:
        raise ValueError(f"num_coils must be >= 1, got {num_coils!r}")
    num_coils = int(num_coils)
    coords = grid_coordinates(shape)
    a = COIL_LOOP_RADIUS

    def one(c: int) -> np.ndarray:
        ang = 2.0 * np.pi * c / num_coils + np.pi / 8.0
        cx, cy = COIL_RING_RADIUS * np.cos(ang), COIL_RING_RADIUS * np.sin(ang)
        centre = (cx, cy, _ring_height(c, num_coils))
        d2 = (coords[0] - centre[0]) ** 2
        for coord, position in zip(coords[1:], centre[1:]):
            d2 = d2 + (coord - position) ** 2
        # Tangential (linear) and radial quadratic phase, plus a coil-specific offset.
        tx, ty = -np.sin(ang), np.cos(ang)
        phase = 0.9 * (tx * coords[0] + ty * coords[1]) + 0.3 * d2
        for depth in coords[2:]:
            phase = phase + Z_PHASE * depth
        phase = phase + 2.0 * np.pi * ((0.37 * c) % 1.0)
        return a**2 / (a**2 + d2) ** 1.5 * np.exp(1j * phase)

    if not normalize:
        return one(coil) if coil is not None else np.stack([one(c) for c in range(num_coils)])
    power = np.zeros(coords[0].shape)
    for c in range(num_coils):
        power += np.abs(one(c)) ** 2
    rss = np.sqrt(power)
    if coil is not None:
        return one(coil) / rss
    return np.stack([one(c) / rss for c in range(num_coils)])


def _ring_height(coil: int, num_coils: int) -> float:
    """z of coil ``coil``'s loop centre around a volume: 0 on one ring, -0.5 / +0.5 alternating on two."""
    if num_coils <= COILS_PER_RING:
        return 0.0
    return -0.5 if coil % 2 == 0 else 0.5
