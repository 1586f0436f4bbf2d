"""``IgrogConfig``: one section of each kind (``schema.SECTIONS``), those its variant's standard
file lists, with the settings of a frame's dimensions (``for_dims``), validation and TOML text."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple

from igrog_gadget.config.assign import apply_defaults
from igrog_gadget.config.schema import (
    OPTIONAL_SECTIONS,
    SECTIONS,
    CalibrationConfig,
    FieldCorrectionConfig,
    GriddingConfig,
    ImageCalibrationConfig,
    ModelConfig,
    OutputConfig,
    ReconConfig,
    TrainingConfig,
)
from igrog_gadget.config.spec import VOLUME, FieldSpec, fields_of, for_dims, spec_of, toml_value
from igrog_gadget.config.validate import validate_config
from igrog_gadget.config.standard_files import VARIANT_DEFAULTS, VARIANTS, check_variant, standard_layout


class ConfiguredValue(NamedTuple):
    """One value a configuration sets, with its declaration."""

    name: str
    """``section.field``, or ``section.volume.field`` for a 3D frame's setting."""
    value: Any
    spec: FieldSpec


@dataclass
class IgrogConfig:
    """Everything one variant needs; the variant's standard TOML file says which sections it has.

    ``image_calibration`` and ``fieldcorr`` are None in a variant that does not use them; left
    None at construction, they are filled with defaults for a variant that does.
    """

    variant: str = "basic"
    gridding: GriddingConfig = field(default_factory=GriddingConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    image_calibration: ImageCalibrationConfig | None = None
    fieldcorr: FieldCorrectionConfig | None = None
    output: OutputConfig = field(default_factory=OutputConfig)
    recon: ReconConfig = field(default_factory=ReconConfig)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            return  # validate() names the problem
        layout = standard_layout(self.variant)
        for name in OPTIONAL_SECTIONS:
            if getattr(self, name) is None and name in layout:
                setattr(self, name, SECTIONS[name]())

    @classmethod
    def defaults(cls, variant: str) -> "IgrogConfig":
        """The defaults of ``variant``: the table's, with the variant's own (``VARIANT_DEFAULTS``)."""
        check_variant(variant)
        config = cls(variant=variant)
        apply_defaults(config, VARIANT_DEFAULTS.get(variant, {}), f"the defaults of variant {variant!r}")
        return config

    def for_dims(self, dims: int) -> "IgrogConfig":
        """This configuration with the settings of a ``dims``-D frame: in 3D, every section's
        fields replaced by its ``volume`` table's entries (``[training.volume]``,
        ``[calibration.volume]``); otherwise this configuration itself."""
        if dims != 3:
            return self
        changed = {name: for_dims(section, dims) for name, section in self.sections() if hasattr(section, VOLUME)}
        return dataclasses.replace(self, **changed)

    def with_fit_for(self, samples: int, coils: int, sources: int) -> "IgrogConfig":
        """This configuration with ``training.fit = auto`` made what it means for a frame of
        ``samples`` samples in ``coils`` (virtual) coils, ``sources`` sources per kernel:
        closed_form while ``samples * (coils * sources)^3 / 1e9`` stays within
        ``training.closed_form_max_work``, else network. Itself for any other fit."""
        if self.training.fit != "auto":
            return self
        work = samples * float(coils * sources) ** 3 / 1e9
        fit = "closed_form" if work <= self.training.closed_form_max_work else "network"
        return dataclasses.replace(self, training=dataclasses.replace(self.training, fit=fit))

    def kernel_fit(self) -> str:
        """How kernels are fitted: ``training.fit`` (take ``for_dims`` first for a 3D frame's, and
        ``with_fit_for`` for auto's), except network for fieldcorr.mode = kernel (time-dependent
        kernels have no closed form)."""
        if self.fieldcorr is not None and self.fieldcorr.mode == "kernel":
            return "network"
        return self.training.fit

    def sections(self) -> Iterator[tuple[str, Any]]:
        """(name, section) of the sections this configuration has."""
        for name in SECTIONS:
            section = getattr(self, name)
            if section is not None:
                yield name, section

    def configured_values(self) -> Iterator[ConfiguredValue]:
        """Every value the variant uses (its standard file's fields), with its declaration; a
        ``volume`` table's entries one by one, the scheduler's parameters left out."""
        layout = standard_layout(self.variant)
        for section_name, section in self.sections():
            fields = fields_of(section)
            for name in layout[section_name]:
                if name not in fields:
                    continue
                value = getattr(section, name)
                if name == VOLUME:
                    for key, entry in value.items():
                        if key in fields:  # validate() refuses other keys
                            yield ConfiguredValue(f"{section_name}.{VOLUME}.{key}", entry, spec_of(fields[key]))
                elif not isinstance(value, dict):
                    yield ConfiguredValue(f"{section_name}.{name}", value, spec_of(fields[name]))

    def validate(self) -> "IgrogConfig":
        """Check every field (``validate.validate_config``); raise ConfigError naming the first bad one."""
        check_variant(self.variant)
        validate_config(self, IgrogConfig.defaults(self.variant))
        return self

    def to_dict(self) -> dict[str, Any]:
        """Variant and the fields it uses (those of its standard file), as plain values."""
        layout = standard_layout(self.variant)
        return {
            "variant": self.variant,
            **{
                name: {key: value for key, value in dataclasses.asdict(section).items() if key in layout[name]}
                for name, section in self.sections()
            },
        }

    def to_toml(self) -> str:
        """The configuration as TOML text (for output headers and logs; ``load_config`` reads it back)."""
        lines = [f'variant = "{self.variant}"']
        for section, values in self.to_dict().items():
            if not isinstance(values, dict):
                continue
            lines.append(f"\n[{section}]")
            tables = {}
            for key, value in values.items():
                if isinstance(value, dict):
                    tables[key] = value
                else:
                    lines.append(f"{key} = {toml_value(value)}")
            for key, table in tables.items():
                lines.append(f"\n[{section}.{key}]")
                lines.extend(f"{name} = {toml_value(value)}" for name, value in table.items())
        return "\n".join(lines) + "\n"
