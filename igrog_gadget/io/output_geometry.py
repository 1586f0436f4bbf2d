"""Where the gridded frames of a scan lie: one output geometry for every output, 2D or 3D.

Every front end writes the same grid: ``igrog replay``'s file (its header and weights and image
series), the header of an ``igrog pipe`` stream, and the gadget's ``IsmrmrdReconData``,
acquisitions and images. Each builds an :class:`OutputGeometry` from the scan's header, the grid
oversampling and its frames' grid (``OutputGeometry.of_frames``) and reads from it:

- the output's encodedSpace: matrix ``(nx, ny, nz)`` and field of view. Along the axes a frame's
  grid spans — x and y, and z for a 3D frame — the grid over the encoded FOV x grid
  oversampling. A 2D frame is a plane: its z is the header's encoded z FOV, with nz = 1, or the
  header's partitions when the frames are the partitions of a stack (stack-of-stars);
- ``fov_mm`` is also the field of view of each frame's own grid (the weights and image series,
  Gadgetron's SamplingDescription);
- reconSpace (``recon_space``): the input's recon FOV in whole output voxels, so that readers that
  take voxel = recon FOV / recon matrix (mrpro) get the output's voxel size;
- the crop to the input's recon FOV (``recon_region``, ``crop_kspace``): what a Cartesian
  gadget's E0 x E1 (x E2) image and the product's images keep of an oversampled grid.

Nothing here imports ``ismrmrd``: the header is the typed ``ScanHeader``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from igrog_gadget.numerics.dimensions import DimensionProfile, dimensions_of_grid, volume_shape
from igrog_gadget.numerics.fft import centred_fftn
from igrog_gadget.scan import ScanHeader

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class OutputGeometry:
    """The grid of a scan's gridded frames and the encoding an output states for it."""

    frame_shape: tuple[int, ...]
    """Array shape ``(ny, nx)`` or ``(nz, ny, nx)`` of each frame's grid (k = 0 at n // 2)."""
    fov_mm: Triple
    """Field of view (x, y, z) in mm of each frame's grid and of the output's encodedSpace."""
    input_recon_fov_mm: Triple
    """The input header's reconSpace field of view (x, y, z) in mm (0 where it states none)."""
    partitions: int = 1
    """Planes stacked along z in the output's encodedSpace: the header's partitions for 2D frames
    that are the partitions of a stack, else 1 (a single plane, or a 3D frame spanning z itself)."""

    @classmethod
    def of_frames(
        cls, header: ScanHeader, grid_oversampling: float, frame_shape: Sequence[int], stacked: bool = False
    ) -> "OutputGeometry":
        """The geometry of frames gridded onto ``frame_shape`` ((ny, nx) or (nz, ny, nx)) from a scan
        of ``header`` with ``grid_oversampling``; ``stacked``: 2D frames that are the partitions of
        a stack (the output states the header's partitions as its z; ignored for 3D frames)."""
        shape = tuple(int(n) for n in frame_shape)
        spanned = dimensions_of_grid(shape).dims  # axes x, y[, z] the frame's grid spans
        fov = tuple(
            float(v) * grid_oversampling if axis < spanned else float(v) for axis, v in enumerate(header.encoded_fov_mm)
        )
        partitions = int(header.encoded_matrix[2]) if stacked and len(shape) == 2 else 1
        return cls(shape, (fov[0], fov[1], fov[2]), _triple(header.recon_fov_mm), partitions)

    @property
    def profile(self) -> DimensionProfile:
        """The frames' dimensionality."""
        return dimensions_of_grid(self.frame_shape)

    @property
    def matrix(self) -> tuple[int, int, int]:
        """The output's encodedSpace matrix (nx, ny, nz)."""
        nz, ny, nx = volume_shape(self.frame_shape)
        return nx, ny, nz * self.partitions

    @property
    def recon_space(self) -> tuple[tuple[int, int, int], Triple]:
        """The output's reconSpace (matrix (nx, ny, nz), FOV (x, y, z) mm): see :func:`output_recon_space`."""
        return output_recon_space(self.matrix, self.fov_mm, self.input_recon_fov_mm)

    def recon_region(self, shape: Sequence[int] | None = None) -> tuple[tuple[slice, ...], Triple]:
        """The central region of an image of ``shape`` (default: the frame grid) that covers the
        input's recon FOV, and that region's FOV (see :func:`fov_crop`)."""
        return fov_crop(self.frame_shape if shape is None else tuple(shape), self.fov_mm, self.input_recon_fov_mm)

    def crop_kspace(self, kspace: np.ndarray) -> tuple[np.ndarray, Triple]:
        """``kspace`` (coils, *frame grid) with the oversampling beyond the input's recon FOV removed,
        and its FOV (see :func:`crop_to_fov`)."""
        return crop_to_fov(kspace, self.fov_mm, self.input_recon_fov_mm)


def _triple(values: Sequence[float]) -> Triple:
    x, y, z = (float(v) for v in values)
    return x, y, z


def output_recon_space(
    matrix: tuple[int, int, int], fov_mm: tuple[float, float, float], recon_fov_mm: tuple[float, float, float]
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """reconSpace (matrix, FOV mm) of a Cartesian output grid ``matrix`` over ``fov_mm``.

    Downstream readers (mrpro, Gadgetron) take voxel size = recon FOV / recon matrix and crop the
    encoded image to the recon FOV. Per axis: the input's recon FOV in whole output voxels
    (``round(recon_fov / voxel)``, at most the output matrix; the whole output where the input
    states no recon FOV), and that many voxels' FOV. A 2D output's z (one partition) keeps the
    input's recon z FOV (the slice thickness).
    """
    sizes, fovs = [], []
    for axis in range(3):
        n, fov, recon = int(matrix[axis]), float(fov_mm[axis]), float(recon_fov_mm[axis])
        if axis == 2 and n == 1:  # a single plane: its z is a slice thickness, not voxels
            sizes.append(1)
            fovs.append(recon if recon > 0 else fov)
            continue
        voxel = fov / n if fov > 0 else 0.0
        size = n if voxel <= 0 or recon <= 0 else int(min(max(round(recon / voxel), 1), n))
        sizes.append(size)
        fovs.append(size * voxel if voxel > 0 else recon)
    return (sizes[0], sizes[1], sizes[2]), (fovs[0], fovs[1], fovs[2])


def fov_crop(
    shape: tuple[int, ...], grid_fov_mm: tuple[float, float, float], target_fov_mm: tuple[float, float, float]
) -> tuple[tuple[slice, ...], tuple[float, float, float]]:
    """The central image region that covers ``target_fov_mm`` of an image grid covering
    ``grid_fov_mm``: slices for (ny, nx) or (nz, ny, nx) ``shape`` (``round(n * target / grid)``
    pixels around index ``n // 2`` along an axis where the target is smaller, the whole axis
    elsewhere) and the region's FOV (x, y, z)."""
    spatial = tuple(shape)[::-1]  # (nx, ny[, nz])
    region, fov = [], [float(v) for v in grid_fov_mm]
    for axis, n in enumerate(spatial):
        grid, target = float(grid_fov_mm[axis]), float(target_fov_mm[axis])
        kept = n
        if target > 0 and grid > 0 and target < grid * (1 - 1e-6):
            kept = max(1, min(n, int(round(n * target / grid))))
            fov[axis] = grid * kept / n
        region.append(slice(n // 2 - kept // 2, n // 2 - kept // 2 + kept))
    return tuple(region[::-1]), (fov[0], fov[1], fov[2])


def crop_to_fov(
    kspace: np.ndarray, grid_fov_mm: tuple[float, float, float], target_fov_mm: tuple[float, float, float]
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Remove oversampling: keep the central part of the image that covers ``target_fov_mm``.

    The gridded k-space covers ``grid_fov_mm`` (encoded FOV x grid oversampling); when the
    header's reconSpace FOV is smaller along an axis (e.g. 2x readout oversampling), the image
    is cropped there (``round(n * target / grid)`` pixels around index ``n // 2``) and
    transformed back, so that the Cartesian gadgets' E0 x E1 (x E2) image is the recon FOV.
    Axes where the target is not smaller are left alone. Pixel values are unchanged
    (orthonormal transforms both ways).

    Args:
        kspace: shape (coils, ny, nx) or (coils, nz, ny, nx), k = 0 at index n // 2.
        grid_fov_mm: FOV (x, y, z) the grid covers.
        target_fov_mm: wanted FOV (x, y, z), e.g. the reconSpace FOV.

    Returns:
        k-space of the same rank, complex64, k = 0 at index n' // 2, and its FOV (x, y, z).
    """
    kspace = np.asarray(kspace)
    region, fov = fov_crop(kspace.shape[1:], grid_fov_mm, target_fov_mm)
    if all(r.stop - r.start == n for r, n in zip(region, kspace.shape[1:])):
        return kspace.astype(np.complex64, copy=False), fov
    axes = tuple(range(1, kspace.ndim))
    images = centred_fftn(kspace, axes, inverse=True)
    result = centred_fftn(images[(slice(None),) + region], axes)
    return result.astype(np.complex64), fov
