"""What the runner may use of a variant's datamodule, declared in one place.

The planning package drives a variant only through the engine contract plus the members
declared here, along one path: a training is ``preprocess()`` → ``Trainer.fit_datamodule``
(``train_dataloader`` / ``val_dataloader``); a plan is the model run over ``test_dataloader()``
(``igrog_gadget.core.plan.make_plan``); gridding a frame is ``preprocess()`` →
``postprocess(KernelChunks)`` → ``data`` (``GriddingPlan.apply``). A variant's model factory
reads only these members too (``num_coils``, ``whitening``, ``model_options``).
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader

from igrog_engine import DataModule
from igrog_gadget.core.frame import FrameInputs, FrameTrajectory, GriddedKSpace
from igrog_gadget.core.plan import KernelChunks
from igrog_gadget.config import IgrogConfig
from igrog_gadget.errors import ConfigError
from igrog_gadget.numerics.calibration import CalibrationBlock
from igrog_gadget.numerics.geometry import SampleGeometry


Prepared = TypeVar("Prepared")


def prepared(value: Prepared | None, what: str) -> Prepared:
    """``value``, made by ``preprocess()`` (or a variant's configuration section); a clear
    error when it is missing (a caller that skipped ``preprocess()``, a variant without it)."""
    if value is None:
        raise RuntimeError(f"{what} is missing: preprocess() has not made it")
    return value


class GriddingDataModule(DataModule):
    """Base of the variants' datamodules: one frame in, ``GriddedKSpace`` out (``data``).

    Constructed as ``cls(frame, config, with_training, geometry)``: ``with_training`` builds the
    training pairs in ``preprocess()`` (a training job); without it the datamodule only grids
    (``test_dataloader`` + ``postprocess``). ``geometry``, when given, is the frame's sample
    geometry already built (by the runner or the kernel cache) and is not rebuilt.
    """

    frame: FrameInputs
    """The frame (in the coils the model works in)."""
    geometry: SampleGeometry | None
    """Targets, sources and offsets of the frame's samples (after ``preprocess()``)."""
    whitening: torch.Tensor | None = None
    """(coils*sources, coils*sources) complex64 source whitening the model is built with
    (after a training ``preprocess()``)."""
    data: GriddedKSpace | None = None
    """After ``postprocess``: the gridded frame."""
    volumetric: bool = False
    """Whether the variant grids 3D frames (trajectory (kx, ky, kz) onto an (nx, ny, nz) grid)."""

    def __init__(
        self, frame: FrameInputs, config: IgrogConfig, with_training: bool = True, geometry: SampleGeometry | None = None
    ) -> None:
        if frame.dims != 2 and not self.volumetric:
            raise ConfigError(
                f"variant {config.variant!r} grids 2D frames only; this frame is 3D (a {frame.dims}-column trajectory on "
                f"the grid {tuple(frame.matrix)}): use variant = basic"
            )
        self.frame = frame
        self.config = config
        self.with_training = with_training
        self.geometry = geometry

    @property
    def num_coils(self) -> int:
        """Coils of the frame (the kernels map coils*sources to coils)."""
        return self.frame.num_coils

    @property
    def num_sources(self) -> int:
        """Sources per kernel (after ``preprocess()``): the geometry's, i.e. gridding.num_sources
        readout samples plus, in 3D, gridding.neighbour_sources samples of other readouts."""
        return int(self.prepared_geometry.source_index.shape[1])

    @property
    def prepared_geometry(self) -> SampleGeometry:
        """The frame's sample geometry (after ``preprocess()``, or given when constructed)."""
        return prepared(self.geometry, "the frame's sample geometry")

    @property
    def offset_dims(self) -> int:
        """Coordinates of each source offset: 2 for a 2D frame, 3 for a 3D one (the model's input)."""
        return self.frame.dims

    def test_dataloader(self, rows: np.ndarray | None = None) -> DataLoader:
        """Batches of the model's inputs for the frame's samples (offsets, ...), of the samples
        ``rows`` only when given (a plan that skips samples: ``igrog_gadget.core.plan``)."""
        raise NotImplementedError

    def postprocess(self, outputs: KernelChunks) -> "GriddingDataModule":
        """Grid the frame with its plan's kernels (``KernelChunks``: the model's outputs over
        ``test_dataloader()``); the result is ``data``."""
        raise NotImplementedError

    def gridded(self) -> GriddedKSpace:
        """The gridded frame (after ``postprocess``)."""
        return prepared(self.data, "the gridded frame")

    @property
    def partial_frame_ok(self) -> bool:
        """Whether a partial frame (calibration lines + first readouts) calibrated completely,
        so that a model trained from it serves the whole frame (after a training ``preprocess()``).
        Default: False (the whole frame is trained again)."""
        return False

    @property
    def calibration_source(self) -> str:
        """Where the training pairs came from, in words (after a training ``preprocess()``)."""
        return ""

    @property
    def noise_std(self) -> float:
        """Complex noise std of one sample, data units, as the calibration estimated it (0: unknown;
        after a training ``preprocess()``)."""
        return 0.0

    def calibration_block(self) -> CalibrationBlock | None:
        """The Cartesian k-space block the kernels are calibrated from (after a training
        ``preprocess()``; None: the variant has none, and no closed-form fit)."""
        return None

    def centre_block(self) -> CalibrationBlock | None:
        """A block of this frame's own k-space whose values replace the gridded ones inside it
        (``calibration.fill_centre``), None when there is none."""
        return None

    def frame_kspace_block(self) -> CalibrationBlock | None:
        """The Cartesian calibration block of this frame's own data (its calibration lines, its
        densely sampled centre), None when the variant has none."""
        return None

    def model_options(self) -> dict[str, Any]:
        """Variant-specific inputs of the model factory (e.g. fieldcorr's time scale)."""
        return {}

    def refit_batch(self, count: int) -> dict[str, torch.Tensor] | None:
        """The first ``count`` training pairs as one batch, for the head refit (None: no refit)."""
        return None

    @classmethod
    def kernel_fingerprint(cls, trajectory: FrameTrajectory, num_coils: int, config: IgrogConfig) -> str:
        """Identifies what the kernels of a frame depend on: frames with equal fingerprints
        (and the same model, of ``num_coils`` coils) share a plan. Default: the trajectory, grid
        and coils."""
        return trajectory.fingerprint(num_coils)

    @classmethod
    def trains_before_frame_ends(cls, frame: FrameInputs, config: IgrogConfig) -> bool:
        """Whether a model can be trained from ``frame`` when it holds only the calibration data
        and the first readouts of a frame (so training can start while the rest streams in).
        False (the default) means the calibration needs the whole frame."""
        return False
