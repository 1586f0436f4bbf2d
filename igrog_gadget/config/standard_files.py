"""The variants: one standard file ``<variant>.toml`` each in this package's folder, which says
which sections and fields the variant uses, and each variant's own defaults."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from igrog_gadget.config.schema import OPTIONAL_SECTIONS, SECTIONS
from igrog_gadget.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent


def _variant_names() -> tuple[str, ...]:
    return tuple(sorted(path.stem for path in CONFIG_DIR.glob("*.toml")))


#: The variants: one standard file ``<variant>.toml`` each in this package's folder.
VARIANTS: tuple[str, ...] = _variant_names()

#: Variant -> the defaults it does not share with the others: ``section.field`` (or
#: ``section.volume.field``, a 3D frame's setting) -> value. Applied over the table's defaults
#: (``IgrogConfig.defaults``) and written into the variant's standard file (a test keeps the keys
#: equal to ``VARIANTS``). Empty: every variant has the table's defaults.
VARIANT_DEFAULTS: dict[str, dict[str, Any]] = {
    "basic": {},
    "fieldcorr": {},
    "image_based": {},
}


def variants() -> tuple[str, ...]:
    """Names of the variants (the standard files present)."""
    return VARIANTS


def check_variant(variant: str) -> None:
    """Refuse a name that is no variant.

    Raises:
        ConfigError: naming the variants.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"variant must be one of {', '.join(VARIANTS)}; got {variant!r}")


def standard_config_path(variant: str) -> Path:
    """The standard configuration file of a variant."""
    check_variant(variant)
    return CONFIG_DIR / f"{variant}.toml"


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML configuration file, with errors naming the file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"configuration file {path} is a directory, not a TOML file")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"configuration file {path} is not valid TOML: {error}") from None
    except UnicodeDecodeError as error:  # a binary file
        raise ConfigError(
            f"configuration file {path} is not a text (UTF-8) file: byte {error.start} cannot be decoded"
        ) from None
    except OSError as error:  # a directory, no permission, a device that cannot be read
        raise ConfigError(f"configuration file {path} cannot be read: {error.strerror or error}") from None


@functools.lru_cache(maxsize=None)
def standard_layout(variant: str) -> dict[str, tuple[str, ...]]:
    """Section -> field names of the variant's standard file (what the variant uses)."""
    path = standard_config_path(variant)
    mapping = read_toml(path)
    if mapping.get("variant") != variant:
        raise ConfigError(f"configuration file {path} says variant = {mapping.get('variant')!r}, not {variant!r}")
    layout = {}
    for key, value in mapping.items():
        if key == "variant":
            continue
        if key not in SECTIONS or not isinstance(value, dict):
            raise ConfigError(f"configuration file {path}: unknown section {key!r}; known: {', '.join(SECTIONS)}")
        layout[key] = tuple(value)
    missing = [name for name in SECTIONS if name not in OPTIONAL_SECTIONS and name not in layout]
    if missing:
        raise ConfigError(f"configuration file {path} lacks the section(s) {', '.join(missing)}")
    return layout


def section_not_used(section: str, variant: str) -> str:
    """Why a section is refused (the variant's standard file has no such section)."""
    has = ", ".join(standard_layout(variant))
    return f"section [{section}] is not used by variant {variant!r} (its sections: {has})"


def field_not_used(section: str, name: str, variant: str) -> str:
    """Why a field is refused (the variant's standard file does not list it)."""
    has = ", ".join(standard_layout(variant)[section])
    return (
        f"{section}.{name} is not used by variant {variant!r}; its [{section}] fields are: {has} "
        f"(see {standard_config_path(variant).name})"
    )
