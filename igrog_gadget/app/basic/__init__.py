"""The basic iGROG variant: kernels trained from k-space calibration data (``BasicDataModule``),
with the shared ``KernelModel`` and ``KernelPredictionLoss`` (``igrog_gadget.core``)."""

from igrog_gadget.app.basic.datamodule import BasicDataModule

__all__ = ["BasicDataModule"]
