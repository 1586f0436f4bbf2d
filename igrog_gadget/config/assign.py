"""Setting configuration values: from a TOML table, a ``section.field=value`` string or a
variant's defaults. Here a value gets its field's type, table entries are merged and former
spellings are translated; whether the value is allowed is ``validate``'s question."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from igrog_gadget.config.aliases import RENAMED
from igrog_gadget.config.choices import SCHEDULERS, scheduler_param
from igrog_gadget.config.schema import SECTIONS
from igrog_gadget.config.spec import VOLUME, default_of, fields_of, per_dimension_fields
from igrog_gadget.config.standard_files import field_not_used, section_not_used, standard_layout
from igrog_gadget.errors import ConfigError

if TYPE_CHECKING:
    from igrog_gadget.config.igrog_config import IgrogConfig

logger = logging.getLogger(__name__)


def apply_mapping(config: IgrogConfig, mapping: Mapping[str, Any], origin: str) -> None:
    """Set what a parsed TOML file holds (``origin`` names the file in errors)."""
    if "variant" in mapping:
        value = mapping["variant"]
        if not isinstance(value, str):
            raise ConfigError(f"{origin}: variant must be a string, got {value!r}")
        if value != config.variant:
            raise ConfigError(f"configuration file {origin} is for variant {value!r}, not {config.variant!r}")
    for key, value in mapping.items():
        if key == "variant":
            continue
        if key not in SECTIONS or not isinstance(value, dict):
            known = ["variant", *SECTIONS]
            raise ConfigError(f"{origin}: unknown section {key!r}; known: {', '.join(known)}")
        for name, item in value.items():
            set_field(config, key, name, item, origin)


def apply_overrides(config: IgrogConfig, overrides: Iterable[str]) -> IgrogConfig:
    """Apply ``section.field=value`` strings (from the CLI or gadget properties); a table entry
    is ``section.table.key=value`` (``training.scheduler_params.gamma=0.5``,
    ``training.volume.max_steps=600``)."""
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override {override!r} must look like section.field=value")
        key, value = (part.strip() for part in override.split("=", 1))
        if "." not in key:
            raise ConfigError(f"override {override!r}: key must be section.field, e.g. training.max_seconds")
        section_name, name = key.split(".", 1)
        if section_name not in SECTIONS:
            raise ConfigError(f"override {override!r}: unknown section {section_name!r}; known: {', '.join(SECTIONS)}")
        set_field(config, section_name, name, value, f"override {override!r}")
    return config


def apply_defaults(config: IgrogConfig, defaults: Mapping[str, Any], origin: str) -> None:
    """Set ``section.field`` (or ``section.volume.field``) -> value pairs (a variant's defaults)."""
    for key, value in defaults.items():
        section_name, _, name = key.partition(".")
        if section_name not in SECTIONS or not name:
            raise ConfigError(f"{origin}: {key!r} is not section.field; sections: {', '.join(SECTIONS)}")
        set_field(config, section_name, name, value, origin)


def set_field(config: IgrogConfig, section_name: str, name: str, value: Any, origin: str) -> None:
    """Set ``section_name.name``; ``name`` may be ``table.key`` (an override of a table entry)
    or a former spelling (``RENAMED``: a warning names the new one)."""
    renamed = RENAMED.get(f"{section_name}.{name}")
    if renamed is not None:
        logger.warning("%s: %s.%s is a former spelling; write %s", origin, section_name, name, renamed.key)
        section_name, name = renamed.key.split(".", 1)
        if renamed.zero_keeps_2d and _means_zero(config, section_name, name, value, origin):
            _drop_volume_entry(config, section_name, name.split(".", 1)[1])
            return
    section = getattr(config, section_name, None)
    if section is None:
        raise ConfigError(f"{origin}: {section_not_used(section_name, config.variant)}")
    head, _, key = name.partition(".")
    known = fields_of(section)
    if head not in known:
        raise ConfigError(f"{origin}: unknown field {section_name}.{name}; known: {', '.join(sorted(known))}")
    if head not in standard_layout(config.variant)[section_name]:
        raise ConfigError(f"{origin}: {field_not_used(section_name, head, config.variant)}")
    current = getattr(section, head)
    if isinstance(current, dict):  # a table: training.scheduler_params, section.volume
        items = {key: value} if key else value
        if not isinstance(items, dict):
            raise ConfigError(f"{origin}: {section_name}.{head} must be a table, got {value!r}")
        entry = _volume_entry if head == VOLUME else _scheduler_entry
        values = {item_key: entry(section, section_name, item_key, item, origin) for item_key, item in items.items()}
        setattr(section, head, {**current, **values})
        return
    if key:
        raise ConfigError(f"{origin}: unknown field {section_name}.{name}; {section_name}.{head} is not a table")
    setattr(section, head, typed(f"{section_name}.{head}", value, default_of(known[head]), origin))


def complete_volume_tables(config: IgrogConfig) -> IgrogConfig:
    """Write the section's own value into every ``volume`` entry a former ``_3d = 0`` dropped,
    so that the configuration states each 3D setting (and ``to_toml`` reads back equal)."""
    for _, section in config.sections():
        table = getattr(section, VOLUME, None)
        if table is None:
            continue
        missing = {name: getattr(section, name) for name in per_dimension_fields(section) if name not in table}
        if missing:
            setattr(section, VOLUME, {**table, **missing})
    return config


def typed(where: str, value: Any, example: Any, origin: str) -> Any:
    """``value`` as the type of ``example`` (an override string read, an int widened to float).

    Raises:
        ConfigError: a value of another type, or a string that cannot be read as the type.
    """
    if isinstance(value, str) and not isinstance(example, str):
        value = coerce(where, value, example)
    elif isinstance(example, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not type(example):
        raise ConfigError(f"{origin}: {where} must be {type(example).__name__}, got {value!r}")
    return value


def coerce(name: str, text: str, example: Any) -> Any:
    """Convert an override string to the type of ``example``."""
    try:
        if isinstance(example, bool):
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if isinstance(example, int):
            return int(text)
        if isinstance(example, float):
            number = float(text)
            if not math.isfinite(number):
                raise ValueError(text)
            return number
    except ValueError:
        raise ConfigError(f"{name}: cannot read {text!r} as {type(example).__name__}") from None
    return text


def _volume_entry(section: Any, section_name: str, key: str, value: Any, origin: str) -> Any:
    """A ``volume`` table entry, converted to the type of the field it replaces."""
    per_dimension = per_dimension_fields(section)
    if key not in per_dimension:
        raise ConfigError(
            f"{origin}: {section_name}.{VOLUME}.{key} is not a 3D setting; "
            f"[{section_name}.{VOLUME}] takes: {', '.join(per_dimension)}"
        )
    return typed(f"{section_name}.{VOLUME}.{key}", value, default_of(per_dimension[key]), origin)


def _scheduler_entry(section: Any, section_name: str, key: str, value: Any, origin: str) -> Any:
    """A scheduler parameter, converted to its type (whether it fits the scheduler: ``validate``)."""
    where = f"{section_name}.scheduler_params.{key}"
    param = scheduler_param(key)
    if param is None:
        listing = "; ".join(f"{name}: {', '.join(params) or 'none'}" for name, params in SCHEDULERS.items())
        raise ConfigError(f"{origin}: unknown scheduler parameter {where}; known ({listing})")
    if isinstance(value, str):
        return coerce(where, value, param.default)
    if isinstance(param.default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _means_zero(config: IgrogConfig, section_name: str, name: str, value: Any, origin: str) -> bool:
    """Whether a former ``_3d`` value is 0 ("the 2D value"), read as the type of its field."""
    field_name = name.split(".", 1)[1]
    section = getattr(config, section_name)
    example = default_of(fields_of(section)[field_name])
    return typed(f"{section_name}.{name}", value, example, origin) == 0


def _drop_volume_entry(config: IgrogConfig, section_name: str, field_name: str) -> None:
    section = getattr(config, section_name)
    setattr(section, VOLUME, {key: value for key, value in getattr(section, VOLUME).items() if key != field_name})
