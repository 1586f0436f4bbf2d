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
    """Upper bounds on a request (a file's header, a connection's header and configuration).

    The configuration fields a limit bounds say so in their own declaration
    (``setting(..., limit="max_steps")`` in ``igrog_gadget/config/schema.py``; the reference,
    docs/configuration.md, shows each field's limit), so a new field cannot be left out here.
    """

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
    """Most training pairs of one fit (synthesised pairs, head-refit pairs; 2D and 3D)."""
    max_hidden_width: int = 4096
    max_hidden_layers: int = 16
    max_fourier_features: int = 4096
    max_steps: int = 100_000
    """Most optimizer steps of one training (first or warm-started; 2D and 3D)."""
    max_epochs: int = 10_000
    max_batch_size: int = 1 << 20
    """Most training pairs per optimizer step."""
    max_sources: int = 64
    """Most sources of one kind feeding a kernel (readout samples, neighbour samples)."""
    max_training_seconds: float = 600.0
    """Largest safety cap on a training's wall time."""
    max_cpu_threads: int = 64
    """Most torch threads of a training's worker."""
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
        """Refuse a configuration that asks for more than the limits allow: every field the
        variant uses whose declaration names a limit (``FieldSpec.limit``, the 3D settings of
        ``[section.volume]`` included), and the calibration solve's grid.

        Raises:
            ConfigError: naming the field, its value and the limit.
        """
        for name, value, spec in config.configured_values():
            if not spec.limit:
                continue
            limit = getattr(self, spec.limit)
            if value > limit:
                raise ConfigError(f"{name} = {_number(value)} exceeds the resource limit {spec.limit} = {_number(limit)}")
        c = config.calibration
        layout = standard_layout(config.variant)
        if "selfcal_size" in layout["calibration"] and c.solve_grid(c.selfcal_size) > self.max_selfcal_grid:
            raise ConfigError(
                f"calibration.selfcal_size = {c.selfcal_size} needs a calibration solve grid of "
                f"{c.solve_grid(c.selfcal_size)} (twice the side), beyond the resource limit max_selfcal_grid = "
                f"{self.max_selfcal_grid}"
            )
        if "max_block_fraction" in layout["calibration"] and c.max_block_fraction > 0:
            if c.solve_grid(c.max_block_side) > self.max_selfcal_grid:
                raise ConfigError(
                    f"calibration.max_block_fraction = {_number(c.max_block_fraction)} lets a 2D calibration block grow to "
                    f"max_block_side = {c.max_block_side} (a solve grid of {c.solve_grid(c.max_block_side)}), beyond the "
                    f"resource limit max_selfcal_grid = {self.max_selfcal_grid}; lower calibration.max_block_side, set "
                    "calibration.max_block_fraction = 0 or raise the limit"
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
