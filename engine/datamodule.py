"""Abstract data module: ingests data, serves loaders, turns model outputs into results."""

from __future__ import annotations

import abc
import logging
from typing import Any

from torch.utils.data import DataLoader

logger = logging.getLogger(__name__)


class DataModule(abc.ABC):
    """Owns a data set's life cycle for the engine.

    Call order: ``preprocess()`` (ingest), then ``train_dataloader()`` /
    ``val_dataloader()`` for training, ``test_dataloader()`` for inference, and
    ``postprocess(outputs)`` with the model outputs over ``test_dataloader()``
    (one entry per batch, see ``Inferencer.run``), which fills ``self.data``.
    """

    #: Results produced by ``postprocess``; ``None`` until then.
    data: Any = None

    @abc.abstractmethod
    def preprocess(self) -> DataModule:
        """Ingest and prepare the data; return ``self``."""

    @abc.abstractmethod
    def train_dataloader(self) -> DataLoader:
        """Loader over the training batches."""

    def val_dataloader(self) -> DataLoader | None:
        """Loader over validation batches, or ``None`` (the default) for no validation."""
        return None

    @abc.abstractmethod
    def test_dataloader(self) -> DataLoader:
        """Loader over the batches to run inference on."""

    @abc.abstractmethod
    def postprocess(self, outputs: Any) -> DataModule:
        """Turn the model outputs over ``test_dataloader()`` (one entry per batch, in whatever
        container the caller hands them: a list, a stream) into ``self.data``; return ``self``."""
