"""Smooth complex receive-coil sensitivities.

Each coil is a circular surface loop on a ring around the object, facing the
centre. Its magnitude follows the on-axis Biot-Savart field of a loop,
``a^2 / (a^2 + d^2)^(3/2)`` with ``d`` the distance from the loop centre, and its
phase is a constant coil phase plus a gentle linear and quadratic phase. The
maps are normalised so that ``sum_c |S_c|^2 = 1`` at every pixel.

Coordinates are the normalised pixel-centre coordinates of
:func:`igrog_gadget.simulate.phantoms.grid_coordinates` (FOV = ``[-1, 1)``), so
maps evaluated on the fine grid and on the ``N`` grid describe the same function.
"""

from __future__ import annotations

import logging

import numpy as np

from .phantoms import grid_coordinates

logger = logging.getLogger(__name__)

#: Radius of the ring of coil centres (normalised units, FOV half-width = 1).
COIL_RING_RADIUS = 1.25
#: Radius of each loop (normalised units).
COIL_LOOP_RADIUS = 0.7


def coil_sensitivities(num_coils: int, size: int, *, normalize: bool = True) -> np.ndarray:
    """Coil sensitivity maps on a ``size x size`` grid.

    Args:
        num_coils: number of coils ``C`` (>= 1), spread evenly on a ring.
        size: grid size; pixel ``r = 0`` at index ``size // 2``.
        normalize: divide by ``sqrt(sum_c |S_c|^2)`` so the sum of squares is 1.

    Returns:
        Complex128 array of shape ``(C, size, size)`` indexed ``[coil, y, x]``.
    """
    if int(num_coils) < 1:
        raise ValueError(f"num_coils must be >= 1, got {num_coils!r}")
    num_coils = int(num_coils)
    x, y = grid_coordinates(size)
    maps = np.empty((num_coils, size, size), dtype=np.complex128)
    a = COIL_LOOP_RADIUS
    for c in range(num_coils):
        ang = 2.0 * np.pi * c / num_coils + np.pi / 8.0
        cx, cy = COIL_RING_RADIUS * np.cos(ang), COIL_RING_RADIUS * np.sin(ang)
        d2 = (x - cx) ** 2 + (y - cy) ** 2
        magnitude = a**2 / (a**2 + d2) ** 1.5
        # Tangential (linear) and radial quadratic phase, plus a coil-specific offset.
        tx, ty = -np.sin(ang), np.cos(ang)
        phase = 0.9 * (tx * x + ty * y) + 0.3 * d2 + 2.0 * np.pi * ((0.37 * c) % 1.0)
        maps[c] = magnitude * np.exp(1j * phase)
    if normalize:
        rss = np.sqrt(np.sum(np.abs(maps) ** 2, axis=0))
        maps /= rss[None]
    return maps


def coil_sensitivities_3d(
    num_coils: int, shape: tuple[int, int, int], coil: int | None = None, *, normalize: bool = True
) -> np.ndarray:
    """3D coil sensitivity maps on a ``(nz, ny, nx)`` grid: loops on one ring (up to 4 coils) or on
    two rings at ``z = -0.5, +0.5`` (coils alternating between them), magnitude
    ``a^2 / (a^2 + d^2)^(3/2)`` of the 3D distance ``d`` to the loop centre, phase as in 2D plus a
    gentle z phase; normalised to ``sum_c |S_c|^2 = 1``.

    Args:
        coil: only this coil's map (normalised over all ``num_coils``), to keep the memory of
            large fine grids at one volume per map.

    Returns:
        Complex128 ``(C, nz, ny, nx)``, or ``(nz, ny, nx)`` for one ``coil``.
    """
    from .phantoms import grid_coordinates_3d

    if int(num_coils) < 1:
        raise ValueError(f"num_coils must be >= 1, got {num_coils!r}")
    num_coils = int(num_coils)
    x, y, z = grid_coordinates_3d(shape)
    rings = 2 if num_coils > 4 else 1
    a = COIL_LOOP_RADIUS

    def one(c: int) -> np.ndarray:
        ang = 2.0 * np.pi * c / num_coils + np.pi / 8.0
        cx, cy = COIL_RING_RADIUS * np.cos(ang), COIL_RING_RADIUS * np.sin(ang)
        cz = 0.0 if rings == 1 else (-0.5 if c % 2 == 0 else 0.5)
        d2 = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2
        tx, ty = -np.sin(ang), np.cos(ang)
        phase = 0.9 * (tx * x + ty * y) + 0.3 * d2 + 0.4 * z + 2.0 * np.pi * ((0.37 * c) % 1.0)
        return a**2 / (a**2 + d2) ** 1.5 * np.exp(1j * phase)

    if not normalize:
        return one(coil) if coil is not None else np.stack([one(c) for c in range(num_coils)])
    power = np.zeros(x.shape)
    for c in range(num_coils):
        power += np.abs(one(c)) ** 2
    rss = np.sqrt(power)
    if coil is not None:
        return one(coil) / rss
    return np.stack([one(c) / rss for c in range(num_coils)])
