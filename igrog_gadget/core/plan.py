"""The gridding plan of one trajectory with one model: where each sample goes and its kernel.

A ``GriddingPlan`` is made once per model version and trajectory (``make_plan``: the model run
over the datamodule's ``test_dataloader()``) and applied to every frame of that trajectory
(``GriddingPlan.apply``: the datamodule's ``postprocess`` with the plan's kernels). Its kernels
are either kept (``KernelChunks.kept``: a later frame reuses them; what a plan cache holds) or
streamed (made chunk by chunk while the one frame is gridded, so memory holds one chunk: a
trajectory whose kernels are larger than the cache allows).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from igrog_engine import Inferencer
from igrog_gadget.core.kernels import kernel_noise_gains
from igrog_gadget.numerics.geometry import SampleGeometry

if TYPE_CHECKING:  # the datamodule module imports this one's types
    from igrog_gadget.core.datamodule import GriddingDataModule
    from igrog_gadget.core.frame import GriddedKSpace


class KernelChunks:
    """A frame's kernels in consecutive chunks, each of shape (m, coils * sources, coils),
    complex64 (the transposed layout: a (1 x coils*sources) @ (coils*sources x coils) product
    per sample is several times faster on the CPU than the other way round).

    The one input of a gridding datamodule's ``postprocess``. Kept chunks can be iterated any
    number of times; streamed ones once (``StreamedKernelsUsed`` otherwise).
    """

    def __init__(self, chunks: Iterable[torch.Tensor], kept: bool, rows: np.ndarray | None = None) -> None:
        self._chunks = chunks
        self.kept = kept
        self.rows = rows
        """Shape (m,), int64, increasing: the samples (geometry rows) the kernels are for, in
        order; None: every sample of the geometry. The other samples add nothing to the grid
        (their grid points are filled otherwise: ``GriddingPlan``)."""
        self._used = False
        self._gains: tuple[torch.Tensor, ...] | None = None  # kept chunks' noise gains, once computed

    @classmethod
    def from_model_outputs(cls, outputs: Iterable[torch.Tensor], rows: np.ndarray | None = None) -> "KernelChunks":
        """Streamed chunks from the model's outputs (n, coils, coils * sources), transposed as they come."""
        return cls((chunk.transpose(1, 2).contiguous() for chunk in outputs), kept=False, rows=rows)

    def keep(self) -> "KernelChunks":
        """Kept chunks: every chunk made now (streamed chunks are used up)."""
        return self if self.kept else KernelChunks(tuple(self), kept=True, rows=self.rows)

    @property
    def chunks(self) -> tuple[torch.Tensor, ...]:
        """The kept chunks (a streamed set has none to give)."""
        if not self.kept:
            raise ValueError("streamed kernels are not held: keep() them first")
        return tuple(self._chunks)

    @property
    def nbytes(self) -> int:
        """Bytes of the kept chunks (0 for streamed ones: they are never all held)."""
        return sum(chunk.element_size() * chunk.numel() for chunk in self.chunks) if self.kept else 0

    def with_noise_gains(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The chunks with their kernels' noise gains (m,) (``kernel_noise_gains``), for
        ``grid_with_kernels``: computed once for kept chunks (a later frame of the trajectory reuses
        them), as they come for streamed ones."""
        if not self.kept:
            return ((chunk, kernel_noise_gains(chunk)) for chunk in self)
        if self._gains is None:
            self._gains = tuple(kernel_noise_gains(chunk) for chunk in self._chunks)
        return zip(self._chunks, self._gains)

    def __iter__(self) -> Iterator[torch.Tensor]:
        if not self.kept:
            if self._used:
                raise StreamedKernelsUsed("streamed kernels were already applied once; keep() them to apply them again")
            self._used = True
        return iter(self._chunks)


class StreamedKernelsUsed(RuntimeError):
    """Streamed kernels applied a second time (a programming error)."""


@dataclass(frozen=True)
class GriddingPlan:
    """Sample geometry + kernels of one trajectory with one model version.

    Samples whose grid point the frame's own calibration block fills (``calibration.fill_centre``)
    need no kernel: a plan made with ``skip`` has kernels for the other samples only
    (``kernels.rows``); the skipped samples still count in each point's hits."""

    geometry: SampleGeometry
    """Targets, sources and offsets of the trajectory's samples."""
    kernels: KernelChunks
    """One kernel per sample of ``geometry`` (or of ``kernels.rows``), in order."""
    skipped: tuple[slice, ...] | None = None
    """The grid region ([z,] y, x slices) whose samples have no kernel (None: none skipped)."""

    @property
    def reusable(self) -> bool:
        """Whether the plan can grid more than one frame (its kernels are kept)."""
        return self.kernels.kept

    def apply(self, datamodule: "GriddingDataModule") -> "GriddedKSpace":
        """Grid the frame of ``datamodule`` (made with this plan's ``geometry`` and preprocessed)."""
        if datamodule.geometry is not self.geometry:
            raise ValueError("the datamodule was not made with this plan's geometry")
        datamodule.postprocess(self.kernels)
        return datamodule.gridded()


def make_plan(
    model: torch.nn.Module,
    datamodule: "GriddingDataModule",
    inferencer: Inferencer,
    keep: bool,
    skip: np.ndarray | None = None,
    skipped: tuple[slice, ...] | None = None,
) -> GriddingPlan:
    """The plan of ``datamodule``'s trajectory (preprocessed) with ``model``: its kernels kept
    (computed now) when ``keep``, else streamed while the frame is gridded. ``skip``: shape
    (samples,) bool, samples that need no kernel (None: none), those of the grid region ``skipped``."""
    rows = None if skip is None or not skip.any() else np.flatnonzero(~skip)
    outputs = inferencer.iterate(model, datamodule.test_dataloader(rows))
    kernels = KernelChunks.from_model_outputs(outputs, rows)
    return GriddingPlan(geometry=datamodule.prepared_geometry, kernels=kernels.keep() if keep else kernels, skipped=skipped)
