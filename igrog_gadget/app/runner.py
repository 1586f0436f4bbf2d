"""Grids frames with a variant: trains per calibration key, reuses models and kernels.

Training: ``submit_training(inputs)`` queues a training for the inputs' calibration key (by
default the frame's slice, contrast and encode-step-2; see
``igrog_gadget.stream.buffer.CALIBRATION_KEY_FIELDS``). The pipeline submits it as soon as a
key's calibration data and first readouts are there (``GriddingPipeline``), so with
``background_training`` the training runs while the rest of the scan streams in; ``grid``
submits one itself for a key that has none. A training is prepared (coil compression,
calibration, training pairs) on the submitting thread, then fitted on the queue's worker
(``TrainingQueue``: one at a time, in submission order), so the next key's preparation overlaps
the current fit. A key's first training warm-starts from the last successful first training
submitted before it, a retraining from the model it replaces (when the shapes agree), and takes
the virtual-coil count of the last such training that prepared: all fixed by the data, so the
models do not depend on whether or when they ran in the background.

Gridding: ``grid(frame)`` waits for its key's model, then applies the kernels. It retrains
(from the whole frame, warm-started) when the model cannot serve the frame: trained from the
first readouts of this frame but calibrated without the calibration lines, or before more
calibration lines arrived; or the frame's offsets lie farther than
``training.offset_coverage_max`` from those the model was trained on
(``igrog_gadget.core.coverage``); or another coil count. Data with many coils are
gridded in virtual coils (the compression is made with each training, from its inputs; see
``igrog_gadget.core.virtual_coils``). Kernels are recomputed only for a new model or
trajectory (``KernelCache``, bounded by ``gridding.cache_mb``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import threading
import time
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader

from igrog_engine import Inferencer, StopReason, resolve_device
from igrog_gadget.core.centre import fill_from_block
from igrog_gadget.core.coverage import offset_distance_ratio
from igrog_gadget.core.error_estimate import CENTRE_RADIUS, estimated_nrmse, radius_from_centre
from igrog_gadget.core.datamodule import GriddingDataModule
from igrog_gadget.core.frame import FrameInputs, GriddedKSpace, check_frame_values, sample_geometry
from igrog_gadget.core.training import build_trainer, held_out_nrmse
from igrog_gadget.core.virtual_coils import frame_coil_transform, to_virtual_coils
from igrog_gadget.app.kernel_cache import KernelCache, kernel_bytes
from igrog_gadget.app.model_store import MISMATCH_RATIO, ModelStore, StoredModelKey, network_signature, trajectory_family
from igrog_gadget.app.registry import get_variant
from igrog_gadget.app.training_queue import TrainingQueue
from igrog_gadget.config import IgrogConfig
from igrog_gadget.errors import ConfigError, GriddingCancelled
from igrog_gadget.numerics.calibration import CalibrationBlock
from igrog_gadget.numerics.coils import CoilTransform
from igrog_gadget.numerics.geometry import SampleGeometry

logger = logging.getLogger(__name__)

#: How each way a training ends reads in logs, headers and image meta ({steps}: its steps).
STOP_WORDS = {
    StopReason.PLATEAU: "converged (validation plateau) after {steps} steps",
    StopReason.MAX_STEPS: "step count reached ({steps} steps)",
    StopReason.MAX_EPOCHS: "epochs done ({steps} steps)",
    StopReason.TIME_BUDGET: "safety time cap after {steps} steps (result depends on machine speed)",
    StopReason.CANCELLED: "cancelled",
}


def describe_stop(reason: StopReason | None, steps: int) -> str:
    """How a training ended, in words (``state.stop_reason`` of the engine)."""
    if reason is None:
        return f"not stopped ({steps} steps)"
    return STOP_WORDS[reason].format(steps=steps)


@dataclass
class _Training:
    """A submitted training: its coil compression (known once prepared) and its result."""

    coil_transform: CoilTransform | None
    """None when its preparation failed."""
    future: Future
    """Of its ``TrainedKernels``."""


@dataclass
class _PreparedTraining:
    """What a training's fit needs, made on the submitting thread (``VariantGridder._prepare``)."""

    datamodule: GriddingDataModule
    """Preprocessed: calibration block and training pairs."""
    config: IgrogConfig
    """The configuration for the frame's dimensions (``IgrogConfig.for_dims``)."""
    coil_transform: CoilTransform
    frame: FrameInputs
    """The training inputs in virtual coils."""
    frame_key: tuple
    partial: bool
    calibration_lines: int
    seconds: float


@dataclass
class TrainedKernels:
    """A trained model with what gridding with it needs."""

    model: torch.nn.Module
    coil_transform: CoilTransform
    """The compression of the training inputs (the model works in its virtual coils)."""
    offsets: np.ndarray
    """Shape (n, sources, 2): the offsets the training pairs were drawn from."""
    fingerprint: str
    """``FrameTrajectory.fingerprint`` of the training inputs (in virtual coils)."""
    version: int
    """Submission number of the training: kernels are cached per version."""
    frame_key: tuple
    """Frame the training inputs came from."""
    partial: bool
    """Trained from the calibration data and the first readouts of ``frame_key``."""
    partial_ok: bool
    """Whether the calibration was made from data the partial inputs held completely."""
    calibration_lines: int
    """Calibration lines the training inputs held."""
    estimate: float
    """Error on held-out pairs: the network's (noise-augmented, normalised pairs), or the closed
    form's misfit (noise-free pairs, energy weighted)."""
    fit: str = "network"
    """``IgrogConfig.kernel_fit()`` of the training."""
    noise_std: float = 0.0
    """The calibration's noise std of one sample (virtual coils), 0 when unknown."""
    centre: CalibrationBlock | None = None
    """The training's ``centre_block()`` (virtual coils) when it was made from a whole frame, for
    that frame's centre (``centre_data``): a 3D calibration solve is not repeated."""
    centre_data: str = ""
    """``frame_data_digest`` of the frame ``centre`` belongs to."""
    info: dict = field(default_factory=dict)
    used: bool = False
    """Whether a frame was gridded with it (its training info goes with the first)."""


class VariantGridder:
    """Grids ``FrameInputs`` with the configured variant, training per calibration key.

    ``background_training``: ``submit_training`` returns at once and the training runs while the
    caller goes on (streaming); otherwise it returns when the training is done (replay). Either
    way fits run on the queue's worker thread, with ``training.cpu_threads`` torch threads (see
    ``_training_queue``), so the results are the same.
    """

    def __init__(self, config: IgrogConfig, background_training: bool = False) -> None:
        self.config = config
        self.spec = get_variant(config.variant)
        try:
            self.device = resolve_device(config.gridding.device)
        except ValueError as error:  # e.g. cuda on a machine without CUDA
            raise ConfigError(f"gridding.device: {error}") from None
        self.inferencer = Inferencer(self.device)
        self.background_training = background_training
        self._queue: TrainingQueue | None = None
        """Made for the first training (``_training_queue``); a training's number in it is its version."""
        self._trainings: dict[tuple, _Training] = {}
        """The latest training submitted per calibration key."""
        self._first_trainings: list[_Training] = []
        """Each key's first training, in submission order (the warm-start sources of later keys)."""
        self.kernel_cache = KernelCache(int(config.gridding.cache_mb * 2**20))
        self.trainings = 0
        """Trainings finished."""
        self.cancelled = threading.Event()
        """Set by ``cancel()``: training stops at its next step and ``grid`` refuses new work."""

    # --- control -------------------------------------------------------------------------
    def cancel(self) -> None:
        """Abandon the work (thread-safe): e.g. the stream being served is gone."""
        self.cancelled.set()
        if self._queue is not None:
            self._queue.close()

    def close(self) -> None:
        """Stop the training worker (queued trainings are dropped)."""
        if self._queue is not None:
            self._queue.close()

    def _check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise GriddingCancelled("gridding was cancelled")

    # --- training ------------------------------------------------------------------------
    def has_training(self, calibration_key: tuple) -> bool:
        """Whether a training was submitted for ``calibration_key``."""
        return calibration_key in self._trainings

    def is_trained(self, calibration_key: tuple) -> bool:
        """Whether ``calibration_key``'s latest training has finished (or failed)."""
        training = self._trainings.get(calibration_key)
        return training is not None and training.future.done()

    def submit_training(self, inputs: FrameInputs, partial: bool = False) -> None:
        """Queue a training of ``inputs``' calibration key from ``inputs`` (physical coils).

        ``partial``: the inputs hold the calibration data and only the first readouts of their
        frame (``grid`` checks at the frame's end that the model serves it). A key's first
        training warm-starts from the previous keys' first trainings, a later one from the
        model it replaces. The preparation runs now, on this thread (its errors are raised by
        ``trained``, as the fit's); the fit is queued."""
        self._check_cancelled()
        check_frame_values(inputs)
        key = inputs.calibration_key
        sources = [self._trainings[key]] if key in self._trainings else list(reversed(self._first_trainings))
        queue = self._training_queue(inputs.dims)
        version = queue.submitted + 1
        try:
            prepared = self._prepare(inputs, partial, sources)
        except Exception as error:  # noqa: BLE001 - handed to the waiter, as a fit's error is
            training = _Training(None, queue.submit(functools.partial(_raise, error)))
        else:
            job = functools.partial(self._fit, prepared, version, [s.future for s in sources])
            training = _Training(prepared.coil_transform, queue.submit(job))
        if key not in self._trainings:
            self._first_trainings.append(training)
        self._trainings[key] = training

    def _training_queue(self, dims: int) -> TrainingQueue:
        """The queue the fits run on, made for the first training: its worker's torch thread
        count is ``training.cpu_threads`` for that training's dimensions (a 3D frame's:
        ``cpu_threads_3d``), so it is fixed by the data, whatever runs when."""
        if self._queue is None:
            threads = self.config.for_dims(dims).training.cpu_threads
            self._queue = TrainingQueue(self.background_training, threads)
        return self._queue

    def trained(self, calibration_key: tuple) -> TrainedKernels:
        """The latest model of ``calibration_key`` (waits for its training; raises its errors)."""
        future = self._trainings[calibration_key].future
        try:
            return future.result()
        except CancelledError:
            raise GriddingCancelled("gridding was cancelled") from None

    def adopt(self, calibration_key: tuple, trained: TrainedKernels) -> None:
        """Use ``trained`` for ``calibration_key`` from now on (e.g. a model moved between devices)."""
        future: Future = Future()
        future.set_result(trained)
        self._trainings[calibration_key] = _Training(trained.coil_transform, future)

    def _prepare(self, inputs: FrameInputs, partial: bool, sources: list[_Training]) -> _PreparedTraining:
        """Coil compression, calibration block and training pairs of a training (``sources``:
        trainings submitted before it; the first that prepared gives its virtual-coil count)."""
        started = time.perf_counter()
        earlier = next((s.coil_transform for s in sources if s.coil_transform is not None), None)
        transform = frame_coil_transform(inputs, self.config.gridding, self._inherited_virtual_coils(inputs, earlier))
        frame = to_virtual_coils(inputs, transform)
        config = self.config.for_dims(frame.dims)  # a 3D frame trains with the 3D settings
        datamodule: GriddingDataModule = self.spec.datamodule(frame, config, with_training=True)
        datamodule.preprocess()
        return _PreparedTraining(
            datamodule=datamodule,
            config=config,
            coil_transform=transform,
            frame=frame,
            frame_key=inputs.frame_key,
            partial=partial,
            calibration_lines=len(inputs.calibration_lines),
            seconds=time.perf_counter() - started,
        )

    def _fit(self, prepared: _PreparedTraining, version: int, sources: list[Future]) -> TrainedKernels:
        """A training's fit (runs on the queue). ``sources``: trainings submitted before it (so
        finished); the first successful one is warm-started from."""
        self._check_cancelled()
        previous = next((f.result() for f in sources if f.done() and not f.cancelled() and f.exception() is None), None)
        started = time.perf_counter()
        datamodule, config, frame, partial = prepared.datamodule, prepared.config, prepared.frame, prepared.partial
        training = config.training
        model = self.spec.model(datamodule, config)  # initialised from training.seed (local generators)
        loss = self.spec.loss(config)
        val_loader = datamodule.val_dataloader()
        fit_started = time.perf_counter()
        if config.kernel_fit() == "closed_form":  # solved per sample when kernels are made: no gradient steps
            model.to(self.device)  # its solves run there (the trainer moves a network)
            warm, steps, stop, final_loss, metrics = False, 0, "closed form (no gradient steps)", None, {}
            stored_key = None
        else:
            warm = self._warm_start(model, previous)
            refine = warm
            stored_key = self._stored_model_key(prepared, model) if previous is None else None
            if stored_key is not None and not warm:
                warm, refine = self._start_from_store(model, stored_key, val_loader, loss)
            train_loader = datamodule.train_dataloader()
            trainer = build_trainer(
                model,
                loss,
                training,
                str(self.device),
                val_loader=val_loader,
                steps_per_epoch=len(train_loader),
                refit_pairs=datamodule.refit_batch(training.refit_pairs) if training.refit_head else None,
                cancel=self.cancelled,
                max_steps=min(training.warm_start_steps, training.max_steps) if refine else training.max_steps,
            )
            state = trainer.fit(train_loader)
            steps, stop, final_loss, metrics = state.step, describe_stop(state.stop_reason, state.step), state.loss, state.metrics
        self._check_cancelled()
        self.trainings += 1
        info = {
            "training_s": time.perf_counter() - fit_started,
            "training_preparation_s": prepared.seconds,
            "training_steps": steps,
            "training_loss": final_loss,
            "training_stop": stop,
            "kernel_fit": config.kernel_fit(),
            "warm_start": warm,
            "warm_start_model": stored_key.name if warm and stored_key is not None else None,
            "calibration": datamodule.calibration_source,
            "trained_from": f"first {frame.samples.shape[1]} readouts" if partial else "whole frame",
        }
        for name, metric in (("refit_loss", "refit_loss"), ("validation_loss", "val_loss")):
            if metric in metrics:
                info[name] = metrics[metric]
        estimate = held_out_nrmse(model, val_loader, loss, self.inferencer) if val_loader is not None else math.nan
        if stored_key is not None:
            self._check_cancelled()
            ModelStore(training.warm_start_dir).save(stored_key, model.state_dict(), estimate)
        info["training_job_s"] = prepared.seconds + time.perf_counter() - started
        logger.info(
            "trained %s kernels%s from the %s in %.1f s (after %.1f s of compression, calibration and pairs; "
            "%.1f s in all): %s, loss %.3g, error on held-out pairs %.3g",
            self.config.variant, " (warm start)" if warm else "", info["trained_from"], info["training_s"],
            info["training_preparation_s"], info["training_job_s"], info["training_stop"], final_loss or float("nan"), estimate,
        )
        centre = None if partial else datamodule.centre_block()
        return TrainedKernels(
            model=model,
            coil_transform=prepared.coil_transform,
            offsets=datamodule.prepared_geometry.offsets,
            fingerprint=frame.trajectory().fingerprint(),
            version=version,
            frame_key=prepared.frame_key,
            partial=partial,
            partial_ok=datamodule.partial_frame_ok,
            calibration_lines=prepared.calibration_lines,
            estimate=estimate,
            fit=config.kernel_fit(),
            noise_std=datamodule.noise_std,
            centre=centre,
            centre_data="" if centre is None else frame_data_digest(frame),  # hashed only when there is a block
            info=info,
        )

    def _inherited_virtual_coils(self, inputs: FrameInputs, earlier: CoilTransform | None) -> int:
        """The virtual-coil count of the model a training may warm-start from (same physical
        coils, compressed), so that the energy rule does not give neighbouring keys different
        counts (e.g. a stack-of-stars' low-signal edge partitions) and a model shape the warm
        start cannot load; 0 = choose by the energy rule. Data-defined: the count of the
        earlier training, never of what finished first."""
        if earlier is None or not self.config.training.warm_start:
            return 0
        if earlier.is_identity or earlier.num_physical != inputs.num_coils:
            return 0
        return earlier.num_virtual

    def _warm_start(self, model: torch.nn.Module, previous: TrainedKernels | None) -> bool:
        """Load the previous training's weights into ``model`` when the shapes agree (the
        whitening buffers stay the new calibration's). Returns whether it did."""
        if previous is None or not self.config.training.warm_start:
            return False
        return _load_weights(model, previous.model.state_dict())

    def _stored_model_key(self, prepared: _PreparedTraining, model: torch.nn.Module) -> StoredModelKey | None:
        """The ``training.warm_start_dir`` key of a scan's first training (None: no store)."""
        if not (self.config.training.warm_start and self.config.training.warm_start_dir):
            return None
        frame, transform = prepared.frame, prepared.coil_transform
        return StoredModelKey(
            variant=self.config.variant,
            dims=frame.dims,
            matrix=tuple(int(n) for n in frame.matrix),
            physical_coils=transform.num_physical,
            virtual_coils=transform.num_virtual,
            family=trajectory_family(frame.traj, frame.lengths),
            network=network_signature(model.state_dict()),
        )

    def _start_from_store(
        self, model: torch.nn.Module, key: StoredModelKey, val_loader: DataLoader | None, loss: torch.nn.Module
    ) -> tuple[bool, bool]:
        """Load the stored network of ``key`` into ``model`` (logged): ``(started from it, only a
        refinement)``; every step is trained when it misses this scan's held-out pairs by more
        than ``MISMATCH_RATIO`` times its own scan's error."""
        store = ModelStore(self.config.training.warm_start_dir)
        stored = store.load(key)
        if stored is None or not _load_weights(model, stored.state):
            logger.info("warm-start store: no model %s yet; training from scratch", key.name)
            return False, False
        if val_loader is not None and math.isfinite(stored.held_out_error):
            error = held_out_nrmse(model, val_loader, loss, self.inferencer)
            if not error <= MISMATCH_RATIO * stored.held_out_error:
                logger.info(
                    "warm-start store: %s misses this scan's held-out pairs by %.3g (its own scan's: %.3g; "
                    "coils or anatomy changed?); training every step from it", store.path(key), error, stored.held_out_error,
                )
                return True, False
        logger.info("warm-start store: starting from %s", store.path(key))
        return True, True

    # --- gridding ------------------------------------------------------------------------
    def grid(self, frame: FrameInputs) -> GriddedKSpace:
        """Gridded k-space of one frame (physical coils in ``frame``).

        The result is in the frame's physical coils (``gridding.output_coils = physical``) or
        in its virtual coils (``info["coil_compression"]`` then holds the matrix).

        Raises:
            GriddingCancelled: ``cancel()`` was called (before or during the work).
            InputDataError: the frame's samples are all zero or overflow float32 (``check_frame_values``).
            CalibrationError: the frame's training could not calibrate.
        """
        self._check_cancelled()
        started = time.perf_counter()
        check_frame_values(frame)
        key = frame.calibration_key
        if not self.has_training(key):
            self.submit_training(frame)
        trained = self.trained(key)
        cache_key = self._cache_key(trained, frame)
        geometry = None
        reason = self._retraining_reason(trained, frame)
        if reason is None:
            geometry, reason = self._coverage(trained, frame, cache_key)
        if reason is not None:
            logger.info("retraining the kernels of calibration %s from the whole frame %s: %s", key, frame.frame_key, reason)
            self.submit_training(frame)
            trained = self.trained(key)
            cache_key = self._cache_key(trained, frame)
        waited = time.perf_counter() - started
        result, info = self._apply(trained, frame, geometry, cache_key)
        info["waited_for_training_s"] = waited
        if reason is not None:
            info["retrained"] = reason
        info["total_s"] = time.perf_counter() - started
        result.info.update(info)
        return result

    def _retraining_reason(self, trained: TrainedKernels, frame: FrameInputs) -> str | None:
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

    def _coverage(
        self, trained: TrainedKernels, frame: FrameInputs, cache_key: tuple
    ) -> tuple[SampleGeometry | None, str | None]:
        """The frame's geometry (None when its kernels are cached) and why the model does not
        cover its offsets (None: it does); ``cache_key``: the frame's kernels with ``trained``."""
        if frame.trajectory(trained.coil_transform.num_virtual).fingerprint() == trained.fingerprint:
            return None, None
        if self.kernel_cache.get(cache_key) is not None:
            return None, None  # checked when the kernels were made
        geometry = sample_geometry(frame, self.config.gridding)
        limit = self.config.training.offset_coverage_max
        if limit <= 0 or self.config.for_dims(frame.dims).kernel_fit() == "closed_form":
            return geometry, None  # closed-form kernels are solved for the frame's own offsets
        ratio = offset_distance_ratio(trained.offsets, geometry.offsets)
        if ratio > limit:
            return geometry, (
                f"its offsets lie {ratio:.3g}x farther from those the model was trained on than those lie from "
                f"each other (training.offset_coverage_max = {limit:g})"
            )
        return geometry, None

    def _cache_key(self, trained: TrainedKernels, frame: FrameInputs) -> tuple:
        """Key of ``frame``'s kernels with ``trained`` in the kernel cache."""
        fingerprint = self.spec.datamodule.kernel_fingerprint(frame.trajectory(trained.coil_transform.num_virtual), self.config)
        return (frame.calibration_key, trained.version, fingerprint)

    def _apply(
        self, trained: TrainedKernels, frame: FrameInputs, geometry: SampleGeometry | None, cache_key: tuple
    ) -> tuple[GriddedKSpace, dict]:
        """Grid ``frame`` with ``trained``'s kernels (cached under ``cache_key``, or computed);
        ``(result, info)``."""
        self._check_cancelled()
        virtual = to_virtual_coils(frame, trained.coil_transform)
        info: dict = {"variant": self.config.variant, "device": str(self.device)}
        if not trained.used:
            info.update(trained.info)
            info["path"] = "trained"
            trained.used = True
        cached = self.kernel_cache.get(cache_key)
        infer_start = time.perf_counter()
        if cached is not None:
            cached_geometry, kernels = cached
            datamodule = self.spec.datamodule(virtual, self.config, with_training=False, geometry=cached_geometry)
            datamodule.preprocess()
            datamodule.postprocess(kernels)
            info.setdefault("path", "cached kernels")
        else:
            datamodule = self.spec.datamodule(virtual, self.config, with_training=False, geometry=geometry)
            datamodule.preprocess()
            layout = datamodule.prepared_geometry
            size = kernel_bytes(layout.num_samples, virtual.num_coils, layout.source_index.shape[1])
            datamodule.keep_kernels = self.kernel_cache.admits(size, cache_key)
            datamodule.postprocess(self.inferencer.iterate(trained.model, datamodule.test_dataloader()))
            if datamodule.keep_kernels and isinstance(datamodule.kernels, tuple):  # kept while gridding
                self.kernel_cache.put(cache_key, datamodule.prepared_geometry, datamodule.kernels)
            info.setdefault("path", "reused model")
        if datamodule.data is None:
            raise RuntimeError("the datamodule's postprocess() left no gridded k-space")
        output = self._output_coils(datamodule.data, trained.coil_transform, info)
        centre, output.calibration = self._frame_blocks(frame, datamodule, trained)
        filled = None
        if centre is not None:
            filled = fill_from_block(output.kspace, output.hits, centre, self.config.calibration.edge_margin)
            info["centre"] = f"{centre.source} block {' x '.join(str(n) for n in centre.shape)}"
        info["gridding_s"] = time.perf_counter() - infer_start
        info.update(self._estimates(trained, output, filled, centre))
        return output, info

    def _estimates(
        self, trained: TrainedKernels, output: GriddedKSpace, filled: np.ndarray | None, centre: CalibrationBlock | None
    ) -> dict[str, float]:
        """``estimated_nrmse`` (and ``estimated_centre_nrmse``): with the closed-form fit the
        frame's noise (the calibration fit's noise std over each point's hits) and the kernels'
        misfit on noise-free held-out pairs (``error_estimate``); with the network, its error on
        held-out training pairs (noise-augmented, each pair normalised)."""
        noise_std = centre.noise_std if centre is not None else trained.noise_std
        if trained.fit != "closed_form" or not noise_std:
            return {"estimated_nrmse": trained.estimate}
        centre_region = radius_from_centre(output.hits.shape) < CENTRE_RADIUS
        return {
            "estimated_nrmse": estimated_nrmse(output.kspace, output.hits, noise_std, trained.estimate, filled),
            "estimated_centre_nrmse": estimated_nrmse(
                output.kspace, output.hits, noise_std, trained.estimate, filled, centre_region
            ),
            "estimated_kernel_misfit": trained.estimate,
        }

    def _passes_block_on(self) -> bool:
        """Whether the output carries the frame's calibration block: for the calibration
        pass-through (``output.calibration``) or the coil maps (``recon.image``)."""
        return self.config.output.calibration or self.config.recon.image != "rss"

    def _frame_blocks(
        self, frame: FrameInputs, datamodule: GriddingDataModule, trained: TrainedKernels
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
            source = self.spec.datamodule(frame, self.config, with_training=False)
        centre = source.centre_block()
        if centre is not None or not self._passes_block_on():
            return centre, centre
        return None, source.frame_kspace_block()

    def _output_coils(self, result: GriddedKSpace, transform: CoilTransform, info: dict) -> GriddedKSpace:
        """The gridded k-space in the coils the configuration asks for (new object)."""
        info["coils"] = transform.num_physical
        info["virtual_coils"] = transform.num_virtual
        info["prewhitened"] = transform.prewhitened
        kspace = result.kspace
        if not transform.is_identity:
            info["compression_energy"] = transform.kept_energy
            if self.config.gridding.output_coils == "physical":
                kspace = transform.to_physical(kspace)
            else:
                info["coil_compression"] = transform.compress
        return GriddedKSpace(kspace=kspace, hits=result.hits, mean_time_us=result.mean_time_us, info=dict(result.info))


def _load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    """Load ``state`` into ``model`` when names and shapes agree, keeping the model's own
    whitening buffers (the new calibration's). Returns whether it did."""
    mine = model.state_dict()
    if mine.keys() != state.keys() or any(mine[k].shape != state[k].shape for k in mine):
        return False
    model.load_state_dict({k: (mine[k] if k.endswith("whitening") else state[k].clone()) for k in mine})
    return True


def _raise(error: BaseException) -> None:
    """A queued job that fails with ``error`` (a training whose preparation failed)."""
    raise error


def frame_data_digest(frame: FrameInputs) -> str:
    """Hash of a frame's samples, trajectory and calibration lines (what its calibration block is
    made from): two frames with equal digests have the same block."""
    digest = hashlib.sha1(np.ascontiguousarray(frame.samples).tobytes())
    digest.update(np.ascontiguousarray(frame.traj).tobytes())
    for data, positions in frame.calibration_lines:
        digest.update(np.ascontiguousarray(data).tobytes())
        digest.update(np.ascontiguousarray(positions).tobytes())
    return digest.hexdigest()

