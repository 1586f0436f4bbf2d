"""Resource limits: what one replay or one server connection may ask for.

Checked before anything is allocated or trained: the configuration (``check_config``) when it
is loaded, the scan header (``check_header``) when it arrives, the buffered data
(``ReadoutBuffer``) as readouts arrive. Every refusal names the field, the value and the limit
(``ResourceLimits.<name>``, set by the operator: ``igrog serve --limit NAME=VALUE``); the defaults admit
every clinical protocol (512 matrices, 64 coils, 256 partitions) and nothing that cannot fit a
recon server's memory.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from igrog_gadget.config import IgrogConfig, standard_layout
from igrog_gadget.errors import ConfigError, InputDataError
from igrog_gadget.scan import ScanHeader


@dataclass(frozen=True)
class ResourceLimits:
    """Upper bounds on a request (a file's header, a connection's header and configuration)."""

    max_matrix: int = 1024
    """Largest output grid side in-plane (encodedSpace x or y times gridding.grid_oversampling)."""
    max_partitions: int = 512
    """Largest encodedSpace z (stack-of-stars partitions / kz planes)."""
    max_coils: int = 128
    """Most receive channels (receiverChannels, active_channels)."""
    max_readout_samples: int = 65536
    """Most samples of one acquisition."""
    max_buffered_samples: int = 1 << 28
    """Most complex samples (coils x samples) buffered for open frames and calibration (2 GiB)."""
    max_acquisitions: int = 1 << 23
    """Most acquisitions of one input file (8.4 million; their headers alone take 3 GiB)."""
    max_training_pairs: int = 2_000_000
    """calibration.num_training_pairs, calibration.num_training_pairs_3d and training.refit_pairs."""
    max_hidden_width: int = 4096
    max_hidden_layers: int = 16
    max_fourier_features: int = 4096
    max_steps: int = 100_000
    """training.max_steps, training.max_steps_3d, training.warm_start_steps."""
    max_epochs: int = 10_000
    max_batch_size: int = 1 << 20
    """training.batch_size."""
    max_sources: int = 64
    """gridding.num_sources (readout samples feeding one kernel) and gridding.neighbour_sources."""
    max_training_seconds: float = 600.0
    """training.max_seconds."""
    max_cpu_threads: int = 64
    """training.cpu_threads and cpu_threads_3d (torch threads of a training's worker)."""
    max_grid_oversampling: float = 4.0
    max_selfcal_grid: int = 512
    max_cg_iterations: int = 1000
    max_interpolation_padding: int = 16
    max_inference_batch: int = 1 << 20
    max_cache_mb: float = 16384.0

    def with_overrides(self, **values: float) -> "ResourceLimits":
        """A copy with some limits changed (names as the fields); unknown names or values < 1 raise."""
        known = {f.name: f.type for f in fields(self)}
        changed = {}
        for name, value in values.items():
            if name not in known:
                raise ConfigError(f"unknown resource limit {name!r}; known: {', '.join(known)}")
            if not value >= 1:  # also refuses NaN
                raise ConfigError(f"resource limit {name} must be >= 1, got {value!r}")
            changed[name] = int(value) if known[name] in ("int", int) else float(value)
        return ResourceLimits(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changed})

    # --- checks -------------------------------------------------------------------------
    def check_config(self, config: IgrogConfig) -> None:
        """Refuse a configuration that asks for more than the limits allow.

        Raises:
            ConfigError: naming the field, its value and the limit.
        """
        c, m, t, g = config.calibration, config.model, config.training, config.gridding
        bounds = (
            ("calibration.num_training_pairs", c.num_training_pairs, self.max_training_pairs, "max_training_pairs"),
            ("calibration.num_training_pairs_3d", c.num_training_pairs_3d, self.max_training_pairs, "max_training_pairs"),
            ("training.refit_pairs", t.refit_pairs, self.max_training_pairs, "max_training_pairs"),
            ("model.hidden_width", m.hidden_width, self.max_hidden_width, "max_hidden_width"),
            ("model.hidden_layers", m.hidden_layers, self.max_hidden_layers, "max_hidden_layers"),
            ("model.fourier_features", m.fourier_features, self.max_fourier_features, "max_fourier_features"),
            ("model.bottleneck", m.bottleneck, self.max_hidden_width, "max_hidden_width"),
            ("training.max_steps", t.max_steps, self.max_steps, "max_steps"),
            ("training.max_steps_3d", t.max_steps_3d, self.max_steps, "max_steps"),
            ("training.warm_start_steps", t.warm_start_steps, self.max_steps, "max_steps"),
            ("training.epochs", t.epochs, self.max_epochs, "max_epochs"),
            ("training.batch_size", t.batch_size, self.max_batch_size, "max_batch_size"),
            ("training.batch_size_3d", t.batch_size_3d, self.max_batch_size, "max_batch_size"),
            ("gridding.num_sources", g.num_sources, self.max_sources, "max_sources"),
            ("gridding.neighbour_sources", g.neighbour_sources, self.max_sources, "max_sources"),
            ("gridding.virtual_coils", g.virtual_coils, self.max_coils, "max_coils"),
            ("training.max_seconds", t.max_seconds, self.max_training_seconds, "max_training_seconds"),
            ("training.cpu_threads", t.cpu_threads, self.max_cpu_threads, "max_cpu_threads"),
            ("training.cpu_threads_3d", t.cpu_threads_3d, self.max_cpu_threads, "max_cpu_threads"),
            ("gridding.grid_oversampling", g.grid_oversampling, self.max_grid_oversampling, "max_grid_oversampling"),
            ("gridding.inference_batch_size", g.inference_batch_size, self.max_inference_batch, "max_inference_batch"),
            ("gridding.cache_mb", g.cache_mb, self.max_cache_mb, "max_cache_mb"),
            ("calibration.selfcal_grid", c.selfcal_grid, self.max_selfcal_grid, "max_selfcal_grid"),
            ("calibration.selfcal_iterations", c.selfcal_iterations, self.max_cg_iterations, "max_cg_iterations"),
            ("calibration.interpolation_padding", c.interpolation_padding, self.max_interpolation_padding,
             "max_interpolation_padding"),
        )
        layout = standard_layout(config.variant)
        for name, value, limit, limit_name in bounds:
            section, field = name.split(".")
            if field not in layout[section]:
                continue  # a field the variant does not use (it keeps its default)
            if value > limit:
                raise ConfigError(f"{name} = {_number(value)} exceeds the resource limit {limit_name} = {_number(limit)}")
        if "selfcal_size" in layout["calibration"] and c.solve_grid(c.selfcal_size) > self.max_selfcal_grid:
            raise ConfigError(
                f"calibration.selfcal_size = {c.selfcal_size} needs a calibration solve grid of "
                f"{c.solve_grid(c.selfcal_size)} (twice the side), beyond the resource limit max_selfcal_grid = "
                f"{self.max_selfcal_grid}"
            )
        image = config.image_calibration  # None in a variant without image calibration
        if image is not None:
            for name in ("lowres_size", "target_size"):
                value = getattr(image, name, 0) or 0
                if value > self.max_selfcal_grid:
                    raise ConfigError(
                        f"image_calibration.{name} = {value} exceeds the resource limit max_selfcal_grid = {self.max_selfcal_grid}"
                    )
            if image.cg_iterations > self.max_cg_iterations:
                raise ConfigError(
                    f"image_calibration.cg_iterations = {image.cg_iterations} exceeds the resource limit "
                    f"max_cg_iterations = {self.max_cg_iterations}"
                )
        correction = config.fieldcorr
        if correction is not None and correction.cg_iterations > self.max_cg_iterations:
            raise ConfigError(
                f"fieldcorr.cg_iterations = {correction.cg_iterations} exceeds the resource limit "
                f"max_cg_iterations = {self.max_cg_iterations}"
            )

    def check_header(self, header: ScanHeader, config: IgrogConfig, source: str = "") -> None:
        """Refuse a scan whose grid, partitions or coils exceed the limits (before any data).

        Raises:
            InputDataError: naming the header field, its value and the limit.
        """
        where = f"{source}: " if source else ""
        nx, ny, nz = header.encoded_matrix
        factor = config.gridding.grid_oversampling
        for axis, size in (("x", nx), ("y", ny)):
            grid = int(round(size * factor))
            if grid > self.max_matrix:
                raise InputDataError(
                    f"{where}encodedSpace matrixSize.{axis} = {size} x grid_oversampling {factor:g} gives a {grid}-point "
                    f"grid, beyond the resource limit max_matrix = {self.max_matrix}"
                )
        if nz > self.max_partitions:
            raise InputDataError(
                f"{where}encodedSpace matrixSize.z = {nz} exceeds the resource limit max_partitions = {self.max_partitions}"
            )
        if header.num_coils is not None and header.num_coils > self.max_coils:
            raise InputDataError(
                f"{where}receiverChannels = {header.num_coils} exceeds the resource limit max_coils = {self.max_coils}"
            )

    def check_acquisition_count(self, count: int, source: str = "") -> None:
        """Refuse a file declaring more acquisitions than ``max_acquisitions`` (before reading them).

        Raises:
            InputDataError: naming the count and the limit.
        """
        where = f"{source}: " if source else ""
        if count > self.max_acquisitions:
            raise InputDataError(
                f"{where}{count} acquisitions exceed the resource limit max_acquisitions = {self.max_acquisitions}"
            )

    def check_acquisition(self, coils: int, samples: int, source: str = "") -> None:
        """Refuse one acquisition's size (from its header, before its data are read).

        Raises:
            InputDataError: naming the field and the limit.
        """
        where = f"{source}: " if source else ""
        if coils > self.max_coils:
            raise InputDataError(f"{where}active_channels = {coils} exceeds the resource limit max_coils = {self.max_coils}")
        if samples > self.max_readout_samples:
            raise InputDataError(
                f"{where}number_of_samples = {samples} exceeds the resource limit max_readout_samples = {self.max_readout_samples}"
            )


def _number(value: float) -> str:
    """An int as an int, a float shortest (1000000, 0.5, 1e+09)."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"
