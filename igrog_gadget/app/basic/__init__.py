"""The basic iGROG variant: kernels trained from k-space calibration data."""

from igrog_gadget.app.basic.datamodule import BasicDataModule
from igrog_gadget.app.basic.loss import KernelPredictionLoss
from igrog_gadget.app.basic.model import BasicKernelModel

__all__ = ["BasicDataModule", "BasicKernelModel", "KernelPredictionLoss"]
