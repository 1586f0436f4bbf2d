"""``load_config``: a variant's defaults, its standard file, a user file and overrides, validated."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from igrog_gadget.config.assign import apply_mapping, apply_overrides, complete_volume_tables
from igrog_gadget.config.igrog_config import IgrogConfig
from igrog_gadget.config.standard_files import read_toml, standard_config_path


def load_config(variant: str = "basic", path: str | Path | None = None, overrides: Iterable[str] = ()) -> IgrogConfig:
    """Defaults of ``variant``, its standard file, then the user file ``path``, then overrides
    (``section.field=value``); validated.

    Raises:
        ConfigError: naming the file or override and the field, value and what is allowed.
    """
    standard = standard_config_path(variant)
    config = IgrogConfig.defaults(variant)
    apply_mapping(config, read_toml(standard), str(standard))
    if path is not None:
        apply_mapping(config, read_toml(path), str(path))
    apply_overrides(config, overrides)
    return complete_volume_tables(config).validate()
