"""Generic, domain-agnostic PyTorch training engine (callbacks, trainer, inferencer)."""

from engine.callbacks import (
    EVENTS,
    AbstractTrainingCallback,
    CallbackDependencyError,
    EarlyStopping,
    GradientClipping,
    LossLogger,
    StepCounter,
    TimeBudget,
    Validation,
    order_callbacks,
)
from engine.datamodule import DataModule
from engine.device import move_to_device, resolve_device
from engine.inferencer import Inferencer
from engine.optim import (
    OptimizerConfig,
    SchedulerConfig,
    SchedulerHandle,
    build_optimizer,
    build_scheduler,
)
from engine.state import TrainingState
from engine.trainer import Trainer, TrainerConfig

__all__ = [
    "EVENTS",
    "AbstractTrainingCallback",
    "CallbackDependencyError",
    "DataModule",
    "EarlyStopping",
    "GradientClipping",
    "Inferencer",
    "LossLogger",
    "OptimizerConfig",
    "SchedulerConfig",
    "SchedulerHandle",
    "StepCounter",
    "TimeBudget",
    "Trainer",
    "TrainerConfig",
    "TrainingState",
    "Validation",
    "build_optimizer",
    "build_scheduler",
    "move_to_device",
    "order_callbacks",
    "resolve_device",
]
