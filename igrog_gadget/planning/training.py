"""The training service: one model per calibration key, trained on one queue, warm-started.

``submit(inputs)`` queues a training for the inputs' calibration key (by default the frame's
slice, contrast and encode-step-2; see ``igrog_gadget.stream.buffer.CALIBRATION_KEY_FIELDS``).
The pipeline submits it as soon as a key's calibration data and first readouts are there, so
with ``background`` the training runs while the rest of the scan streams in; the gridder
submits one itself for a key that has none. A training is prepared (coil compression,
calibration, training pairs) on the submitting thread, then fitted on the queue's worker
(``TrainingQueue``: one at a time, in submission order), so the next key's preparation overlaps
the current fit. A key's first training warm-starts from the last successful first training
submitted before it, a retraining from the model it replaces (when the shapes agree), and takes
the virtual-coil count of the last such training that prepared: all fixed by the data, so the
models do not depend on whether or when they ran in the background. ``trained(key)`` waits for
a key's latest model.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import threading
import time
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from igrog_engine import Inferencer, StopReason
from igrog_gadget.app.registry import VariantSpec
from igrog_gadget.config import IgrogConfig
from igrog_gadget.core.datamodule import GriddingDataModule
from igrog_gadget.core.frame import FrameInputs, FrameTrajectory, check_frame_values
from igrog_gadget.core.report import CLOSED_FORM_STOP, TrainingReport
from igrog_gadget.core.training import build_trainer, held_out_nrmse
from igrog_gadget.core.virtual_coils import frame_coil_transform, to_virtual_coils
from igrog_gadget.errors import GriddingCancelled
from igrog_gadget.numerics.calibration import CalibrationBlock
from igrog_gadget.numerics.coils import CoilTransform
from igrog_gadget.numerics.geometry import SampleGeometry
from igrog_gadget.planning.model_store import MISMATCH_RATIO, ModelStore, StoredModelKey, network_signature, trajectory_family
from igrog_gadget.planning.training_queue import TrainingQueue

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
class TrainedModel:
    """A calibration key's trained model with what planning and gridding with it need."""

    model: torch.nn.Module
    coil_transform: CoilTransform
    """The compression of the training inputs (the model works in its virtual coils)."""
    offsets: np.ndarray
    """Shape (n, sources, dims): the offsets the training pairs were drawn from."""
    fingerprint: str
    """``FrameTrajectory.fingerprint`` of the training inputs (in virtual coils)."""
    version: int
    """Submission number of the training: plans are cached per version."""
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
    report: TrainingReport
    fit: str = "network"
    """``IgrogConfig.kernel_fit()`` of the training."""
    noise_std: float = 0.0
    """The calibration's noise std of one sample (virtual coils), 0 when unknown."""
    centre: CalibrationBlock | None = None
    """The training's ``centre_block()`` (virtual coils) when it was made from a whole frame, for
    that frame's centre (``centre_data``): a 3D calibration solve is not repeated."""
    centre_data: str = ""
    """``frame_data_digest`` of the frame ``centre`` belongs to."""
    used: bool = False
    """Whether a frame was gridded with it (its training report goes with the first)."""
    geometry: SampleGeometry | None = None
    """The geometry of ``trajectory`` the training built when it trained from a whole frame, handed
    to that frame's gridding (``FrameGridder``) and dropped there: a 3D frame's neighbour sources
    are found once (32³ kooshball: 0.75 CPU-s a build)."""
    trajectory: FrameTrajectory | None = None
    """The trajectory of ``geometry``."""


@dataclass
class _Training:
    """A submitted training: its coil compression (known once prepared) and its result."""

    coil_transform: CoilTransform | None
    """None when its preparation failed."""
    future: Future
    """Of its ``TrainedModel``."""


@dataclass
class _PreparedTraining:
    """What a training's fit needs, made on the submitting thread (``TrainingService._prepare``)."""

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


class TrainingService:
    """Trains and holds the models of a scan's calibration keys (see the module docstring).

    ``background``: ``submit`` returns at once and the fit runs while the caller goes on
    (streaming); otherwise it returns when the fit is done (replay). Either way fits run on the
    queue's worker thread with ``training.cpu_threads`` torch threads, so the models are the same.
    """

    def __init__(
        self, config: IgrogConfig, spec: VariantSpec, inferencer: Inferencer, background: bool, cancelled: threading.Event
    ) -> None:
        self.config = config
        self.spec = spec
        self.inferencer = inferencer
        self.device = inferencer.device
        self.background = background
        self.cancelled = cancelled
        """Set by the owner to abandon the work: a fit stops at its next step."""
        self._queue: TrainingQueue | None = None
        """Made for the first training (``_training_queue``); a training's number in it is its version."""
        self._trainings: dict[tuple, _Training] = {}
        """The latest training submitted per calibration key."""
        self._first_trainings: list[_Training] = []
        """Each key's first training, in submission order (the warm-start sources of later keys)."""
        self.finished = 0
        """Trainings finished."""

    def close(self) -> None:
        """Stop the training worker (queued trainings are dropped)."""
        if self._queue is not None:
            self._queue.close()

    def _check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise GriddingCancelled("gridding was cancelled")

    def has_training(self, calibration_key: tuple) -> bool:
        """Whether a training was submitted for ``calibration_key``."""
        return calibration_key in self._trainings

    def is_trained(self, calibration_key: tuple) -> bool:
        """Whether ``calibration_key``'s latest training has finished (or failed)."""
        training = self._trainings.get(calibration_key)
        return training is not None and training.future.done()

    def submit(self, inputs: FrameInputs, partial: bool = False) -> None:
        """Queue a training of ``inputs``' calibration key from ``inputs`` (physical coils).

        ``partial``: the inputs hold the calibration data and only the first readouts of their
        frame (the gridder checks at the frame's end that the model serves it). The preparation
        runs now, on this thread (its errors are raised by ``trained``, as the fit's); the fit
        is queued."""
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
        ``training.volume.cpu_threads``), so it is fixed by the data, whatever runs when."""
        if self._queue is None:
            threads = self.config.for_dims(dims).training.cpu_threads
            self._queue = TrainingQueue(self.background, threads)
        return self._queue

    def trained(self, calibration_key: tuple) -> TrainedModel:
        """The latest model of ``calibration_key`` (waits for its training; raises its errors)."""
        future = self._trainings[calibration_key].future
        try:
            return future.result()
        except CancelledError:
            raise GriddingCancelled("gridding was cancelled") from None

    def adopt(self, calibration_key: tuple, trained: TrainedModel) -> None:
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
        per_kernel = config.gridding.num_sources + (config.gridding.neighbour_sources if frame.dims == 3 else 0)
        config = config.with_fit_for(int(np.count_nonzero(frame.samples[0])), frame.num_coils, per_kernel)  # (fit = auto)
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

    def _fit(self, prepared: _PreparedTraining, version: int, sources: list[Future]) -> TrainedModel:
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
        validation_loss = refit_loss = None
        if config.kernel_fit() == "closed_form":  # solved per sample when kernels are made: no gradient steps
            model.to(self.device)  # its solves run there (the trainer moves a network)
            warm, steps, stop, stop_reason, final_loss = False, 0, CLOSED_FORM_STOP, None, None
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
            steps, stop_reason, final_loss = state.step, state.stop_reason, state.loss
            stop = describe_stop(stop_reason, steps)
            validation_loss, refit_loss = state.metrics.get("val_loss"), state.metrics.get("refit_loss")
        self._check_cancelled()
        self.finished += 1
        fit_seconds = time.perf_counter() - fit_started
        estimate = held_out_nrmse(model, val_loader, loss, self.inferencer) if val_loader is not None else math.nan
        if stored_key is not None:
            self._check_cancelled()
            ModelStore(training.warm_start_dir).save(stored_key, model.state_dict(), estimate)
        report = TrainingReport(
            fit=config.kernel_fit(),
            calibration=datamodule.calibration_source,
            trained_from=f"first {frame.samples.shape[1]} readouts" if partial else "whole frame",
            steps=steps,
            stop=stop,
            stop_reason=stop_reason,
            loss=final_loss,
            warm_start=warm,
            warm_start_model=stored_key.name if warm and stored_key is not None else None,
            seconds=fit_seconds,
            preparation_s=prepared.seconds,
            job_s=prepared.seconds + time.perf_counter() - started,
            validation_loss=validation_loss,
            refit_loss=refit_loss,
        )
        logger.info(
            "trained %s kernels%s from the %s in %.1f s (after %.1f s of compression, calibration and pairs; "
            "%.1f s in all): %s, loss %.3g, error on held-out pairs %.3g",
            self.config.variant, " (warm start)" if warm else "", report.trained_from, report.seconds,
            report.preparation_s, report.job_s, report.stop, final_loss or float("nan"), estimate,
        )
        centre = None if partial else datamodule.centre_block()
        return TrainedModel(
            model=model,
            coil_transform=prepared.coil_transform,
            offsets=datamodule.prepared_geometry.offsets,
            fingerprint=frame.trajectory.fingerprint(frame.num_coils),
            version=version,
            frame_key=prepared.frame_key,
            partial=partial,
            partial_ok=datamodule.partial_frame_ok,
            calibration_lines=prepared.calibration_lines,
            estimate=estimate,
            report=report,
            fit=config.kernel_fit(),
            noise_std=datamodule.noise_std,
            centre=centre,
            centre_data="" if centre is None else frame_data_digest(frame),  # hashed only when there is a block
            geometry=None if partial else datamodule.prepared_geometry,
            trajectory=None if partial else frame.trajectory,
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

    def _warm_start(self, model: torch.nn.Module, previous: TrainedModel | None) -> bool:
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
