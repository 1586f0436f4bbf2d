"""Trained kernel networks kept across scans (``training.warm_start_dir``).

A recon server sees the same coil array and protocol all day. With a store directory, the first
training of a scan starts from the network saved by the last scan with the same variant, grid,
coils, sources, trajectory family and network shape, and trains only ``training.warm_start_steps``;
the model it trained is then saved in its place. Only the network fit trains (the closed form
solves each scan's kernels from its own calibration and has nothing to start from). A stored
network whose error on the new scan's held-out pairs exceeds ``MISMATCH_RATIO`` times its error
on its own scan's (the coils were placed differently, another anatomy) is still started from, but
trains every step.

Files: ``<directory>/<key>.pt`` (``torch.save`` of the state dict, read back with
``weights_only=True``), written to a temporary file and renamed, so a reader sees a whole model
or none; concurrent scans with the same key leave the last one's. A file that cannot be read is
skipped with a warning (the scan trains from scratch), a store that cannot be written is logged:
neither fails a scan.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: Largest deviation (grid units) of a readout's samples from the line through its first and
#: last sample for the readout to count as straight (radial, kooshball, stack-of-stars spokes).
STRAIGHT_TOLERANCE = 0.01
#: A stored network trains every step, not only a refinement, when its error on the new scan's
#: held-out pairs exceeds this many times its error on its own scan's.
MISMATCH_RATIO = 1.5
#: Bumped when what a stored model means changes.
STORE_FORMAT = 1


def trajectory_family(traj: np.ndarray, lengths: np.ndarray | None = None) -> str:
    """``"lines"`` when every readout is straight, else ``"curves"`` (spirals, cones, rosettes).

    Args:
        traj: shape (readouts, samples, dims), grid units.
        lengths: shape (readouts,): samples of each readout (None: all).
    """
    points = traj.astype(np.float64)
    readouts, samples = points.shape[:2]
    counts = np.full(readouts, samples) if lengths is None else np.asarray(lengths, dtype=np.int64)
    counted = counts >= 3
    if not counted.any():
        return "lines"
    points, counts = points[counted], counts[counted]
    first = points[:, 0]
    direction = points[np.arange(len(points)), counts - 1] - first
    span = np.linalg.norm(direction, axis=1)
    if np.any(span == 0.0):
        return "curves"
    unit = direction / span[:, None]
    relative = points - first[:, None]
    along = np.einsum("rsd,rd->rs", relative, unit)
    deviation = np.linalg.norm(relative - along[..., None] * unit[:, None], axis=2)
    deviation[np.arange(samples)[None, :] >= counts[:, None]] = 0.0  # padding beyond each readout
    return "curves" if float(deviation.max()) > STRAIGHT_TOLERANCE else "lines"


@dataclass(frozen=True)
class StoredModelKey:
    """What a stored model must share with a scan to start its training."""

    variant: str
    dims: int
    matrix: tuple[int, ...]
    physical_coils: int
    virtual_coils: int
    family: str
    """``trajectory_family`` of the training inputs."""
    network: str
    """The state dict's parameter names and shapes (the network's configuration)."""

    @property
    def name(self) -> str:
        """File stem: readable fields, then a digest of all of them."""
        digest = hashlib.sha1(json.dumps({"format": STORE_FORMAT, **asdict(self)}, sort_keys=True).encode()).hexdigest()
        grid = "x".join(str(n) for n in self.matrix)
        return f"{self.variant}-{self.dims}d-{self.family}-{grid}-{self.physical_coils}c{self.virtual_coils}v-{digest[:12]}"


@dataclass(frozen=True)
class StoredModel:
    """A network of the store."""

    state: dict[str, torch.Tensor]
    held_out_error: float
    """Its error on the held-out pairs of the scan that trained it (``held_out_nrmse``; NaN: none)."""


def network_signature(state: dict[str, torch.Tensor]) -> str:
    """Names and shapes of a state dict's entries, e.g. ``"head.weight:64x512;..."``."""
    return ";".join(f"{name}:{'x'.join(str(n) for n in value.shape)}" for name, value in state.items())


class ModelStore:
    """The models of ``directory`` (made when the first model is saved)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, key: StoredModelKey) -> Path:
        return self.directory / f"{key.name}.pt"

    def load(self, key: StoredModelKey) -> StoredModel | None:
        """The stored model for ``key`` (on the CPU), or None when there is none or it cannot be
        read or does not fit the key (logged)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            content = torch.load(path, map_location="cpu", weights_only=True)
            model = StoredModel(dict(content["state"]), float(content["held_out_error"]))
        except Exception as error:  # noqa: BLE001 - a damaged store file only means a cold start
            logger.warning("warm-start store: cannot read %s (%s); training from scratch", path, error)
            return None
        if network_signature(model.state) != key.network:
            logger.warning("warm-start store: %s does not hold a network of this shape; training from scratch", path)
            return None
        return model

    def save(self, key: StoredModelKey, state: dict[str, torch.Tensor], held_out_error: float) -> Path | None:
        """Write ``state`` for ``key`` with its error on its own scan's held-out pairs (whole or
        not at all); the path, or None when it failed (logged)."""
        path = self.path(key)
        temporary = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{key.name}.", suffix=".tmp", dir=self.directory)
            with os.fdopen(handle, "wb") as stream:
                content = {
                    "format": STORE_FORMAT,
                    "state": {name: value.detach().cpu() for name, value in state.items()},
                    "held_out_error": float(held_out_error),
                }
                torch.save(content, stream)
            os.replace(temporary, path)
            temporary = None
        except OSError as error:
            logger.warning("warm-start store: cannot write %s (%s)", path, error.strerror or error)
            return None
        finally:
            if temporary is not None:
                try:
                    os.unlink(temporary)
                except OSError:
                    pass
        return path
