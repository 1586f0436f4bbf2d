"""Grids frames: a model per calibration key, a plan per trajectory, the plan applied to the samples.

``FrameGridder.grid(frame)`` is the whole path of one frame after it is assembled:

1. **model** — the training service's latest model of the frame's calibration key (waiting for
   its training; submitting one when the key has none). It is trained again, from the whole
   frame and warm-started, when it cannot serve the frame: trained from the first readouts of
   this frame but calibrated without the calibration lines, or before more calibration lines
   arrived; or the frame's offsets lie farther than ``training.offset_coverage_max`` from those
   the network was trained on (``igrog_gadget.core.coverage``); or another coil count.
2. **plan** — the ``GriddingPlan`` (sample geometry + kernels) of the frame's trajectory with
   that model version, from the ``PlanCache`` (bounded by ``gridding.cache_mb``) or made now.
3. **apply** — the plan applied to the frame's samples (in the model's virtual coils), then the
   output's coils, the centre from the frame's own calibration block (``calibration.fill_centre``)
   and the per-frame error estimate, all in the frame's ``FrameReport``.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time

import numpy as np

from igrog_engine import Inferencer, resolve_device
from igrog_gadget.app.registry import get_variant
from igrog_gadget.config import IgrogConfig
from igrog_gadget.core.centre import fill_from_block, filled_region, samples_in_region
from igrog_gadget.core.coverage import offset_distance_ratio
from igrog_gadget.core.datamodule import GriddingDataModule
from igrog_gadget.core.error_estimate import CENTRE_RADIUS, estimated_nrmse, radius_from_centre
from igrog_gadget.core.frame import FrameInputs, GriddedKSpace, check_frame_values, sample_geometry
from igrog_gadget.core.plan import GriddingPlan, make_plan
from igrog_gadget.core.report import CoilReport, FrameReport, GriddingPath
from igrog_gadget.core.virtual_coils import to_virtual_coils
from igrog_gadget.errors import ConfigError, GriddingCancelled
from igrog_gadget.numerics.calibration import CalibrationBlock
from igrog_gadget.numerics.coils import CoilTransform
from igrog_gadget.numerics.geometry import SampleGeometry
from igrog_gadget.planning.plan_cache import PlanCache, kernel_bytes
from igrog_gadget.planning.training import TrainedModel, TrainingService, frame_data_digest

import logging

logger = logging.getLogger(__name__)


class FrameGridder:
    """Grids ``FrameInputs`` with the configured variant (see the module docstring).

    ``background_training``: trainings run while the caller goes on (streaming); otherwise
    ``training.submit`` returns when the training is done (replay). The results are the same.
    """

    def __init__(self, config: IgrogConfig, background_training: bool = False) -> None:
        self.config = config
        self.spec = get_variant(config.variant)
        try:
            self.device = resolve_device(config.gridding.device)
        except ValueError as error:  # e.g. cuda on a machine without CUDA
            raise ConfigError(f"gridding.device: {error}") from None
        self.inferencer = Inferencer(self.device)
        self.cancelled = threading.Event()
        """Set by ``cancel()``: training stops at its next step and ``grid`` refuses new work."""
        self.training = TrainingService(config, self.spec, self.inferencer, background_training, self.cancelled)
        self.plans = PlanCache(int(config.gridding.cache_mb * 2**20))

    # --- control -------------------------------------------------------------------------
    def cancel(self) -> None:
        """Abandon the work (thread-safe): e.g. the stream being served is gone."""
        self.cancelled.set()
        self.training.close()

    def close(self) -> None:
        """Stop the training worker (queued trainings are dropped)."""
        self.training.close()

    @property
    def trainings(self) -> int:
        """Trainings finished."""
        return self.training.finished

    def _check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise GriddingCancelled("gridding was cancelled")

    # --- one frame -----------------------------------------------------------------------
    def grid(self, frame: FrameInputs) -> GriddedKSpace:
        """Gridded k-space of one frame (physical coils in ``frame``), with its ``report``.

        The result is in the frame's physical coils (``gridding.output_coils = physical``) or
        in its virtual coils (``report.coils.compression`` then holds the matrix).

        Raises:
            GriddingCancelled: ``cancel()`` was called (before or during the work).
            InputDataError: the frame's samples are all zero or overflow float32 (``check_frame_values``).
            CalibrationError: the frame's training could not calibrate.
        """
        self._check_cancelled()
        started = time.perf_counter()
        check_frame_values(frame)
        trained, geometry, retrained = self._model_for(frame)
        report = FrameReport(variant=self.config.variant, device=str(self.device), retrained=retrained)
        report.waited_for_training_s = time.perf_counter() - started
        if not trained.used:
            report.training, report.path = trained.report, GriddingPath.TRAINED
            trained.used = True
        result = self._apply(trained, frame, geometry, report)
        report.total_s = time.perf_counter() - started
        result.report = report
        return result

    def _model_for(self, frame: FrameInputs) -> tuple[TrainedModel, SampleGeometry | None, str | None]:
        """The model that grids ``frame`` (trained again when the latest cannot serve it), the
        frame's geometry when it was built to check coverage, and why it was retrained (or None)."""
        key = frame.calibration_key
        if not self.training.has_training(key):
            self.training.submit(frame)
        trained = self.training.trained(key)
        geometry = None
        reason = self._retraining_reason(trained, frame)
        if reason is None:
            geometry, reason = self._coverage(trained, frame)
        if reason is not None:
            logger.info("retraining the kernels of calibration %s from the whole frame %s: %s", key, frame.frame_key, reason)
            self.training.submit(frame)
            trained = self.training.trained(key)
        return trained, geometry, reason

    def _retraining_reason(self, trained: TrainedModel, frame: FrameInputs) -> str | None:
        """Why ``trained`` cannot serve ``frame`` before looking at offsets (None: it can)."""
        if trained.coil_transform.num_physical != frame.num_coils:
            return f"the model was trained for {trained.coil_transform.num_physical} coils, the frame has {frame.num_coils}"
        if trained.partial and trained.frame_key == frame.frame_key:
            if not trained.partial_ok:
                return "its first readouts were calibrated from their own samples (the calibration lines were not used)"
            if len(frame.calibration_lines) > trained.calibration_lines:
                return (
                    f"{len(frame.calibration_lines) - trained.calibration_lines} calibration lines arrived after "
                    "its first readouts"
                )
        return None

    def _coverage(self, trained: TrainedModel, frame: FrameInputs) -> tuple[SampleGeometry | None, str | None]:
        """The frame's geometry (the training's own, handed over once, for its trajectory; None
        when its plan is cached or it is the training's trajectory) and why the model does not
        cover its offsets (None: it does)."""
        if trained.geometry is not None and trained.trajectory == frame.trajectory:
            geometry, trained.geometry = trained.geometry, None  # its plan keeps it from now on
            return geometry, None
        if frame.trajectory.fingerprint(trained.coil_transform.num_virtual) == trained.fingerprint:
            return None, None
        if self.plans.get(self._plan_key(trained, frame)) is not None:
            return None, None  # checked when the plan was made
        geometry = sample_geometry(frame, self.config.gridding)
        limit = self.config.training.offset_coverage_max
        if limit <= 0 or trained.fit == "closed_form":
            return geometry, None  # closed-form kernels are solved for the frame's own offsets
        ratio = offset_distance_ratio(trained.offsets, geometry.offsets)
        if ratio > limit:
            return geometry, (
                f"its offsets lie {ratio:.3g}x farther from those the model was trained on than those lie from "
                f"each other (training.offset_coverage_max = {limit:g})"
            )
        return geometry, None

    def _plan_key(self, trained: TrainedModel, frame: FrameInputs) -> tuple:
        """Key of ``frame``'s plan with ``trained`` in the plan cache."""
        fingerprint = self.spec.datamodule.kernel_fingerprint(frame.trajectory, trained.coil_transform.num_virtual, self.config)
        return (frame.calibration_key, trained.version, fingerprint)

    def _apply(self, trained: TrainedModel, frame: FrameInputs, geometry: SampleGeometry | None, report: FrameReport) -> GriddedKSpace:
        """Grid ``frame`` with the plan of its trajectory and ``trained`` (cached, or made now and
        kept when the cache admits it), in the output's coils, its centre filled."""
        self._check_cancelled()
        virtual = to_virtual_coils(frame, trained.coil_transform)
        plan_key = self._plan_key(trained, frame)
        started = time.perf_counter()
        plan = self.plans.get(plan_key)
        datamodule = self._gridding_datamodule(virtual, plan.geometry if plan is not None else geometry)
        centre, calibration = self._frame_blocks(frame, datamodule, trained)
        fill = None if centre is None else filled_region(centre, self.config.calibration.edge_margin, datamodule.prepared_geometry)
        if plan is not None and plan.skipped == fill:
            if report.path is not GriddingPath.TRAINED:
                report.path = GriddingPath.CACHED_KERNELS
        else:
            plan = self._make_plan(trained, datamodule, plan_key, fill)
        result = plan.apply(datamodule)
        report.field_correction = result.field_correction
        output = self._output_coils(result, trained.coil_transform, report)
        output.calibration = calibration
        filled = None
        if centre is not None:
            filled = fill_from_block(output.kspace, output.hits, centre, self.config.calibration.edge_margin)
            report.centre = f"{centre.source} block {' x '.join(str(n) for n in centre.shape)}"
        report.gridding_s = time.perf_counter() - started
        self._estimate(trained, output, filled, centre, report, frame.noise_covariance)
        return output

    def _gridding_datamodule(self, frame: FrameInputs, geometry: SampleGeometry | None) -> GriddingDataModule:
        """The variant's datamodule that grids ``frame`` (preprocessed; ``geometry``: the
        trajectory's, when already built)."""
        datamodule = self.spec.datamodule(frame, self.config, with_training=False, geometry=geometry)
        datamodule.preprocess()
        return datamodule

    def _make_plan(
        self, trained: TrainedModel, datamodule: GriddingDataModule, plan_key: tuple, fill: tuple[slice, ...] | None
    ) -> GriddingPlan:
        """The plan of ``datamodule``'s trajectory with ``trained``, without kernels for the samples
        whose grid points the frame's calibration block fills (``fill``, grid slices): kept in the
        cache when it admits the kernels' bytes, else streamed (made while the frame is gridded)."""
        geometry = datamodule.prepared_geometry
        skip = None if fill is None else samples_in_region(geometry, fill)
        kernels = geometry.num_samples - (0 if skip is None else int(skip.sum()))
        size = kernel_bytes(kernels, datamodule.num_coils, geometry.source_index.shape[1])
        plan = make_plan(trained.model, datamodule, self.inferencer, keep=self.plans.admits(size, plan_key), skip=skip, skipped=fill)
        self.plans.put(plan_key, plan)
        return plan

    def _estimate(
        self, trained: TrainedModel, output: GriddedKSpace, filled: np.ndarray | None, centre: CalibrationBlock | None,
        report: FrameReport, noise_covariance: np.ndarray | None,
    ) -> None:
        """``report.estimated_nrmse`` (and the centre's): with the closed-form fit the frame's
        noise (the calibration fit's noise std over each point's hits, times its kernels' noise
        gain; in a physical-coil output of virtual-coil kernels, the share of it the virtual coils
        keep, for the frame's noise covariance ``noise_covariance`` (physical coils; None:
        white)) and the kernels' misfit
        on noise-free held-out pairs (``error_estimate``); with the network, its error on
        held-out training pairs (noise-augmented, each pair normalised)."""
        noise_std = centre.noise_std if centre is not None else trained.noise_std
        if trained.fit != "closed_form" or not noise_std:
            report.estimated_nrmse = trained.estimate
            return
        centre_region = radius_from_centre(output.hits.shape) < CENTRE_RADIUS
        kept = 1.0  # (1 for the identity transform too: kept_noise_share)
        if self.config.gridding.output_coils == "physical":  # as _output_coils expands the kernels' output
            kept = trained.coil_transform.kept_noise_share(noise_covariance)
        gain = output.noise_gain
        report.estimated_nrmse = estimated_nrmse(output.kspace, output.hits, noise_std, trained.estimate, filled, kept_noise=kept, noise_gain=gain)
        report.estimated_centre_nrmse = estimated_nrmse(
            output.kspace, output.hits, noise_std, trained.estimate, filled, centre_region, kept_noise=kept, noise_gain=gain
        )
        report.estimated_kernel_misfit = trained.estimate

    def _passes_block_on(self) -> bool:
        """Whether the output carries the frame's calibration block: for the calibration
        pass-through (``output.calibration``) or the coil maps (``recon.image``)."""
        return self.config.output.calibration or self.config.recon.image != "rss"

    def _frame_blocks(
        self, frame: FrameInputs, datamodule: GriddingDataModule, trained: TrainedModel
    ) -> tuple[CalibrationBlock | None, CalibrationBlock | None]:
        """The calibration blocks of ``frame``'s own data in the output's coils: (the block that
        replaces the gridded centre, ``centre_block``: None when ``fill_centre`` is off or the
        variant fills none; the block the output carries, ``_passes_block_on``: that one, else the
        block the variant calibrates from, ``frame_kspace_block``, or None). Physical-coil output
        after compression takes the physical data's block (one datamodule for both), so the centre
        keeps the energy outside the virtual coils."""
        transform = trained.coil_transform
        if transform.is_identity or self.config.gridding.output_coils == "virtual":
            if trained.centre is not None and trained.centre_data == frame_data_digest(datamodule.frame):
                return trained.centre, trained.centre  # the training's own frame: its block is this frame's
            source = datamodule
        else:
            trained_centre = self._physical_centre_of_training_frame(frame, datamodule, trained)
            if trained_centre is not None:
                return trained_centre, trained_centre
            source = self.spec.datamodule(frame, self._physical_config(trained), with_training=False)
        centre = source.centre_block()
        if centre is not None or not self._passes_block_on():
            return centre, centre
        return None, source.frame_kspace_block()

    def _physical_centre_of_training_frame(
        self, frame: FrameInputs, datamodule: GriddingDataModule, trained: TrainedModel
    ) -> CalibrationBlock | None:
        """The physical-coil centre block of the frame ``trained`` was trained on (``frame``
        physical, ``datamodule`` its virtual-coil gridding): the training's virtual-coil centre
        expanded, plus a centre fitted now to the channels the compression discards
        (``CoilTransform.complement``: physical - virtual channels, where a fit of all physical
        coils would solve for every one; the calibration solve's cost goes with the channel
        count). Its noise std is that of the two fits' residuals expanded, per physical coil.

        None, for the physical fit of all coils, for any other frame, or where the frame's
        calibration lines were not used by the training (a fit of the discarded channels would
        check them again, against other data)."""
        virtual = trained.centre
        if virtual is None or trained.centre_data != frame_data_digest(datamodule.frame):
            return None
        if frame.calibration_lines and trained.report.calibration != "joint":
            return None
        transform = trained.coil_transform
        kspace = transform.to_physical(virtual.kspace)
        noise_power = float(np.sum(np.abs(transform.expand) ** 2)) * (virtual.noise_std or 0.0) ** 2
        known_noise = virtual.noise_std is not None
        complement = transform.complement()
        if complement.num_virtual > 0:
            rest_frame = to_virtual_coils(frame, complement)
            rest = self.spec.datamodule(rest_frame, self._physical_config(trained), with_training=False).centre_block()
            if rest is None or rest.shape != virtual.shape or rest.origin != virtual.origin or rest.source != virtual.source:
                return None
            kspace = kspace + complement.to_physical(rest.kspace)
            noise_power += float(np.sum(np.abs(complement.expand) ** 2)) * (rest.noise_std or 0.0) ** 2
            known_noise = known_noise and rest.noise_std is not None
        noise_std = math.sqrt(noise_power / transform.num_physical) if known_noise else None
        return dataclasses.replace(virtual, kspace=kspace, noise_std=noise_std)

    def _physical_config(self, trained: TrainedModel) -> IgrogConfig:
        """The configuration a frame's physical-coil block is fitted with: the calibration lines,
        once the training found them to agree with the samples (a ``joint`` block: the same lines
        and encoding in virtual coils), are not checked a second time (that check is a second
        calibration solve, without them)."""
        if trained.report.calibration != "joint" or self.config.calibration.acs_noise_ratio_max <= 0:
            return self.config
        calibration = dataclasses.replace(self.config.calibration, acs_noise_ratio_max=0.0)
        return dataclasses.replace(self.config, calibration=calibration)

    def _output_coils(self, result: GriddedKSpace, transform: CoilTransform, report: FrameReport) -> GriddedKSpace:
        """The gridded k-space in the coils the configuration asks for (new object)."""
        kspace = result.kspace
        compression = None
        if not transform.is_identity and self.config.gridding.output_coils == "physical":
            kspace = transform.to_physical(kspace)
        elif not transform.is_identity:
            compression = transform.compress
        report.coils = CoilReport(
            coils=transform.num_physical,
            virtual_coils=transform.num_virtual,
            prewhitened=transform.prewhitened,
            compression_energy=None if transform.is_identity else transform.kept_energy,
            compression=compression,
        )
        return GriddedKSpace(
            kspace=kspace, hits=result.hits, mean_time_us=result.mean_time_us, field_correction=result.field_correction,
            noise_gain=result.noise_gain,
        )
