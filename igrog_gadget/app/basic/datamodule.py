"""Datamodule of the basic variant: k-space calibration (ACS lines or self-calibration).

References:
    Abraham, Nishimura, Cao, Liao, Setsompop, "Implicit Representation of GRAPPA Kernels
    for Fast MRI Reconstruction", arXiv:2310.10823.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from igrog_engine import resolve_device
from igrog_gadget.core.batches import TensorDictDataset, batch_loader
from igrog_gadget.core.calibrate import calibration_block
from igrog_gadget.core.datamodule import GriddingDataModule, prepared
from igrog_gadget.core.frame import FrameInputs, GriddedKSpace, sample_geometry
from igrog_gadget.core.kernels import grid_with_kernels, mean_time_on_grid
from igrog_gadget.core.plan import KernelChunks
from igrog_gadget.core.pairs import TrainingPairs, source_whitening, synthesize_pairs
from igrog_gadget.config import IgrogConfig
from igrog_gadget.numerics.calibration import CalibrationBlock, OffGridInterpolator
from igrog_gadget.numerics.geometry import SampleGeometry

logger = logging.getLogger(__name__)


class BasicDataModule(GriddingDataModule):
    """Training pairs from a k-space calibration block; test set = every imaging sample.

    After ``preprocess()``: ``geometry`` (targets/sources of all samples) and, when
    ``with_training`` is true, ``pairs`` (synthesised training data) and ``whitening``
    (the source whitening matrix the model is built with). ``postprocess(kernels)``
    grids the frame with a plan's ``KernelChunks``; ``data`` is then a ``GriddedKSpace``. 2D
    and 3D frames alike (``volumetric``).
    """

    volumetric = True

    def __init__(
        self, frame: FrameInputs, config: IgrogConfig, with_training: bool = True, geometry: SampleGeometry | None = None
    ) -> None:
        super().__init__(frame, config, with_training, geometry)
        self.block: CalibrationBlock | None = None
        self._centre: CalibrationBlock | None = None
        self.pairs: TrainingPairs | None = None
        self.val_pairs: TrainingPairs | None = None
        self.whitening: torch.Tensor | None = None
        self.device = resolve_device(config.gridding.device)
        self.data: GriddedKSpace | None = None

    # --- engine contract -------------------------------------------------------
    def preprocess(self) -> "BasicDataModule":
        cfg = self.config
        if self.geometry is None:
            self.geometry = sample_geometry(self.frame, cfg.gridding)
            if self.geometry.num_dropped:
                logger.info("%d samples lie outside the grid and are not gridded", self.geometry.num_dropped)
        if self.with_training:
            self.block = self.make_calibration_block()
            if cfg.kernel_fit() == "closed_form":  # nothing to train: the pairs only estimate the error
                self.val_pairs = self.make_held_out_pairs(self.block, held_out_pair_count(cfg))
                self.whitening = torch.eye(self.val_pairs.sources.shape[1], dtype=torch.complex64)
                return self
            pairs = self.make_training_pairs(self.block)
            self.pairs, self.val_pairs = split_pairs(pairs, cfg.training.validation_fraction)
            size = self.pairs.sources.shape[1]
            self.whitening = (
                source_whitening(self.pairs.sources, cfg.training.whitening_regularization)
                if cfg.training.whiten_sources
                else torch.eye(size, dtype=torch.complex64)
            )
        return self

    def train_dataloader(self) -> DataLoader:
        return batch_loader(self.pair_dataset(prepared(self.pairs, 'training pairs')), self.config.training.batch_size, True, self.config.training.seed)

    def val_dataloader(self) -> DataLoader | None:
        if self.val_pairs is None or self.val_pairs.offsets.shape[0] == 0:
            return None
        return batch_loader(self.pair_dataset(self.val_pairs), self.config.training.batch_size, False)

    def test_dataloader(self, rows: np.ndarray | None = None) -> DataLoader:
        """Offsets (n, sources, dims) and ``hits`` (n,): samples landing on each one's grid point;
        of the samples ``rows`` only when given."""
        geometry = self.prepared_geometry
        hits = np.bincount(geometry.grid_index)[geometry.grid_index].astype(np.float32)
        offsets = geometry.offsets
        if rows is not None:
            offsets, hits = offsets[rows], hits[rows]
        dataset = TensorDictDataset(offsets=torch.from_numpy(np.ascontiguousarray(offsets)), hits=torch.from_numpy(hits))
        return batch_loader(dataset, self.config.gridding.inference_batch_size, False)

    def postprocess(self, outputs: KernelChunks) -> "BasicDataModule":
        """Grid the frame with its plan's kernels (the model's outputs over ``test_dataloader()``,
        kept or streamed: ``igrog_gadget.core.plan``), consumed one chunk at a time."""
        self.grid(outputs)
        return self

    # --- declared for the runner (see GriddingDataModule) -----------------------
    @property
    def calibration_source(self) -> str:
        return self.block.source if self.block is not None else ""

    @property
    def noise_std(self) -> float:
        """Complex noise std of one sample, data units, as the calibration estimated it (0: unknown)."""
        return float(self.block.noise_std or 0.0) if self.block is not None else 0.0

    def calibration_block(self) -> CalibrationBlock | None:
        return self.block

    def centre_block(self) -> CalibrationBlock | None:
        """The block of this frame's own data whose values replace the gridded ones inside it
        (``calibration.fill_centre``, applied by the runner in the output's coils; None when off
        or when the frame has none). Every frame's centre comes from its own samples, also where
        its kernels are reused."""
        if not self.config.calibration.fill_centre:
            return None
        if self._centre is None:
            self._centre = self.frame_kspace_block()
        return self._centre

    def frame_kspace_block(self) -> CalibrationBlock | None:
        """A k-space calibration block fitted to this frame's data (ACS lines, samples of the
        k-space centre): the training's, or one made now."""
        return self.block if self.block is not None else self.make_calibration_block()

    @property
    def partial_frame_ok(self) -> bool:
        """Whether a partial frame (calibration lines + first readouts) calibrated completely:
        the block came from the calibration lines (acs, joint), not from the readouts alone."""
        return self.block is not None and self.block.source != "self-calibration"

    @classmethod
    def trains_before_frame_ends(cls, frame: FrameInputs, config: IgrogConfig) -> bool:
        """With calibration lines (and a calibration source that uses them), in 2D. A 3D frame
        trains from the whole frame: its joint block needs the densely sampled centre of all
        readouts, and its first readouts give few of its offsets."""
        return bool(frame.calibration_lines) and config.calibration.source != "self" and frame.dims == 2

    def refit_batch(self, count: int) -> dict[str, torch.Tensor] | None:
        """The first ``count`` training pairs (they are in random order), as ``pair_dataset``'s."""
        return {name: tensor[:count] for name, tensor in self.pair_dataset(prepared(self.pairs, 'training pairs')).tensors.items()}

    # --- variant hooks (overridden by other variants) --------------------------
    def make_calibration_block(self) -> CalibrationBlock:
        """The k-space block the training pairs come from."""
        return calibration_block(self.frame, self.config.calibration, self.config.gridding.grid_oversampling)

    def off_grid_values(self, block: CalibrationBlock) -> Callable[[np.ndarray], np.ndarray]:
        """The calibration's values at off-grid positions (m, dims) → (coils, m): ``block``'s sinc interpolation."""
        return OffGridInterpolator(block, padding=self.config.calibration.interpolation_padding)

    def make_held_out_pairs(self, block: CalibrationBlock, count: int) -> TrainingPairs:
        """``count`` noise-free pairs, each weighted by its energy (not normalised): the closed-form
        fit's held-out set, whose error is the kernels' own misfit (the data's noise is estimated
        apart, per frame: ``igrog_gadget.core.error_estimate``)."""
        cal = self.config.calibration
        rng = np.random.default_rng(self.config.training.seed)
        return synthesize_pairs(
            block, self.off_grid_values(block), self.prepared_geometry.offsets, count, cal.edge_margin, cal.offset_jitter, rng,
            normalize=False,
        )

    def make_training_pairs(self, block: CalibrationBlock, noise_std: float | None = None) -> TrainingPairs:
        """Pairs at the trajectory's own offsets, interpolated from ``block``, their sources
        augmented with ``calibration.noise_augmentation`` x ``noise_std`` (default: the block's)."""
        cal = self.config.calibration
        noise = (block.noise_std or 0.0) if noise_std is None else noise_std
        rng = np.random.default_rng(self.config.training.seed)
        return synthesize_pairs(
            block,
            self.off_grid_values(block),
            self.prepared_geometry.offsets,
            cal.num_training_pairs,
            cal.edge_margin,
            cal.offset_jitter,
            rng,
            normalize=cal.normalize_pairs,
            source_noise_std=cal.noise_augmentation * noise,
        )

    def pair_dataset(self, pairs: TrainingPairs) -> TensorDictDataset:
        """Offsets (pairs, sources, dims), ``whitened_sources`` ``W s`` (pairs, coils*sources) with
        ``W`` = ``whitening`` (made once here, so that no training step multiplies by ``W``) and
        targets (pairs, coils)."""
        return TensorDictDataset(
            offsets=torch.from_numpy(pairs.offsets),
            whitened_sources=torch.from_numpy(pairs.sources) @ prepared(self.whitening, 'the source whitening').T,
            targets=torch.from_numpy(pairs.targets),
        )

    # --- gridding ---------------------------------------------------------------
    def apply_kernels(self, kernels: KernelChunks) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(kspace (coils, [nz,] ny, nx), hits ([nz,] ny, nx), noise_gain ([nz,] ny, nx))`` tensors
        on the gridding device: the frame gridded with ``kernels`` (``grid_with_kernels``)."""
        return grid_with_kernels(self.frame.flat_samples(), self.prepared_geometry, kernels.with_noise_gains(), self.device, kernels.rows)

    def grid(self, kernels: KernelChunks) -> GriddedKSpace:
        """Apply ``kernels`` to the frame and average on the grid."""
        kspace, hits, noise_gain = self.apply_kernels(kernels)
        mean_time = None
        if self.frame.sample_times_us is not None:
            mean_time = mean_time_on_grid(self.frame.sample_times_us.reshape(-1), self.prepared_geometry)
        self.data = GriddedKSpace(
            kspace=kspace.cpu().numpy(), hits=hits.cpu().numpy(), mean_time_us=mean_time, noise_gain=noise_gain.cpu().numpy()
        )
        return self.data


#: Held-out pairs of the closed-form fit: each costs a solve; their mean error's relative spread
#: is about 1 / sqrt(count) (3 %).
CLOSED_FORM_HELD_OUT_PAIRS = 1000


def held_out_pair_count(config: IgrogConfig) -> int:
    """Pairs held out to estimate the closed-form kernels' misfit: ``validation_fraction`` of
    ``num_training_pairs``, at most ``CLOSED_FORM_HELD_OUT_PAIRS``."""
    share = int(round(config.calibration.num_training_pairs * config.training.validation_fraction))
    return max(1, min(share, CLOSED_FORM_HELD_OUT_PAIRS))


def split_pairs(pairs: TrainingPairs, fraction: float) -> tuple[TrainingPairs, TrainingPairs | None]:
    """Hold out the last ``fraction`` of the (already random) pairs for validation."""
    count = int(round(pairs.offsets.shape[0] * fraction))
    if count == 0:
        return pairs, None

    def part(sl: slice) -> TrainingPairs:
        extra = None if pairs.extra is None else {k: v[sl] for k, v in pairs.extra.items()}
        return TrainingPairs(pairs.offsets[sl], pairs.sources[sl], pairs.targets[sl], pairs.scale, extra)

    return part(slice(0, -count)), part(slice(-count, None))
