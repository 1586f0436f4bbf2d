"""Grids frames with a variant: trains once per calibration, reuses kernels per trajectory.

Retraining rule: a model is trained the first time a ``calibration_key`` is seen (by
default the frame's slice, contrast and encode-step-2; see
``igrog_gadget.stream.buffer.CALIBRATION_KEY_FIELDS``) and
reused for every later frame with that key (repetitions, averages, sets, phases).
Kernels are recomputed only when the trajectory (or grid) differs from a cached one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np
import torch

from engine import Inferencer, resolve_device
from igrog_gadget.app.common.frame import FrameInputs, GriddedKSpace
from igrog_gadget.app.common.training import TORCH_THREADS_LOCK, build_trainer
from igrog_gadget.app.registry import get_variant
from igrog_gadget.config import IgrogConfig
from igrog_gadget.errors import ConfigError, GriddingCancelled

logger = logging.getLogger(__name__)

#: Serialises the seeded model initialisation (torch's CPU generator is process-wide).
_MODEL_INIT_LOCK = threading.Lock()


@contextlib.contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch CPU threads (None: unchanged), then restore."""
    if count is None or not TORCH_THREADS_LOCK.acquire(blocking=False):  # busy elsewhere: leave it
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
        TORCH_THREADS_LOCK.release()


def trajectory_fingerprint(frame: FrameInputs) -> str:
    """Hash of the trajectory, grid and coil count (kernels depend on nothing else)."""
    digest = hashlib.sha1()
    digest.update(np.ascontiguousarray(frame.traj, dtype=np.float32).tobytes())
    digest.update(repr((frame.matrix, frame.num_coils, frame.traj.shape)).encode())
    return digest.hexdigest()


class VariantGridder:
    """Grids ``FrameInputs`` with the configured variant, caching models and kernels."""

    def __init__(self, config: IgrogConfig) -> None:
        self.config = config
        self.spec = get_variant(config.variant)
        try:
            self.device = resolve_device(config.gridding.device)
        except ValueError as error:  # e.g. cuda on a machine without CUDA
            raise ConfigError(f"gridding.device: {error}") from None
        self.inferencer = Inferencer(self.device)
        self._models: dict[tuple, torch.nn.Module] = {}
        self._threads: dict[tuple, int] = {}
        """CPU thread count the training found fastest, per calibration key (used for inference)."""
        self._kernels: OrderedDict[tuple, tuple] = OrderedDict()
        self.max_cached_kernels = 4
        self.trainings = 0
        self.cancelled = threading.Event()
        """Set by ``cancel()``: training stops at its next step and ``grid`` refuses new work."""

    def cancel(self) -> None:
        """Abandon the work (thread-safe): e.g. the stream being served is gone."""
        self.cancelled.set()

    def _check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise GriddingCancelled("gridding was cancelled")

    def grid(self, frame: FrameInputs) -> GriddedKSpace:
        """Gridded k-space of one frame (trains on first use of its calibration).

        Raises:
            GriddingCancelled: ``cancel()`` was called (before or during the work).
        """
        self._check_cancelled()
        started = time.perf_counter()
        key = (frame.calibration_key, trajectory_fingerprint(frame))
        info: dict = {"variant": self.config.variant, "device": str(self.device)}
        cached = self._kernels.get(key)
        if cached is not None and self._datamodule_reusable(cached[0], frame):
            self._kernels.move_to_end(key)
            datamodule, kernels = cached
            datamodule.frame = frame
            result = datamodule.grid(kernels)
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
                if "cpu_threads" in info:
                    self._threads[frame.calibration_key] = int(info["cpu_threads"])
                info["path"] = "trained"
            else:
                info["path"] = "reused model"
            infer_start = time.perf_counter()
            with cpu_threads(self._threads.get(frame.calibration_key)):
                outputs = self.inferencer.run(model, datamodule.test_dataloader())
                # the Inferencer returns CPU tensors; kernels go back to the gridding device so that
                # kernel application (and fieldcorr's correction) run there too, and stay cached there
                datamodule.postprocess([output.to(self.device) for output in outputs])
            info["gridding_s"] = time.perf_counter() - infer_start
            for name in ("pairs", "val_pairs"):  # the cache keeps kernels and geometry, not training data
                if hasattr(datamodule, name):
                    setattr(datamodule, name, None)
            self._kernels[key] = (datamodule, datamodule.kernels)
            while len(self._kernels) > self.max_cached_kernels:
                self._kernels.popitem(last=False)
            result = datamodule.data
        info["total_s"] = time.perf_counter() - started
        result.info.update(info)
        return result

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

    def _train(self, datamodule, info: dict) -> torch.nn.Module:
        with _MODEL_INIT_LOCK, torch.random.fork_rng(devices=[]):  # seeded init; other sessions wait, RNG restored
            torch.manual_seed(self.config.training.seed)
            model = self.spec.model(datamodule, self.config)
        loss = self.spec.loss(self.config)
        train_loader = datamodule.train_dataloader()
        trainer = build_trainer(
            model,
            loss,
            self.config.training,
            str(self.device),
            val_loader=datamodule.val_dataloader(),
            steps_per_epoch=len(train_loader),
            refit_pairs=self._refit_pairs(datamodule),
            cancel=self.cancelled,
        )
        started = time.perf_counter()
        state = trainer.fit(train_loader)
        self.trainings += 1
        info["training_s"] = time.perf_counter() - started
        info["training_steps"] = state.step
        info["training_loss"] = state.loss
        info["calibration"] = getattr(datamodule.block, "source", "")
        if "cpu_threads" in state.metrics:
            info["cpu_threads"] = state.metrics["cpu_threads"]
        if "refit_loss" in state.metrics:
            info["refit_loss"] = state.metrics["refit_loss"]
        if "val_loss" in state.metrics:
            info["validation_loss"] = state.metrics["val_loss"]
        logger.info(
            "trained %s kernels in %.1f s (%d steps, loss %.3g, stop: %s)",
            self.config.variant, info["training_s"], state.step, state.loss or float("nan"), state.stop_reason or "epochs done",
        )
        return model
