"""Text generated from the configuration table: the standard file of each variant and the
reference of every key (``docs/configuration.md``). ``scripts/write_config_files.py`` writes
them; tests fail when a file differs from its regeneration."""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
from pathlib import Path
from typing import Any, Mapping

from igrog_gadget.config.choices import SCHEDULERS
from igrog_gadget.config.igrog_config import IgrogConfig
from igrog_gadget.config.schema import SECTIONS
from igrog_gadget.config.spec import VOLUME, FieldSpec, allowed_range, per_dimension_fields, spec_of, toml_value
from igrog_gadget.config.standard_files import VARIANTS, standard_config_path, standard_layout

#: First lines of the generated part of a standard file (after its hand-written header comment).
GENERATED_NOTE = (
    "# Values and comments below are generated from the field table of igrog_gadget/config/schema.py\n"
    "# (python scripts/write_config_files.py --write); the keys listed are the fields this variant uses."
)
_WIDTH = 100


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> its documentation (the ``FieldSpec`` doc) of a section dataclass."""
    return {item.name: spec_of(item).doc for item in dataclasses.fields(cls)}


def describe(spec: FieldSpec) -> str:
    """What a field allows, as the standard files say it ("One of: a | b.", "Allowed: >= 1.")."""
    if spec.choices:
        return f"One of: {' | '.join(spec.choices)}."
    allowed = allowed_range(spec)
    return f"Allowed: {allowed}." if allowed else ""


def _comment(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, _WIDTH, initial_indent=indent + "# ", subsequent_indent=indent + "#   ")


def _header(path: Path) -> list[str]:
    """The hand-written comment lines at the top of a standard file."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    note = GENERATED_NOTE.splitlines()
    while lines[-len(note):] == note:
        lines = lines[: -len(note)]
    return lines


def _field_comment(name: str, spec: FieldSpec, section_name: str) -> str:
    text = " ".join(part for part in (spec.doc, describe(spec)) if part)
    if spec.volume_default is not None:
        text += f" 3D frames: {section_name}.{VOLUME}.{name}."
    return text


def render_standard_file(variant: str) -> str:
    """The standard file of ``variant`` as generated: its own header comment and field list,
    every field's default value (the variant's, ``IgrogConfig.defaults``) and documentation
    from the table."""
    path = standard_config_path(variant)
    layout = standard_layout(variant)
    defaults = IgrogConfig.defaults(variant)
    lines = [*_header(path), *GENERATED_NOTE.splitlines(), f'variant = "{variant}"']
    for section_name, section in defaults.sections():
        if section_name not in layout:
            continue
        cls = SECTIONS[section_name]
        lines += ["", f"[{section_name}]", *_comment(inspect.getdoc(cls) or section_name)]
        unused = [f.name for f in dataclasses.fields(cls) if f.name not in layout[section_name]]
        if unused:
            lines += _comment(f"Not used by {variant} (refused): {', '.join(unused)}.")
        tables = []
        for item in dataclasses.fields(cls):
            if item.name not in layout[section_name]:
                continue
            value = getattr(section, item.name)
            if isinstance(value, dict):
                tables.append(item)
                continue
            lines += ["", *_comment(_field_comment(item.name, spec_of(item), section_name)), f"{item.name} = {toml_value(value)}"]
        for item in tables:
            doc = spec_of(item).doc
            if item.name != VOLUME:
                doc += " The defaults, commented out:"
            lines += ["", f"[{section_name}.{item.name}]", *_comment(doc)]
            if item.name == VOLUME:
                lines += _volume_entries(section_name, section, layout[section_name])
            else:
                lines += _scheduler_entries()
    return "\n".join(lines) + "\n"


def _volume_entries(section_name: str, section: Any, used: tuple[str, ...]) -> list[str]:
    lines = []
    for name, item in per_dimension_fields(section).items():
        if name not in used or name not in section.volume:
            continue
        spec = spec_of(item)
        lines += ["", *_comment(f"{name} of a 3D frame: {spec.volume_doc}"), f"{name} = {toml_value(section.volume[name])}"]
    return lines


def _scheduler_entries() -> list[str]:
    lines = []
    for scheduler, params in SCHEDULERS.items():
        for name, param in params.items():
            lines += [*_comment(f"{scheduler}: {param.spec.doc}."), f"# {name} = {toml_value(param.default)}"]
    return lines


def check_standard_files() -> list[str]:
    """Names of the standard files that differ from their regeneration."""
    return [
        standard_config_path(variant).name
        for variant in VARIANTS
        if standard_config_path(variant).read_text() != render_standard_file(variant)
    ]


# --- the reference of every key ---------------------------------------------------------------
REFERENCE_INTRO = """\
# Configuration reference

<!-- Generated from igrog_gadget/config/schema.py by `python scripts/write_config_files.py --write`;
     edit the table there, not this file (a test fails when they differ). -->

Every key of the standard files `igrog_gadget/config/<variant>.toml`: its default, what it
allows and which variants use it. A `--config` file overrides any of them, `--set
section.field=value` any single one (a gadget: the `set` property); a value outside what is
allowed is refused with a `ConfigError` naming the key, the value and the range (exit code 2),
and so is a key the variant does not use. *Limit* is the resource limit (`igrog serve --limit
NAME=VALUE`, default shown) a value may not exceed.

3D frames (one `(nx, ny, nz)` grid) take the keys marked *3D* from the section's `volume` table
instead (`[training.volume]`, `--set training.volume.max_steps=600`); the former `_3d` keys
(`training.max_steps_3d`, ...) are still read, with a warning naming the new key.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _number(value: float) -> str:
    """An integral number without a fraction (2000000, 600), another shortest (0.5)."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _per_variant(values: dict[str, Any]) -> str:
    """A value common to the variants, with those that differ named: "`5` (fieldcorr: `3`)"."""
    common = next(iter(values.values()))
    others = [f"{variant}: `{toml_value(value)}`" for variant, value in values.items() if value != common]
    return f"`{toml_value(common)}`" + (f" ({', '.join(others)})" if others else "")


def _default_cell(section_name: str, name: str, spec: FieldSpec, users: list[str]) -> str:
    sections = {variant: getattr(IgrogConfig.defaults(variant), section_name) for variant in users}
    text = _per_variant({variant: getattr(section, name) for variant, section in sections.items()})
    if spec.volume_default is not None:
        text += "; 3D: " + _per_variant({variant: section.volume.get(name) for variant, section in sections.items()})
    return text


def _allowed_cell(spec: FieldSpec, limits: Mapping[str, float]) -> str:
    allowed = ", ".join(f"`{choice}`" for choice in spec.choices) if spec.choices else allowed_range(spec)
    if spec.limit:
        limit = limits.get(spec.limit)
        shown = f"{spec.limit} = {_number(limit)}" if limit is not None else spec.limit
        allowed = f"{allowed}; limit {shown}" if allowed else f"limit {shown}"
    return _cell(allowed) or "any"


def render_reference(limits: Mapping[str, float]) -> str:
    """The reference of every configuration key (Markdown); ``limits`` are the resource
    limits' default values by name (``dataclasses.asdict(ResourceLimits())``)."""
    lines = [REFERENCE_INTRO]
    for section_name, cls in SECTIONS.items():
        variants = [variant for variant in VARIANTS if section_name in standard_layout(variant)]
        lines += [f"## `[{section_name}]`", "", " ".join((inspect.getdoc(cls) or "").split()), ""]
        lines += ["| key | default | allowed | variants | what it does |", "|---|---|---|---|---|"]
        for item in dataclasses.fields(cls):
            spec = spec_of(item)
            users = [variant for variant in variants if item.name in standard_layout(variant)[section_name]]
            if not users:
                continue
            used = "all" if len(users) == len(VARIANTS) else ", ".join(users)
            if item.name == VOLUME:
                keys = ", ".join(f"`{name}`" for name in per_dimension_fields(cls))
                lines.append(f"| `[{section_name}.{VOLUME}]` | the 3D defaults | {keys} | {used} | {_cell(spec.doc)} |")
                continue
            if item.name == "scheduler_params":
                params = "; ".join(
                    f"{scheduler}: `{name}` (`{toml_value(param.default)}`, {allowed_range(param.spec)}, {param.spec.doc})"
                    for scheduler, entries in SCHEDULERS.items()
                    for name, param in entries.items()
                )
                lines.append(f"| `[{section_name}.scheduler_params]` | none set | {_cell(params)} | {used} | {_cell(spec.doc)} |")
                continue
            doc = spec.doc + (f" 3D: {spec.volume_doc}" if spec.volume_default is not None else "")
            lines.append(
                f"| `{item.name}` | {_default_cell(section_name, item.name, spec, users)} | "
                f"{_allowed_cell(spec, limits)} | {used} | {_cell(doc)} |"
            )
        lines.append("")
    return "\n".join(lines)
