"""The configuration table: one dataclass per section, each field declared once with its default,
documentation, bounds, choices, resource limit and 3D default (``spec.setting``).

``SECTIONS`` lists the sections in the order of the standard files; ``IgrogConfig``
(``igrog_config.py``) holds one of each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
)
from igrog_gadget.config.spec import for_dims, setting, table, volume_defaults

#: Documentation of a section's ``volume`` table.
VOLUME_DOC = (
    "Settings of a 3D frame (one (nx, ny, nz) grid, gridding.dimensions): each key replaces the "
    "field of the same name of this section for 3D frames; a field it does not list keeps its value. "
    "Its keys: the fields with a 3D default."
)


@dataclass
class GriddingConfig:
    """How samples are moved onto the grid."""

    num_sources: int = setting(
        5, "Consecutive readout samples feeding each kernel (3-5: best accuracy).", minimum=1, limit="max_sources"
    )
    neighbour_sources: int = setting(
        4,
        """3D frames only (2D frames ignore it): further sources per kernel, the samples of other readouts
        nearest to the target grid point. A readout's own samples lie on a line, so across it the coils
        alone would have to shift the data in two directions; these neighbours carry that information
        (64^3 kooshball, 8 coils, 1200 steps: 0.63x of 3D classic GROG's error without them, 0.54x with 2,
        0.53x with 4 or 6 or with a radius of 2).""",
        minimum=0,
        limit="max_sources",
    )
    neighbour_radius: float = setting(
        1.5,
        """3D: largest distance (grid units) of a neighbour source from the target grid point (where fewer
        lie that close the sample itself stands in); it adds to the reach the calibration block must hold.""",
        minimum=0.0,
        minimum_excluded=True,
    )
    trajectory_units: str = setting(
        "auto",
        "Units of acq.traj: auto (detect), grid (cycles/FOV, [-N/2, N/2)), normalized ([-0.5, 0.5)).",
        choices=TRAJECTORY_UNITS,
    )
    dimensions: str = setting(
        "auto",
        """2d: every frame is a 2D plane (stacks of stars/spirals per kspace_encode_step_2); 3d: one 3D grid
        (nx, ny, nz) from a 3-column acq.traj (kooshball, stack-of-spirals with kz, cones); auto: 3d when
        encodedSpace z > 1 and an imaging readout has a 3-column trajectory with kz != 0 (a third column of
        density weights in a stack of 2D frames then needs 2d).""",
        choices=GRID_DIMENSIONS,
    )
    grid_oversampling: float = setting(
        1.0,
        "Grid matrix = encodedSpace matrix x this factor (1 = header matrix).",
        minimum=1.0,
        limit="max_grid_oversampling",
    )
    device: str = setting(
        "auto", "Compute device (auto: CUDA when available; cuda:N: the CUDA device of index N).", choices=DEVICES
    )
    inference_batch_size: int = setting(
        16384,
        "Samples per batch when computing kernels (each batch is applied at once: memory is bounded by it).",
        minimum=1,
        limit="max_inference_batch",
    )
    cache_mb: float = setting(
        1024.0,
        "Bytes (MiB) the per-trajectory kernel cache may hold; kernels that do not fit are recomputed per frame.",
        minimum=0.0,
        limit="max_cache_mb",
    )
    cpu_threads: int = setting(
        0,
        """CPU threads of a replay's native libraries (torch, numpy's BLAS, finufft; 0 = the processors the
        process may run on), fixed from here, never from OMP_NUM_THREADS and the like, so results depend
        only on the input and the configuration, never on load or environment. The closed-form solves run
        in that many threads of one torch thread each (chunks of samples; a spiral's kernels do not depend on the count).
        ``igrog serve`` sets its threads once for the whole process (``--cpu-threads``) and ignores this.""",
        minimum=0,
    )
    coil_compression: str = setting(
        "auto",
        "Virtual coils: auto (compress when the data have more than compression_threshold coils), on or off.",
        choices=COIL_COMPRESSION,
    )
    compression_threshold: int = setting(12, "auto: compress data with more coils than this.", minimum=1)
    virtual_coils: int = setting(
        0,
        "Virtual coils to keep (0 = the fewest that keep compression_energy of the calibration energy).",
        minimum=0,
        limit="max_coils",
    )
    compression_energy: float = setting(
        0.999,
        "Share of the (prewhitened) calibration energy the virtual coils keep when virtual_coils = 0.",
        minimum=0.0,
        minimum_excluded=True,
        maximum=1.0,
    )
    min_virtual_coils: int = setting(
        10,
        """Fewest virtual coils the energy rule keeps: kernels need coil diversity (a 20-coil spiral
        gridded in 6 virtual coils scored 1.8x the noise floor, in 10 coils 1.06x).""",
        minimum=1,
    )
    prewhiten: bool = setting(
        True, "Prewhiten with the noise scans' coil covariance before compressing (when noise scans are present)."
    )
    output_coils: str = setting(
        "physical",
        """physical (compression undone: the projection onto the virtual subspace, in the input's coils)
        or virtual (the virtual coils; the compression matrix goes into the output header).""",
        choices=OUTPUT_COILS,
    )


#: Largest ``calibration.max_block_side``: the side a 2D calibration block may grow to
#: (``calibration.max_block_fraction``); its solve grid is twice that.
GROWN_BLOCK_MAX_SIDE = 128


@dataclass
class CalibrationConfig:
    """Where the training pairs come from."""

    source: str = setting(
        "auto",
        """k-space calibration: auto (joint when ACS lines exist, else self), acs, self or joint
        (ACS + non-Cartesian centre, one CG solve).""",
        choices=CALIBRATION_SOURCES,
    )
    acs_min_size: int = setting(12, "Smallest usable fully sampled ACS block side (grid points).", minimum=4)
    edge_margin: float = setting(
        4.0,
        "Training targets stay this many grid units (plus the largest source offset) inside the block edge.",
        minimum=0.0,
    )
    num_training_pairs: int = setting(
        60000,
        "Synthesised (sources, target) pairs per training.",
        minimum=100,
        limit="max_training_pairs",
        volume_default=300000,
        volume_doc="""its kernels map more sources over a 3D space of offsets and overfit 60000 pairs (64^3
        kooshball, 8 coils, 2400 steps of 1024: NRMSE 0.0593 from 60000 pairs, stopped by the validation
        plateau at 2016 steps; 0.0566 from 150000, 0.0555 from 300000; peak RSS 1.19, 1.32, 1.87 GB).""",
    )
    offset_jitter: float = setting(
        0.02, "Gaussian jitter (grid units) added to the trajectory's offsets when synthesising pairs.", minimum=0.0
    )
    noise_augmentation: float = setting(
        3.0,
        """Noise added to the training sources, in multiples of the data's noise std (0 = none): estimated
        by the self/joint calibration fit (basic) or by the central CG fit of the coil images (random
        image pairs); it teaches the kernels to keep their noise gain low.""",
        minimum=0.0,
    )
    closed_form_noise: float = setting(
        8.0,
        """training.fit = closed_form: the kernels' ridge is the variance of a source noise of this many
        times the data's noise std, divided by the samples averaged into the target point (their noise
        averages there): a Wiener fit that keeps the noise gain low where few samples land (128^2, 8
        coils, hits-weighted CG-SENSE image error x the perfect gridder's: 1.37 / 1.40 at 1.5, 1.21 /
        1.25 at 3, 1.13 / 1.14 at 8, 1.16 / 1.13 at 12 on 200-spoke radial / 16-interleaf spiral).""",
        minimum=0.0,
    )
    normalize_pairs: bool = setting(
        True, "Scale each training pair to unit source power (equal weight for centre and edge of the block)."
    )
    interpolation_padding: int = setting(
        4,
        "Zero-padding factor of the block for the sinc (NUFFT) interpolation of off-grid values.",
        minimum=2,
        limit="max_interpolation_padding",
    )
    selfcal_size: int = setting(
        32, "Side of the block reconstructed from the k-space centre when self-calibrating.", minimum=8
    )
    selfcal_grid: int = setting(
        0,
        """Image grid of a calibration solve (its k-space spans [-grid/2, grid/2)): at least twice the
        block's side; 0 = twice the side (64 for the 32-side 2D block; a 3D joint block of 16 solves on
        32^3, 8x fewer FFT points than 64^3 and the same block: 32^3 kooshball NRMSE 0.0386 both, 18 s
        less).""",
        minimum=0,
        limit="max_selfcal_grid",
    )
    selfcal_iterations: int = setting(
        30,
        """Conjugate-gradient iterations of the self-calibration solve (it stops earlier once converged:
        a 200-spoke radial centre does; an undersampled 8-interleaf spiral's needs the 30, whose error at
        3 <= |k| < 8 is then 1.9 % instead of 3.4 % after 15).""",
        minimum=1,
        limit="max_cg_iterations",
    )
    selfcal_min_coverage: float = setting(
        0.9,
        "Fraction of grid cells around the centre that must hold a sample to self-calibrate.",
        minimum=0.0,
        minimum_excluded=True,
        maximum=1.0,
    )
    selfcal_min_size: int = setting(
        16,
        """Smallest self-calibration block: when the centre is densely sampled only within a smaller
        radius than selfcal_size needs (undersampled radial), the block shrinks down to this.""",
        minimum=8,
    )
    max_block_fraction: float = setting(
        0.375,
        """2D: the joint or self-calibration block grows from selfcal_size up to this fraction of the
        smallest matrix side (at most max_block_side), as large as the samples fill the centre
        (selfcal_min_coverage), so that it covers more of the image's energy: 48 at 128^2, 192^2 and
        256^2 where the centre is dense, 36 at 96^2. 128^2 x 8 coils, hits-weighted CG-SENSE image
        error x the perfect gridder's with a 32 / 48 block: 1.118 / 1.100 (200 spokes), 1.191 / 1.153 (64),
        1.138 / 1.109 (16-interleaf spiral), 1.152 / 1.131 (8); 256^2 x 16 coils, 402 spokes: 1.14 / 1.09
        (32 / 48). 0 = selfcal_size.""",
        minimum=0.0,
        maximum=0.5,
    )
    max_block_side: int = setting(
        48,
        f"""2D: the largest side max_block_fraction grows a calibration block to (at most
        {GROWN_BLOCK_MAX_SIDE}; its solve grid is twice that). Larger blocks cost more than they give:
        128^2, 8-interleaf spiral, image error x the perfect gridder's 1.13 with a 48 block, 1.36 with 64;
        192^2 x 16 coils, 300 spokes: k-space NRMSE 0.0323 / 0.0294 with a 36 / 48 block for 6-21 %
        more CPU in the first key's grid call (the whole process 1.09x), 0.0279 with 72 for 60 % more.""",
        minimum=2,
        maximum=GROWN_BLOCK_MAX_SIDE,
    )
    acs_noise_ratio_max: float = setting(
        3.0,
        """Calibration lines are not used when fitting them with the non-Cartesian samples makes the
        calibration fit's noise estimate this many times worse than the samples alone (0 = no check).""",
        minimum=1.0,
        zero="no check",
    )
    fill_centre: bool = setting(
        True,
        """Grid points inside a k-space calibration block (ACS, joint or self-calibration; edge_margin
        from its edge) that samples reached take the block's value: the calibration solve already fits
        every sample there, where kernels would add their shift error (128^2 radial, 200 spokes: error
        at |k| < 3 0.07 % instead of 0.3 %). Not for blocks made from coil images or sensitivity maps.""",
    )
    volume: dict[str, Any] = table(lambda: volume_defaults(CalibrationConfig), VOLUME_DOC)

    def solve_grid(self, block_side: int) -> int:
        """Image grid side of the calibration solve for a block of ``block_side``: selfcal_grid,
        at least twice the side."""
        return max(self.selfcal_grid, 2 * block_side)

    def for_dims(self, dims: int) -> "CalibrationConfig":
        """The settings a ``dims``-D frame calibrates with (3D: those of ``volume`` replaced)."""
        return for_dims(self, dims)


@dataclass
class ModelConfig:
    """The MLP from source offsets to a complex kernel."""

    hidden_width: int = setting(128, "Width of the MLP's hidden layers.", minimum=1, limit="max_hidden_width")
    hidden_layers: int = setting(3, "Number of hidden layers.", minimum=1, limit="max_hidden_layers")
    activation: str = setting("gelu", "Activation function of the hidden layers.", choices=tuple(ACTIVATIONS))
    fourier_features: int = setting(
        0, "Random Fourier features of the offsets (0 = off).", minimum=0, limit="max_fourier_features"
    )
    fourier_scale: float = setting(
        0.5,
        "Standard deviation of the Fourier feature frequencies (cycles per grid unit; needs fourier_features > 0).",
    )
    bottleneck: int = setting(
        0,
        """Width of the linear feature layer before the head (0 = none); needed by the head refit.
        Not in the fieldcorr kernel mode (its TimeKernelModel has no bottleneck).""",
        minimum=0,
        limit="max_hidden_width",
    )


@dataclass
class TrainingConfig:
    """The training run (engine.Trainer)."""

    epochs: int = setting(
        100,
        "Upper bound on passes over the training pairs (max_steps normally ends training first).",
        minimum=1,
        limit="max_epochs",
    )
    batch_size: int = setting(
        256,
        """Training pairs per optimizer step (256: for the same accuracy, 1200 steps of 256 pairs cost
        about 0.4x the time of 1200 steps of 1024 on a CPU).""",
        minimum=1,
        limit="max_batch_size",
        volume_default=1024,
        volume_doc="""64^3 kooshball, 8 coils, 2400 steps: 0.0593 with 1024 pairs per step at learning rate
        3e-3, 0.0633 with 256 at 5e-3.""",
    )
    max_steps: int = setting(
        1200,
        "Optimizer steps of a first training; the cosine learning-rate schedule anneals over them.",
        minimum=1,
        limit="max_steps",
        volume_default=2400,
        volume_doc="""its kernels take more sources (gridding.neighbour_sources) over a larger space of
        offsets, and keep improving past 1200 steps (64^3 kooshball, 8 coils, 1024 pairs per step: NRMSE
        0.0621 at 1200 steps, 0.0593 at 2400).""",
    )
    fit: str = setting(
        "closed_form",
        """How kernels are fitted to the calibration: closed_form (each sample's least-squares kernel,
        solved from the calibration block's autocorrelation: no gradient steps, the loss weighted by
        the block's energy), network (the kernel MLP trained by gradient steps on synthesised pairs;
        fieldcorr.mode = kernel always trains it: time-dependent kernels have no closed form) or auto
        (the closed form while a frame's solves stay within closed_form_max_work, else the network).""",
        choices=KERNEL_FITS,
        volume_default="auto",
        volume_doc="""the closed form costs per sample, each solving its own (coils * (5 + n))^2 system with n
        = gridding.neighbour_sources, the network per training: 32^3 kooshball (1200 spokes, 8 coils, n
        = 4) closed form NRMSE 0.034 in 29 s against the network's 0.084 in 66 s, which grids the corners
        beyond the sphere worse than nearest neighbour; 64^3 (4000 spokes) 0.041 in 100 s against 0.041
        in 92 s (whole replays, 2 cores).""",
    )
    closed_form_max_work: float = setting(
        150.0,
        """fit = auto: the closed form while a frame's samples x (coils x sources per kernel)^3 / 1e9 (the
        multiply-adds of its factorisations, in billions; virtual coils) stay within this, else the
        network, whose cost does not grow with the samples. 8 coils, 9 sources (whole replays, 2 cores):
        32^3 kooshball of 1200 spokes 29; of 4800 spokes 115, the closed form NRMSE 0.033 in 83 s against
        the network's 0.048 in 90 s; 64^3 (4000 spokes) 191, 0.041 in 100 s against 0.041 in 92 s.""",
        minimum=0.0,
    )
    warm_start: bool = setting(
        True, "A new calibration key (slice, partition, contrast) starts from the last trained model of the same shape."
    )
    warm_start_steps: int = setting(
        200, "Optimizer steps of a warm-started training (needs warm_start).", minimum=1, limit="max_steps"
    )
    warm_start_dir: str = setting(
        "",
        """Directory of networks kept across scans (empty: off). A scan's first training starts from the
        network the last scan with the same variant, grid, coils, trajectory family (straight or curved
        readouts) and network shape saved there, and trains warm_start_steps; its own network is then
        saved in its place. The output's igrog.frames names the model it started from
        (warm_start_model). Network fit only (the closed form has nothing to start from); set by the
        server's operator, never by a connection.""",
    )
    early_readouts: int = setting(
        64,
        """A calibration key's model is trained from its calibration data and the offsets of the first
        this many imaging readouts of its first frame, as soon as they have arrived (training overlaps
        the rest of the scan); 0 = from the whole frame, when it is complete. Self-calibration always
        waits for the whole frame.""",
        minimum=0,
    )
    offset_coverage_max: float = setting(
        3.0,
        """Retrain (from the whole frame, warm-started) when a frame's offsets lie more than this many
        times farther from the offsets its model was trained on than those lie from each other
        (99th-percentile nearest-neighbour distances): e.g. a linear-order radial scan whose first
        spokes span a few degrees (golden-angle spokes give 1.3-2.1; 0 = never check).""",
        minimum=0.0,
    )
    plateau_patience: int = setting(
        3,
        "Stop when the validation loss has not improved by plateau_tolerance for this many epochs (0 = off).",
        minimum=0,
    )
    plateau_tolerance: float = setting(
        0.01, "Relative improvement of the validation loss that counts as progress.", minimum=0.0
    )
    max_seconds: float = setting(
        120.0,
        "Safety cap on training wall time (reported when it stops training: the result then depends on load).",
        minimum=0.0,
        minimum_excluded=True,
        limit="max_training_seconds",
    )
    optimizer: str = setting("adam", "Optimizer of the gradient training.", choices=OPTIMIZERS)
    learning_rate: float = setting(
        5e-3,
        "Initial learning rate of the optimizer.",
        minimum=0.0,
        minimum_excluded=True,
        volume_default=3e-3,
        volume_doc="see batch_size.",
    )
    weight_decay: float = setting(0.0, "Weight decay of the optimizer (0 = none).")
    scheduler: str = setting(
        "cosine",
        """Learning-rate schedule: cosine (annealed over the training's step count), step (decayed every
        few epochs) or none; its parameters go in [training.scheduler_params].""",
        choices=tuple(SCHEDULERS),
    )
    scheduler_params: dict[str, Any] = table(
        dict,
        """Parameters of training.scheduler; a parameter of another scheduler is refused, an unset one
        takes its default.""",
    )
    grad_clip: float = setting(1.0, "Gradient-norm clipping (0 = off).", minimum=0.0)
    refit_head: bool = setting(
        False, "After gradient training, solve the head exactly by regularised least squares (needs model.bottleneck)."
    )
    refit_pairs: int = setting(
        20000, "Training pairs used by the head refit (needs refit_head).", minimum=100, limit="max_training_pairs"
    )
    refit_regularization: float = setting(
        1e-4,
        "Tikhonov loading of the refit, relative to the mean diagonal of its normal matrix (needs refit_head).",
        minimum=0.0,
        minimum_excluded=True,
    )
    whiten_sources: bool = setting(
        True, "Train the kernel for whitened sources (a reparameterisation that speeds up convergence)."
    )
    whitening_regularization: float = setting(
        1e-2,
        """Diagonal loading of the source covariance before whitening, relative to its mean eigenvalue
        (needs whiten_sources).""",
        minimum=0.0,
        minimum_excluded=True,
    )
    validation_fraction: float = setting(
        0.05, "Share of the pairs held out to report a validation loss.", minimum=0.0, maximum=0.5, maximum_excluded=True
    )
    seed: int = setting(0, "Seed of the training's random numbers (pairs, initialisation, batches).")
    cpu_threads: int = setting(
        1,
        """torch intra-op threads of the fits (their own worker thread; 0 = those of the process,
        gridding.cpu_threads): a 2D kernel MLP's step of 256 pairs takes 4.3 ms on one thread and
        5.3 ms on two of a 2-core CPU, and the other core stays with the ingest, the next key's
        calibration and the gridding (a paced 8-slice stream's first fit 9.6 -> 5.9 s). Results
        depend on it (last bits). The first training of a stream or file fixes it for the others.""",
        minimum=0,
        limit="max_cpu_threads",
        volume_default=0,
        volume_doc="""a 3D frame trains once, from the whole frame, with 1024 pairs per step, which two
        threads run faster (64^3 kooshball replay, 2 cores: 59 s against 71 s on one).""",
    )
    progress: bool = setting(False, "Show a progress bar while training (the CLI turns it on).")
    volume: dict[str, Any] = table(lambda: volume_defaults(TrainingConfig), VOLUME_DOC)

    def for_dims(self, dims: int) -> "TrainingConfig":
        """The settings a ``dims``-D frame trains with: for 3D, the fields ``volume`` sets
        replaced by its values (max_steps, batch_size, learning_rate, fit, cpu_threads by default);
        2D: these settings."""
        return for_dims(self, dims)

    def scheduler_settings(self) -> dict[str, Any]:
        """The parameters of ``scheduler``: those set in ``scheduler_params``, the defaults for the rest."""
        known = SCHEDULERS.get(self.scheduler, {})
        return {name: self.scheduler_params.get(name, param.default) for name, param in known.items()}


@dataclass
class FieldCorrectionConfig:
    """B0 field correction (fieldcorr variant)."""

    mode: str = setting(
        "hybrid",
        """hybrid (field-free kernels + Cartesian-side correction; the more accurate) or kernel
        (time-dependent kernels of a TimeKernelModel).""",
        choices=FIELDCORR_MODES,
    )
    b0map_file: str = setting(
        "",
        """B0 map (Hz) when the input carries no "b0map" image series: .npy (ny, nx) (a 3D frame's:
        (nz, ny, nx)) | .npz (b0map or b0map_hz) | .h5/.mrd; none = error.""",
    )
    time_segments: int = setting(12, "hybrid: time segments of the Cartesian-side (conjugate-phase) correction.", minimum=1)
    cg_iterations: int = setting(
        0,
        "hybrid: CG refinement iterations of the correction (0 = conjugate phase only).",
        minimum=0,
        limit="max_cg_iterations",
    )
    kernel_phase_tolerance: float = setting(
        1e-3,
        "kernel: largest error of the time-segmented field phase in the training pairs.",
        minimum=0.0,
        minimum_excluded=True,
        maximum=1.0,
        maximum_excluded=True,
    )


@dataclass
class ImageCalibrationConfig:
    """Coil images the image_based variant (and fieldcorr) synthesise training pairs from."""

    source: str = setting(
        "auto",
        "Coil images: auto (image series in the input, else image_file, else made from the data), series, file or data.",
        choices=IMAGE_SOURCES,
    )
    image_file: str = setting(
        "",
        """File with coil images or sensitivity maps used when the input carries no image series: .npy
        (coils, ny, nx) coil images (a 3D frame's: (coils, nz, ny, nx)) | .npz / .h5 / .mrd with coil_images or
        sensitivity_maps (+ reference_image).""",
    )
    lowres_size: int = setting(
        48,
        "From the data: side of the central k-space region reconstructed (and of its image grid).",
        minimum=8,
        limit="max_selfcal_grid",
    )
    cg_iterations: int = setting(
        15,
        "From the data: conjugate-gradient iterations of that reconstruction (also used for the noise estimate).",
        minimum=1,
        limit="max_cg_iterations",
    )
    pair_positions: str = setting(
        "auto",
        """trajectory (pairs at the frame's own samples), random (random targets in the central
        target_size) or auto (trajectory for images from a series or file, random for images made from the data).""",
        choices=PAIR_POSITIONS,
    )
    trajectory_region: float = setting(
        0.5,
        "trajectory pairs: samples whose grid point lies in this central fraction of the matrix (per axis).",
        minimum=0.0,
        minimum_excluded=True,
        maximum=1.0,
    )
    trajectory_noise: float = setting(
        1.5,
        "trajectory pairs: source noise in multiples of the data's noise std (divided by sqrt(hits)).",
        minimum=0.0,
    )
    target_size: int = setting(
        32,
        "random pairs: targets lie in the central target_size x target_size of the images' k-space (0 = all of it).",
        minimum=8,
        zero="all of it",
        limit="max_selfcal_grid",
    )
    min_coverage: float = setting(
        0.9,
        "From the data: share of the central grid cells that must hold a sample to make coil images.",
        minimum=0.0,
        minimum_excluded=True,
        maximum=1.0,
    )


@dataclass
class OutputConfig:
    """What the gridded output carries besides the Cartesian k-space (every sink: the replay file,
    Cartesian acquisitions, ReconData)."""

    calibration: bool = setting(
        True,
        """Pass the calibration data on, on the output grid and in the output's coils: the calibration block
        of each calibration key (its Cartesian ACS lines placed on the grid, or the block the joint or
        self-calibration solved) as ACQ_IS_PARALLEL_CALIBRATION acquisitions before the key's first frame
        (ReconData: the recon bit's reference buffer). Off for a minimal Cartesian consumer that would stack
        flagged lines into its image.""",
    )
    weights: bool = setting(
        True,
        """Per-point weights: the number of samples gridded onto each point, as the image series
        igrog_weights (replay file, acquisitions output) or the ReconData density array.""",
    )


@dataclass
class ReconConfig:
    """The image made of a gridded frame (the gadget's images output, replay --png and --images):
    Cartesian SENSE with ESPIRiT maps of the calibration block, or the root-sum-of-squares."""

    image: str = setting(
        "auto",
        """sense (CG-SENSE; RSS with a warning when the frame has no calibration block to make maps of), rss,
        or auto (sense for undersampled frames, rss when the gridded points cover full_coverage of the sampled
        k-space disc).""",
        choices=IMAGE_METHODS,
    )
    full_coverage: float = setting(
        0.95,
        "auto: a frame whose gridded points cover this share of the disc its samples reach is fully sampled (RSS).",
        minimum=0.0,
        minimum_excluded=True,
        maximum=1.0,
    )
    iterations: int = setting(
        30, "Conjugate-gradient iterations of SENSE (a fixed count: the same input gives the same image).", minimum=1
    )
    regularization: float = setting(
        0.001,
        """Tikhonov weight relative to the mean data weight of the gridded points (0: none; 128^2, 8 coils,
        radial 64 and 32 spokes, SNR 50 and 15: 0 to 0.001 best with hits weighting, 0.01 with mask).""",
        minimum=0.0,
    )
    weighting: str = setting(
        "hits",
        """Data weight of each grid point: hits (the samples gridded onto it: its noise variance is the
        sample variance over it) or mask (1 wherever something was gridded, as BART pics weights); hits gave
        0.66x to 0.87x mask's image error (radial 64 and 32 spokes, spiral).""",
        choices=DATA_WEIGHTINGS,
    )
    map_kernel: int = setting(6, "ESPIRiT kernel side (points per axis) of the calibration matrix.", minimum=2)
    map_threshold: float = setting(
        0.02,
        "ESPIRiT: singular values of the calibration matrix kept, relative to the largest.",
        minimum=0.0,
        minimum_excluded=True,
        maximum=1.0,
        maximum_excluded=True,
    )
    map_crop: float = setting(
        0.8,
        "ESPIRiT: maps are zero (no image) where the eigenvalue is below this.",
        minimum=0.0,
        maximum=1.0,
        maximum_excluded=True,
    )


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
