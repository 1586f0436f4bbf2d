"""Small synthetic ISMRMRD files for the I/O tests, written with the ismrmrd package."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import ismrmrd
import ismrmrd.xsd as xsd
import numpy as np
import pytest

COILS = 4
SAMPLES = 64
MATRIX = 32
NOISE_FLAG = ismrmrd.ACQ_IS_NOISE_MEASUREMENT
ACS_FLAG = ismrmrd.ACQ_IS_PARALLEL_CALIBRATION


def make_header(
    *,
    receiver_channels: int | None = COILS,
    trajectory: str = "radial",
    matrix: tuple[int, int, int] = (MATRIX, MATRIX, 1),
    patient_name: str = "Phantom Müller",
) -> xsd.ismrmrdHeader:
    """A radial ISMRMRD header built from ismrmrd's xsd classes."""
    nx, ny, nz = matrix
    encoding = xsd.encodingType(
        encodedSpace=xsd.encodingSpaceType(
            matrixSize=xsd.matrixSizeType(x=nx, y=ny, z=nz),
            fieldOfView_mm=xsd.fieldOfViewMm(x=256.0, y=256.0, z=5.0),
        ),
        reconSpace=xsd.encodingSpaceType(
            matrixSize=xsd.matrixSizeType(x=nx // 2, y=ny // 2, z=nz),
            fieldOfView_mm=xsd.fieldOfViewMm(x=250.0, y=250.0, z=5.0),
        ),
        encodingLimits=xsd.encodingLimitsType(
            kspace_encoding_step_1=xsd.limitType(minimum=0, maximum=5, center=0),
            slice=xsd.limitType(minimum=0, maximum=1, center=0),
            repetition=xsd.limitType(minimum=0, maximum=0, center=0),
        ),
        trajectory=xsd.trajectoryType(trajectory),
        trajectoryDescription=xsd.trajectoryDescriptionType(
            identifier="radial_golden",
            userParameterLong=[xsd.userParameterLongType(name="spokes", value=6)],
        ),
    )
    header = xsd.ismrmrdHeader(
        experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=123_200_000),
        subjectInformation=xsd.subjectInformationType(patientName=patient_name),
        acquisitionSystemInformation=(
            xsd.acquisitionSystemInformationType(receiverChannels=receiver_channels, systemFieldStrength_T=2.89)
            if receiver_channels is not None
            else None
        ),
        encoding=[encoding],
        userParameters=xsd.userParametersType(
            userParameterLong=[xsd.userParameterLongType(name="nspokes", value=6)],
            userParameterDouble=[xsd.userParameterDoubleType(name="TE_ms", value=2.5)],
            userParameterString=[xsd.userParameterStringType(name="scanner", value="test")],
        ),
    )
    return header


def header_xml(**kwargs: Any) -> str:
    return xsd.ToXML(make_header(**kwargs), encoding="utf-8")


def strip_experimental_conditions(xml: str) -> str:
    start = xml.index("<experimentalConditions>")
    end = xml.index("</experimentalConditions>") + len("</experimentalConditions>")
    return xml[:start] + xml[end:]


def set_geometry(acq: ismrmrd.Acquisition, i: int) -> None:
    acq.version = 1
    acq.measurement_uid = 4242
    acq.acquisition_time_stamp = 1000 + 10 * i
    acq.physiology_time_stamp[:] = [i, 2 * i, 3]
    acq.position[:] = [1.0, -2.0, 3.5]
    acq.read_dir[:] = [1.0, 0.0, 0.0]
    acq.phase_dir[:] = [0.0, 1.0, 0.0]
    acq.slice_dir[:] = [0.0, 0.0, 1.0]
    acq.patient_table_position[:] = [0.0, 0.0, -100.0]
    acq.sample_time_us = 2.5
    acq.user_int[0] = i
    acq.user_float[1] = 0.5 * i
    for c in range(acq.active_channels):
        acq.setChannelActive(c)


@dataclass
class SyntheticFile:
    path: Path
    xml: str
    acquisitions: list[ismrmrd.Acquisition]
    images: dict[str, list[ismrmrd.Image]] = field(default_factory=dict)
    waveforms: list[ismrmrd.Waveform] = field(default_factory=list)


def build_acquisitions(
    rng: np.random.Generator, *, n_radial: int = 6, coils: int = COILS, samples: int = SAMPLES
) -> list[ismrmrd.Acquisition]:
    """Noise scan, two Cartesian ACS lines (no traj), then radial spokes with traj (normalized)."""
    acquisitions = []

    def complex_noise(shape: tuple[int, int]) -> np.ndarray:
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)

    noise = ismrmrd.Acquisition.from_array(complex_noise((coils, 128)))
    noise.setFlag(NOISE_FLAG)
    noise.sample_time_us = 5.0
    acquisitions.append(noise)

    for ky in (15, 16):
        acs = ismrmrd.Acquisition.from_array(complex_noise((coils, samples)))
        acs.setFlag(ACS_FLAG)
        acs.center_sample = samples // 2
        acs.idx.kspace_encode_step_1 = ky
        acs.discard_pre = 2
        acs.discard_post = 3
        acquisitions.append(acs)

    radius = np.linspace(-0.5, 0.5, samples, endpoint=False, dtype=np.float32)
    for spoke in range(n_radial):
        angle = spoke * np.pi * 0.618
        traj = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).astype(np.float32)
        acq = ismrmrd.Acquisition.from_array(complex_noise((coils, samples)), traj)
        acq.center_sample = samples // 2
        acq.idx.kspace_encode_step_1 = spoke
        acq.idx.slice = spoke % 2
        acq.idx.repetition = spoke // 4
        acq.idx.contrast = 1
        acq.idx.segment = 3
        if spoke == n_radial - 1:
            acq.setFlag(ismrmrd.ACQ_LAST_IN_SLICE)
        acquisitions.append(acq)

    for i, acq in enumerate(acquisitions):
        set_geometry(acq, i)
        acq.scan_counter = i + 1
    return acquisitions


def write_file(
    path: Path,
    *,
    xml: str | None = None,
    acquisitions: list[ismrmrd.Acquisition] | None = None,
    with_images: bool = True,
    with_waveforms: bool = True,
    seed: int = 0,
) -> SyntheticFile:
    rng = np.random.default_rng(seed)
    xml = header_xml() if xml is None else xml
    acquisitions = build_acquisitions(rng) if acquisitions is None else acquisitions
    images: dict[str, list[ismrmrd.Image]] = {}
    waveforms: list[ismrmrd.Waveform] = []
    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    try:
        dataset.write_xml_header(xml.encode("utf-8"))  # a non-ASCII str fails in h5py
        for acq in acquisitions:
            dataset.append_acquisition(acq)
        if with_images:
            b0 = []
            for i in range(2):
                image = ismrmrd.Image.from_array(rng.standard_normal((1, 1, 8, 8)).astype(np.float32))
                image.image_index = i
                image.meta["ImageType"] = "b0map"
                image.meta["Units"] = ["Hz", "rad/s"]
                dataset.append_image("b0map", image)
                b0.append(image)
            coil = ismrmrd.Image.from_array(
                (rng.standard_normal((COILS, 1, 8, 8)) + 1j * rng.standard_normal((COILS, 1, 8, 8))).astype(
                    np.complex64
                )
            )
            dataset.append_image("coil_images", coil)
            images = {"b0map": b0, "coil_images": [coil]}
        if with_waveforms:
            for wid in (0, 3):
                waveform = ismrmrd.Waveform.from_array(
                    rng.integers(0, 1000, size=(2, 12)).astype(np.uint32),
                    waveform_id=wid,
                    time_stamp=1000 + wid,
                    sample_time_us=2.5,
                )
                dataset.append_waveform(waveform)
                waveforms.append(waveform)
    finally:
        dataset.close()
    return SyntheticFile(path=path, xml=xml, acquisitions=acquisitions, images=images, waveforms=waveforms)


@pytest.fixture
def synthetic_file(tmp_path: Path) -> SyntheticFile:
    """Noise scan + 2 ACS lines + 6 radial spokes, 2 image series, 2 waveforms."""
    return write_file(tmp_path / "radial.h5")


@pytest.fixture
def file_writer() -> Callable[..., SyntheticFile]:
    """``write_file(path, xml=..., acquisitions=..., with_images=..., with_waveforms=...)``."""
    return write_file


@pytest.fixture
def acquisition_builder() -> Callable[..., list[ismrmrd.Acquisition]]:
    """``build_acquisitions(rng, n_radial=..., coils=..., samples=...)``."""
    return build_acquisitions


@pytest.fixture
def xml_builder() -> Callable[..., str]:
    """``header_xml(receiver_channels=..., trajectory=..., matrix=..., patient_name=...)``."""
    return header_xml


@pytest.fixture
def strip_conditions() -> Callable[[str], str]:
    """Remove the experimentalConditions element from an XML header text."""
    return strip_experimental_conditions
