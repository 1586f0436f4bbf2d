"""Former spellings of configuration keys, still read (with a warning naming the new one).

The 3D settings were ``_3d`` fields beside the 2D ones (``training.max_steps_3d``); they are now
the entries of the section's ``volume`` table (``training.volume.max_steps``). Files written for
the old spelling, ``--set`` overrides and gadget properties keep working.
"""

from __future__ import annotations

from typing import NamedTuple


class Renamed(NamedTuple):
    """Where a former key now lives."""

    key: str
    """The key's spelling now (``section.volume.field``)."""
    zero_keeps_2d: bool = False
    """0 meant "the 2D value": the entry is then dropped from the volume table, and the 3D frame
    takes the section's own value (``load_config`` writes it into the table at the end)."""


#: Former key (``section.field``) -> its spelling now.
RENAMED: dict[str, Renamed] = {
    "calibration.num_training_pairs_3d": Renamed("calibration.volume.num_training_pairs", zero_keeps_2d=True),
    "training.max_steps_3d": Renamed("training.volume.max_steps", zero_keeps_2d=True),
    "training.batch_size_3d": Renamed("training.volume.batch_size", zero_keeps_2d=True),
    "training.learning_rate_3d": Renamed("training.volume.learning_rate", zero_keeps_2d=True),
    "training.fit_3d": Renamed("training.volume.fit"),
    "training.cpu_threads_3d": Renamed("training.volume.cpu_threads"),
}
