"""The declaration of one configuration field: its documentation, bounds, choices, resource limit
and 3D default, in one place (``setting(...)`` in the section dataclasses of ``schema.py``).

Everything else reads these declarations: validation (``check_value``), the resource limits
(``igrog_gadget.limits``), the standard files and the reference documentation (``render``), and
the per-dimension settings (``for_dims``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from igrog_gadget.errors import ConfigError

#: Metadata key of a field's ``FieldSpec``.
SPEC = "igrog_spec"
#: The section field that holds a section's 3D settings (``[training.volume]``).
VOLUME = "volume"


@dataclass(frozen=True)
class FieldSpec:
    """What one field accepts and means (its name, type and default are the dataclass field's)."""

    doc: str
    """What the field does (one paragraph; the standard files and the reference show it)."""
    minimum: float | None = None
    """Smallest value allowed (None: no lower bound)."""
    maximum: float | None = None
    """Largest value allowed whatever the resources (None: no upper bound of its own)."""
    minimum_excluded: bool = False
    """The minimum itself is not allowed (``> minimum``)."""
    maximum_excluded: bool = False
    """The maximum itself is not allowed (``< maximum``)."""
    zero: str = ""
    """When set, 0 is allowed besides the range and means this (e.g. "no check")."""
    choices: tuple[str, ...] = ()
    """The values allowed (a choice ending in ``:N`` stands for any index, ``cuda:N``)."""
    limit: str = ""
    """Name of the ``ResourceLimits`` field bounding the value (what memory and time allow; the
    server's operator sets it)."""
    volume_default: Any = None
    """Default of a 3D frame's setting (None: one setting for every frame). A field with one may
    be set differently for 3D frames in its section's ``volume`` table."""
    volume_doc: str = ""
    """Why the 3D default differs (measurements)."""


def setting(default: Any, doc: str, **declared: Any) -> Any:
    """A configuration field: its default and its ``FieldSpec`` (``doc`` and ``declared``; the
    texts as one paragraph)."""
    if "volume_doc" in declared:
        declared["volume_doc"] = _paragraph(declared["volume_doc"])
    return field(default=default, metadata={SPEC: FieldSpec(_paragraph(doc), **declared)})


def table(factory: Callable[[], dict[str, Any]], doc: str) -> Any:
    """A configuration field holding a TOML table (``[section.name]``), made by ``factory``."""
    return field(default_factory=factory, metadata={SPEC: FieldSpec(_paragraph(doc))})


def _paragraph(text: str) -> str:
    return " ".join(text.split())


def spec_of(item: dataclasses.Field) -> FieldSpec:
    """The declaration of a section dataclass field."""
    spec = item.metadata.get(SPEC)
    if spec is None:
        raise TypeError(f"configuration field {item.name} is not declared with setting() or table()")
    return spec


def default_of(item: dataclasses.Field) -> Any:
    """The dataclass default of a field (a fresh table for a table field)."""
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return item.default


def fields_of(section: Any) -> dict[str, dataclasses.Field]:
    """Name -> dataclass field of a section class or instance, in declaration order."""
    return {item.name: item for item in dataclasses.fields(section)}


def per_dimension_fields(section: Any) -> dict[str, dataclasses.Field]:
    """The fields of a section that a 3D frame may set differently (those with a volume default)."""
    return {name: item for name, item in fields_of(section).items() if spec_of(item).volume_default is not None}


def volume_defaults(section: type) -> dict[str, Any]:
    """The default ``volume`` table of a section class: each per-dimension field's 3D default."""
    return {name: spec_of(item).volume_default for name, item in per_dimension_fields(section).items()}


def for_dims(section: Any, dims: int) -> Any:
    """``section`` with the settings of a ``dims``-D frame: for 3D, the fields its ``volume``
    table sets replaced by those values; otherwise ``section`` itself."""
    if dims != 3 or not hasattr(section, VOLUME):
        return section
    return dataclasses.replace(section, **getattr(section, VOLUME))


# --- values --------------------------------------------------------------------------------
def matches_choice(value: Any, choices: tuple[str, ...]) -> bool:
    """Whether ``value`` is one of ``choices`` (``cuda:N`` matches ``cuda:0``, ``cuda:1``, ...)."""
    if value in choices:
        return True
    return isinstance(value, str) and any(
        choice.endswith(":N") and value.startswith(choice[:-1]) and value[len(choice) - 1:].isdigit()
        for choice in choices
    )


def allowed_range(spec: FieldSpec) -> str:
    """The values a numeric field allows, as a message writes them (">= 1", "in (0, 1]",
    "0 (no check) or >= 1"); empty when it has no bounds."""
    low, high = spec.minimum, spec.maximum
    if low is not None and high is not None:
        text = f"in {'(' if spec.minimum_excluded else '['}{low:g}, {high:g}{')' if spec.maximum_excluded else ']'}"
    elif low is not None:
        text = f"{'>' if spec.minimum_excluded else '>='} {low:g}"
    elif high is not None:
        text = f"{'<' if spec.maximum_excluded else '<='} {high:g}"
    else:
        return ""
    return f"0 ({spec.zero}) or {text}" if spec.zero else text


def in_range(value: float, spec: FieldSpec) -> bool:
    """Whether a number fits the declared bounds (NaN never does where a bound exists)."""
    if spec.zero and value == 0:
        return True
    if spec.minimum is not None and not (value > spec.minimum if spec.minimum_excluded else value >= spec.minimum):
        return False
    if spec.maximum is not None and not (value < spec.maximum if spec.maximum_excluded else value <= spec.maximum):
        return False
    return True


def check_value(name: str, value: Any, spec: FieldSpec) -> None:
    """Refuse a value outside the declared choices or bounds.

    Raises:
        ConfigError: naming the field, the allowed values and the value.
    """
    if spec.choices and not matches_choice(value, spec.choices):
        raise ConfigError(f"{name} must be one of {', '.join(spec.choices)}; got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not in_range(value, spec):
        raise ConfigError(f"{name} must be {allowed_range(spec)}, got {value!r}")


def toml_value(value: Any) -> str:
    """A scalar as TOML writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)
