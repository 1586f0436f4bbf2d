"""The fixed value sets of the configuration: one tuple (or mapping) each, used by validation,
the standard files, the documentation and the command line."""

from __future__ import annotations

from typing import NamedTuple

from igrog_gadget.config.spec import FieldSpec

TRAJECTORY_UNITS = ("auto", "grid", "normalized")
GRID_DIMENSIONS = ("auto", "2d", "3d")
#: ``cuda:N`` stands for any device index (``spec.matches_choice``).
DEVICES = ("auto", "cpu", "cuda", "cuda:N")
COIL_COMPRESSION = ("auto", "on", "off")
OUTPUT_COILS = ("physical", "virtual")
CALIBRATION_SOURCES = ("auto", "acs", "self", "joint")
#: Activation name -> ``torch.nn`` module class name (``igrog_gadget.arch.mlp`` builds them).
ACTIVATIONS: dict[str, str] = {"relu": "ReLU", "gelu": "GELU", "silu": "SiLU", "tanh": "Tanh"}
#: A subset of ``engine.optim.OPTIMIZERS`` (the engine is torch-bound; a test keeps them in step).
OPTIMIZERS = ("adam", "adamw", "sgd")
FIELDCORR_MODES = ("hybrid", "kernel")
KERNEL_FITS = ("closed_form", "network", "auto")
IMAGE_SOURCES = ("auto", "series", "file", "data")
PAIR_POSITIONS = ("auto", "trajectory", "random")
IMAGE_METHODS = ("auto", "sense", "rss")
DATA_WEIGHTINGS = ("hits", "mask")


class SchedulerParam(NamedTuple):
    """One parameter of a learning-rate scheduler (``[training.scheduler_params]``)."""

    default: float | int
    spec: FieldSpec


#: Scheduler name -> its parameters (a subset of ``engine.optim.SCHEDULERS``). Parameter names
#: are unique across schedulers.
SCHEDULERS: dict[str, dict[str, SchedulerParam]] = {
    "cosine": {
        "min_lr_ratio": SchedulerParam(
            0.02,
            FieldSpec("final learning rate of the cosine annealing, as a share of training.learning_rate",
                      minimum=0.0, maximum=1.0),
        ),
    },
    "step": {
        "step_size": SchedulerParam(0, FieldSpec("epochs between two decays (0 = training.epochs // 3, at least 1)", minimum=0)),
        "gamma": SchedulerParam(0.3, FieldSpec("factor of each decay", minimum=0.0, maximum=1.0, minimum_excluded=True)),
    },
    "none": {},
}


def scheduler_param(name: str) -> SchedulerParam | None:
    """The parameter ``name`` of whichever scheduler has it (names are unique), or None."""
    for params in SCHEDULERS.values():
        if name in params:
            return params[name]
    return None
