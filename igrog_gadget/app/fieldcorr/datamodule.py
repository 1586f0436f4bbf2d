"""Datamodule of the fieldcorr variant: gridding to the field-free value at each grid point.

Calibration: coil images, exactly as ``image_based`` (image series, configured file, or made
from the data). Two modes (``fieldcorr.mode``):

- ``hybrid`` (default): field-free kernels trained as in ``image_based``; after gridding, the
  field is removed on the Cartesian side (``correction.correct_field``): time-segmented
  conjugate phase with ``time_segments`` segments and optionally ``cg_iterations`` of CG,
  using the times of the samples that landed on each grid point (each sample's time is the
  mean time of its kernel's sources).
- ``kernel`` (as in the iGROG paper): the kernel also takes the sample time (mean source
  time, seconds); training sources are the coil images with the phase the B0 map predicts at
  each source's own time, ``exp(-2 pi i f(r) t_s)`` (time-segmented to a phase error below
  ``kernel_phase_tolerance``, i.e. exact for practical purposes), targets the field-free values.

2D and 3D frames alike: a 3D frame (a kooshball, a stack of spirals gridded in 3D, cones) takes
3D coil images and a 3D B0 map (nz, ny, nx); its pairs and the Cartesian-side correction use 3D
NUFFTs and FFTs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging

import numpy as np
import torch
from torch.utils.data import DataLoader

from igrog_gadget.core.batches import TensorDictDataset, batch_loader
from igrog_gadget.core.datamodule import prepared
from igrog_gadget.core.frame import FrameInputs, FrameTrajectory, GriddedKSpace
from igrog_gadget.core.kernels import average_on_grid, mean_time_on_grid
from igrog_gadget.core.pairs import TrainingPairs, target_range
from igrog_gadget.core.plan import KernelChunks
from igrog_gadget.core.report import FieldCorrectionReport
from igrog_gadget.app.fieldcorr.correction import correct_field
from igrog_gadget.app.fieldcorr.fieldmap import B0MAP_SERIES, field_map, sample_times_s
from igrog_gadget.app.image_based.pairs import hits_at, image_kspace, image_pairs, sample_targets
from igrog_gadget.numerics.segmentation import frequency_histogram, segments_for_tolerance, time_segmentation
from igrog_gadget.app.image_based.datamodule import ImageBasedDataModule
from igrog_gadget.config import FieldCorrectionConfig, IgrogConfig
from igrog_gadget.errors import CalibrationError
from igrog_gadget.numerics.calibration import CalibrationBlock
from igrog_gadget.numerics.geometry import SampleGeometry
from igrog_gadget.numerics.fft import centred_fftn
from igrog_gadget.numerics.nufft import nufft_forward

logger = logging.getLogger(__name__)

#: Bytes of the field-modulated coil images the kernel mode's pairs transform at once, and of
#: their values at the pairs' positions (a 3D frame's segments are modulated a few at a time and
#: its positions transformed in spans; a 2D frame's all at once).
MODULATED_BYTES = 256 << 20


def effective_times(times_s: np.ndarray, geometry: SampleGeometry) -> np.ndarray:
    """Time of each kept sample as its kernel sees it: the mean time of its sources.

    Args:
        times_s: shape (readouts, samples), seconds.
    Returns:
        shape (n,), float64, one per kept sample of ``geometry``.
    """
    return times_s.reshape(-1)[geometry.source_index].mean(axis=1)


class FieldCorrDataModule(ImageBasedDataModule):
    """``ImageBasedDataModule`` plus the B0 map and sample times of the frame.

    After ``preprocess()``: ``field_hz`` (ny, nx) (3D: (nz, ny, nx)) and ``times_s`` (readouts, samples) of the
    frame; in ``kernel`` mode the pairs carry ``extra["times"]`` (pairs,) seconds and the test
    batches ``times`` (n,). ``time_scale_s`` (largest sample time) normalises the model input.
    """

    def __init__(
        self, frame: FrameInputs, config: IgrogConfig, with_training: bool = True, geometry: SampleGeometry | None = None
    ) -> None:
        super().__init__(frame, config, with_training, geometry)
        self.field_hz: np.ndarray | None = None
        self.field_source = ""
        self.times_s: np.ndarray | None = None
        self.time_scale_s = 1.0

    @property
    def field_config(self) -> FieldCorrectionConfig:
        """The configuration's ``[fieldcorr]`` section (the variant always has one)."""
        return prepared(self.config.fieldcorr, "the [fieldcorr] section")

    @property
    def prepared_field(self) -> np.ndarray:
        """The B0 map, Hz, ([nz,] ny, nx) (after ``load_field_inputs()``)."""
        return prepared(self.field_hz, "the B0 map")

    @property
    def prepared_times(self) -> np.ndarray:
        """Sample times, seconds, (readouts, samples) (after ``load_field_inputs()``)."""
        return prepared(self.times_s, "the sample times")

    @property
    def mode(self) -> str:
        return self.field_config.mode

    def load_field_inputs(self) -> None:
        """Read and check the frame's B0 map and sample times (InputDataError when unusable)."""
        self.field_hz, self.field_source = field_map(self.frame, self.field_config)
        self.times_s = sample_times_s(self.frame)
        self.time_scale_s = max(float(self.prepared_times.max()), 1e-6)

    @classmethod
    def trains_before_frame_ends(cls, frame: FrameInputs, config: IgrogConfig) -> bool:
        """As ``image_based``, and the B0 map in the input or a file."""
        has_map = B0MAP_SERIES in frame.images or bool(prepared(config.fieldcorr, "the [fieldcorr] section").b0map_file)
        return has_map and super().trains_before_frame_ends(frame, config)

    def model_options(self) -> dict:
        """``time_scale_s``: the largest sample time (normalises the kernel mode's time input)."""
        return {"time_scale_s": self.time_scale_s}

    @classmethod
    def kernel_fingerprint(cls, trajectory: FrameTrajectory, num_coils: int, config: IgrogConfig) -> str:
        """Kernel mode: the sample times too (the kernels depend on them)."""
        fingerprint = super().kernel_fingerprint(trajectory, num_coils, config)
        if prepared(config.fieldcorr, "the [fieldcorr] section").mode != "kernel":
            return fingerprint
        times = trajectory.sample_times_us
        digest = hashlib.sha1(fingerprint.encode())
        digest.update(b"none" if times is None else np.ascontiguousarray(times, dtype=np.float32).tobytes())
        return digest.hexdigest()

    def frame_kspace_block(self) -> CalibrationBlock | None:
        """None: a fit of the frame's samples holds their off-resonance, not the field-free values."""
        return None

    # --- engine contract -------------------------------------------------------
    def preprocess(self) -> "FieldCorrDataModule":
        self.load_field_inputs()  # fail on a bad map or missing times before training
        super().preprocess()
        logger.info(
            "B0 map from %s: %.1f .. %.1f Hz; readouts up to %.2f ms; mode %s",
            self.field_source, float(self.prepared_field.min()), float(self.prepared_field.max()), 1e3 * self.time_scale_s, self.mode,
        )
        return self

    def test_dataloader(self, rows: np.ndarray | None = None) -> DataLoader:
        if self.mode != "kernel":
            return super().test_dataloader(rows)
        times = effective_times(self.prepared_times, self.prepared_geometry).astype(np.float32)
        offsets = self.prepared_geometry.offsets
        if rows is not None:
            offsets, times = offsets[rows], times[rows]
        dataset = TensorDictDataset(offsets=torch.from_numpy(np.ascontiguousarray(offsets)), times=torch.from_numpy(times))
        return batch_loader(dataset, self.config.gridding.inference_batch_size, False)

    def pair_dataset(self, pairs: TrainingPairs) -> TensorDictDataset:
        dataset = super().pair_dataset(pairs)
        if self.mode == "kernel":
            dataset = TensorDictDataset(**dataset.tensors, times=torch.from_numpy(prepared(pairs.extra, "the pairs' times")["times"]))
        return dataset

    # --- training pairs ----------------------------------------------------------
    def make_training_pairs(self, block: CalibrationBlock, noise_std: float | None = None) -> TrainingPairs:
        """hybrid: field-free pairs (as image_based); kernel: B0-aware sources, field-free targets."""
        if self.mode != "kernel":
            return super().make_training_pairs(block, noise_std)
        return self._time_pairs(block)

    def _time_pairs(self, block: CalibrationBlock) -> TrainingPairs:
        """Kernel-mode pairs: sources with the field's phase at their own times, field-free targets.

        Targets anywhere in the images' k-space (less the margin): a kernel that undoes the field
        must see the whole spectrum. ``trajectory`` positions (see ``pair_positions``): the
        sampled grid points of random imaging samples with their own offsets and times, sources
        plus noise ``trajectory_noise`` x the data's noise / sqrt(hits); ``random``: random
        targets, offsets and times of random samples, sources plus ``noise_augmentation`` x noise.
        """
        cal, ic = self.config.calibration, self.image_config
        rng = np.random.default_rng(self.config.training.seed)
        geometry = self.prepared_geometry
        if geometry.num_samples == 0:
            raise CalibrationError("no imaging samples inside the grid: nothing to train kernels for")
        kspace = image_kspace(self.prepared_images.images)
        count = cal.num_training_pairs
        reach = float(np.max(np.abs(geometry.offsets))) + 4 * cal.offset_jitter
        noise = self.prepared_images.noise_std or 0.0
        image_matrix = tuple(reversed(kspace.shape[1:]))  # (mx, my[, mz])
        if self.pair_positions() == "trajectory":
            limits = [m / 2 - cal.edge_margin - reach for m in image_matrix]
            pick, targets_k = sample_targets(geometry, count, limits, rng, "that the calibration images cover")
            noise_std = ic.trajectory_noise * noise / np.sqrt(np.maximum(hits_at(geometry, pick), 1))
        else:
            pick = rng.integers(0, geometry.num_samples, count)
            corner = [-(m // 2) for m in image_matrix] + [0]
            full = CalibrationBlock(kspace=kspace, kx0=corner[0], ky0=corner[1], kz0=corner[2], source=block.source)
            low, high = target_range(full, cal.edge_margin + reach)
            targets_k = rng.integers(low, high + 1, size=(count, len(image_matrix)))
            noise_std = np.full(count, cal.noise_augmentation * noise)
        source_times = self.prepared_times.reshape(-1)[geometry.source_index[pick]]  # (P, S)
        times = {"times": source_times.mean(axis=1).astype(np.float32)}
        return image_pairs(
            kspace,
            geometry.offsets[pick],
            targets_k,
            lambda positions: self._b0_aware_values(positions, source_times.reshape(-1)),  # (coils, P*S)
            cal.offset_jitter,
            noise_std / np.sqrt(2.0) if noise > 0 else None,
            rng,
            cal.normalize_pairs,
            extra=times,
        )

    def _b0_aware_values(self, positions: np.ndarray, times_s: np.ndarray) -> np.ndarray:
        """k-space of the coil images with the field's phase at each time: (coils, m).

        ``sum_l b_l(t) NUFFT[x * exp(-2 pi i f tau_l)](k)``, segments chosen so that the
        phase error stays below ``fieldcorr.kernel_phase_tolerance``. Images smaller than the
        recon grid are zero-padded (in k-space) to it, where the field map lives.
        """
        images = self.prepared_images.images
        grid = tuple(reversed(self.frame.matrix))  # ([nz,] ny, nx): the field map's
        axes = tuple(range(-len(grid), 0))
        if images.shape[1:] != grid:
            padded = np.zeros((images.shape[0], *grid), dtype=np.complex64)
            region = tuple(slice(n // 2 - m // 2, n // 2 - m // 2 + m) for n, m in zip(grid, images.shape[1:]))
            padded[(slice(None),) + region] = image_kspace(images)
            images = centred_fftn(padded, axes, inverse=True)  # same k-space values on the finer grid (orthonormal FFTs)
        frequencies, weights = frequency_histogram(self.prepared_field)
        segmentation = segments_for_tolerance(times_s, frequencies, weights, self.field_config.kernel_phase_tolerance)
        coefficients = segmentation.coefficients.astype(np.complex64)  # (L, m)
        field = self.prepared_field[None].astype(np.float64)
        coils, total = images.shape[0], positions.shape[0]
        step = max(1, MODULATED_BYTES // (16 * images.size))  # segments modulated at once (a 2D frame's: all)
        out = np.zeros((coils, total), dtype=np.complex64)
        for start in range(0, segmentation.num_segments, step):
            tau = segmentation.tau_s[start : start + step]
            phases = np.exp(-2j * np.pi * field * tau.reshape(-1, *[1] * len(grid)))
            modulated = (phases[:, None] * images[None]).reshape(-1, *grid)  # (segments * coils, [nz,] ny, nx)
            span = max(1, MODULATED_BYTES // (8 * tau.shape[0] * coils))  # positions whose values are held at once
            for first in range(0, total, span):
                part = slice(first, first + span)
                values = nufft_forward(modulated, positions[part]).reshape(tau.shape[0], coils, -1)
                out[:, part] += np.einsum("lm,lcm->cm", coefficients[start : start + step, part], values)
        logger.info("B0-aware pairs: %d time segments (phase error %.1g)", segmentation.num_segments, segmentation.max_error)
        return out

    # --- gridding ---------------------------------------------------------------
    def grid(self, kernels: KernelChunks) -> GriddedKSpace:
        """Grid with ``kernels``; in hybrid mode remove the field on the Cartesian side."""
        self.load_field_inputs()  # the frame may be new (cached kernels)
        kspace, hits, noise_gain = self.apply_kernels(kernels)
        times = effective_times(self.prepared_times, self.prepared_geometry)
        mean_time = mean_time_on_grid(self.prepared_times.reshape(-1) * 1e6, self.prepared_geometry)
        field = FieldCorrectionReport(b0map=self.field_source, mode=self.mode)
        if self.mode == "hybrid":
            segmentation, weights = self.segment_weights(times)
            kspace = correct_field(
                kspace, hits, self.prepared_field, segmentation.tau_s, weights, self.field_config.cg_iterations, self.device
            )
            field = dataclasses.replace(field, time_segments=segmentation.num_segments, segmentation_error=segmentation.max_error)
        self.data = GriddedKSpace(
            kspace=kspace.cpu().numpy(), hits=hits.cpu().numpy(), mean_time_us=mean_time, field_correction=field,
            noise_gain=noise_gain.cpu().numpy(),
        )
        return self.data

    def segment_weights(self, times: np.ndarray):
        """Time segmentation of the frame and its mean coefficients per grid point.

        Args:
            times: shape (n,), seconds, per kept sample.
        Returns:
            ``(TimeSegmentation, weights (L, [nz,] ny, nx) complex tensor on the gridding device)``.
        """
        frequencies, freq_weights = frequency_histogram(self.prepared_field)
        segmentation = time_segmentation(times, frequencies, freq_weights, self.field_config.time_segments)
        if segmentation.max_error > 0.01:
            logger.warning(
                "fieldcorr: %d time segments model the field phase only to %.1g (field range %.0f Hz over %.1f ms); "
                "raise fieldcorr.time_segments",
                segmentation.num_segments, segmentation.max_error, float(np.ptp(self.prepared_field)), 1e3 * float(np.ptp(times)),
            )
        coefficients = torch.from_numpy(segmentation.coefficients.T.copy()).to(self.device)  # (n, L)
        index = torch.from_numpy(self.prepared_geometry.grid_index).to(self.device)
        weights, _ = average_on_grid(coefficients, index, self.prepared_geometry.matrix)  # (L, [nz,] ny, nx)
        return segmentation, weights
