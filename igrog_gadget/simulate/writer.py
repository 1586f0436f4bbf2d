"""Write simulated radial/spiral scans as ISMRMRD HDF5 files with a ground-truth npz.

See the package docstring (:mod:`igrog_gadget.simulate`) for the file layout,
flags and ground-truth conventions.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import ismrmrd
import ismrmrd.xsd as xsd
import numpy as np

from igrog_gadget.numerics.dimensions import dimensions, volume_shape
from igrog_gadget.numerics.fft import centred_fftn
from igrog_gadget.io.acquisitions import AcquisitionSink

from .acquire import (
    FINE_FACTOR,
    cartesian_kspace,
    complex_noise,
    forward_b0,
    noise_covariance,
    nufft_forward,
    smooth_b0_map,
)
from .coils import coil_sensitivities
from .phantoms import CONTRAST_ECHO_SPACING_S, object_support, phantom
from .spec import SimulationSpec, truth_path_for
from .trajectories import (
    GOLDEN_ANGLE_DEG,
    GOLDEN_MEANS_3D,
    cartesian_lines,
    kooshball_golden_means,
    radial_golden_angle,
    spiral,
    spiral_turns,
    stack_of_spirals,
)

logger = logging.getLogger(__name__)

#: Proton resonance frequency written to the header (1.5 T).
H1_RESONANCE_HZ = 63_870_000
#: ISMRMRD acquisition/image header version.
ISMRMRD_HEADER_VERSION = 1
#: Readout oversampling of the Cartesian ACS and noise readouts.
ACS_READOUT_OVERSAMPLING = 2
#: Image series indices of the optional image series.
IMAGE_SERIES_INDEX = {"b0map": 1, "coil_images": 2, "sensitivity_maps": 3}
#: First acquisition time stamp (10:00:00 in 2.5 ms ticks) and the tick length.
_TIME_STAMP_START = 14_400_000
_TICK_MS = 2.5


@dataclass
class _Design:
    """Trajectory design of one spec (all arrays in grid units)."""

    traj: np.ndarray
    """(readouts, samples, dims) imaging trajectory, (kx, ky[, kz])."""
    sample_time_us: float
    center_sample: int
    acs_ky: np.ndarray
    """(acs,) integer ky of the ACS lines (empty without ACS)."""
    acs_traj: np.ndarray
    """(acs, 2N, dims) Cartesian ACS sample positions."""
    tr_ms: float
    te_ms: float
    acs_kz: np.ndarray | None = None
    """3D: (acs,) integer kz of the ACS lines (None for a 2D scan)."""
    imaging_e2: np.ndarray | None = None
    """3D: (readouts,) kspace_encode_step_2 of each imaging readout (its partition; None: 0)."""

    @property
    def traj_dims(self) -> int:
        return int(self.traj.shape[-1])


def _spoke_timing(spec: SimulationSpec) -> tuple[float, int, float, float]:
    """(dwell us, centre sample, TR ms, TE ms) of the spokes of a radial or kooshball scan."""
    assert spec.samples_per_spoke is not None
    dwell = float(spec.radial_sample_time_us)
    center = spec.samples_per_spoke // 2
    return dwell, center, max(5.0, spec.samples_per_spoke * dwell / 1000.0 + 2.0), center * dwell / 1000.0 + 1.0


def _samples_per_spoke(spec: SimulationSpec) -> int:
    """Readout samples of a spoke (the spec sets it from the matrix when not given)."""
    if spec.samples_per_spoke is None:
        raise ValueError("SimulationSpec.samples_per_spoke is not set")
    return int(spec.samples_per_spoke)


def _imaging_trajectory(spec: SimulationSpec) -> tuple[np.ndarray, float, int, float, float, np.ndarray | None]:
    """(traj (readouts, samples, 2 or 3), dwell us, centre sample, TR ms, TE ms, each readout's
    kspace_encode_step_2 (None: a 2D scan's readouts keep their plane's)) of ``spec``'s trajectory."""
    N = spec.matrix
    if spec.trajectory in ("radial", "kooshball"):
        dwell, center, tr_ms, te_ms = _spoke_timing(spec)
        spokes = radial_golden_angle if spec.trajectory == "radial" else kooshball_golden_means
        traj = spokes(spec.spokes, _samples_per_spoke(spec), N, readout_oversampling=2)
        partitions = None if spec.trajectory == "radial" else np.zeros(traj.shape[0], dtype=np.int64)
        return traj, dwell, center, tr_ms, te_ms, partitions
    if spec.trajectory == "spiral":
        traj, dwell = spiral(spec.interleaves, N, spec.readout_ms, spec.spiral_sample_time_us)
        partitions = None
    else:
        traj, dwell = stack_of_spirals(spec.interleaves, N, spec.nz, spec.readout_ms, spec.spiral_sample_time_us)
        partitions = np.round(traj[:, 0, 2]).astype(np.int64) + spec.nz // 2
    if traj.shape[1] > 65535:
        raise ValueError(
            f"SimulationSpec.readout_ms={spec.readout_ms} gives {traj.shape[1]} samples per readout "
            "(ISMRMRD allows at most 65535)"
        )
    return traj, dwell, 0, spec.readout_ms + 4.0, 1.0, partitions


def _acs_lines(spec: SimulationSpec) -> tuple[np.ndarray, ...]:
    """Integer phase encodes (ky[, kz]) of the Cartesian ACS lines, each (lines,) int64: ``acs``
    lines along ky (a 3D scan: x ``min(acs, nz)`` along kz, ky fastest); empty without ACS."""
    extents = (spec.acs or 0, min(spec.acs or 0, spec.nz))[: spec.dims - 1]  # (y[, z])
    grids = np.meshgrid(*(np.arange(n) - n // 2 for n in reversed(extents)), indexing="ij")  # ([kz,] ky)
    return tuple(grid.reshape(-1).astype(np.int64) for grid in reversed(grids))


def _design(spec: SimulationSpec) -> _Design:
    """Trajectory design of ``spec``: its imaging readouts and its Cartesian ACS lines (a 2D scan:
    ``acs`` lines along kx at ky; a 3D scan: a block of ``acs`` x ``min(acs, nz)`` lines at (ky, kz))."""
    traj, dwell, center, tr_ms, te_ms, imaging_e2 = _imaging_trajectory(spec)
    steps = _acs_lines(spec)
    acs_traj = cartesian_lines(np.stack(steps, axis=-1), spec.matrix, ACS_READOUT_OVERSAMPLING)
    acs_kz = steps[1] if len(steps) > 1 else None
    return _Design(traj, dwell, center, steps[0], acs_traj, tr_ms, te_ms, acs_kz, imaging_e2)


def _limit(maximum: int, center: int = 0) -> Any:
    return xsd.limitType(minimum=0, maximum=int(maximum), center=int(center))


def _fov_z_mm(spec: SimulationSpec, planes: int) -> float:
    """The z extent (mm) of ``planes`` planes of the scan's z grid. Kept per kind of scan (the
    header says so): a volume's voxels are isotropic (``fov_mm / N`` each), a 2D scan's planes are
    ``slice_thickness_mm`` apart."""
    if spec.volumetric:
        return float(spec.fov_mm) * planes / spec.matrix
    return float(spec.slice_thickness_mm) * planes


def build_header(spec: SimulationSpec, design: _Design) -> str:
    """The ISMRMRD XML header of a simulated scan."""
    N = spec.matrix
    n_readouts, n_samples = design.traj.shape[:2]
    P = spec.nz
    fov_z = _fov_z_mm(spec, P)
    fov = xsd.fieldOfViewMm(x=float(spec.fov_mm), y=float(spec.fov_mm), z=fov_z)
    space = xsd.encodingSpaceType(matrixSize=xsd.matrixSizeType(x=N, y=N, z=P), fieldOfView_mm=fov)
    recon = xsd.encodingSpaceType(
        matrixSize=xsd.matrixSizeType(x=N, y=N, z=P),
        fieldOfView_mm=xsd.fieldOfViewMm(x=fov.x, y=fov.y, z=fov.z),
    )
    limits = xsd.encodingLimitsType(
        kspace_encoding_step_0=_limit(n_samples - 1, design.center_sample),
        kspace_encoding_step_1=_limit(n_readouts - 1, n_readouts // 2),
        kspace_encoding_step_2=_limit(P - 1, P // 2),
        average=_limit(0),
        slice=_limit(spec.slices - 1),
        contrast=_limit(spec.contrasts - 1),
        phase=_limit(0),
        repetition=_limit(spec.repetitions - 1),
        set=_limit(0),
        segment=_limit(0),
    )
    longs: list[tuple[str, int]] = [
        ("matrix", N),
        ("fine_matrix", FINE_FACTOR * N),
        ("samples_per_readout", n_samples),
        ("acs_lines", int(spec.acs or 0)),
        ("acs_center_line", N // 2),
        ("acs_readout_samples", ACS_READOUT_OVERSAMPLING * N),
        ("acs_center_sample", N),
        ("noise_scans", spec.noise_scans),
    ]
    doubles: list[tuple[str, float]] = [
        ("sample_time_us", design.sample_time_us),
        ("acs_sample_time_us", float(spec.radial_sample_time_us)),
        ("kmax_grid", N / 2.0),
        ("trajectory_to_grid_scale", 1.0 if spec.trajectory_units == "grid" else float(N)),
        ("b0_max_hz", float(spec.b0_max_hz)),
    ]
    if spec.trajectory == "kooshball":
        identifier = "golden_means_kooshball"
        longs += [("num_spokes", spec.spokes), ("readout_oversampling", 2)]
        doubles += [("golden_mean_1", GOLDEN_MEANS_3D[0]), ("golden_mean_2", GOLDEN_MEANS_3D[1])]
        traj_type = xsd.trajectoryType.RADIAL
    elif spec.trajectory == "stack_of_spirals":
        identifier = "stack_of_archimedean_spirals"
        longs += [("num_interleaves", spec.interleaves), ("partitions", spec.partitions)]
        doubles += [("spiral_turns", spiral_turns(spec.interleaves, N)), ("readout_ms", float(spec.readout_ms))]
        traj_type = xsd.trajectoryType.SPIRAL
    elif spec.trajectory == "radial":
        identifier = "golden_angle_radial"
        longs += [("num_spokes", spec.spokes), ("readout_oversampling", 2)]
        doubles += [("golden_angle_deg", GOLDEN_ANGLE_DEG)]
        traj_type = xsd.trajectoryType.RADIAL
    else:
        identifier = "archimedean_spiral"
        longs += [("num_interleaves", spec.interleaves)]
        doubles += [
            ("spiral_turns", spiral_turns(spec.interleaves, N)),
            ("readout_ms", float(spec.readout_ms)),
        ]
        traj_type = xsd.trajectoryType.SPIRAL
    strings = [
        ("trajectory", spec.trajectory),
        ("trajectory_units", spec.trajectory_units),
        ("simulator", "igrog_gadget.simulate"),
    ]
    desc = xsd.trajectoryDescriptionType(
        identifier=identifier,
        userParameterLong=[xsd.userParameterLongType(name=n, value=int(v)) for n, v in longs],
        userParameterDouble=[xsd.userParameterDoubleType(name=n, value=float(v)) for n, v in doubles],
        comment=(
            f"traj ({', '.join('k' + axis for axis in dimensions(spec.dims).axes)}) in {spec.trajectory_units} units "
            + ("(cycles/FOV, k=0 at grid index N//2)" if spec.trajectory_units == "grid" else "(k/N)")
        ),
    )
    encoding = xsd.encodingType(
        encodedSpace=space,
        reconSpace=recon,
        encodingLimits=limits,
        trajectory=traj_type,
        trajectoryDescription=desc,
    )
    if spec.acs:
        encoding.parallelImaging = xsd.parallelImagingType(
            accelerationFactor=xsd.accelerationFactorType(kspace_encoding_step_1=1, kspace_encoding_step_2=1),
            calibrationMode=xsd.calibrationModeType.SEPARATE,
        )
    header = xsd.ismrmrdHeader(
        # Gadgetron's NoiseAdjustGadget stores noise per subject: it needs a patientID and a
        # measurementID of the form DEVICE_SUBJECT_SESSION_MEASUREMENT.
        subjectInformation=xsd.subjectInformationType(patientID="igrogphantom"),
        studyInformation=xsd.studyInformationType(studyID="igrogstudy"),
        measurementInformation=xsd.measurementInformationType(
            measurementID=f"igrogsim_igrogphantom_igrogstudy_{spec.seed}",
            patientPosition=xsd.patientPositionType.HFS,
            protocolName=f"igrog_simulated_{spec.trajectory}",
            sequenceName=identifier,
        ),
        acquisitionSystemInformation=xsd.acquisitionSystemInformationType(
            systemVendor="igrog-gadget",
            systemModel="simulator",
            systemFieldStrength_T=1.5,
            relativeReceiverNoiseBandwidth=1.0,
            receiverChannels=spec.coils,
        ),
        experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=H1_RESONANCE_HZ),
        encoding=[encoding],
        sequenceParameters=xsd.sequenceParametersType(
            TR=[float(design.tr_ms)],
            TE=[float(design.te_ms + 1000.0 * CONTRAST_ECHO_SPACING_S * c) for c in range(spec.contrasts)],
            flipAngle_deg=[15.0],
            sequence_type="GRE",
        ),
        userParameters=xsd.userParametersType(
            userParameterLong=[xsd.userParameterLongType(name=n, value=int(v)) for n, v in longs],
            userParameterDouble=[xsd.userParameterDoubleType(name=n, value=float(v)) for n, v in doubles],
            userParameterString=[xsd.userParameterStringType(name=n, value=v) for n, v in strings],
        ),
    )
    return xsd.ToXML(header)


@dataclass
class _Truth:
    kspace: np.ndarray
    """(planes, contrasts, coils, *grid) complex64; grid (N, N), or (nz, N, N) for a volume."""
    image: np.ndarray
    """(planes, contrasts, *grid) complex64."""
    maps: np.ndarray
    """(coils, *grid) complex64."""
    b0map: np.ndarray | None
    """grid float32, or None."""
    mask: np.ndarray
    """grid bool."""
    imaging: np.ndarray
    """(planes, contrasts, coils, readouts, samples) complex128, noiseless."""
    acs: np.ndarray
    """(planes, contrasts, coils, acs, 2N) complex128, noiseless."""


#: Coils per transform (None: all): a plane's fine grid is small, so every coil goes through one
#: transform; a volume's is large, so one coil's fine-grid volume at a time (memory: a few volumes).
_COILS_PER_TRANSFORM = {2: None, 3: 1}


def _simulate_clean(spec: SimulationSpec, design: _Design) -> _Truth:
    """Noiseless samples and Cartesian truth for every plane (slice or partition; one for a
    volume) and contrast, 2D or 3D (``spec.grid_shape``)."""
    shape = spec.grid_shape
    dims = len(shape)
    fine = tuple(FINE_FACTOR * n for n in shape)
    per_transform = _COILS_PER_TRANSFORM[dims] or spec.coils
    batches = [range(first, min(first + per_transform, spec.coils)) for first in range(0, spec.coils, per_transform)]
    maps_fine = coil_sensitivities(spec.coils, fine) if len(batches) == 1 else None  # else made per batch
    b0_fine = smooth_b0_map(fine, spec.b0_max_hz) if spec.b0_max_hz > 0 else None
    b0 = smooth_b0_map(shape, spec.b0_max_hz).astype(np.float32) if spec.b0_max_hz > 0 else None

    n_img = design.traj.shape[0] * design.traj.shape[1]
    k_all = np.concatenate([design.traj.reshape(-1, dims), design.acs_traj.reshape(-1, dims)], axis=0)
    if b0_fine is not None:
        t_img = np.tile(np.arange(design.traj.shape[1]) * design.sample_time_us, design.traj.shape[0])
        t_acs = np.tile(
            np.arange(design.acs_traj.shape[1]) * float(spec.radial_sample_time_us), design.acs_traj.shape[0]
        )
        t_all = np.concatenate([t_img, t_acs]) * 1e-6

    S, C = spec.planes, spec.contrasts
    kspace = np.empty((S, C, spec.coils) + shape, dtype=np.complex64)
    image = np.empty((S, C) + shape, dtype=np.complex64)
    imaging = np.empty((S, C, spec.coils) + design.traj.shape[:2], dtype=np.complex128)
    acs = np.empty((S, C, spec.coils) + design.acs_traj.shape[:2], dtype=np.complex128)
    for s in range(S):
        for c in range(C):
            obj = _plane_object(spec, fine, s, c)
            for batch in batches:
                coils = slice(batch.start, batch.stop)
                maps = maps_fine if maps_fine is not None else np.stack([coil_sensitivities(spec.coils, fine, i) for i in batch])
                coil_obj = maps * obj[None]
                kspace[s, c, coils] = cartesian_kspace(coil_obj, shape)
                if b0_fine is None:
                    samples = nufft_forward(coil_obj, k_all, shape)
                else:
                    samples = forward_b0(coil_obj, k_all, t_all, b0_fine, shape)
                imaging[s, c, coils] = samples[:, :n_img].reshape((len(batch),) + design.traj.shape[:2])
                acs[s, c, coils] = samples[:, n_img:].reshape((len(batch),) + design.acs_traj.shape[:2])
                del coil_obj
            image[s, c] = centred_fftn(cartesian_kspace(obj, shape), tuple(range(-dims, 0)), inverse=True)
    maps = coil_sensitivities(spec.coils, shape).astype(np.complex64)
    return _Truth(kspace, image, maps, b0, object_support(shape), imaging, acs)


def _plane_object(spec: SimulationSpec, fine: tuple[int, ...], plane: int, contrast: int) -> np.ndarray:
    """The object of one plane and contrast on the fine grid: the phantom's slice ``plane`` (a
    volume: the 3D phantom), or the kz plane ``plane`` of a stack-of-stars."""
    if spec.volumetric or spec.partitions == 1:
        return phantom(fine, plane, contrast)
    return _partition_image(fine[-1], plane, contrast, spec.partitions)


def _partition_image(size: int, partition: int, contrast: int, partitions: int) -> np.ndarray:
    """The kz plane ``partition`` of a stack of ``partitions`` phantom slices (centred, unitary FFT along z)."""
    stack = np.stack([phantom(size, z, contrast) for z in range(partitions)])
    planes = centred_fftn(stack, (0,))
    return planes[partition]


def _with_partition(plane: dict, steps: np.ndarray | None, index: int, offset: int) -> dict:
    """``plane``'s counters, with partition ``steps[index] + offset`` for a 3D scan (``steps`` given)."""
    if steps is None:
        return plane
    return {**plane, "partition": int(steps[index]) + offset}


class _AcquisitionWriter:
    """Builds acquisition headers with running scan counter and time stamps, and adds the
    acquisitions to ``sink`` (written in batches; ``sink.flush()`` at the end)."""

    def __init__(self, sink: AcquisitionSink, spec: SimulationSpec) -> None:
        self.sink = sink
        self.spec = spec
        self.scan_counter = 0
        self.time_stamp = _TIME_STAMP_START
        self.uid = 1000 + int(spec.seed) % 100000

    def slice_position(self, slice_index: int) -> tuple[float, float, float]:
        offset = (slice_index - (self.spec.slices - 1) / 2.0) * float(self.spec.slice_thickness_mm)
        return (0.0, 0.0, float(offset))

    def header(
        self,
        *,
        flags: int,
        num_samples: int,
        traj_dims: int,
        center_sample: int,
        sample_time_us: float,
        slice_index: int = 0,
        contrast: int = 0,
        repetition: int = 0,
        step1: int = 0,
        partition: int = 0,
        tr_ms: float = 5.0,
    ) -> ismrmrd.AcquisitionHeader:
        spec = self.spec
        head = ismrmrd.AcquisitionHeader()
        head.version = ISMRMRD_HEADER_VERSION
        head.flags = int(flags)
        head.measurement_uid = self.uid
        head.scan_counter = self.scan_counter
        head.acquisition_time_stamp = int(self.time_stamp)
        head.number_of_samples = int(num_samples)
        head.available_channels = spec.coils
        head.active_channels = spec.coils
        for ch in range(spec.coils):
            word, bit = divmod(ch, 64)
            head.channel_mask[word] |= 1 << bit
        head.center_sample = int(center_sample)
        head.encoding_space_ref = 0
        head.trajectory_dimensions = int(traj_dims)
        head.sample_time_us = float(sample_time_us)
        head.position[:] = self.slice_position(slice_index)
        head.read_dir[:] = (1.0, 0.0, 0.0)
        head.phase_dir[:] = (0.0, 1.0, 0.0)
        head.slice_dir[:] = (0.0, 0.0, 1.0)
        head.patient_table_position[:] = (0.0, 0.0, 0.0)
        head.idx.kspace_encode_step_1 = int(step1)
        head.idx.kspace_encode_step_2 = int(partition)
        head.idx.slice = int(slice_index)
        head.idx.contrast = int(contrast)
        head.idx.repetition = int(repetition)
        self.scan_counter += 1
        self.time_stamp += max(1, int(round(tr_ms / _TICK_MS)))
        return head

    def append(self, head: ismrmrd.AcquisitionHeader, data: np.ndarray, traj: np.ndarray | None) -> None:
        acq = ismrmrd.Acquisition(head)
        acq.data[:] = data
        if traj is not None:
            acq.traj[:] = traj
        self.sink.add(acq)


def _flag(*bits: int) -> int:
    out = 0
    for b in bits:
        out |= 1 << (b - 1)
    return out


def _write_images(
    dataset: ismrmrd.Dataset, spec: SimulationSpec, truth: _Truth, writer: _AcquisitionWriter
) -> None:
    N, nz = spec.matrix, volume_shape(spec.grid_shape)[0]  # a 3D scan's images are volumes
    fov = (float(spec.fov_mm), float(spec.fov_mm), _fov_z_mm(spec, nz))
    axes = tuple(range(-spec.dims, 0))

    def append(series: str, data: np.ndarray, image_type: int, index: int, slice_index: int, contrast: int) -> None:
        img = ismrmrd.Image.from_array(np.ascontiguousarray(data), transpose=False)
        img.image_type = image_type
        img.image_series_index = IMAGE_SERIES_INDEX[series]
        img.image_index = index
        img.field_of_view[:] = fov
        img.version = ISMRMRD_HEADER_VERSION
        img.measurement_uid = writer.uid
        img.position[:] = writer.slice_position(slice_index)
        img.read_dir[:] = (1.0, 0.0, 0.0)
        img.phase_dir[:] = (0.0, 1.0, 0.0)
        img.slice_dir[:] = (0.0, 0.0, 1.0)
        img.slice = slice_index
        img.contrast = contrast
        img.acquisition_time_stamp = _TIME_STAMP_START
        meta = {"SeriesName": series, "ImageDomain": "image", "PixelOrder": "[channel, z, y, x], r=0 at N//2"}
        if series == "b0map":
            meta["Units"] = "Hz"
        img.meta = meta
        dataset.append_image(series, img)

    index = {name: 1 for name in IMAGE_SERIES_INDEX}
    for s in range(spec.slices):
        if spec.write_b0map:
            b0 = truth.b0map if truth.b0map is not None else np.zeros((nz, N, N), np.float32)
            append("b0map", b0.astype(np.float32).reshape(1, nz, N, N), ismrmrd.IMTYPE_REAL, index["b0map"], s, 0)
            index["b0map"] += 1
        if spec.write_coil_images:
            for c in range(spec.contrasts):
                coil_img = centred_fftn(truth.kspace[s, c].astype(np.complex128), axes, inverse=True).astype(np.complex64)
                append(
                    "coil_images",
                    coil_img.reshape(spec.coils, nz, N, N),
                    ismrmrd.IMTYPE_COMPLEX,
                    index["coil_images"],
                    s,
                    c,
                )
                index["coil_images"] += 1
        if spec.write_sensitivity_maps:
            append(
                "sensitivity_maps",
                truth.maps.reshape(spec.coils, nz, N, N),
                ismrmrd.IMTYPE_COMPLEX,
                index["sensitivity_maps"],
                s,
                0,
            )
            index["sensitivity_maps"] += 1


def simulate_to_file(
    path: str | os.PathLike[str],
    spec: SimulationSpec | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Simulate a scan and write it as ISMRMRD HDF5 plus ``<stem>.truth.npz``.

    Args:
        path: output ``.h5`` path (group "dataset").
        spec: what to simulate (default ``SimulationSpec()``).
        overwrite: replace existing output/truth files (otherwise ``FileExistsError``).

    Returns:
        Path of the ground-truth npz written beside ``path``.
    """
    spec = SimulationSpec() if spec is None else spec
    spec.validate()
    out = Path(path)
    truth_path = truth_path_for(out)
    if not overwrite:
        for p in (out, truth_path):
            if p.exists():
                raise FileExistsError(f"output file {str(p)!r} exists (pass overwrite=True / --force to replace it)")
    if not out.parent.is_dir():
        raise ValueError(f"output directory {str(out.parent)!r} does not exist")
    t0 = time.perf_counter()
    design = _design(spec)
    truth = _simulate_clean(spec, design)
    t1 = time.perf_counter()

    N = spec.matrix
    if spec.noiseless:
        noise_std = 0.0
    else:
        assert spec.snr is not None
        noise_std = float(np.abs(truth.image[spec.reference_plane, 0][truth.mask]).mean() / spec.snr)  # 3D: the volume
    rng = np.random.default_rng(spec.seed)
    rho = float(spec.noise_correlation)

    def noisy(clean: np.ndarray) -> np.ndarray:
        if noise_std == 0.0:
            return clean.astype(np.complex64)
        return (clean + complex_noise(clean.shape, noise_std, rng, rho)).astype(np.complex64)

    units_scale = 1.0 if spec.trajectory_units == "grid" else 1.0 / N
    traj_out = (design.traj * units_scale).astype(np.float32)
    n_readouts, n_samples = design.traj.shape[:2]
    acs_samples = design.acs_traj.shape[1]
    noise_samples = 2 * N

    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        tmp.unlink()
    try:
        with h5py.File(tmp, "w") as h5:
            w = _AcquisitionWriter(AcquisitionSink(h5.create_group("dataset")), spec)
            for _ in range(spec.noise_scans):
                head = w.header(
                    flags=_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT),
                    num_samples=noise_samples,
                    traj_dims=0,
                    center_sample=0,
                    sample_time_us=design.sample_time_us,
                    tr_ms=_TICK_MS,
                )
                w.append(head, noisy(np.zeros((spec.coils, noise_samples))), None)
            last_rep = spec.repetitions - 1
            for rep in range(spec.repetitions):
                for s in range(spec.planes):
                    if spec.volumetric or spec.partitions == 1:
                        plane = {"slice_index": s, "partition": 0}
                    else:
                        plane = {"slice_index": 0, "partition": s}
                    for c in range(spec.contrasts):
                        if rep == 0 and spec.acs:
                            acs_data = noisy(truth.acs[s, c])  # (coils, lines, 2N)
                            for line, ky in enumerate(design.acs_ky):
                                flags = _flag(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)
                                if line == 0:
                                    flags |= _flag(ismrmrd.ACQ_FIRST_IN_ENCODE_STEP1)
                                if line == len(design.acs_ky) - 1:
                                    flags |= _flag(ismrmrd.ACQ_LAST_IN_ENCODE_STEP1)
                                head = w.header(
                                    flags=flags,
                                    num_samples=acs_samples,
                                    traj_dims=0,
                                    center_sample=N,
                                    sample_time_us=float(spec.radial_sample_time_us),
                                    **_with_partition(plane, design.acs_kz, line, spec.nz // 2),
                                    contrast=c,
                                    repetition=rep,
                                    step1=int(ky) + N // 2,
                                    tr_ms=5.0,
                                )
                                w.append(head, acs_data[:, line, :], None)
                        data = noisy(truth.imaging[s, c])  # (coils, readouts, samples)
                        for r in range(n_readouts):
                            flags = 0
                            if r == 0:
                                flags |= _flag(
                                    ismrmrd.ACQ_FIRST_IN_SLICE,
                                    ismrmrd.ACQ_FIRST_IN_ENCODE_STEP1,
                                    ismrmrd.ACQ_FIRST_IN_CONTRAST,
                                )
                                if s == 0 and c == 0:
                                    flags |= _flag(ismrmrd.ACQ_FIRST_IN_REPETITION)
                            if r == n_readouts - 1:
                                flags |= _flag(
                                    ismrmrd.ACQ_LAST_IN_SLICE,
                                    ismrmrd.ACQ_LAST_IN_ENCODE_STEP1,
                                    ismrmrd.ACQ_LAST_IN_CONTRAST,
                                )
                                if s == spec.planes - 1 and c == spec.contrasts - 1:
                                    flags |= _flag(ismrmrd.ACQ_LAST_IN_REPETITION)
                                    if rep == last_rep:
                                        flags |= _flag(ismrmrd.ACQ_LAST_IN_MEASUREMENT)
                            head = w.header(
                                flags=flags,
                                num_samples=n_samples,
                                traj_dims=design.traj_dims,
                                center_sample=design.center_sample,
                                sample_time_us=design.sample_time_us,
                                **_with_partition(plane, design.imaging_e2, r, 0),
                                contrast=c,
                                repetition=rep,
                                step1=r,
                                tr_ms=design.tr_ms,
                            )
                            w.append(head, data[:, r, :], traj_out[r])
            w.sink.flush()
        dataset = ismrmrd.Dataset(str(tmp), "dataset", create_if_needed=True)
        try:
            dataset.write_xml_header(build_header(spec, design))
            _write_images(dataset, spec, truth, w)
        finally:
            dataset.close()
        os.replace(tmp, out)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise

    arrays: dict[str, Any] = {
        "kspace": truth.kspace,
        "image": truth.image,
        "sensitivity_maps": truth.maps,
        "object_mask": truth.mask,
        "noise_std": np.float64(noise_std),
        "noise_covariance": noise_covariance(spec.coils, noise_std, rho).astype(np.float64),
        "spec": np.array(spec.to_json()),
    }
    if truth.b0map is not None:
        arrays["b0map_hz"] = truth.b0map
    tmp_truth = truth_path.with_name(truth_path.name + ".tmp")
    try:
        with open(tmp_truth, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.replace(tmp_truth, truth_path)
    except BaseException:
        if tmp_truth.exists():
            tmp_truth.unlink()
        raise
    logger.info(
        "simulated %s (%s, N=%d, %d coils, %d x %d samples, noise std %.3g) in %.2f s (+%.2f s writing)",
        out,
        spec.trajectory,
        N,
        spec.coils,
        n_readouts,
        n_samples,
        noise_std,
        t1 - t0,
        time.perf_counter() - t1,
    )
    return truth_path


def load_truth(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a ``.truth.npz`` (or the truth beside an ``.h5``) into a dict; ``spec`` as a SimulationSpec."""
    p = Path(path)
    if p.suffix == ".h5":
        p = truth_path_for(p)
    with np.load(p) as z:
        out: dict[str, Any] = {k: z[k] for k in z.files}
    out["noise_std"] = float(out["noise_std"])
    out["spec"] = SimulationSpec.from_json(str(out["spec"]))
    return out
