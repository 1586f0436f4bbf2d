"""Grids frames with a variant: trains once per calibration, reuses kernels per trajectory.

Retraining rule: a model is trained the first time a ``calibration_key`` is seen (by
default the frame's slice, contrast and encode-step-2; see
``igrog_gadget.stream.buffer.CALIBRATION_KEY_FIELDS``) and
reused for every later frame with that key (repetitions, averages, sets, phases); a new
key's model is warm-started from the last trained one of the same shape. Data with many
coils are gridded in virtual coils (one compression per key, from its first frame; see
``igrog_gadget.app.common.virtual_coils``). Kernels are recomputed only when the trajectory
(or grid) differs from a cached one (``KernelCache``, bounded by ``gridding.cache_mb``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time

import numpy as np
import torch

from engine import Inferencer, resolve_device
from igrog_gadget.app.common.frame import FrameInputs, GriddedKSpace, check_frame_values
from igrog_gadget.app.common.training import build_trainer, held_out_nrmse
from igrog_gadget.app.common.virtual_coils import frame_coil_transform, to_virtual_coils
from igrog_gadget.app.kernel_cache import KernelCache, kernel_bytes
from igrog_gadget.app.registry import get_variant
from igrog_gadget.config import IgrogConfig
from igrog_gadget.errors import ConfigError, GriddingCancelled
from igrog_gadget.gridding.coils import CoilTransform

logger = logging.getLogger(__name__)

#: Serialises the seeded model initialisation (torch's CPU generator is process-wide).
_MODEL_INIT_LOCK = threading.Lock()


def trajectory_fingerprint(frame: FrameInputs) -> str:
    """Hash of the trajectory, grid and coil count (kernels depend on nothing else)."""
    digest = hashlib.sha1()
    digest.update(np.ascontiguousarray(frame.traj, dtype=np.float32).tobytes())
    digest.update(repr((frame.matrix, frame.num_coils, frame.traj.shape)).encode())
    return digest.hexdigest()


def describe_stop(reason: str | None, steps: int) -> str:
    """How a training ended, in words (``state.stop_reason`` of the engine)."""
    reason = reason or ""
    if reason.startswith("EarlyStopping"):
        return f"converged (validation plateau) after {steps} steps"
    if reason.startswith("max_steps"):
        return f"step count reached ({steps} steps)"
    if reason.startswith("TimeBudget"):
        return f"safety time cap after {steps} steps (result depends on machine speed)"
    if reason == "cancelled":
        return "cancelled"
    return f"{reason or 'epochs done'} ({steps} steps)"


class VariantGridder:
    """Grids ``FrameInputs`` with the configured variant, caching models and kernels.

    Per calibration key: one coil compression (from its first frame) and one trained model;
    a new key's model is warm-started from the last trained model of the same shape.
    """

    def __init__(self, config: IgrogConfig) -> None:
        self.config = config
        self.spec = get_variant(config.variant)
        try:
            self.device = resolve_device(config.gridding.device)
        except ValueError as error:  # e.g. cuda on a machine without CUDA
            raise ConfigError(f"gridding.device: {error}") from None
        self.inferencer = Inferencer(self.device)
        self._models: dict[tuple, torch.nn.Module] = {}
        self._estimates: dict[tuple, float] = {}
        """Estimated gridding NRMSE (held-out pairs) per calibration key."""
        self._coil_transforms: dict[tuple, CoilTransform] = {}
        self._last_model: torch.nn.Module | None = None
        self.kernel_cache = KernelCache(int(config.gridding.cache_mb * 2**20))
        self.trainings = 0
        self.cancelled = threading.Event()
        """Set by ``cancel()``: training stops at its next step and ``grid`` refuses new work."""

    def cancel(self) -> None:
        """Abandon the work (thread-safe): e.g. the stream being served is gone."""
        self.cancelled.set()

    def _check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise GriddingCancelled("gridding was cancelled")

    def coil_transform(self, frame: FrameInputs) -> CoilTransform:
        """The coil compression of the frame's calibration key (made from its first frame)."""
        transform = self._coil_transforms.get(frame.calibration_key)
        if transform is None or transform.num_physical != frame.num_coils:
            transform = frame_coil_transform(frame, self.config.gridding)
            self._coil_transforms[frame.calibration_key] = transform
        return transform

    def grid(self, frame: FrameInputs) -> GriddedKSpace:
        """Gridded k-space of one frame (trains on first use of its calibration).

        The result is in the frame's physical coils (``gridding.output_coils = physical``) or
        in its virtual coils (``info["coil_compression"]`` then holds the matrix).

        Raises:
            GriddingCancelled: ``cancel()`` was called (before or during the work).
            InputDataError: the frame's samples are all zero or overflow float32 (``check_frame_values``).
        """
        self._check_cancelled()
        started = time.perf_counter()
        check_frame_values(frame)
        transform = self.coil_transform(frame)
        frame = to_virtual_coils(frame, transform)
        key = (frame.calibration_key, trajectory_fingerprint(frame))
        info: dict = {"variant": self.config.variant, "device": str(self.device)}
        cached = self.kernel_cache.get(key)
        if cached is not None and self._datamodule_reusable(cached[0], frame):
            datamodule, kernels = cached
            datamodule.frame = frame
            infer_start = time.perf_counter()
            result = datamodule.grid(kernels)
            info["gridding_s"] = time.perf_counter() - infer_start
            info["path"] = "cached kernels"
        else:
            model = self._models.get(frame.calibration_key)
            datamodule = self.spec.datamodule(frame, self.config, with_training=model is None)
            datamodule.preprocess()
            if model is None:
                self._check_cancelled()
                model = self._train(datamodule, info)
                self._check_cancelled()
                self._models[frame.calibration_key] = model
                info["path"] = "trained"
            else:
                info["path"] = "reused model"
            geometry = datamodule.geometry
            size = kernel_bytes(geometry.num_samples, frame.num_coils, geometry.source_index.shape[1])
            datamodule.keep_kernels = self.kernel_cache.admits(size, key)
            infer_start = time.perf_counter()
            datamodule.postprocess(self.inferencer.iterate(model, datamodule.test_dataloader()))
            info["gridding_s"] = time.perf_counter() - infer_start
            for name in ("pairs", "val_pairs"):  # the cache keeps kernels and geometry, not training data
                if hasattr(datamodule, name):
                    setattr(datamodule, name, None)
            if datamodule.keep_kernels and datamodule.kernels is not None:
                self.kernel_cache.put(key, datamodule, datamodule.kernels)
            else:
                datamodule.kernels = None
            result = datamodule.data
        info["estimated_nrmse"] = self._estimates.get(frame.calibration_key, float("nan"))
        result = self._output_coils(result, transform, info)
        info["total_s"] = time.perf_counter() - started
        result.info.update(info)
        return result

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

    def _datamodule_reusable(self, datamodule, frame: FrameInputs) -> bool:
        """Whether cached kernels fit ``frame``: a datamodule may say no with ``reusable_for(frame)``
        (e.g. fieldcorr's time-dependent kernels when the sample times differ)."""
        check = getattr(datamodule, "reusable_for", None)
        return True if check is None else bool(check(frame))

    def _refit_pairs(self, datamodule) -> dict[str, torch.Tensor] | None:
        """The first ``training.refit_pairs`` training pairs (they are in random order)."""
        dataset = datamodule.train_dataloader().dataset
        tensors = getattr(dataset, "tensors", None)
        if not self.config.training.refit_head or not isinstance(tensors, dict):
            return None
        count = self.config.training.refit_pairs
        return {name: tensor[:count] for name, tensor in tensors.items()}

    def _warm_start(self, model: torch.nn.Module) -> bool:
        """Load the last trained model's weights into ``model`` when the shapes agree (the
        whitening buffers stay the new calibration's). Returns whether it did."""
        previous = self._last_model
        if previous is None or not self.config.training.warm_start:
            return False
        mine, theirs = model.state_dict(), previous.state_dict()
        if mine.keys() != theirs.keys() or any(mine[k].shape != theirs[k].shape for k in mine):
            return False
        model.load_state_dict({k: (mine[k] if k.endswith("whitening") else theirs[k].clone()) for k in mine})
        return True

    def _train(self, datamodule, info: dict) -> torch.nn.Module:
        training = self.config.training
        with _MODEL_INIT_LOCK, torch.random.fork_rng(devices=[]):  # seeded init; other sessions wait, RNG restored
            torch.manual_seed(training.seed)
            model = self.spec.model(datamodule, self.config)
        warm = self._warm_start(model)
        loss = self.spec.loss(self.config)
        train_loader = datamodule.train_dataloader()
        val_loader = datamodule.val_dataloader()
        trainer = build_trainer(
            model,
            loss,
            training,
            str(self.device),
            val_loader=val_loader,
            steps_per_epoch=len(train_loader),
            refit_pairs=self._refit_pairs(datamodule),
            cancel=self.cancelled,
            max_steps=min(training.warm_start_steps, training.max_steps) if warm else training.max_steps,
        )
        started = time.perf_counter()
        state = trainer.fit(train_loader)
        self.trainings += 1
        self._last_model = model
        info["training_s"] = time.perf_counter() - started
        info["training_steps"] = state.step
        info["training_loss"] = state.loss
        info["training_stop"] = describe_stop(state.stop_reason, state.step)
        info["warm_start"] = warm
        info["calibration"] = getattr(datamodule.block, "source", "")
        if "refit_loss" in state.metrics:
            info["refit_loss"] = state.metrics["refit_loss"]
        if "val_loss" in state.metrics:
            info["validation_loss"] = state.metrics["val_loss"]
        estimate = held_out_nrmse(model, val_loader, loss, self.inferencer) if val_loader is not None else math.nan
        self._estimates[datamodule.frame.calibration_key] = estimate
        logger.info(
            "trained %s kernels%s in %.1f s: %s, loss %.3g, estimated gridding NRMSE %.3g (held-out pairs)",
            self.config.variant, " (warm start)" if warm else "", info["training_s"], info["training_stop"],
            state.loss or float("nan"), estimate,
        )
        return model
