"""Generic, domain-agnostic PyTorch training engine (callbacks, trainer, inferencer)."""

from igrog_engine.callbacks import (
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
from igrog_engine.datamodule import DataModule
from igrog_engine.device import move_to_device, resolve_device
from igrog_engine.inferencer import Inferencer
from igrog_engine.optim import (
    OptimizerConfig,
    SchedulerConfig,
    SchedulerHandle,
    build_optimizer,
    build_scheduler,
)
from igrog_engine.state import StopReason, TrainingState
from igrog_engine.trainer import Trainer, TrainerConfig

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
    "StopReason",
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
