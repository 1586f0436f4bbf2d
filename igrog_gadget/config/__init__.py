"""Configuration of the iGROG variants: one table of fields, one standard TOML file per variant.

Modules, one job each:

* ``spec`` — the declaration of a field (``setting(default, doc, minimum=..., maximum=...,
  choices=..., limit=..., volume_default=...)``) and the checks made from it;
* ``choices`` — the fixed value sets (one tuple each) and the schedulers' parameters;
* ``schema`` — the section dataclasses: **the table**, every field declared once (default,
  documentation, bounds, choices, resource limit, 3D default);
* ``standard_files`` — the variants (the standard files present), the sections and fields each uses
  (``standard_layout``), each variant's own defaults (``VARIANT_DEFAULTS``);
* ``aliases`` — former key spellings still read (``training.max_steps_3d``);
* ``assign`` — values set from TOML tables, overrides and defaults (types, tables, aliases);
* ``validate`` — validation in one place: the declarations, what a variant or mode does not use,
  the few cross-field rules;
* ``igrog_config`` — ``IgrogConfig`` (``for_dims``, ``validate``, ``to_toml``);
* ``load`` — ``load_config(variant, path=None, overrides=())``;
* ``render`` — the standard files and the reference (``docs/configuration.md``) generated from
  the table (``scripts/write_config_files.py`` writes them; tests fail when they differ).

A 3D frame's settings are the entries of its section's ``volume`` table
(``[training.volume] max_steps = 2400``); ``IgrogConfig.for_dims(3)`` applies them.
"""

from igrog_gadget.config.assign import apply_overrides
from igrog_gadget.config.choices import (
    ACTIVATIONS,
    CALIBRATION_SOURCES,
    COIL_COMPRESSION,
    DATA_WEIGHTINGS,
    DEVICES,
    FIELDCORR_MODES,
    GRID_DIMENSIONS,
    IMAGE_METHODS,
    IMAGE_SOURCES,
    KERNEL_FITS,
    OPTIMIZERS,
    OUTPUT_COILS,
    PAIR_POSITIONS,
    SCHEDULERS,
    TRAJECTORY_UNITS,
    SchedulerParam,
)
from igrog_gadget.config.igrog_config import ConfiguredValue, IgrogConfig
from igrog_gadget.config.load import load_config
from igrog_gadget.config.render import GENERATED_NOTE, check_standard_files, field_docs, render_standard_file
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
from igrog_gadget.config.spec import FieldSpec, spec_of
from igrog_gadget.config.validate import ignored_options
from igrog_gadget.config.standard_files import (
    CONFIG_DIR,
    VARIANT_DEFAULTS,
    VARIANTS,
    read_toml,
    standard_config_path,
    standard_layout,
    variants,
)

__all__ = [
    "ACTIVATIONS",
    "CALIBRATION_SOURCES",
    "COIL_COMPRESSION",
    "CONFIG_DIR",
    "DATA_WEIGHTINGS",
    "DEVICES",
    "FIELDCORR_MODES",
    "GENERATED_NOTE",
    "GRID_DIMENSIONS",
    "IMAGE_METHODS",
    "IMAGE_SOURCES",
    "KERNEL_FITS",
    "OPTIMIZERS",
    "OPTIONAL_SECTIONS",
    "OUTPUT_COILS",
    "PAIR_POSITIONS",
    "SCHEDULERS",
    "SECTIONS",
    "TRAJECTORY_UNITS",
    "VARIANTS",
    "VARIANT_DEFAULTS",
    "CalibrationConfig",
    "ConfiguredValue",
    "FieldCorrectionConfig",
    "FieldSpec",
    "GriddingConfig",
    "IgrogConfig",
    "ImageCalibrationConfig",
    "ModelConfig",
    "OutputConfig",
    "ReconConfig",
    "SchedulerParam",
    "TrainingConfig",
    "apply_overrides",
    "check_standard_files",
    "field_docs",
    "ignored_options",
    "load_config",
    "read_toml",
    "render_standard_file",
    "spec_of",
    "standard_config_path",
    "standard_layout",
    "variants",
]
