"""The configuration: one source of truth for defaults, per-variant sections and fields,
scheduler type + parameters, options a model ignores refused, choice lists typed once."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

import igrog_gadget.config as config_module
from igrog_engine import build_scheduler
from igrog_engine.optim import OPTIMIZERS as ENGINE_OPTIMIZERS
from igrog_engine.optim import SCHEDULERS as ENGINE_SCHEDULERS
from igrog_engine.optim import OptimizerConfig, build_optimizer
from igrog_gadget.core.training import scheduler_config
from igrog_gadget.arch.mlp import make_activation
from igrog_gadget.config import (
    ACTIVATIONS,
    CHOICES,
    CONFIG_DIR,
    OPTIMIZERS,
    SCHEDULERS,
    SECTIONS,
    VARIANTS,
    FieldCorrectionConfig,
    IgrogConfig,
    ImageCalibrationConfig,
    check_standard_files,
    field_docs,
    load_config,
    render_standard_file,
    standard_layout,
)
from igrog_gadget.errors import ConfigError
from igrog_gadget.gadget.settings import GadgetSettings
from igrog_gadget.limits import ResourceLimits


# --- one source of truth ----------------------------------------------------------------------
def test_variants_are_the_standard_files():
    assert VARIANTS == tuple(sorted(path.stem for path in CONFIG_DIR.glob("*.toml")))
    assert set(VARIANTS) == {"basic", "image_based", "fieldcorr"}


def test_standard_files_are_their_regeneration():
    """Values and comments of every standard file come from the dataclasses (run
    ``python -m igrog_gadget.config --write`` after changing a default or a docstring)."""
    assert check_standard_files() == []


def test_a_changed_default_is_detected(monkeypatch):
    defaults = dataclasses.fields(config_module.GriddingConfig)
    num_sources = next(f for f in defaults if f.name == "num_sources")
    monkeypatch.setattr(num_sources, "default", 6)
    assert "num_sources = 6" in render_standard_file("basic")
    assert set(check_standard_files()) == {f"{variant}.toml" for variant in VARIANTS}


def test_a_value_edited_in_a_standard_file_is_detected(monkeypatch, tmp_path):
    for variant in VARIANTS:
        shutil.copy(CONFIG_DIR / f"{variant}.toml", tmp_path)
    edited = tmp_path / "basic.toml"
    edited.write_text(edited.read_text().replace("max_steps = 1200", "max_steps = 1300"))
    monkeypatch.setattr(config_module, "CONFIG_DIR", tmp_path)
    standard_layout.cache_clear()
    try:
        assert check_standard_files() == ["basic.toml"]
        assert config_module.write_standard_files() == ["basic.toml"]
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
            if CHOICES not in item.metadata:
                continue
            variant = next(v for v in VARIANTS if item.name in standard_layout(v).get(section, ()))
            assert f"One of: {' | '.join(item.metadata[CHOICES])}." in render_standard_file(variant).replace("\n#   ", " ")
            with pytest.raises(ConfigError, match=rf"{section}\.{item.name} must be one of"):
                load_config(variant, overrides=[f"{section}.{item.name}=nosuch"])
