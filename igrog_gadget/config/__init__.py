"""Configuration of the iGROG variants: dataclasses with defaults, one TOML file per variant.

Sources of truth:

* **The dataclasses below** hold every field's default value, its documentation (the attribute
  docstring) and, for fields with a fixed set of values, the choice tuple (``CHOICES`` metadata)
  that validation and the documentation both use.
* **The standard file of a variant** (``igrog_gadget/config/<variant>.toml``) says that the
  variant exists (``VARIANTS`` are the files present) and which sections and fields it uses:
  its header comment and its keys are written by hand, everything else in it (values, comments)
  is generated from the dataclasses by ``python -m igrog_gadget.config --write``; a test fails
  when a file differs from its regeneration (``render_standard_file``).

``load_config(variant, path=None, overrides=())`` reads the variant's standard file, then an
optional user file, then ``section.field=value`` overrides, and validates everything in one
place (``IgrogConfig.validate``), raising ``ConfigError`` naming the field and value. A section
or field the variant's standard file does not list is refused (the variant would ignore it),
and so is an option the configured model or mode ignores (``IGNORED_WHEN``).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import math
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from igrog_gadget.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent


def _variant_names() -> tuple[str, ...]:
    return tuple(sorted(path.stem for path in CONFIG_DIR.glob("*.toml")))


#: The variants: one standard file ``<variant>.toml`` each in this package's folder.
VARIANTS: tuple[str, ...] = _variant_names()


def variants() -> tuple[str, ...]:
    """Names of the variants (the standard files present)."""
    return VARIANTS


# --- choice lists: each one tuple, used by validation, the standard files and the CLI ---------
TRAJECTORY_UNITS = ("auto", "grid", "normalized")
GRID_DIMENSIONS = ("auto", "2d", "3d")
#: ``cuda:N`` stands for any device index.
DEVICES = ("auto", "cpu", "cuda", "cuda:N")
COIL_COMPRESSION = ("auto", "on", "off")
OUTPUT_COILS = ("physical", "virtual")
CALIBRATION_SOURCES = ("auto", "acs", "self", "joint")
#: Activation name -> ``torch.nn`` module class name (``igrog_gadget.arch.mlp`` builds them).
ACTIVATIONS: dict[str, str] = {"relu": "ReLU", "gelu": "GELU", "silu": "SiLU", "tanh": "Tanh"}
#: A subset of ``engine.optim.OPTIMIZERS`` (the engine is torch-bound; a test keeps them in step).
OPTIMIZERS = ("adam", "adamw", "sgd")
FIELDCORR_MODES = ("hybrid", "kernel")
KERNEL_FITS = ("closed_form", "network")
IMAGE_SOURCES = ("auto", "series", "file", "data")
PAIR_POSITIONS = ("auto", "trajectory", "random")
IMAGE_METHODS = ("auto", "sense", "rss")
DATA_WEIGHTINGS = ("hits", "mask")


class SchedulerParam(NamedTuple):
    """One parameter of a learning-rate scheduler (``[training.scheduler_params]``)."""

    default: float | int
    doc: str
    minimum: float
    maximum: float = math.inf
    minimum_excluded: bool = False


#: Scheduler name -> its parameters (a subset of ``engine.optim.SCHEDULERS``). Parameter names
#: are unique across schedulers.
SCHEDULERS: dict[str, dict[str, SchedulerParam]] = {
    "cosine": {
        "min_lr_ratio": SchedulerParam(
            0.02, "final learning rate of the cosine annealing, as a share of training.learning_rate", 0.0, 1.0
        ),
    },
    "step": {
        "step_size": SchedulerParam(0, "epochs between two decays (0 = training.epochs // 3, at least 1)", 0),
        "gamma": SchedulerParam(0.3, "factor of each decay", 0.0, 1.0, minimum_excluded=True),
    },
    "none": {},
}

#: Metadata key of a field's choice tuple.
CHOICES = "choices"


def _choice_field(default: str, choices: Iterable[str]) -> Any:
    return field(default=default, metadata={CHOICES: tuple(choices)})


@dataclass
class GriddingConfig:
    """How samples are moved onto the grid."""

    num_sources: int = 5
    """Consecutive readout samples feeding each kernel (3-5: best accuracy)."""
    neighbour_sources: int = 4
    """3D frames only (2D frames ignore it): further sources per kernel, the samples of other readouts
    nearest to the target grid point. A readout's own samples lie on a line, so across it the coils
    alone would have to shift the data in two directions; these neighbours carry that information
    (64^3 kooshball, 8 coils, 1200 steps: 0.63x of 3D classic GROG's error without them, 0.54x with 2,
    0.53x with 4 or 6 or with a radius of 2)."""
    neighbour_radius: float = 1.5
    """3D: largest distance (grid units) of a neighbour source from the target grid point (where fewer
    lie that close the sample itself stands in); it adds to the reach the calibration block must hold."""
    trajectory_units: str = _choice_field("auto", TRAJECTORY_UNITS)
    """Units of acq.traj: auto (detect), grid (cycles/FOV, [-N/2, N/2)), normalized ([-0.5, 0.5))."""
    dimensions: str = _choice_field("auto", GRID_DIMENSIONS)
    """2d: every frame is a 2D plane (stacks of stars/spirals per kspace_encode_step_2); 3d: one 3D grid
    (nx, ny, nz) from a 3-column acq.traj (kooshball, stack-of-spirals with kz, cones); auto: 3d when
    encodedSpace z > 1 and an imaging readout has a 3-column trajectory with kz != 0 (a third column of
    density weights in a stack of 2D frames then needs 2d)."""
    grid_oversampling: float = 1.0
    """Grid matrix = encodedSpace matrix x this factor (1 = header matrix)."""
    device: str = "auto"
    """Compute device: auto (CUDA when available), cpu, cuda or cuda:N."""
    inference_batch_size: int = 16384
    """Samples per batch when computing kernels (each batch is applied at once: memory is bounded by it)."""
    cache_mb: float = 1024.0
    """Bytes (MiB) the per-trajectory kernel cache may hold; kernels that do not fit are recomputed per frame."""
    cpu_threads: int = 0
    """CPU threads of a replay's native libraries (torch, numpy's BLAS, finufft; 0 = the processors the
    process may run on), fixed from here, never from OMP_NUM_THREADS and the like, so results depend
    only on the input and the configuration, never on load or environment.
    ``igrog serve`` sets its threads once for the whole process (``--cpu-threads``) and ignores this."""
    coil_compression: str = _choice_field("auto", COIL_COMPRESSION)
    """Virtual coils: auto (compress when the data have more than compression_threshold coils), on or off."""
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
    output_coils: str = _choice_field("physical", OUTPUT_COILS)
    """physical (compression undone: the projection onto the virtual subspace, in the input's coils)
    or virtual (the virtual coils; the compression matrix goes into the output header)."""


@dataclass
class CalibrationConfig:
    """Where the training pairs come from."""

    source: str = _choice_field("auto", CALIBRATION_SOURCES)
    """k-space calibration: auto (joint when ACS lines exist, else self), acs, self or joint
    (ACS + non-Cartesian centre, one CG solve)."""
    acs_min_size: int = 12
    """Smallest usable fully sampled ACS block side (grid points)."""
    edge_margin: float = 4.0
    """Training targets stay this many grid units (plus the largest source offset) inside the block edge."""
    num_training_pairs: int = 60000
    """Synthesised (sources, target) pairs per training."""
    num_training_pairs_3d: int = 300000
    """num_training_pairs of a 3D frame (0 = num_training_pairs): its kernels map more sources over
    a 3D space of offsets and overfit 60000 pairs (64^3 kooshball, 8 coils, 2400 steps of 1024:
    NRMSE 0.0593 from 60000 pairs, stopped by the validation plateau at 2016 steps; 0.0566 from
    150000, 0.0555 from 300000; peak RSS 1.19, 1.32, 1.87 GB)."""
    offset_jitter: float = 0.02
    """Gaussian jitter (grid units) added to the trajectory's offsets when synthesising pairs."""
    noise_augmentation: float = 3.0
    """Noise added to the training sources, in multiples of the data's noise std (0 = none): estimated
    by the self/joint calibration fit (basic) or by the central CG fit of the coil images (random
    image pairs); it teaches the kernels to keep their noise gain low."""
    closed_form_noise: float = 8.0
    """training.fit = closed_form: the kernels' ridge is the variance of a source noise of this many
    times the data's noise std, divided by the samples averaged into the target point (their noise
    averages there): a Wiener fit that keeps the noise gain low where few samples land (128^2, 8
    coils, hits-weighted CG-SENSE image error x the perfect gridder's: 1.37 / 1.40 at 1.5, 1.21 /
    1.25 at 3, 1.13 / 1.14 at 8, 1.16 / 1.13 at 12 on 200-spoke radial / 16-interleaf spiral)."""
    normalize_pairs: bool = True
    """Scale each training pair to unit source power (equal weight for centre and edge of the block)."""
    interpolation_padding: int = 4
    """Zero-padding factor of the block for the sinc (NUFFT) interpolation of off-grid values."""
    selfcal_size: int = 32
    """Side of the block reconstructed from the k-space centre when self-calibrating."""
    selfcal_grid: int = 0
    """Image grid of a calibration solve (its k-space spans [-grid/2, grid/2)): at least twice the
    block's side; 0 = twice the side (64 for the 32-side 2D block; a 3D joint block of 16 solves on
    32^3, 8x fewer FFT points than 64^3 and the same block: 32^3 kooshball NRMSE 0.0386 both, 18 s
    less)."""
    selfcal_iterations: int = 30
    """Conjugate-gradient iterations of the self-calibration solve (it stops earlier once converged:
    a 200-spoke radial centre does; an undersampled 8-interleaf spiral's needs the 30, whose error at
    3 <= |k| < 8 is then 1.9 % instead of 3.4 % after 15)."""
    selfcal_min_coverage: float = 0.9
    """Fraction of grid cells around the centre that must hold a sample to self-calibrate."""
    selfcal_min_size: int = 16
    """Smallest self-calibration block: when the centre is densely sampled only within a smaller
    radius than selfcal_size needs (undersampled radial), the block shrinks down to this."""
    acs_noise_ratio_max: float = 3.0
    """Calibration lines are not used when fitting them with the non-Cartesian samples makes the
    calibration fit's noise estimate this many times worse than the samples alone (0 = no check)."""
    fill_centre: bool = True
    """Grid points inside a k-space calibration block (ACS, joint or self-calibration; edge_margin
    from its edge) that samples reached take the block's value: the calibration solve already fits
    every sample there, where kernels would add their shift error (128^2 radial, 200 spokes: error
    at |k| < 3 0.07 % instead of 0.3 %). Not for blocks made from coil images or sensitivity maps."""

    def solve_grid(self, block_side: int) -> int:
        """Image grid side of the calibration solve for a block of ``block_side``: selfcal_grid,
        at least twice the side."""
        return max(self.selfcal_grid, 2 * block_side)


@dataclass
class ModelConfig:
    """The MLP from source offsets to a complex kernel."""

    hidden_width: int = 128
    """Width of the MLP's hidden layers."""
    hidden_layers: int = 3
    """Number of hidden layers."""
    activation: str = _choice_field("gelu", ACTIVATIONS)
    """Activation function of the hidden layers."""
    fourier_features: int = 0
    """Random Fourier features of the offsets (0 = off)."""
    fourier_scale: float = 0.5
    """Standard deviation of the Fourier feature frequencies (cycles per grid unit; needs fourier_features > 0)."""
    bottleneck: int = 0
    """Width of the linear feature layer before the head (0 = none); needed by the head refit.
    Not in the fieldcorr kernel mode (its TimeKernelModel has no bottleneck)."""


@dataclass
class TrainingConfig:
    """The training run (engine.Trainer)."""

    epochs: int = 100
    """Upper bound on passes over the training pairs (max_steps normally ends training first)."""
    batch_size: int = 256
    """Training pairs per optimizer step (256: for the same accuracy, 1200 steps of 256 pairs cost
    about 0.4x the time of 1200 steps of 1024 on a CPU)."""
    max_steps: int = 1200
    """Optimizer steps of a first training; the cosine learning-rate schedule anneals over them."""
    max_steps_3d: int = 2400
    """max_steps of a 3D frame's first training (0 = max_steps): its kernels take more sources
    (gridding.neighbour_sources) over a larger space of offsets, and keep improving past 1200 steps
    (64^3 kooshball, 8 coils, 1024 pairs per step: NRMSE 0.0621 at 1200 steps, 0.0593 at 2400)."""
    batch_size_3d: int = 1024
    """batch_size of a 3D frame's training (0 = batch_size): 64^3 kooshball, 8 coils, 2400 steps:
    0.0593 with 1024 pairs per step at learning rate 3e-3, 0.0633 with 256 at 5e-3."""
    learning_rate_3d: float = 3e-3
    """learning_rate of a 3D frame's training (0 = learning_rate); see batch_size_3d."""
    fit: str = _choice_field("closed_form", KERNEL_FITS)
    """How kernels are fitted to the calibration: closed_form (each sample's least-squares kernel,
    solved from the calibration block's autocorrelation: no gradient steps, the loss weighted by
    the block's energy) or network (the kernel MLP trained by gradient steps on synthesised pairs;
    fieldcorr.mode = kernel always trains it: time-dependent kernels have no closed form)."""
    fit_3d: str = _choice_field("network", KERNEL_FITS)
    """fit of a 3D frame. The closed form with gridding.neighbour_sources = 0 shares one solve per
    spoke: 64^3 kooshball (4000 spokes, 8 coils) NRMSE 0.057 in 42 s against the network's 0.041
    in 88 s, 32^3 (1200 spokes) 0.055 in 10 s against 0.084 in 67 s (whole replays, 2 cores); with
    neighbour sources every sample solves its own (coils * (5 + n))^2 system (n = 2: 0.046 in 190 s
    at 64^3)."""
    warm_start: bool = True
    """A new calibration key (slice, partition, contrast) starts from the last trained model of the same shape."""
    warm_start_steps: int = 200
    """Optimizer steps of a warm-started training (needs warm_start)."""
    warm_start_dir: str = ""
    """Directory of networks kept across scans (empty: off). A scan's first training starts from the
    network the last scan with the same variant, grid, coils, trajectory family (straight or curved
    readouts) and network shape saved there, and trains warm_start_steps; its own network is then
    saved in its place. The output's igrog.frames names the model it started from
    (warm_start_model). Network fit only (the closed form has nothing to start from); set by the
    server's operator, never by a connection."""
    early_readouts: int = 64
    """A calibration key's model is trained from its calibration data and the offsets of the first
    this many imaging readouts of its first frame, as soon as they have arrived (training overlaps
    the rest of the scan); 0 = from the whole frame, when it is complete. Self-calibration always
    waits for the whole frame."""
    offset_coverage_max: float = 3.0
    """Retrain (from the whole frame, warm-started) when a frame's offsets lie more than this many
    times farther from the offsets its model was trained on than those lie from each other
    (99th-percentile nearest-neighbour distances): e.g. a linear-order radial scan whose first
    spokes span a few degrees (golden-angle spokes give 1.3-2.1; 0 = never check)."""
    plateau_patience: int = 3
    """Stop when the validation loss has not improved by plateau_tolerance for this many epochs (0 = off)."""
    plateau_tolerance: float = 0.01
    """Relative improvement of the validation loss that counts as progress."""
    max_seconds: float = 120.0
    """Safety cap on training wall time (reported when it stops training: the result then depends on load)."""
    optimizer: str = _choice_field("adam", OPTIMIZERS)
    """Optimizer of the gradient training."""
    learning_rate: float = 5e-3
    """Initial learning rate of the optimizer."""
    weight_decay: float = 0.0
    """Weight decay of the optimizer (0 = none)."""
    scheduler: str = _choice_field("cosine", SCHEDULERS)
    """Learning-rate schedule: cosine (annealed over the training's step count), step (decayed every
    few epochs) or none; its parameters go in [training.scheduler_params]."""
    scheduler_params: dict[str, Any] = field(default_factory=dict)
    """Parameters of training.scheduler; a parameter of another scheduler is refused, an unset one
    takes the default shown (commented out) below."""
    grad_clip: float = 1.0
    """Gradient-norm clipping (0 = off)."""
    refit_head: bool = False
    """After gradient training, solve the head exactly by regularised least squares (needs model.bottleneck)."""
    refit_pairs: int = 20000
    """Training pairs used by the head refit (needs refit_head)."""
    refit_regularization: float = 1e-4
    """Tikhonov loading of the refit, relative to the mean diagonal of its normal matrix (needs refit_head)."""
    whiten_sources: bool = True
    """Train the kernel for whitened sources (a reparameterisation that speeds up convergence)."""
    whitening_regularization: float = 1e-2
    """Diagonal loading of the source covariance before whitening, relative to its mean eigenvalue
    (needs whiten_sources)."""
    validation_fraction: float = 0.05
    """Share of the pairs held out to report a validation loss."""
    seed: int = 0
    """Seed of the training's random numbers (pairs, initialisation, batches)."""
    cpu_threads: int = 1
    """torch intra-op threads of the fits (their own worker thread; 0 = those of the process,
    gridding.cpu_threads): a 2D kernel MLP's step of 256 pairs takes 4.3 ms on one thread and
    5.3 ms on two of a 2-core CPU, and the other core stays with the ingest, the next key's
    calibration and the gridding (a paced 8-slice stream's first fit 9.6 -> 5.9 s). Results
    depend on it (last bits). The first training of a stream or file fixes it for the others."""
    cpu_threads_3d: int = 0
    """cpu_threads of a 3D frame's fits (0 = those of the process): a 3D frame trains once, from
    the whole frame, with 1024 pairs per step, which two threads run faster (64^3 kooshball
    replay, 2 cores: 59 s against 71 s on one)."""
    progress: bool = False
    """Show a progress bar while training (the CLI turns it on)."""

    def for_dims(self, dims: int) -> "TrainingConfig":
        """The settings a ``dims``-D frame trains with: for 3D, max_steps, batch_size and
        learning_rate replaced by their ``_3d`` values (those not 0) and cpu_threads by
        cpu_threads_3d and fit by fit_3d; 2D: these settings."""
        if dims != 3:
            return self
        values = {name: getattr(self, f"{name}_3d") for name in ("max_steps", "batch_size", "learning_rate")}
        values = {name: value for name, value in values.items() if value > 0}
        return dataclasses.replace(self, **values, cpu_threads=self.cpu_threads_3d, fit=self.fit_3d)

    def scheduler_settings(self) -> dict[str, Any]:
        """The parameters of ``scheduler``: those set in ``scheduler_params``, the defaults for the rest."""
        known = SCHEDULERS.get(self.scheduler, {})
        return {name: self.scheduler_params.get(name, param.default) for name, param in known.items()}


@dataclass
class FieldCorrectionConfig:
    """B0 field correction (fieldcorr variant)."""

    mode: str = _choice_field("hybrid", FIELDCORR_MODES)
    """hybrid (field-free kernels + Cartesian-side correction; the more accurate) or kernel
    (time-dependent kernels of a TimeKernelModel)."""
    b0map_file: str = ""
    """B0 map (Hz) when the input carries no "b0map" image series: .npy (ny, nx) (a 3D frame's:
    (nz, ny, nx)) | .npz (b0map or b0map_hz) | .h5/.mrd; none = error."""
    time_segments: int = 12
    """hybrid: time segments of the Cartesian-side (conjugate-phase) correction."""
    cg_iterations: int = 0
    """hybrid: CG refinement iterations of the correction (0 = conjugate phase only)."""
    kernel_phase_tolerance: float = 1e-3
    """kernel: largest error of the time-segmented field phase in the training pairs."""


@dataclass
class ImageCalibrationConfig:
    """Coil images the image_based variant (and fieldcorr) synthesise training pairs from."""

    source: str = _choice_field("auto", IMAGE_SOURCES)
    """Coil images: auto (image series in the input, else image_file, else made from the data), series, file or data."""
    image_file: str = ""
    """File with coil images or sensitivity maps used when the input carries no image series: .npy
    (coils, ny, nx) coil images (a 3D frame's: (coils, nz, ny, nx)) | .npz / .h5 / .mrd with coil_images or
    sensitivity_maps (+ reference_image)."""
    lowres_size: int = 48
    """From the data: side of the central k-space region reconstructed (and of its image grid)."""
    cg_iterations: int = 15
    """From the data: conjugate-gradient iterations of that reconstruction (also used for the noise estimate)."""
    pair_positions: str = _choice_field("auto", PAIR_POSITIONS)
    """trajectory (pairs at the frame's own samples), random (random targets in the central
    target_size) or auto (trajectory for images from a series or file, random for images made from the data)."""
    trajectory_region: float = 0.5
    """trajectory pairs: samples whose grid point lies in this central fraction of the matrix (per axis)."""
    trajectory_noise: float = 1.5
    """trajectory pairs: source noise in multiples of the data's noise std (divided by sqrt(hits))."""
    target_size: int = 32
    """random pairs: targets lie in the central target_size x target_size of the images' k-space (0 = all of it)."""
    min_coverage: float = 0.9
    """From the data: share of the central grid cells that must hold a sample to make coil images."""


@dataclass
class OutputConfig:
    """What the gridded output carries besides the Cartesian k-space (every sink: the replay file,
    Cartesian acquisitions, ReconData)."""

    calibration: bool = True
    """Pass the calibration data on, on the output grid and in the output's coils: the calibration block
    of each calibration key (its Cartesian ACS lines placed on the grid, or the block the joint or
    self-calibration solved) as ACQ_IS_PARALLEL_CALIBRATION acquisitions before the key's first frame
    (ReconData: the recon bit's reference buffer). Off for a minimal Cartesian consumer that would stack
    flagged lines into its image."""
    weights: bool = True
    """Per-point weights: the number of samples gridded onto each point, as the image series
    igrog_weights (replay file, acquisitions output) or the ReconData density array."""


@dataclass
class ReconConfig:
    """The image made of a gridded frame (the gadget's images output, replay --png and --images):
    Cartesian SENSE with ESPIRiT maps of the calibration block, or the root-sum-of-squares."""

    image: str = _choice_field("auto", IMAGE_METHODS)
    """sense (CG-SENSE; RSS with a warning when the frame has no calibration block to make maps of), rss,
    or auto (sense for undersampled frames, rss when the gridded points cover full_coverage of the sampled
    k-space disc)."""
    full_coverage: float = 0.95
    """auto: a frame whose gridded points cover this share of the disc its samples reach is fully sampled (RSS)."""
    iterations: int = 30
    """Conjugate-gradient iterations of SENSE (a fixed count: the same input gives the same image)."""
    regularization: float = 0.001
    """Tikhonov weight relative to the mean data weight of the gridded points (0: none; 128^2, 8 coils,
    radial 64 and 32 spokes, SNR 50 and 15: 0 to 0.001 best with hits weighting, 0.01 with mask)."""
    weighting: str = _choice_field("hits", DATA_WEIGHTINGS)
    """Data weight of each grid point: hits (the samples gridded onto it: its noise variance is the
    sample variance over it) or mask (1 wherever something was gridded, as BART pics weights); hits gave
    0.66x to 0.87x mask's image error (radial 64 and 32 spokes, spiral)."""
    map_kernel: int = 6
    """ESPIRiT kernel side (points per axis) of the calibration matrix."""
    map_threshold: float = 0.02
    """ESPIRiT: singular values of the calibration matrix kept, relative to the largest."""
    map_crop: float = 0.8
    """ESPIRiT: maps are zero (no image) where the eigenvalue is below this."""


#: Section name -> its dataclass, in the order of the standard files.
SECTIONS: dict[str, type] = {
    "gridding": GriddingConfig,
    "calibration": CalibrationConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
    "image_calibration": ImageCalibrationConfig,
    "fieldcorr": FieldCorrectionConfig,
    "output": OutputConfig,
    "recon": ReconConfig,
}
#: Sections only some variants have (None in the others).
OPTIONAL_SECTIONS = ("image_calibration", "fieldcorr")


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

    def for_dims(self, dims: int) -> "IgrogConfig":
        """This configuration with the settings of a ``dims``-D frame: ``TrainingConfig.for_dims``
        and, in 3D, ``calibration.num_training_pairs_3d`` (when not 0)."""
        if dims != 3:
            return self
        calibration = self.calibration
        if calibration.num_training_pairs_3d > 0:
            calibration = dataclasses.replace(calibration, num_training_pairs=calibration.num_training_pairs_3d)
        return dataclasses.replace(self, training=self.training.for_dims(dims), calibration=calibration)

    def kernel_fit(self) -> str:
        """How kernels are fitted: ``training.fit`` (take ``for_dims`` first for a 3D frame's),
        except network for fieldcorr.mode = kernel (time-dependent kernels have no closed form)."""
        if self.fieldcorr is not None and self.fieldcorr.mode == "kernel":
            return "network"
        return self.training.fit

    def sections(self) -> Iterator[tuple[str, Any]]:
        """(name, section) of the sections this configuration has."""
        for name in SECTIONS:
            section = getattr(self, name)
            if section is not None:
                yield name, section

    def validate(self) -> "IgrogConfig":
        """Check every field; raise ConfigError naming the first bad one."""
        _choice("variant", self.variant, VARIANTS)
        layout = standard_layout(self.variant)
        for name in OPTIONAL_SECTIONS:
            present = getattr(self, name) is not None
            if present and name not in layout:
                raise ConfigError(_section_not_used(name, self.variant))
            if not present and name in layout:
                raise ConfigError(f"variant {self.variant!r} needs a [{name}] section")
        for section_name, section in self.sections():
            for item in dataclasses.fields(section):
                value = getattr(section, item.name)
                if item.name not in layout[section_name] and value != _default(item):
                    raise ConfigError(_field_not_used(section_name, item.name, self.variant))
                if CHOICES in item.metadata:
                    _choice(f"{section_name}.{item.name}", value, item.metadata[CHOICES])
        for name, reason in ignored_options(self):
            value = _value_at(self, name)
            if value != _default_at(name):
                raise ConfigError(f"{name} = {_toml_value(value)} has no effect: {reason}; remove it")
        g, c, m, t = self.gridding, self.calibration, self.model, self.training
        _at_least("gridding.num_sources", g.num_sources, 1)
        _at_least("gridding.neighbour_sources", g.neighbour_sources, 0)
        if not g.neighbour_radius > 0:
            raise ConfigError(f"gridding.neighbour_radius must be > 0, got {g.neighbour_radius}")
        _at_least("gridding.grid_oversampling", g.grid_oversampling, 1.0)
        if not (g.device in DEVICES[:-1] or (g.device.startswith("cuda:") and g.device[5:].isdigit())):
            raise ConfigError(f"gridding.device must be one of {', '.join(DEVICES)}; got {g.device!r}")
        _at_least("gridding.inference_batch_size", g.inference_batch_size, 1)
        _at_least("gridding.cache_mb", g.cache_mb, 0.0)
        _at_least("gridding.cpu_threads", g.cpu_threads, 0)
        _at_least("gridding.compression_threshold", g.compression_threshold, 1)
        _at_least("gridding.virtual_coils", g.virtual_coils, 0)
        _at_least("gridding.min_virtual_coils", g.min_virtual_coils, 1)
        if not 0.0 < g.compression_energy <= 1.0:
            raise ConfigError(f"gridding.compression_energy must be in (0, 1], got {g.compression_energy}")
        _at_least("calibration.acs_min_size", c.acs_min_size, 4)
        _at_least("calibration.edge_margin", c.edge_margin, 0.0)
        _at_least("calibration.num_training_pairs", c.num_training_pairs, 100)
        if c.num_training_pairs_3d != 0:
            _at_least("calibration.num_training_pairs_3d", c.num_training_pairs_3d, 100)
        _at_least("calibration.offset_jitter", c.offset_jitter, 0.0)
        _at_least("calibration.noise_augmentation", c.noise_augmentation, 0.0)
        _at_least("calibration.closed_form_noise", c.closed_form_noise, 0.0)
        _at_least("calibration.interpolation_padding", c.interpolation_padding, 2)
        _at_least("calibration.selfcal_size", c.selfcal_size, 8)
        _at_least("calibration.selfcal_grid", c.selfcal_grid, 0)
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
        if t.learning_rate <= 0:
            raise ConfigError(f"training.learning_rate must be > 0, got {t.learning_rate}")
        _check_scheduler_params(t)
        _at_least("training.grad_clip", t.grad_clip, 0.0)
        _at_least("training.max_steps", t.max_steps, 1)
        _at_least("training.max_steps_3d", t.max_steps_3d, 0)
        _at_least("training.cpu_threads", t.cpu_threads, 0)
        _at_least("training.cpu_threads_3d", t.cpu_threads_3d, 0)
        _at_least("training.batch_size_3d", t.batch_size_3d, 0)
        _at_least("training.learning_rate_3d", t.learning_rate_3d, 0.0)
        _at_least("training.warm_start_steps", t.warm_start_steps, 1)
        _at_least("training.early_readouts", t.early_readouts, 0)
        _at_least("training.offset_coverage_max", t.offset_coverage_max, 0.0)
        _at_least("training.plateau_patience", t.plateau_patience, 0)
        _at_least("training.plateau_tolerance", t.plateau_tolerance, 0.0)
        if t.whitening_regularization <= 0:
            raise ConfigError(f"training.whitening_regularization must be > 0, got {t.whitening_regularization}")
        if not 0.0 <= t.validation_fraction < 0.5:
            raise ConfigError(f"training.validation_fraction must be in [0, 0.5), got {t.validation_fraction}")
        r = self.recon
        if not 0.0 < r.full_coverage <= 1.0:
            raise ConfigError(f"recon.full_coverage must be in (0, 1], got {r.full_coverage}")
        _at_least("recon.iterations", r.iterations, 1)
        _at_least("recon.regularization", r.regularization, 0.0)
        _at_least("recon.map_kernel", r.map_kernel, 2)
        if not 0.0 < r.map_threshold < 1.0:
            raise ConfigError(f"recon.map_threshold must be in (0, 1), got {r.map_threshold}")
        if not 0.0 <= r.map_crop < 1.0:
            raise ConfigError(f"recon.map_crop must be in [0, 1), got {r.map_crop}")
        if self.fieldcorr is not None:
            fc = self.fieldcorr
            _at_least("fieldcorr.time_segments", fc.time_segments, 1)
            _at_least("fieldcorr.cg_iterations", fc.cg_iterations, 0)
            if not 0.0 < fc.kernel_phase_tolerance < 1.0:
                raise ConfigError(f"fieldcorr.kernel_phase_tolerance must be in (0, 1), got {fc.kernel_phase_tolerance}")
        if self.image_calibration is not None:
            ic = self.image_calibration
            _at_least("image_calibration.lowres_size", ic.lowres_size, 8)
            _at_least("image_calibration.cg_iterations", ic.cg_iterations, 1)
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
                    lines.append(f"{key} = {_toml_value(value)}")
            for key, table in tables.items():
                lines.append(f"\n[{section}.{key}]")
                lines.extend(f"{name} = {_toml_value(value)}" for name, value in table.items())
        return "\n".join(lines) + "\n"


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


def _check_scheduler_params(training: TrainingConfig) -> None:
    known = SCHEDULERS[training.scheduler]
    for name, value in training.scheduler_params.items():
        if name not in known:
            has = f"its parameters: {', '.join(known)}" if known else "it has no parameters"
            raise ConfigError(
                f"training.scheduler_params.{name} is not a parameter of scheduler {training.scheduler!r} ({has})"
            )
        param = known[name]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or type(value) is not type(param.default):
            raise ConfigError(
                f"training.scheduler_params.{name} must be {type(param.default).__name__}, got {value!r}"
            )
        low_ok = value > param.minimum if param.minimum_excluded else value >= param.minimum
        if not (low_ok and value <= param.maximum):
            low = "(" if param.minimum_excluded else "["
            high = f"{param.maximum:g}]" if math.isfinite(param.maximum) else "inf)"
            raise ConfigError(f"training.scheduler_params.{name} must be in {low}{param.minimum:g}, {high}, got {value!r}")


def _scheduler_param(name: str) -> SchedulerParam | None:
    for params in SCHEDULERS.values():
        if name in params:
            return params[name]
    return None


def _default(item: dataclasses.Field) -> Any:
    if item.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return item.default_factory()  # type: ignore[misc]
    return item.default


def _default_at(path: str) -> Any:
    section, name = path.split(".", 1)
    return _default(next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == name))


def _value_at(config: IgrogConfig, path: str) -> Any:
    section, name = path.split(".", 1)
    return getattr(getattr(config, section), name)


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


# --- what each variant has: its standard file ------------------------------------------------
def _section_not_used(section: str, variant: str) -> str:
    has = ", ".join(standard_layout(variant))
    return f"section [{section}] is not used by variant {variant!r} (its sections: {has})"


def _field_not_used(section: str, name: str, variant: str) -> str:
    has = ", ".join(standard_layout(variant)[section])
    return (
        f"{section}.{name} is not used by variant {variant!r}; its [{section}] fields are: {has} "
        f"(see {standard_config_path(variant).name})"
    )


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


def _apply_mapping(config: IgrogConfig, mapping: dict[str, Any], origin: str) -> None:
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
            _set_field(config, key, name, item, origin)


def _set_field(config: IgrogConfig, section_name: str, name: str, value: Any, origin: str) -> None:
    """Set ``section_name.name``; ``name`` may be ``scheduler_params.<param>`` (an override)."""
    section = getattr(config, section_name, None)
    if section is None:
        raise ConfigError(f"{origin}: {_section_not_used(section_name, config.variant)}")
    head, _, param = name.partition(".")
    known = {f.name for f in dataclasses.fields(section)}
    if head not in known:
        raise ConfigError(f"{origin}: unknown field {section_name}.{name}; known: {', '.join(sorted(known))}")
    if head not in standard_layout(config.variant)[section_name]:
        raise ConfigError(f"{origin}: {_field_not_used(section_name, head, config.variant)}")
    current = getattr(section, head)
    if isinstance(current, dict):  # a table: training.scheduler_params
        items = {param: value} if param else value
        if not isinstance(items, dict):
            raise ConfigError(f"{origin}: {section_name}.{head} must be a table, got {value!r}")
        setattr(section, head, {**current, **{key: _param_value(section_name, head, key, item, origin)
                                              for key, item in items.items()}})
        return
    if param:
        raise ConfigError(f"{origin}: unknown field {section_name}.{name}; {section_name}.{head} is not a table")
    if isinstance(value, str) and not isinstance(current, str):
        value = _coerce(f"{section_name}.{name}", value, current)
    elif isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not type(current):
        raise ConfigError(
            f"{origin}: {section_name}.{name} must be {type(current).__name__}, got {value!r}"
        )
    setattr(section, name, value)


def _param_value(section_name: str, table: str, key: str, value: Any, origin: str) -> Any:
    """A scheduler parameter, converted to its type (whether it fits the scheduler: ``validate``)."""
    where = f"{section_name}.{table}.{key}"
    param = _scheduler_param(key)
    if param is None:
        listing = "; ".join(f"{name}: {', '.join(params) or 'none'}" for name, params in SCHEDULERS.items())
        raise ConfigError(f"{origin}: unknown scheduler parameter {where}; known ({listing})")
    if isinstance(value, str):
        return _coerce(where, value, param.default)
    if isinstance(param.default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


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
    """Apply ``section.field=value`` strings (from the CLI or gadget properties); a table entry
    is ``section.table.key=value`` (``training.scheduler_params.gamma=0.5``)."""
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override {override!r} must look like section.field=value")
        key, value = (part.strip() for part in override.split("=", 1))
        if "." not in key:
            raise ConfigError(f"override {override!r}: key must be section.field, e.g. training.max_seconds")
        section_name, name = key.split(".", 1)
        if section_name not in SECTIONS:
            raise ConfigError(f"override {override!r}: unknown section {section_name!r}; known: {', '.join(SECTIONS)}")
        _set_field(config, section_name, name, value, f"override {override!r}")
    return config


def load_config(variant: str = "basic", path: str | Path | None = None, overrides: Iterable[str] = ()) -> IgrogConfig:
    """Standard file of ``variant``, then the user file ``path``, then overrides; validated."""
    standard = standard_config_path(variant)
    config = IgrogConfig(variant=variant)
    _apply_mapping(config, read_toml(standard), str(standard))
    if path is not None:
        _apply_mapping(config, read_toml(path), str(path))
    apply_overrides(config, overrides)
    return config.validate()


# --- the standard files: generated from the dataclasses ---------------------------------------
#: First line of the generated part of a standard file (after its hand-written header comment).
GENERATED_NOTE = (
    "# Values and comments below are generated from the dataclasses of igrog_gadget/config/__init__.py\n"
    "# (python -m igrog_gadget.config --write); the keys listed are the fields this variant uses."
)
_WIDTH = 100


@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """Field name -> its attribute docstring (one paragraph) of a configuration dataclass (parsed
    from its source once per process; do not modify the returned mapping)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, after in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


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


def render_standard_file(variant: str) -> str:
    """The standard file of ``variant`` as generated: its own header comment and field list, every
    field's default value and documentation from the dataclasses."""
    path = standard_config_path(variant)
    layout = standard_layout(variant)
    lines = [*_header(path), *GENERATED_NOTE.splitlines(), f'variant = "{variant}"']
    for section_name, cls in SECTIONS.items():
        if section_name not in layout:
            continue
        docs = field_docs(cls)
        lines += ["", f"[{section_name}]", *_comment(inspect.getdoc(cls) or section_name)]
        unused = [f.name for f in dataclasses.fields(cls) if f.name not in layout[section_name]]
        if unused:
            lines += _comment(f"Not used by {variant} (refused): {', '.join(unused)}.")
        tables = []
        for item in dataclasses.fields(cls):
            if item.name not in layout[section_name]:
                continue
            default = _default(item)
            if isinstance(default, dict):
                tables.append(item)
                continue
            doc = docs.get(item.name, "")
            if CHOICES in item.metadata:
                doc += f" One of: {' | '.join(item.metadata[CHOICES])}."
            lines += ["", *_comment(doc), f"{item.name} = {_toml_value(default)}"]
        for item in tables:
            lines += ["", f"[{section_name}.{item.name}]", *_comment(docs.get(item.name, ""))]
            for scheduler, params in SCHEDULERS.items():
                for name, param in params.items():
                    lines += [*_comment(f"{scheduler}: {param.doc}."), f"# {name} = {_toml_value(param.default)}"]
    return "\n".join(lines) + "\n"


def check_standard_files() -> list[str]:
    """Names of the standard files that differ from their regeneration."""
    return [
        standard_config_path(variant).name
        for variant in VARIANTS
        if standard_config_path(variant).read_text() != render_standard_file(variant)
    ]


def write_standard_files() -> list[str]:
    """Regenerate every standard file; the names of those that changed."""
    changed = []
    for variant in VARIANTS:
        path = standard_config_path(variant)
        text = render_standard_file(variant)
        if path.read_text() != text:
            path.write_text(text)
            changed.append(path.name)
    standard_layout.cache_clear()
    return changed
