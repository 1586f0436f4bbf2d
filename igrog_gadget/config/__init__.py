"""Configuration of the iGROG variants: dataclasses with defaults, one TOML file per variant.

``load_config(variant, path=None, overrides=())`` reads the variant's standard file
(``igrog_gadget/config/<variant>.toml``), then an optional user file, then
``section.field=value`` overrides, and validates everything in one place
(``IgrogConfig.validate``), raising ``ConfigError`` naming the field and value.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from igrog_gadget.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent
VARIANTS = ("basic", "image_based", "fieldcorr")


@dataclass
class GriddingConfig:
    """How samples are moved onto the grid."""

    num_sources: int = 5
    """Consecutive readout samples feeding each kernel."""
    trajectory_units: str = "auto"
    """Units of acq.traj: "auto" (detect), "grid" (cycles/FOV, [-N/2, N/2)), "normalized" ([-0.5, 0.5))."""
    grid_oversampling: float = 1.0
    """Grid matrix = encodedSpace matrix x this factor (1 = header matrix)."""
    device: str = "auto"
    """"auto" (CUDA when available), "cpu", "cuda" or "cuda:N"."""
    inference_batch_size: int = 16384
    """Samples per batch when computing kernels (each batch is applied at once: memory is bounded by it)."""
    cache_mb: float = 1024.0
    """Bytes (MiB) the per-trajectory kernel cache may hold; kernels that do not fit are recomputed per frame."""
    cpu_threads: int = 0
    """torch CPU threads of a replay (0 = torch's default, all cores); fixed, so results never depend on load.
    ``igrog serve`` sets its threads once for the whole process (``--cpu-threads``) and ignores this."""
    coil_compression: str = "auto"
    """"auto" (compress when the data have more than compression_threshold coils), "on" or "off"."""
    compression_threshold: int = 12
    """auto: compress data with more coils than this."""
    virtual_coils: int = 0
    """Virtual coils to keep (0 = the fewest that keep compression_energy of the calibration energy)."""
    compression_energy: float = 0.999
    """Share of the (prewhitened) calibration energy the virtual coils keep when virtual_coils = 0."""
    min_virtual_coils: int = 10
    """Fewest virtual coils the energy rule keeps: kernels need coil diversity (a 20-coil spiral
    gridded in 6 virtual coils scored 1.8x the noise floor, in 10 coils 1.06x)."""
    prewhiten: bool = True
    """Prewhiten with the noise scans' coil covariance before compressing (when noise scans are present)."""
    output_coils: str = "physical"
    """"physical" (compression undone: the projection onto the virtual subspace, in the input's coils)
    or "virtual" (the virtual coils; the compression matrix goes into the output header)."""


@dataclass
class CalibrationConfig:
    """Where the training pairs come from."""

    source: str = "auto"
    """"auto" (joint when ACS lines exist, else self), "acs", "self" or "joint" (ACS + non-Cartesian centre)."""
    acs_min_size: int = 12
    """Smallest usable fully sampled ACS block side (grid points)."""
    edge_margin: float = 4.0
    """Training targets stay this many grid units (plus the largest source offset) inside the block edge."""
    num_training_pairs: int = 60000
    """Synthesised (sources, target) pairs per training."""
    offset_jitter: float = 0.02
    """Gaussian jitter (grid units) added to the trajectory's offsets when synthesising pairs."""
    noise_augmentation: float = 3.0
    """Noise added to the training sources, in multiples of the noise std estimated by the
    self/joint calibration fit (0 = none); it teaches the kernels to keep their noise gain low."""
    normalize_pairs: bool = True
    """Scale each training pair to unit source power (equal weight for centre and edge of the block)."""
    interpolation_padding: int = 4
    """Zero-padding factor of the block for the sinc (NUFFT) interpolation of off-grid values."""
    selfcal_size: int = 32
    """Side of the block reconstructed from the k-space centre when self-calibrating."""
    selfcal_grid: int = 64
    """Image grid of the self-calibration solve (its k-space spans [-grid/2, grid/2))."""
    selfcal_iterations: int = 15
    """Conjugate-gradient iterations of the self-calibration solve."""
    selfcal_min_coverage: float = 0.9
    """Fraction of grid cells around the centre that must hold a sample to self-calibrate."""
    selfcal_min_size: int = 16
    """Smallest self-calibration block: when the centre is densely sampled only within a smaller
    radius than selfcal_size needs (undersampled radial), the block shrinks down to this."""
    acs_noise_ratio_max: float = 3.0
    """Calibration lines are not used when fitting them with the non-Cartesian samples makes the
    calibration fit's noise estimate this many times worse than the samples alone (0 = no check)."""


@dataclass
class ModelConfig:
    """The MLP from source offsets to a complex kernel."""

    hidden_width: int = 128
    hidden_layers: int = 3
    activation: str = "gelu"
    fourier_features: int = 0
    """Random Fourier features of the offsets (0 = off)."""
    fourier_scale: float = 0.5
    """Standard deviation of the Fourier feature frequencies (cycles per grid unit)."""
    bottleneck: int = 0
    """Width of the linear feature layer before the head (0 = none); needed by the head refit."""


@dataclass
class TrainingConfig:
    """The training run (engine.Trainer)."""

    epochs: int = 100
    """Upper bound on passes over the training pairs (max_steps normally ends training first)."""
    batch_size: int = 1024
    max_steps: int = 1200
    """Optimizer steps of a first training; the cosine learning-rate schedule anneals over them."""
    warm_start: bool = True
    """A new calibration key (slice, partition, contrast) starts from the last trained model of the same shape."""
    warm_start_steps: int = 100
    """Optimizer steps of a warm-started training."""
    plateau_patience: int = 3
    """Stop when the validation loss has not improved by plateau_tolerance for this many epochs (0 = off)."""
    plateau_tolerance: float = 0.01
    """Relative improvement of the validation loss that counts as progress."""
    max_seconds: float = 120.0
    """Safety cap on training wall time (reported when it stops training: the result then depends on load)."""
    optimizer: str = "adam"
    """"adam", "adamw" or "sgd"."""
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    scheduler: str = "cosine"
    """"cosine" (over the training's step count), "step" or "none"."""
    grad_clip: float = 1.0
    """Gradient-norm clipping (0 = off)."""
    refit_head: bool = False
    """After gradient training, solve the head exactly by regularised least squares (needs model.bottleneck)."""
    refit_pairs: int = 20000
    """Training pairs used by the head refit."""
    refit_regularization: float = 1e-4
    """Tikhonov loading of the refit, relative to the mean diagonal of its normal matrix."""
    whiten_sources: bool = True
    """Train the kernel for whitened sources (a reparameterisation that speeds up convergence)."""
    whitening_regularization: float = 1e-2
    """Diagonal loading of the source covariance before whitening, relative to its mean eigenvalue."""
    validation_fraction: float = 0.05
    """Share of the pairs held out to report a validation loss."""
    seed: int = 0
    progress: bool = False
    """Show a progress bar while training."""


@dataclass
class FieldCorrectionConfig:
    """fieldcorr variant only."""

    mode: str = "hybrid"
    """"hybrid" (field-free kernels + Cartesian-side correction) or "kernel" (time-dependent kernels)."""
    b0map_file: str = ""
    """File with the B0 map (Hz) when the input carries no "b0map" image series."""
    time_segments: int = 12
    """hybrid: time segments of the Cartesian-side correction."""
    cg_iterations: int = 0
    """hybrid: CG refinement iterations of the correction (0 = conjugate phase only)."""
    kernel_phase_tolerance: float = 1e-3
    """kernel: largest error of the time-segmented field phase in the training pairs."""


@dataclass
class ImageCalibrationConfig:
    """Coil images the image_based variant (and fieldcorr) synthesise training pairs from."""

    source: str = "auto"
    """"auto" (image series in the input, else image_file, else made from the data), "series", "file" or "data"."""
    image_file: str = ""
    """File with coil images or sensitivity maps (.npy, .npz, .h5/.mrd) used when the input carries no image series."""
    lowres_size: int = 48
    """Side of the k-space centre (and of the image grid) used when the variant makes its own coil images."""
    cg_iterations: int = 15
    """Conjugate-gradient iterations when the variant makes its own coil images."""
    pair_positions: str = "auto"
    """"trajectory" (pairs at the frame's own samples), "random" (random targets in the central
    target_size) or "auto" (trajectory for images from a series or file, random for images made from the data)."""
    trajectory_region: float = 0.5
    """trajectory pairs: samples whose grid point lies in this central fraction of the matrix (per axis)."""
    trajectory_noise: float = 1.5
    """trajectory pairs: source noise in multiples of the data's noise std (divided by sqrt(hits))."""
    target_size: int = 32
    """random pairs: targets lie in the central target_size x target_size of the images' k-space (0 = all of it)."""
    min_coverage: float = 0.9
    """Share of the central grid cells that must hold a sample to make coil images from the data."""


@dataclass
class IgrogConfig:
    """Everything one variant needs; one TOML file per variant fills it."""

    variant: str = "basic"
    gridding: GriddingConfig = field(default_factory=GriddingConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    fieldcorr: FieldCorrectionConfig = field(default_factory=FieldCorrectionConfig)
    image_calibration: ImageCalibrationConfig = field(default_factory=ImageCalibrationConfig)

    def validate(self) -> "IgrogConfig":
        """Check every field; raise ConfigError naming the first bad one."""
        _choice("variant", self.variant, VARIANTS)
        g, c, m, t = self.gridding, self.calibration, self.model, self.training
        _at_least("gridding.num_sources", g.num_sources, 1)
        _choice("gridding.trajectory_units", g.trajectory_units, ("auto", "grid", "normalized"))
        _at_least("gridding.grid_oversampling", g.grid_oversampling, 1.0)
        if not (g.device in ("auto", "cpu", "cuda") or (g.device.startswith("cuda:") and g.device[5:].isdigit())):
            raise ConfigError(f"gridding.device must be auto, cpu, cuda or cuda:N, got {g.device!r}")
        _at_least("gridding.inference_batch_size", g.inference_batch_size, 1)
        _at_least("gridding.cache_mb", g.cache_mb, 0.0)
        _at_least("gridding.cpu_threads", g.cpu_threads, 0)
        _choice("gridding.coil_compression", g.coil_compression, ("auto", "on", "off"))
        _at_least("gridding.compression_threshold", g.compression_threshold, 1)
        _at_least("gridding.virtual_coils", g.virtual_coils, 0)
        _at_least("gridding.min_virtual_coils", g.min_virtual_coils, 1)
        if not 0.0 < g.compression_energy <= 1.0:
            raise ConfigError(f"gridding.compression_energy must be in (0, 1], got {g.compression_energy}")
        _choice("gridding.output_coils", g.output_coils, ("physical", "virtual"))
        _choice("calibration.source", c.source, ("auto", "acs", "self", "joint"))
        _at_least("calibration.acs_min_size", c.acs_min_size, 4)
        _at_least("calibration.edge_margin", c.edge_margin, 0.0)
        _at_least("calibration.num_training_pairs", c.num_training_pairs, 100)
        _at_least("calibration.offset_jitter", c.offset_jitter, 0.0)
        _at_least("calibration.noise_augmentation", c.noise_augmentation, 0.0)
        _at_least("calibration.interpolation_padding", c.interpolation_padding, 2)
        _at_least("calibration.selfcal_size", c.selfcal_size, 8)
        if not c.selfcal_grid >= c.selfcal_size:
            raise ConfigError(
                f"calibration.selfcal_grid = {c.selfcal_grid} must be >= calibration.selfcal_size = {c.selfcal_size}"
            )
        _at_least("calibration.selfcal_iterations", c.selfcal_iterations, 1)
        _at_least("calibration.selfcal_min_size", c.selfcal_min_size, 8)
        if c.selfcal_min_size > c.selfcal_size:
            raise ConfigError(
                f"calibration.selfcal_min_size = {c.selfcal_min_size} exceeds calibration.selfcal_size = {c.selfcal_size}"
            )
        if not (c.acs_noise_ratio_max == 0 or c.acs_noise_ratio_max >= 1):
            raise ConfigError(f"calibration.acs_noise_ratio_max must be 0 (no check) or >= 1, got {c.acs_noise_ratio_max}")
        if not 0.0 < c.selfcal_min_coverage <= 1.0:
            raise ConfigError(f"calibration.selfcal_min_coverage must be in (0, 1], got {c.selfcal_min_coverage}")
        _at_least("model.hidden_width", m.hidden_width, 1)
        _at_least("model.hidden_layers", m.hidden_layers, 1)
        _choice("model.activation", m.activation, ("relu", "gelu", "silu", "tanh"))
        _at_least("model.fourier_features", m.fourier_features, 0)
        _at_least("model.bottleneck", m.bottleneck, 0)
        if t.refit_head and m.bottleneck == 0:
            raise ConfigError("training.refit_head = true needs model.bottleneck > 0 (the refit solves the head on its features)")
        _at_least("training.refit_pairs", t.refit_pairs, 100)
        if t.refit_regularization <= 0:
            raise ConfigError(f"training.refit_regularization must be > 0, got {t.refit_regularization}")
        _at_least("training.epochs", t.epochs, 1)
        _at_least("training.batch_size", t.batch_size, 1)
        if t.max_seconds <= 0:
            raise ConfigError(f"training.max_seconds must be > 0, got {t.max_seconds}")
        _choice("training.optimizer", t.optimizer, ("adam", "adamw", "sgd"))
        if t.learning_rate <= 0:
            raise ConfigError(f"training.learning_rate must be > 0, got {t.learning_rate}")
        _choice("training.scheduler", t.scheduler, ("cosine", "step", "none"))
        _at_least("training.grad_clip", t.grad_clip, 0.0)
        _at_least("training.max_steps", t.max_steps, 1)
        _at_least("training.warm_start_steps", t.warm_start_steps, 1)
        _at_least("training.plateau_patience", t.plateau_patience, 0)
        _at_least("training.plateau_tolerance", t.plateau_tolerance, 0.0)
        if t.whitening_regularization <= 0:
            raise ConfigError(f"training.whitening_regularization must be > 0, got {t.whitening_regularization}")
        if not 0.0 <= t.validation_fraction < 0.5:
            raise ConfigError(f"training.validation_fraction must be in [0, 0.5), got {t.validation_fraction}")
        _choice("fieldcorr.mode", self.fieldcorr.mode, ("hybrid", "kernel"))
        _at_least("fieldcorr.time_segments", self.fieldcorr.time_segments, 1)
        _at_least("fieldcorr.cg_iterations", self.fieldcorr.cg_iterations, 0)
        if not 0.0 < self.fieldcorr.kernel_phase_tolerance < 1.0:
            raise ConfigError(f"fieldcorr.kernel_phase_tolerance must be in (0, 1), got {self.fieldcorr.kernel_phase_tolerance}")
        ic = self.image_calibration
        _choice("image_calibration.source", ic.source, ("auto", "series", "file", "data"))
        _at_least("image_calibration.lowres_size", ic.lowres_size, 8)
        _at_least("image_calibration.cg_iterations", ic.cg_iterations, 1)
        _choice("image_calibration.pair_positions", ic.pair_positions, ("auto", "trajectory", "random"))
        if not 0.0 < ic.trajectory_region <= 1.0:
            raise ConfigError(f"image_calibration.trajectory_region must be in (0, 1], got {ic.trajectory_region}")
        _at_least("image_calibration.trajectory_noise", ic.trajectory_noise, 0.0)
        if ic.target_size != 0:
            _at_least("image_calibration.target_size", ic.target_size, 8)
        if not 0.0 < ic.min_coverage <= 1.0:
            raise ConfigError(f"image_calibration.min_coverage must be in (0, 1], got {ic.min_coverage}")
        if ic.source == "file" and not ic.image_file:
            raise ConfigError("image_calibration.source = file needs image_calibration.image_file")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        """The configuration as TOML text (for output headers and logs)."""
        lines = [f'variant = "{self.variant}"']
        for section, values in self.to_dict().items():
            if not isinstance(values, dict):
                continue
            lines.append(f"\n[{section}]")
            for key, value in values.items():
                lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _choice(name: str, value: Any, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _at_least(name: str, value: float, minimum: float) -> None:
    if not value >= minimum:  # also refuses NaN
        raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")


def _coerce(name: str, text: str, current: Any) -> Any:
    """Convert an override string to the type of the field's current value."""
    try:
        if isinstance(current, bool):
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            number = float(text)
            if not math.isfinite(number):
                raise ValueError(text)
            return number
    except ValueError:
        raise ConfigError(f"{name}: cannot read {text!r} as {type(current).__name__}") from None
    return text


def _apply_mapping(config: IgrogConfig, mapping: dict[str, Any], origin: str) -> None:
    for key, value in mapping.items():
        if key == "variant":
            if not isinstance(value, str):
                raise ConfigError(f"{origin}: variant must be a string, got {value!r}")
            config.variant = value
            continue
        section = getattr(config, key, None)
        if not dataclasses.is_dataclass(section) or not isinstance(value, dict):
            known = [f.name for f in dataclasses.fields(config)]
            raise ConfigError(f"{origin}: unknown section {key!r}; known: {', '.join(known)}")
        for name, item in value.items():
            _set_field(section, key, name, item, origin)


def _set_field(section: Any, section_name: str, name: str, value: Any, origin: str) -> None:
    known = {f.name for f in dataclasses.fields(section)}
    if name not in known:
        raise ConfigError(f"{origin}: unknown field {section_name}.{name}; known: {', '.join(sorted(known))}")
    current = getattr(section, name)
    if isinstance(value, str) and not isinstance(current, str):
        value = _coerce(f"{section_name}.{name}", value, current)
    elif isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not type(current):
        raise ConfigError(
            f"{origin}: {section_name}.{name} must be {type(current).__name__}, got {value!r}"
        )
    setattr(section, name, value)


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


def standard_config_path(variant: str) -> Path:
    """The standard configuration file of a variant."""
    _choice("variant", variant, VARIANTS)
    return CONFIG_DIR / f"{variant}.toml"


def apply_overrides(config: IgrogConfig, overrides: Iterable[str]) -> IgrogConfig:
    """Apply ``section.field=value`` strings (from the CLI or gadget properties)."""
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override {override!r} must look like section.field=value")
        key, value = (part.strip() for part in override.split("=", 1))
        if "." not in key:
            raise ConfigError(f"override {override!r}: key must be section.field, e.g. training.max_seconds")
        section_name, name = key.split(".", 1)
        section = getattr(config, section_name, None)
        if not dataclasses.is_dataclass(section):
            known = [f.name for f in dataclasses.fields(config) if f.name != "variant"]
            raise ConfigError(f"override {override!r}: unknown section {section_name!r}; known: {', '.join(known)}")
        _set_field(section, section_name, name, value, "override")
    return config


def load_config(variant: str = "basic", path: str | Path | None = None, overrides: Iterable[str] = ()) -> IgrogConfig:
    """Standard file of ``variant``, then the user file ``path``, then overrides; validated."""
    config = IgrogConfig(variant=variant)
    _apply_mapping(config, read_toml(standard_config_path(variant)), str(standard_config_path(variant)))
    if path is not None:
        _apply_mapping(config, read_toml(path), str(path))
        if config.variant != variant:
            raise ConfigError(f"configuration file {path} is for variant {config.variant!r}, not {variant!r}")
    apply_overrides(config, overrides)
    return config.validate()
