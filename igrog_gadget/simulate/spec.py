"""What defines one simulated scan: :class:`SimulationSpec` and its choice lists (no numerics:
the ``igrog`` parser reads the defaults without importing the simulator)."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TRAJECTORIES = ("radial", "spiral", "kooshball", "stack_of_spirals")
#: Trajectories sampling a 3D k-space volume (traj (kx, ky, kz), 3D Cartesian truth).
VOLUME_TRAJECTORIES = ("kooshball", "stack_of_spirals")
TRAJECTORY_UNITS = ("grid", "normalized")


@dataclass
class SimulationSpec:
    """Everything that defines one simulated scan (all fields JSON-serialisable)."""

    trajectory: str = "radial"
    """"radial" (golden-angle spokes), "spiral" (Archimedean interleaves), or the 3D
    "kooshball" (golden-means full spokes, matrix N^3) and "stack_of_spirals" (the spiral
    interleaves on ``partitions`` integer kz planes, matrix N x N x partitions)."""
    matrix: int = 128
    """Gridding matrix N (encodedSpace N x N x 1); the object is simulated on 2N x 2N."""
    coils: int = 8
    spokes: int = 200
    """Radial: number of golden-angle spokes."""
    samples_per_spoke: int | None = None
    """Radial: samples per spoke at 2x readout oversampling (None -> 2 * matrix)."""
    interleaves: int = 16
    """Spiral: number of interleaves (each with N / (2 * interleaves) turns, Nyquist-dense)."""
    acs: int | None = 32
    """Number of central Cartesian ACS lines (None = no ACS)."""
    snr: float | None = 50.0
    """Image SNR: noise std = mean |image| over the object / snr (None or inf = noiseless)."""
    slices: int = 1
    partitions: int = 1
    """Stack-of-stars / stack-of-spirals kz partitions (kspace_encode_step_2; needs slices = 1):
    the object is a stack of ``partitions`` phantom slices, Fourier transformed along z, with
    z-independent coil maps, so every partition is a 2D non-Cartesian frame of one kz plane."""
    repetitions: int = 1
    contrasts: int = 1
    trajectory_units: str = "grid"
    """"grid": traj in grid units (cycles/FOV); "normalized": k / N in [-0.5, 0.5)."""
    b0_max_hz: float = 0.0
    """Largest |off-resonance| of the smooth B0 map over the FOV (0 = none); a 3D scan's map is 3D."""
    readout_ms: float = 10.0
    """Spiral readout duration."""
    spiral_sample_time_us: float | None = None
    """Spiral dwell time (None = longest 0.1 us step keeping samples <= 0.45 grid units apart)."""
    radial_sample_time_us: float = 2.0
    """Dwell time of radial spokes, ACS and (radial) noise readouts."""
    noise_scans: int = 1
    """Noise-only readouts flagged ACQ_IS_NOISE_MEASUREMENT at the start of the file."""
    noise_correlation: float = 0.0
    """Coil noise correlation rho: cov[i, j] = std^2 * rho^(ring distance of i and j)."""
    write_b0map: bool = False
    write_coil_images: bool = False
    write_sensitivity_maps: bool = False
    fov_mm: float = 256.0
    slice_thickness_mm: float = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples_per_spoke is None and isinstance(self.matrix, int) and not isinstance(self.matrix, bool):
            self.samples_per_spoke = 2 * self.matrix
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field and its value."""

        def positive_int(name: str, lo: int = 1, hi: int | None = None) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
                raise ValueError(f"SimulationSpec.{name} must be an integer >= {lo}, got {value!r}")
            if hi is not None and value > hi:
                raise ValueError(f"SimulationSpec.{name} must be <= {hi}, got {value!r}")

        def positive_float(name: str, allow_zero: bool = False) -> None:
            value = getattr(self, name)
            ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and np.isfinite(value)
            ok = ok and (value >= 0 if allow_zero else value > 0)
            if not ok:
                bound = ">= 0" if allow_zero else "> 0"
                raise ValueError(f"SimulationSpec.{name} must be a finite number {bound}, got {value!r}")

        if self.trajectory not in TRAJECTORIES:
            raise ValueError(f"SimulationSpec.trajectory must be one of {TRAJECTORIES}, got {self.trajectory!r}")
        if self.trajectory_units not in TRAJECTORY_UNITS:
            raise ValueError(
                f"SimulationSpec.trajectory_units must be one of {TRAJECTORY_UNITS}, got {self.trajectory_units!r}"
            )
        positive_int("matrix", 8, 1024)
        if self.matrix % 2:
            raise ValueError(f"SimulationSpec.matrix must be even, got {self.matrix!r}")
        positive_int("coils", 1, 1024)
        positive_int("spokes", 1, 65535)
        positive_int("samples_per_spoke", 2, 4 * self.matrix - 1)
        positive_int("interleaves", 1, 65535)
        if self.acs is not None:
            positive_int("acs", 1, self.matrix)
        if self.snr is not None and not (
            isinstance(self.snr, (int, float, np.floating)) and not isinstance(self.snr, bool) and self.snr > 0
        ):
            raise ValueError(f"SimulationSpec.snr must be > 0 (or None/inf for noiseless), got {self.snr!r}")
        positive_int("slices", 1, 1024)
        positive_int("partitions", 1, 1024)
        if self.partitions > 1 and self.slices > 1:
            raise ValueError(
                f"SimulationSpec: partitions = {self.partitions} (stack-of-stars) needs slices = 1, got {self.slices}"
            )
        if self.volumetric:
            if self.slices != 1 or self.contrasts != 1:
                raise ValueError(
                    f"SimulationSpec: the 3D trajectory {self.trajectory!r} needs slices = 1 and contrasts = 1, "
                    f"got slices = {self.slices}, contrasts = {self.contrasts}"
                )
            if self.trajectory == "stack_of_spirals" and self.partitions < 2:
                raise ValueError(f"SimulationSpec: stack_of_spirals needs partitions >= 2, got {self.partitions}")
            if self.trajectory == "kooshball" and self.partitions != 1:
                raise ValueError(f"SimulationSpec: kooshball has N^3 partitions of its own; partitions must be 1, got {self.partitions}")
        positive_int("repetitions", 1, 65535)
        positive_int("contrasts", 1, 64)
        positive_float("b0_max_hz", allow_zero=True)
        positive_float("readout_ms")
        if self.spiral_sample_time_us is not None:
            positive_float("spiral_sample_time_us")
        positive_float("radial_sample_time_us")
        positive_int("noise_scans", 0, 1024)
        if not (
            isinstance(self.noise_correlation, (int, float, np.floating)) and 0.0 <= self.noise_correlation < 1.0
        ):
            raise ValueError(f"SimulationSpec.noise_correlation must be in [0, 1), got {self.noise_correlation!r}")
        positive_float("fov_mm")
        positive_float("slice_thickness_mm")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"SimulationSpec.seed must be an integer >= 0, got {self.seed!r}")
        for name in ("write_b0map", "write_coil_images", "write_sensitivity_maps"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"SimulationSpec.{name} must be a bool, got {getattr(self, name)!r}")

    @property
    def volumetric(self) -> bool:
        """Whether the trajectory samples a 3D k-space volume (``VOLUME_TRAJECTORIES``)."""
        return self.trajectory in VOLUME_TRAJECTORIES

    @property
    def dims(self) -> int:
        """3 for a volume trajectory (gridded onto a 3D grid), else 2."""
        return 3 if self.volumetric else 2

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """Array shape of the gridding matrix: ``(N, N)``, or ``(nz, N, N)`` for a volume."""
        return (self.nz, self.matrix, self.matrix)[3 - self.dims :]

    @property
    def nz(self) -> int:
        """Encoded matrix z: N (kooshball), the partitions (stacks), 1 for a 2D scan."""
        if self.trajectory == "kooshball":
            return self.matrix
        return self.partitions

    @property
    def planes(self) -> int:
        """2D k-space planes: slices, or kz partitions of a stack-of-stars (1 for a 3D volume)."""
        if self.volumetric:
            return 1
        return max(self.slices, self.partitions)

    @property
    def reference_plane(self) -> int:
        """The plane whose image sets the noise level (the kz = 0 partition of a stack)."""
        return self.partitions // 2 if self.partitions > 1 and not self.volumetric else 0

    @property
    def noiseless(self) -> bool:
        """True when no noise is added (``snr`` None or infinite)."""
        return self.snr is None or not np.isfinite(self.snr)

    def to_json(self) -> str:
        """The spec as a JSON object string (keys sorted)."""
        d = dataclasses.asdict(self)
        if d["snr"] is not None and not np.isfinite(d["snr"]):
            d["snr"] = None
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SimulationSpec:
        """Inverse of :meth:`to_json` (unknown keys raise ``ValueError``)."""
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"SimulationSpec JSON has unknown field(s) {unknown}")
        return cls(**data)


def truth_path_for(path: str | os.PathLike[str]) -> Path:
    """Ground-truth path beside an output file: ``<dir>/<stem>.truth.npz``."""
    p = Path(path)
    return p.with_name(p.stem + ".truth.npz")


