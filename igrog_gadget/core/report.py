"""What each gridded frame reports: typed records instead of a dictionary of strings.

``FrameReport`` travels with every gridded frame (``GriddedKSpace.report``, ``GriddedFrame.report``)
to replay's ``igrog.frames`` header entry, the gadget's image meta and log lines, batch and the
benchmarks. Its ``training`` (a ``TrainingReport``) is set on the first frame gridded with a
newly trained model only: later frames of that model carry ``None``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the engine (and torch) are not needed to read a report
    from igrog_engine import StopReason

#: ``TrainingReport.stop`` of a closed-form fit.
CLOSED_FORM_STOP = "closed form (no gradient steps)"


class GriddingPath(str, Enum):
    """How a frame's kernels came about (compares equal to its words)."""

    TRAINED = "trained"
    """The first frame gridded with a newly trained model."""
    REUSED_MODEL = "reused model"
    """A model trained before, kernels made for this frame's trajectory."""
    CACHED_KERNELS = "cached kernels"
    """Kernels made for an earlier frame of the same trajectory and model."""


@dataclass(frozen=True)
class TrainingReport:
    """One training (a calibration key's model): how it was fitted and how it ended."""

    fit: str
    """``IgrogConfig.kernel_fit()``: closed_form or network."""
    calibration: str
    """Where the calibration came from, in words (``acs``, ``joint``, ``self-calibration``, ``images (...)``)."""
    trained_from: str
    """``whole frame``, or ``first N readouts`` (an early training)."""
    steps: int
    """Gradient steps (0 for a closed-form fit)."""
    stop: str
    """How it ended, in words (``igrog_gadget.planning.training.describe_stop``)."""
    stop_reason: StopReason | None
    """The engine's stop reason (None for a closed-form fit)."""
    loss: float | None
    """Last training loss (None for a closed-form fit)."""
    warm_start: bool
    warm_start_model: str | None
    """The stored model it started from (``training.warm_start_dir``), None otherwise."""
    seconds: float
    """Fit time (gradient steps; the closed form's model set-up)."""
    preparation_s: float
    """Coil compression, calibration and training pairs, before the fit."""
    job_s: float
    """Preparation, fit and held-out error, in all."""
    validation_loss: float | None = None
    refit_loss: float | None = None


@dataclass(frozen=True)
class CoilReport:
    """The coils a frame was gridded in and given out in."""

    coils: int
    """Physical coils of the data."""
    virtual_coils: int
    """Coils the kernels worked in (= ``coils`` without compression)."""
    prewhitened: bool
    compression_energy: float | None = None
    """Share of the signal energy the virtual coils keep (None: not compressed)."""
    compression: np.ndarray | None = None
    """(virtual, physical) complex matrix when the output is in virtual coils (None otherwise)."""


@dataclass(frozen=True)
class FieldCorrectionReport:
    """fieldcorr: where the B0 map came from and how the field was removed."""

    b0map: str
    mode: str
    """hybrid or kernel."""
    time_segments: int | None = None
    """hybrid: time segments of the Cartesian-side correction."""
    segmentation_error: float | None = None


@dataclass
class FrameReport:
    """How one frame was gridded. Filled by the gridder (``FrameGridder.grid``) in stages."""

    variant: str
    device: str
    path: GriddingPath = GriddingPath.REUSED_MODEL
    training: TrainingReport | None = None
    """Set on the first frame of a newly trained model (see the module docstring)."""
    retrained: str | None = None
    """Why the frame's key was trained again before gridding it (None: it was not)."""
    coils: CoilReport | None = None
    centre: str | None = None
    """The block that replaced the gridded centre (``calibration.fill_centre``), in words."""
    field_correction: FieldCorrectionReport | None = None
    estimated_nrmse: float = math.nan
    """Estimated k-space NRMSE of the frame (see ``igrog_gadget.core.error_estimate``)."""
    estimated_centre_nrmse: float | None = None
    """The same within |k| < ``CENTRE_RADIUS`` (closed-form fits with a noise estimate)."""
    estimated_kernel_misfit: float | None = None
    gridding_s: float = 0.0
    """Kernels (made or reused), their application and the centre fill."""
    waited_for_training_s: float = 0.0
    total_s: float = 0.0

    def header_facts(self) -> dict[str, object]:
        """The facts ``igrog.frames`` (replay's output header) lists per frame, JSON-ready:
        finite floats rounded to 6 digits, absent values left out."""
        training = self.training
        coils = self.coils
        facts: dict[str, object] = {
            "path": self.path.value,
            "training_s": training.seconds if training else None,
            "gridding_s": self.gridding_s,
            "training_steps": training.steps if training else None,
            "training_stop": training.stop if training else None,
            "warm_start": training.warm_start if training else None,
            "warm_start_model": training.warm_start_model if training else None,
            "estimated_nrmse": self.estimated_nrmse,
            "calibration": training.calibration if training else None,
            "trained_from": training.trained_from if training else None,
            "retrained": self.retrained,
            "coils": coils.coils if coils else None,
            "virtual_coils": coils.virtual_coils if coils else None,
            "prewhitened": coils.prewhitened if coils else None,
            "compression_energy": coils.compression_energy if coils else None,
        }
        return {name: _json_value(value) for name, value in facts.items() if _json_value(value) is not None}


def _json_value(value: object) -> object:
    """A fact as JSON takes it: floats rounded (None when not finite), numpy scalars as Python's."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return round(float(value), 6) if math.isfinite(value) else None
    return value
