"""Validation of a whole configuration, in one place: each field against its declaration
(``spec.check_value``: type, choices, bounds), what the variant does not use, options the chosen
model or mode ignores (``ignored_options``), and the few rules that tie fields together
(``CROSS_FIELD_RULES``). Every refusal is a ``ConfigError`` naming the field and the value."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Iterator

from igrog_gadget.config.choices import SCHEDULERS
from igrog_gadget.config.schema import OPTIONAL_SECTIONS
from igrog_gadget.config.spec import VOLUME, check_value, per_dimension_fields, spec_of, toml_value
from igrog_gadget.config.standard_files import field_not_used, section_not_used, standard_layout
from igrog_gadget.errors import ConfigError

if TYPE_CHECKING:
    from igrog_gadget.config.igrog_config import IgrogConfig


def validate_config(config: IgrogConfig, defaults: IgrogConfig) -> None:
    """Check every field of ``config``; ``defaults`` are its variant's (``IgrogConfig.defaults``).

    Raises:
        ConfigError: naming the first bad field and its value.
    """
    layout = standard_layout(config.variant)
    for name in OPTIONAL_SECTIONS:
        present = getattr(config, name) is not None
        if present and name not in layout:
            raise ConfigError(section_not_used(name, config.variant))
        if not present and name in layout:
            raise ConfigError(f"variant {config.variant!r} needs a [{name}] section")
    for section_name, section in config.sections():
        default_section = getattr(defaults, section_name)
        for item in dataclasses.fields(section):
            value = getattr(section, item.name)
            if item.name not in layout[section_name]:
                if value != getattr(default_section, item.name):
                    raise ConfigError(field_not_used(section_name, item.name, config.variant))
                continue
            if isinstance(value, dict):  # volume: below; scheduler_params: with its scheduler
                continue
            where = f"{section_name}.{item.name}"
            _check_type(where, value, getattr(default_section, item.name))
            check_value(where, value, spec_of(item))
        if VOLUME in layout[section_name]:
            _check_volume(section_name, section, default_section, layout[section_name], config.variant)
    for name, reason in ignored_options(config):
        value = _value_at(config, name)
        if value != _value_at(defaults, name):
            raise ConfigError(f"{name} = {toml_value(value)} has no effect: {reason}; remove it")
    for rule in CROSS_FIELD_RULES:
        rule(config)


def _check_type(where: str, value: Any, example: Any) -> None:
    """Refuse a value of another type than the field's default (an int does for a float)."""
    if isinstance(example, float) and isinstance(value, int) and not isinstance(value, bool):
        return
    if type(value) is not type(example):
        raise ConfigError(f"{where} must be {type(example).__name__}, got {value!r}")


def _check_volume(section_name: str, section: Any, default_section: Any, used: tuple[str, ...], variant: str) -> None:
    """A ``volume`` table: keys among the 3D settings of fields the variant uses, values allowed
    for their fields."""
    per_dimension = per_dimension_fields(section)
    for key, value in getattr(section, VOLUME).items():
        item = per_dimension.get(key)
        if item is None:
            allowed = ", ".join(per_dimension)
            raise ConfigError(f"{section_name}.{VOLUME}.{key} is not a 3D setting; [{section_name}.{VOLUME}] takes: {allowed}")
        if key not in used:
            raise ConfigError(field_not_used(section_name, key, variant))
        where = f"{section_name}.{VOLUME}.{key}"
        _check_type(where, value, getattr(default_section, key))
        check_value(where, value, spec_of(item))


def _value_at(config: IgrogConfig, path: str) -> Any:
    section, name = path.split(".", 1)
    return getattr(getattr(config, section), name)


def ignored_options(config: IgrogConfig) -> Iterator[tuple[str, str]]:
    """(field, why) of the options the configured model, mode or switch ignores.

    ``validate`` refuses any of them that is set to something other than its default (a value
    equal to the default cannot be told from an unset one, and changes nothing).
    """
    g, m, t = config.gridding, config.model, config.training
    if g.coil_compression == "off":
        for name in ("compression_threshold", "virtual_coils", "compression_energy", "min_virtual_coils",
                     "prewhiten", "output_coils"):
            yield f"gridding.{name}", "gridding.coil_compression = off (no virtual coils)"
    elif g.coil_compression == "on":
        yield "gridding.compression_threshold", "gridding.coil_compression = on compresses whatever the coil count"
    if g.coil_compression != "off" and g.virtual_coils > 0:
        for name in ("compression_energy", "min_virtual_coils"):
            yield f"gridding.{name}", f"gridding.virtual_coils = {g.virtual_coils} fixes the number of virtual coils"
    if m.fourier_features == 0:
        yield "model.fourier_scale", "model.fourier_features = 0 (no Fourier features)"
    if config.fieldcorr is not None and config.fieldcorr.mode == "kernel":
        model = "the fieldcorr kernel mode (fieldcorr.mode = kernel) trains a TimeKernelModel"
        yield "model.bottleneck", f"{model}, which has no bottleneck layer"
        yield "training.refit_head", f"{model}, which has no head refit"
        yield "fieldcorr.time_segments", "fieldcorr.mode = kernel (the hybrid mode's correction only)"
        yield "fieldcorr.cg_iterations", "fieldcorr.mode = kernel (the hybrid mode's correction only)"
    elif config.fieldcorr is not None:
        yield "fieldcorr.kernel_phase_tolerance", "fieldcorr.mode = hybrid (the kernel mode's training pairs only)"
    if not t.refit_head:
        yield "training.refit_pairs", "training.refit_head = false"
        yield "training.refit_regularization", "training.refit_head = false"
    if not t.warm_start:
        yield "training.warm_start_steps", "training.warm_start = false"
    if not t.whiten_sources:
        yield "training.whitening_regularization", "training.whiten_sources = false"
    ic = config.image_calibration
    if ic is not None:
        if ic.source in ("series", "data"):
            yield "image_calibration.image_file", f"image_calibration.source = {ic.source}"
        if ic.pair_positions == "random":
            for name in ("trajectory_region", "trajectory_noise"):
                yield f"image_calibration.{name}", "image_calibration.pair_positions = random"
        elif ic.pair_positions == "trajectory":
            yield (
                "calibration.noise_augmentation",
                "image_calibration.pair_positions = trajectory (their noise is image_calibration.trajectory_noise)",
            )


# --- rules that tie fields together ----------------------------------------------------------
def selfcal_min_size_within_selfcal_size(config: IgrogConfig) -> None:
    """The smallest self-calibration block is no larger than the block."""
    c = config.calibration
    if c.selfcal_min_size > c.selfcal_size:
        raise ConfigError(
            f"calibration.selfcal_min_size = {c.selfcal_min_size} exceeds calibration.selfcal_size = {c.selfcal_size}"
        )


def refit_head_needs_bottleneck(config: IgrogConfig) -> None:
    """The head refit solves the head on the bottleneck's features."""
    if config.training.refit_head and config.model.bottleneck == 0:
        raise ConfigError("training.refit_head = true needs model.bottleneck > 0 (the refit solves the head on its features)")


def scheduler_params_fit_the_scheduler(config: IgrogConfig) -> None:
    """Each ``training.scheduler_params`` entry is a parameter of ``training.scheduler``, of its
    type and in its range."""
    training = config.training
    known = SCHEDULERS.get(training.scheduler, {})
    for name, value in training.scheduler_params.items():
        if name not in known:
            has = f"its parameters: {', '.join(known)}" if known else "it has no parameters"
            raise ConfigError(
                f"training.scheduler_params.{name} is not a parameter of scheduler {training.scheduler!r} ({has})"
            )
        param = known[name]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or type(value) is not type(param.default):
            raise ConfigError(f"training.scheduler_params.{name} must be {type(param.default).__name__}, got {value!r}")
        check_value(f"training.scheduler_params.{name}", value, param.spec)


def file_source_needs_image_file(config: IgrogConfig) -> None:
    """Coil images from a file need the file's name."""
    ic = config.image_calibration
    if ic is not None and ic.source == "file" and not ic.image_file:
        raise ConfigError("image_calibration.source = file needs image_calibration.image_file")


#: The checks that read more than one field (each field alone: its declaration).
CROSS_FIELD_RULES: tuple[Callable[[IgrogConfig], None], ...] = (
    selfcal_min_size_within_selfcal_size,
    refit_head_needs_bottleneck,
    scheduler_params_fit_the_scheduler,
    file_source_needs_image_file,
)
