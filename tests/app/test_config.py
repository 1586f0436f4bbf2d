"""The configuration: one table of fields (defaults, documentation, bounds, choices, resource
limits, 3D defaults) serving validation, the limits, the standard files and the reference;
per-variant sections, fields and defaults; the 3D settings of ``[section.volume]`` (and the former
``_3d`` keys); scheduler type + parameters; options a model ignores refused."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import igrog_gadget.config as config_module
from igrog_gadget.config import standard_files
from igrog_engine import build_scheduler
from igrog_engine.optim import OPTIMIZERS as ENGINE_OPTIMIZERS
from igrog_engine.optim import SCHEDULERS as ENGINE_SCHEDULERS
from igrog_engine.optim import OptimizerConfig, build_optimizer
from igrog_gadget.core.training import scheduler_config
from igrog_gadget.arch.mlp import make_activation
from igrog_gadget.config import (
    ACTIVATIONS,
    CONFIG_DIR,
    OPTIMIZERS,
    SCHEDULERS,
    SECTIONS,
    VARIANT_DEFAULTS,
    VARIANTS,
    FieldCorrectionConfig,
    IgrogConfig,
    ImageCalibrationConfig,
    check_standard_files,
    field_docs,
    load_config,
    render_standard_file,
    spec_of,
    standard_layout,
)
from igrog_gadget.config.render import render_reference
from igrog_gadget.errors import ConfigError
from igrog_gadget.gadget.settings import GadgetSettings
from igrog_gadget.limits import ResourceLimits

ROOT = Path(__file__).resolve().parents[2]


# --- one source of truth ----------------------------------------------------------------------
def test_variants_are_the_standard_files():
    assert VARIANTS == tuple(sorted(path.stem for path in CONFIG_DIR.glob("*.toml")))
    assert set(VARIANTS) == {"basic", "image_based", "fieldcorr"}


def test_standard_files_are_their_regeneration():
    """Values and comments of every standard file come from the table (run
    ``python scripts/write_config_files.py --write`` after changing a default or a docstring)."""
    assert check_standard_files() == []


def test_the_reference_is_its_regeneration():
    """docs/configuration.md documents every key from the same table (defaults, ranges, limits)."""
    reference = ROOT / "docs" / "configuration.md"
    assert reference.read_text() == render_reference(dataclasses.asdict(ResourceLimits()))


def test_the_generator_script_checks_the_files(tmp_path):
    script = ROOT / "scripts" / "write_config_files.py"
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "import ast" not in "".join(path.read_text() for path in (ROOT / "igrog_gadget" / "config").glob("*.py"))


def test_a_changed_default_is_detected(monkeypatch):
    for variant in VARIANTS:  # a default of the table changed: every variant's file
        monkeypatch.setitem(VARIANT_DEFAULTS, variant, {"gridding.num_sources": 6})
    assert "num_sources = 6" in render_standard_file("basic")
    assert set(check_standard_files()) == {f"{variant}.toml" for variant in VARIANTS}


def test_a_value_edited_in_a_standard_file_is_detected(monkeypatch, tmp_path):
    for variant in VARIANTS:
        shutil.copy(CONFIG_DIR / f"{variant}.toml", tmp_path)
    edited = tmp_path / "basic.toml"
    edited.write_text(edited.read_text().replace("max_steps = 1200", "max_steps = 1300"))
    monkeypatch.setattr(standard_files, "CONFIG_DIR", tmp_path)
    standard_layout.cache_clear()
    try:
        assert check_standard_files() == ["basic.toml"]
        edited.write_text(render_standard_file("basic"))
        assert "max_steps = 1200" in edited.read_text() and check_standard_files() == []
    finally:
        monkeypatch.undo()
        standard_layout.cache_clear()


def test_every_field_is_documented_and_used_by_some_variant():
    for name, cls in SECTIONS.items():
        docs = field_docs(cls)
        used = {field for variant in VARIANTS for field in standard_layout(variant).get(name, ())}
        for item in dataclasses.fields(cls):
            assert docs.get(item.name), f"{name}.{item.name} has no docstring"
            assert item.name in used, f"{name}.{item.name} is in no standard file"


def test_loaded_defaults_equal_the_dataclass_defaults():
    for variant in VARIANTS:
        loaded = load_config(variant)
        built = IgrogConfig(variant=variant).validate()
        assert loaded == built


def test_to_toml_reads_back(tmp_path):
    for variant in VARIANTS:
        config = load_config(variant, overrides=["training.scheduler=step", "training.scheduler_params.gamma=0.5"])
        path = tmp_path / f"{variant}.toml"
        path.write_text(config.to_toml())
        assert load_config(variant, path) == config


# --- each variant's sections and fields -------------------------------------------------------
def test_basic_has_no_fieldcorr_or_image_calibration(tmp_path):
    config = load_config("basic")
    assert config.fieldcorr is None and config.image_calibration is None
    assert "[fieldcorr]" not in config.to_toml() and "[image_calibration]" not in config.to_toml()
    for section, field in (("fieldcorr", "mode = \"kernel\""), ("image_calibration", "lowres_size = 32")):
        path = tmp_path / f"{section}.toml"
        path.write_text(f"[{section}]\n{field}\n")
        with pytest.raises(ConfigError, match=rf"section \[{section}\] is not used by variant 'basic'"):
            load_config("basic", path)
    with pytest.raises(ConfigError, match=r"section \[fieldcorr\] is not used by variant 'basic'"):
        load_config("basic", overrides=["fieldcorr.time_segments=4"])
    with pytest.raises(ConfigError, match=r"section \[image_calibration\] is not used by variant 'basic'"):
        IgrogConfig(variant="basic", image_calibration=ImageCalibrationConfig()).validate()


def test_image_based_has_no_fieldcorr_and_fieldcorr_has_both():
    assert load_config("image_based").fieldcorr is None
    with pytest.raises(ConfigError, match=r"section \[fieldcorr\] is not used by variant 'image_based'"):
        load_config("image_based", overrides=["fieldcorr.mode=kernel"])
    config = load_config("fieldcorr", overrides=["fieldcorr.mode=kernel", "image_calibration.lowres_size=32"])
    assert config.fieldcorr.mode == "kernel" and config.image_calibration.lowres_size == 32
    assert IgrogConfig(variant="fieldcorr").fieldcorr == FieldCorrectionConfig()


@pytest.mark.parametrize("variant", ["image_based", "fieldcorr"])
def test_k_space_calibration_fields_are_refused_by_the_image_variants(variant):
    with pytest.raises(ConfigError, match=rf"calibration\.source is not used by variant '{variant}'"):
        load_config(variant, overrides=["calibration.source=acs"])
    with pytest.raises(ConfigError, match=r"calibration\.selfcal_size is not used"):
        IgrogConfig(variant=variant, calibration=config_module.CalibrationConfig(selfcal_size=16)).validate()
    assert load_config(variant, overrides=["calibration.num_training_pairs=5000"]).calibration.num_training_pairs == 5000


def test_unknown_sections_and_fields_still_named():
    with pytest.raises(ConfigError, match=r"unknown section 'trainer'"):
        load_config("basic", overrides=["trainer.max_steps=3"])
    with pytest.raises(ConfigError, match=r"unknown field training\.max_stepz"):
        load_config("basic", overrides=["training.max_stepz=3"])


def test_gadget_settings_and_limits_follow_the_variant():
    """Properties a Gadgetron XML or an MRD client sends go through the same checks."""
    with pytest.raises(ConfigError, match=r"section \[fieldcorr\] is not used by variant 'basic'"):
        GadgetSettings().merged([("set", "fieldcorr.mode=kernel")]).igrog_config()
    properties = [("variant", "fieldcorr"), ("set", "fieldcorr.cg_iterations=5; image_calibration.cg_iterations=3")]
    config = GadgetSettings().merged(properties).igrog_config()
    assert config.fieldcorr.cg_iterations == 5
    ResourceLimits().check_config(load_config("basic"))
    with pytest.raises(ConfigError, match=r"fieldcorr\.cg_iterations = 5 exceeds"):
        ResourceLimits(max_cg_iterations=4).check_config(config)
    with pytest.raises(ConfigError, match=r"image_calibration\.cg_iterations = 15 exceeds"):
        ResourceLimits(max_cg_iterations=14).check_config(load_config("image_based"))


# --- options a model or mode ignores ----------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["model.bottleneck=32"], r"model\.bottleneck = 32 has no effect: .*TimeKernelModel.*no bottleneck"),
        (["model.bottleneck=32", "training.refit_head=true"], r"model\.bottleneck = 32 has no effect"),
        (["training.refit_head=true"], r"training\.refit_head = true has no effect: .*TimeKernelModel.*no head refit"),
        (["fieldcorr.time_segments=6"], r"fieldcorr\.time_segments = 6 has no effect: fieldcorr\.mode = kernel"),
    ],
)
def test_the_time_kernel_model_refuses_what_it_ignores(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config("fieldcorr", overrides=["fieldcorr.mode=kernel", *overrides])


def test_the_hybrid_mode_keeps_bottleneck_and_refit():
    config = load_config("fieldcorr", overrides=["model.bottleneck=32", "training.refit_head=true"])
    assert config.model.bottleneck == 32 and config.training.refit_head
    with pytest.raises(ConfigError, match=r"fieldcorr\.kernel_phase_tolerance = 0\.01 has no effect"):
        load_config("fieldcorr", overrides=["fieldcorr.kernel_phase_tolerance=0.01"])


@pytest.mark.parametrize(
    ("variant", "overrides", "pattern"),
    [
        ("basic", ["model.fourier_scale=1.0"], r"model\.fourier_scale = 1\.0 has no effect: model\.fourier_features = 0"),
        ("basic", ["training.refit_pairs=5000"], r"training\.refit_pairs = 5000 has no effect: training\.refit_head = false"),
        ("basic", ["training.warm_start=false", "training.warm_start_steps=50"], r"warm_start_steps = 50 has no effect"),
        ("basic", ["training.whiten_sources=false", "training.whitening_regularization=0.1"], r"whitening_regularization"),
        ("basic", ["gridding.coil_compression=off", "gridding.virtual_coils=8"], r"virtual_coils = 8 has no effect"),
        ("basic", ["gridding.coil_compression=on", "gridding.compression_threshold=4"], r"compression_threshold = 4"),
        ("basic", ["gridding.virtual_coils=8", "gridding.compression_energy=0.99"], r"compression_energy = 0\.99 has no"),
        ("image_based", ["image_calibration.source=data", "image_calibration.image_file=x.npy"], r"image_file = \"x\.npy\""),
        ("image_based", ["image_calibration.pair_positions=random", "image_calibration.trajectory_noise=2"],
         r"trajectory_noise = 2\.0 has no effect"),
        ("image_based", ["image_calibration.pair_positions=trajectory", "calibration.noise_augmentation=1"],
         r"calibration\.noise_augmentation = 1\.0 has no effect"),
    ],
)
def test_other_ignored_options_are_refused(variant, overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(variant, overrides=overrides)


def test_options_used_are_accepted():
    load_config("basic", overrides=["model.fourier_features=16", "model.fourier_scale=1.0"])
    load_config("basic", overrides=["model.bottleneck=16", "training.refit_head=true", "training.refit_pairs=5000"])
    load_config("basic", overrides=["gridding.coil_compression=on", "gridding.virtual_coils=8"])


# --- scheduler type + parameters --------------------------------------------------------------
def _learning_rates(config: IgrogConfig, steps: int) -> list[float]:
    """Learning rate after each interval of the engine scheduler ``config`` asks for."""
    optimizer = build_optimizer(OptimizerConfig("sgd", {"lr": config.training.learning_rate}), [torch.zeros(1)])
    handle = build_scheduler(scheduler_config(config.training), optimizer, steps)
    rates = []
    for _ in range(steps):
        optimizer.step()
        handle.step()
        rates.append(optimizer.param_groups[0]["lr"])
    return rates


def test_default_schedule_is_unchanged():
    config = load_config("basic")
    assert config.training.learning_rate == 5e-3
    assert scheduler_config(config.training).params == {"eta_min": pytest.approx(5e-3 * 0.02)}
    step = load_config("basic", overrides=["training.scheduler=step"])
    assert scheduler_config(step.training).params == {"step_size": 33, "gamma": 0.3}


def test_scheduler_params_change_the_learning_rate_schedule(tmp_path):
    lr = load_config("basic").training.learning_rate
    default = _learning_rates(load_config("basic"), 10)
    assert default[-1] == pytest.approx(lr * 0.02)
    raised = _learning_rates(load_config("basic", overrides=["training.scheduler_params.min_lr_ratio=0.5"]), 10)
    assert raised[-1] == pytest.approx(lr * 0.5) and raised[4] > default[4]
    path = tmp_path / "step.toml"
    path.write_text('[training]\nscheduler = "step"\n[training.scheduler_params]\nstep_size = 2\ngamma = 0.5\n')
    stepped = _learning_rates(load_config("basic", path), 6)
    assert stepped == pytest.approx([lr, lr / 2, lr / 2, lr / 4, lr / 4, lr / 8])


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["training.scheduler_params.gamma=0.5"], r"scheduler_params\.gamma is not a parameter of scheduler 'cosine'"),
        (["training.scheduler=none", "training.scheduler_params.min_lr_ratio=0.1"], r"'none' \(it has no parameters\)"),
        (["training.scheduler_params.warmup=3"], r"unknown scheduler parameter training\.scheduler_params\.warmup"),
        (["training.scheduler_params.min_lr_ratio=2"], r"min_lr_ratio must be in \[0, 1\], got 2\.0"),
        (["training.scheduler=step", "training.scheduler_params.gamma=0"], r"gamma must be in \(0, 1\]"),
        (["training.scheduler=step", "training.scheduler_params.step_size=1.5"], r"step_size: cannot read '1\.5' as int"),
        (["training.scheduler=plateau"], r"training\.scheduler must be one of cosine, step, none; got 'plateau'"),
    ],
)
def test_bad_scheduler_params_are_refused(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config("basic", overrides=overrides)


def test_scheduler_params_table_in_a_file_is_checked(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[training.scheduler_params]\nstep_size = 2\n")
    with pytest.raises(ConfigError, match=r"step_size is not a parameter of scheduler 'cosine'"):
        load_config("basic", path)
    path.write_text('[training]\nscheduler = "step"\n[training.scheduler_params]\nstep_size = "two"\n')
    with pytest.raises(ConfigError, match=r"step_size: cannot read 'two' as int"):
        load_config("basic", path)


# --- choice lists -----------------------------------------------------------------------------
def test_choice_lists_agree_with_the_engine_and_the_arch():
    assert set(OPTIMIZERS) <= set(ENGINE_OPTIMIZERS)
    assert set(SCHEDULERS) <= set(ENGINE_SCHEDULERS)
    for name in ACTIVATIONS:
        make_activation(name)


def test_every_choice_field_is_validated_and_documented_from_its_tuple():
    for section, cls in SECTIONS.items():
        for item in dataclasses.fields(cls):
            choices = spec_of(item).choices
            if not choices:
                continue
            variant = next(v for v in VARIANTS if item.name in standard_layout(v).get(section, ()))
            assert f"One of: {' | '.join(choices)}." in render_standard_file(variant).replace("\n#   ", " ")
            with pytest.raises(ConfigError, match=rf"{section}\.{item.name} must be one of"):
                load_config(variant, overrides=[f"{section}.{item.name}=nosuch"])


# --- the table: bounds, limits, per-variant defaults ------------------------------------------
def _declared(predicate):
    """(variant, section.field, spec) of each declared field the predicate selects, in a variant using it."""
    for section, cls in SECTIONS.items():
        for item in dataclasses.fields(cls):
            spec = spec_of(item)
            users = [v for v in VARIANTS if item.name in standard_layout(v).get(section, ())]
            if users and predicate(spec):
                yield users[-1], f"{section}.{item.name}", spec


def _below(spec):
    """A value just below the declared minimum (the minimum itself when it is excluded)."""
    if spec.minimum_excluded:
        return spec.minimum
    return spec.minimum - (1 if isinstance(spec.minimum, int) else 0.5)


@pytest.mark.parametrize(("variant", "name", "spec"), list(_declared(lambda spec: spec.minimum is not None)))
def test_every_lower_bound_of_the_table_is_enforced_and_named(variant, name, spec):
    bad = _below(spec)
    with pytest.raises(ConfigError) as raised:
        load_config(variant, overrides=[f"{name}={bad}"])
    text = str(raised.value)
    assert text.startswith(f"{name} must be "), text
    assert f"got {float(bad) if isinstance(bad, float) else bad!r}" in text
    assert f"{spec.minimum:g}" in text  # the allowed range


@pytest.mark.parametrize(("variant", "name", "spec"), list(_declared(lambda spec: spec.maximum is not None)))
def test_every_upper_bound_of_the_table_is_enforced_and_named(variant, name, spec):
    bad = spec.maximum if spec.maximum_excluded else spec.maximum + (1 if isinstance(spec.maximum, int) else 0.5)
    with pytest.raises(ConfigError, match=rf"^{name} must be in [\[(][0-9.]+, {spec.maximum:g}[\])], got {bad!r}$"):
        load_config(variant, overrides=[f"{name}={bad}"])


#: Overrides a limited field needs to count (options its switch would otherwise ignore).
NEEDS = {"training.refit_pairs": ["training.refit_head=true", "model.bottleneck=8"]}


def _limited():
    for variant, name, spec in _declared(lambda spec: bool(spec.limit)):
        yield variant, name, spec.limit
        if spec.volume_default is not None:
            section, field = name.split(".")
            yield variant, f"{section}.volume.{field}", spec.limit


@pytest.mark.parametrize(("variant", "name", "limit"), list(_limited()))
def test_every_limit_of_the_table_is_checked_by_the_resource_limits(variant, name, limit):
    """The limits come from the declarations: a field cannot be forgotten in a second list."""
    bound = getattr(ResourceLimits(), limit)
    over = int(bound) + 1
    config = load_config(variant, overrides=[*NEEDS.get(name, []), f"{name}={over}"])
    with pytest.raises(ConfigError, match=rf"^{name} = {over} exceeds the resource limit {limit} = {int(bound)}$"):
        ResourceLimits().check_config(config)
    ResourceLimits(**{limit: over}).check_config(config)  # a raised limit admits it


def test_every_numeric_field_is_bounded_or_says_why_not():
    """A new numeric field gets a declared range; these few take any value on purpose."""
    unbounded = {
        name
        for _, name, spec in _declared(lambda spec: not spec.choices and spec.minimum is None and spec.maximum is None)
        if isinstance(_default_at(name), (int, float)) and not isinstance(_default_at(name), bool)
    }
    assert unbounded == {"model.fourier_scale", "training.weight_decay", "training.seed"}


def _default_at(name):
    section, field = name.split(".")
    return getattr(getattr(IgrogConfig.defaults("fieldcorr"), section), field)


def test_variant_defaults_cover_the_variants():
    assert set(VARIANT_DEFAULTS) == set(VARIANTS)
    for variant in VARIANTS:
        assert IgrogConfig.defaults(variant) == load_config(variant)


def test_a_variant_can_have_its_own_defaults(monkeypatch, tmp_path):
    """A variant's own defaults reach its loaded configuration and its generated file (and the
    reference); the other variants keep the table's."""
    for variant in VARIANTS:
        shutil.copy(CONFIG_DIR / f"{variant}.toml", tmp_path)
    monkeypatch.setattr(standard_files, "CONFIG_DIR", tmp_path)
    monkeypatch.setitem(VARIANT_DEFAULTS, "fieldcorr", {"training.max_steps": 600, "training.volume.max_steps": 900})
    standard_layout.cache_clear()
    try:
        assert check_standard_files() == ["fieldcorr.toml"]
        text = render_standard_file("fieldcorr")
        assert "\nmax_steps = 600\n" in text and "\nmax_steps = 900\n" in text
        assert render_standard_file("basic") == (tmp_path / "basic.toml").read_text()
        (tmp_path / "fieldcorr.toml").write_text(text)
        config = load_config("fieldcorr")
        assert config.training.max_steps == 600 and config.for_dims(3).training.max_steps == 900
        assert load_config("basic").training.max_steps == 1200
        assert load_config("fieldcorr", overrides=["training.max_steps=700"]).training.max_steps == 700
        assert "| `max_steps` | `1200` (fieldcorr: `600`); 3D: `2400` (fieldcorr: `900`) |" in render_reference({})
        monkeypatch.setitem(VARIANT_DEFAULTS, "image_based", {"calibration.selfcal_size": 16})
        with pytest.raises(ConfigError, match=r"defaults of variant 'image_based'.*calibration\.selfcal_size is not used"):
            load_config("image_based")
    finally:
        monkeypatch.undo()
        standard_layout.cache_clear()


# --- 3D settings: [section.volume] --------------------------------------------------------------
#: Today's effective settings of a 2D and a 3D frame (the measured 3D defaults).
SETTINGS_2D = {"max_steps": 1200, "batch_size": 256, "learning_rate": 5e-3, "fit": "closed_form", "cpu_threads": 1}
SETTINGS_3D = {"max_steps": 2400, "batch_size": 1024, "learning_rate": 3e-3, "fit": "auto", "cpu_threads": 0}


@pytest.mark.parametrize("variant", VARIANTS)
def test_for_dims_gives_the_2d_and_3d_settings(variant):
    config = load_config(variant)
    assert config.for_dims(2) is config
    volume = config.for_dims(3)
    for name, value in SETTINGS_2D.items():
        assert getattr(config.for_dims(2).training, name) == value
    for name, value in SETTINGS_3D.items():
        assert getattr(volume.training, name) == value
    assert config.calibration.num_training_pairs == 60000 and volume.calibration.num_training_pairs == 300000
    assert volume.gridding == config.gridding and volume.training.epochs == config.training.epochs
    assert "\n[training.volume]\nbatch_size = 1024\nmax_steps = 2400\n" in config.to_toml()
    assert "\n[calibration.volume]\nnum_training_pairs = 300000\n" in config.to_toml()


def test_auto_fit_is_the_closed_form_while_the_frames_solves_stay_within_their_limit():
    """training.fit = auto (the 3D default): closed_form while samples x (coils x sources)^3 / 1e9
    stays within training.closed_form_max_work, else network; any other fit stays as it is."""
    volume = load_config("basic").for_dims(3)
    limit = volume.training.closed_form_max_work
    sources = volume.gridding.num_sources + volume.gridding.neighbour_sources
    per_sample = (8 * sources) ** 3 / 1e9
    assert volume.with_fit_for(int(limit / per_sample), 8, sources).kernel_fit() == "closed_form"
    assert volume.with_fit_for(int(limit / per_sample) + 2, 8, sources).kernel_fit() == "network"
    assert volume.with_fit_for(1200 * 64, 8, sources).kernel_fit() == "closed_form"  # 32^3 kooshball
    assert volume.with_fit_for(4800 * 64, 8, sources).kernel_fit() == "closed_form"  # 32^3, 4800 spokes
    assert volume.with_fit_for(4000 * 128, 8, sources).kernel_fit() == "network"  # 64^3 kooshball
    fixed = load_config("basic", overrides=["training.volume.fit=network"]).for_dims(3)
    assert fixed.with_fit_for(10, 8, sources) is fixed
    assert load_config("basic").with_fit_for(10**9, 32, 5).kernel_fit() == "closed_form"  # 2D: closed_form


def test_3d_settings_from_a_file_and_overrides(tmp_path):
    path = tmp_path / "volume.toml"
    path.write_text('[training.volume]\nmax_steps = 100\nfit = "closed_form"\n[calibration.volume]\nnum_training_pairs = 4000\n')
    config = load_config("basic", path, overrides=["training.volume.batch_size=64"])
    volume = config.for_dims(3)
    assert (volume.training.max_steps, volume.training.fit, volume.training.batch_size) == (100, "closed_form", 64)
    assert volume.training.learning_rate == 3e-3 and volume.calibration.num_training_pairs == 4000
    assert config.training.max_steps == 1200 and config.kernel_fit() == "closed_form"
    assert volume.kernel_fit() == "closed_form"
    again = tmp_path / "again.toml"
    again.write_text(config.to_toml())
    assert load_config("basic", again) == config


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["training.volume.epochs=5"], r"training\.volume\.epochs is not a 3D setting; \[training\.volume\] takes: "
                                       r"batch_size, max_steps, fit, learning_rate, cpu_threads"),
        (["training.volume.max_stepz=5"], r"training\.volume\.max_stepz is not a 3D setting"),
        (["training.volume.fit=nosuch"], r"training\.volume\.fit must be one of closed_form, network, auto; got 'nosuch'"),
        (["training.volume.max_steps=0"], r"training\.volume\.max_steps must be >= 1, got 0"),
        (["training.volume.learning_rate=0"], r"training\.volume\.learning_rate must be > 0, got 0\.0"),
        (["training.volume.max_steps=many"], r"training\.volume\.max_steps: cannot read 'many' as int"),
        (["calibration.volume.num_training_pairs=50"], r"calibration\.volume\.num_training_pairs must be >= 100, got 50"),
        (["training.volume=3"], r"training\.volume must be a table"),
    ],
)
def test_bad_3d_settings_are_named(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config("basic", overrides=overrides)


def test_a_bad_3d_setting_built_in_python_is_refused():
    training = config_module.TrainingConfig(volume={"epochs": 3})
    with pytest.raises(ConfigError, match=r"training\.volume\.epochs is not a 3D setting"):
        IgrogConfig(training=training).validate()
    with pytest.raises(ConfigError, match=r"training\.volume\.max_steps must be int, got '9'"):
        IgrogConfig(training=config_module.TrainingConfig(volume={"max_steps": "9"})).validate()


@pytest.mark.parametrize(
    ("former", "now", "effective"),
    [
        ("training.max_steps_3d=100", "training.volume.max_steps", {"max_steps": 100}),
        ("training.fit_3d=closed_form", "training.volume.fit", {"fit": "closed_form"}),
        ("training.batch_size_3d=64", "training.volume.batch_size", {"batch_size": 64}),
        ("training.learning_rate_3d=0.01", "training.volume.learning_rate", {"learning_rate": 0.01}),
        ("training.cpu_threads_3d=2", "training.volume.cpu_threads", {"cpu_threads": 2}),
        ("training.cpu_threads_3d=0", "training.volume.cpu_threads", {"cpu_threads": 0}),  # 0: the process's
        ("training.max_steps_3d=0", "training.volume.max_steps", {"max_steps": 1200}),  # 0: the 2D value
        ("training.batch_size_3d=0", "training.volume.batch_size", {"batch_size": 256}),
        ("training.learning_rate_3d=0", "training.volume.learning_rate", {"learning_rate": 5e-3}),
    ],
)
def test_former_3d_keys_still_work_with_a_warning(caplog, former, now, effective):
    with caplog.at_level(logging.WARNING, logger="igrog_gadget.config"):
        config = load_config("basic", overrides=[former])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"{former.split('=')[0]} is a former spelling; write {now}" in warnings[0]
    volume = config.for_dims(3).training
    assert {name: getattr(volume, name) for name in effective} == effective
    assert load_config("basic", overrides=[f"{now}={next(iter(effective.values()))}"]) == config


def test_former_3d_keys_in_a_file_keep_their_meaning(tmp_path, caplog):
    """``_3d = 0`` meant "the 2D value", whichever comes first in the file."""
    path = tmp_path / "old.toml"
    path.write_text(
        "[calibration]\nnum_training_pairs_3d = 0\nnum_training_pairs = 5000\n"
        "[training]\nmax_steps_3d = 0\nmax_steps = 500\nfit_3d = \"closed_form\"\n"
    )
    with caplog.at_level(logging.WARNING, logger="igrog_gadget.config"):
        config = load_config("basic", path)
    assert len([r for r in caplog.records if "former spelling" in r.getMessage()]) == 3
    volume = config.for_dims(3)
    assert volume.calibration.num_training_pairs == 5000 and volume.training.max_steps == 500
    assert volume.training.fit == "closed_form" and volume.training.batch_size == 1024
    assert config.training.volume["max_steps"] == 500  # stated in the configuration (to_toml)
    with pytest.raises(ConfigError, match=r"training\.volume\.max_steps: cannot read 'x' as int"):
        load_config("basic", overrides=["training.max_steps_3d=x"])
