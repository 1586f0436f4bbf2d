"""What differs between 2D and 3D gridding, as data: one ``DimensionProfile`` per dimensionality.

The package writes each operation once for any number of dimensions; where 2D and 3D differ,
the code reads it here instead of branching on ``dims``:

- two axis orders: **axes** ``(x, y[, z])`` — trajectory columns ``(kx, ky[, kz])``, header
  matrices and fields of view ``(nx, ny, nz)``, calibration block origins — and **array axes**
  ``([z,] y, x)`` — images, k-space grids and hits, first array axis first;
- the finufft transforms (``nufft2d1`` / ``nufft3d1`` ...) and their precision (3D transforms
  run in single precision at 1e-5: see ``DIMENSIONS``);
- the encoding counters that number a frame's Cartesian lines (``kspace_encode_step_1`` in 2D;
  and ``kspace_encode_step_2`` in 3D, where encode step 2 is an encoding axis and not the
  partition counter of a stack of 2D frames);
- the grid of a frame from the header's matrix: a 2D frame is a plane (its ISMRMRD matrix has
  z = 1, ``volume_shape``), a 3D frame spans the encoded z.

``dimensions(dims)`` returns the profile; ``dimensions_of_grid`` and ``dimensions_of_positions``
read it off a grid's array shape or a position array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

#: Axis names in axis order (trajectory columns, header matrices).
AXES = ("x", "y", "z")
#: Encoding counters of the Cartesian lines' phase-encoding axes (y, z), in axis order.
ENCODE_COUNTERS = ("kspace_encode_step_1", "kspace_encode_step_2")


@dataclass(frozen=True)
class DimensionProfile:
    """What a ``dims``-dimensional frame, grid or transform needs to know about its dimensionality."""

    dims: int
    """2 or 3."""
    nufft_eps: float
    """Relative precision of the package's NUFFTs (``igrog_gadget.numerics.nufft``)."""
    nufft_real: type[np.floating]
    """Real dtype of those NUFFTs' points (float64 or float32)."""
    nufft_complex: type[np.complexfloating]
    """Complex dtype of those NUFFTs' data (complex128 or complex64)."""

    @property
    def name(self) -> str:
        """``"2D"`` or ``"3D"``."""
        return f"{self.dims}D"

    @property
    def axes(self) -> tuple[str, ...]:
        """``("x", "y")`` or ``("x", "y", "z")``: the order of positions and header matrices."""
        return AXES[: self.dims]

    @property
    def array_axes(self) -> tuple[str, ...]:
        """``("y", "x")`` or ``("z", "y", "x")``: the order of array axes."""
        return tuple(reversed(self.axes))

    @property
    def encode_counters(self) -> tuple[str, ...]:
        """Counters numbering a Cartesian line along y (and z): ``ENCODE_COUNTERS[: dims - 1]``."""
        return ENCODE_COUNTERS[: self.dims - 1]

    def array_label(self, prefix: str = "n") -> str:
        """The array axes for messages: ``"ny x nx"`` or ``"nz x ny x nx"``."""
        return " x ".join(prefix + axis for axis in self.array_axes)

    def matrix(self, matrix_xyz: Sequence[int]) -> tuple[int, ...]:
        """The first ``dims`` entries of a header's ``(nx, ny, nz)`` matrix (axis order)."""
        return tuple(int(n) for n in matrix_xyz[: self.dims])

    def grid_shape(self, matrix: Sequence[int]) -> tuple[int, ...]:
        """Array shape ``([nz,] ny, nx)`` of a grid of ``matrix`` ``(nx, ny[, nz])``."""
        return tuple(int(n) for n in reversed(self.matrix(matrix)))

    def nufft_type1(self) -> Callable[..., Any]:
        """finufft's type-1 transform (samples to grid) of this dimensionality."""
        import finufft

        return getattr(finufft, f"nufft{self.dims}d1")  # type: ignore[no-any-return]

    def nufft_type2(self) -> Callable[..., Any]:
        """finufft's type-2 transform (grid to samples) of this dimensionality."""
        import finufft

        return getattr(finufft, f"nufft{self.dims}d2")  # type: ignore[no-any-return]


#: The two profiles. 3D transforms run at 1e-5 in single precision: far below the noise of any
#: MRI data, each sample spreads onto 5^3 instead of 7^3 grid points (the calibration solves of a
#: 3D scan run tens of transforms of the whole frame), and finufft's float32 library reaches
#: 1e-5 in half the memory and about half the time of double precision.
DIMENSIONS = {
    2: DimensionProfile(2, nufft_eps=1e-7, nufft_real=np.float64, nufft_complex=np.complex128),
    3: DimensionProfile(3, nufft_eps=1e-5, nufft_real=np.float32, nufft_complex=np.complex64),
}


def dimensions(dims: int) -> DimensionProfile:
    """The profile of ``dims`` (2 or 3).

    Raises:
        ValueError: any other number, named.
    """
    try:
        return DIMENSIONS[int(dims)]
    except KeyError:
        raise ValueError(f"gridding is 2D or 3D, got {dims} dimensions") from None


def dimensions_of_grid(shape: Sequence[int]) -> DimensionProfile:
    """The profile of a grid's array shape ``(ny, nx)`` or ``(nz, ny, nx)``."""
    return dimensions(len(tuple(shape)))


def dimensions_of_positions(positions: np.ndarray) -> DimensionProfile:
    """The profile of positions ``(..., dims)`` = ``(kx, ky[, kz])``."""
    return dimensions(int(np.shape(positions)[-1]))


def volume_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    """``(nz, ny, nx)`` of a grid's array shape, nz = 1 for a 2D grid: ISMRMRD images, matrices and
    Gadgetron buffers always have three spatial axes."""
    shape = tuple(int(n) for n in shape)
    dimensions_of_grid(shape)  # 2D or 3D only
    nz, ny, nx = (1,) * (3 - len(shape)) + shape
    return nz, ny, nx
