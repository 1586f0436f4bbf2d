"""MRD v2 ↔ ISMRMRD v1: the product's own mapping, round trip through a binary MRD v2 stream on
radial, spiral, multi-slice and 3D files (header, acquisitions, images), and what differs
between the formats (trajectory transposed, channel order, flags)."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import ismrmrd
import numpy as np
import pytest

mrd = pytest.importorskip("mrd", reason="mrd-python (the [mrd] extra) is not installed")

from igrog_gadget.io import mrd2  # noqa: E402
from igrog_gadget.io.acquisitions import read_acquisitions, read_header_xml  # noqa: E402
from igrog_gadget.simulate import SimulationSpec, simulate_to_file  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"


def _same(a, b, path: str = "header") -> None:
    """Two v1 header records equal field by field (floats to float32 precision: MRD v2 stores
    TR, TE, TI and flip angles as float32)."""
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-6), path
    else:
        assert a == b, path


def _images(path: Path) -> list[ismrmrd.Image]:
    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    try:
        return [
            dataset.read_image(series, i)
            for series in dataset.list()
            if series not in ("data", "xml", "waveforms")
            for i in range(dataset.number_of_images(series))
        ]
    finally:
        dataset.close()


@pytest.fixture(scope="module")
def kooshball(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mrd2") / "kooshball.h5"
    simulate_to_file(path, SimulationSpec(trajectory="kooshball", matrix=16, coils=2, spokes=60, acs=8, seed=3))
    return path


@pytest.mark.parametrize("name", ["radial_acs", "spiral_b0", "radial_multi", "kooshball"])
def test_round_trip_through_an_mrd2_stream(name, kooshball):
    path = kooshball if name == "kooshball" else DATA / f"{name}.h5"
    xml = read_header_xml(path).decode()
    acquisitions = read_acquisitions(path)
    images = _images(path)  # spiral_b0 carries b0map, coil images and sensitivity maps
    stream = io.BytesIO()
    mrd2.write_mrd2(stream, xml, acquisitions + images)
    assert stream.getvalue()[:5] == b"yardl"
    stream.seek(0)
    xml_back, items = mrd2.read_mrd2(stream)
    items = list(items)
    _same(ismrmrd.xsd.CreateFromDocument(xml), ismrmrd.xsd.CreateFromDocument(xml_back))
    assert len(items) == len(acquisitions) + len(images)
    for original, item in zip(acquisitions, items):
        v2 = item.value
        assert v2.trajectory.shape == (original.trajectory_dimensions, original.number_of_samples) or original.trajectory_dimensions == 0
        back = mrd2.acquisition_from_mrd2(v2)
        assert bytes(back.getHead()) == bytes(original.getHead())
        np.testing.assert_array_equal(back.data, original.data)
        np.testing.assert_array_equal(back.traj, original.traj)
    for original, item in zip(images, items[len(acquisitions):]):
        back = mrd2.image_from_mrd2(item.value)
        assert bytes(back.getHead()) == bytes(original.getHead())
        np.testing.assert_array_equal(back.data, original.data)
        assert back.meta.serialize() == original.meta.serialize()


def test_what_differs_between_the_formats():
    """v2's trajectory is (basis, samples); channel order from v1's mask; flags are the same bits."""
    (acquisition,) = [a for a in read_acquisitions(DATA / "radial_acs.h5") if a.idx.kspace_encode_step_1 == 5 and a.trajectory_dimensions]
    v2 = mrd2.acquisition_to_mrd2(acquisition)
    np.testing.assert_array_equal(v2.trajectory, acquisition.traj.T)
    assert v2.head.channel_order == list(range(acquisition.active_channels))
    noise = read_acquisitions(DATA / "radial_acs.h5")[0]
    assert noise.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
    assert mrd2.acquisition_to_mrd2(noise).head.flags & mrd.AcquisitionFlags.IS_NOISE_MEASUREMENT
    sparse = ismrmrd.Acquisition.from_array(np.ones((2, 8), np.complex64))
    head = sparse.getHead()
    head.channel_mask[0] = 0b1010  # channels 1 and 3 of the array
    sparse.setHead(head)
    assert mrd2.acquisition_to_mrd2(sparse).head.channel_order == [1, 3]
    assert list(mrd2.acquisition_from_mrd2(mrd2.acquisition_to_mrd2(sparse)).getHead().channel_mask[:1]) == [0b1010]


def test_a_header_the_v2_writer_left_sparse_reads():
    """MRD v2 makes most header fields optional: a header with only an encoding converts, with
    v1's required experimentalConditions filled in."""
    header = mrd.Header(
        encoding=[
            mrd.EncodingType(
                trajectory=mrd.Trajectory.RADIAL,
                encoded_space=mrd.EncodingSpaceType(
                    matrix_size=mrd.MatrixSizeType(x=64, y=64, z=1), field_of_view_mm=mrd.FieldOfViewMm(x=256, y=256, z=5)
                ),
                recon_space=mrd.EncodingSpaceType(
                    matrix_size=mrd.MatrixSizeType(x=64, y=64, z=1), field_of_view_mm=mrd.FieldOfViewMm(x=256, y=256, z=5)
                ),
                encoding_limits=mrd.EncodingLimitsType(),
            )
        ]
    )
    v1 = ismrmrd.xsd.CreateFromDocument(mrd2.header_from_mrd2(header))
    assert v1.encoding[0].trajectory == ismrmrd.xsd.trajectoryType.RADIAL
    assert v1.experimentalConditions.H1resonanceFrequency_Hz > 0


def test_not_a_stream_is_refused_with_a_message():
    from igrog_gadget.errors import InputDataError

    with pytest.raises(InputDataError, match="MRD v2"):
        mrd2.read_mrd2(io.BytesIO(b"yardl" + b"\x00" * 3))


def test_dates_times_and_descriptions_survive_the_round_trip():
    """Study and series dates and times (to the nanosecond), patient position, a trajectory
    description with its parameters and user parameters of every kind."""
    from xsdata.models.datatype import XmlDate, XmlTime

    X = ismrmrd.xsd
    header = X.CreateFromDocument(read_header_xml(DATA / "spiral_acs.h5").decode())
    header.studyInformation = X.studyInformationType(studyDate=XmlDate(2026, 12, 7), studyTime=XmlTime.from_string("08:15:30.123456"))
    header.measurementInformation = X.measurementInformationType(
        seriesDate=XmlDate(2026, 12, 7), seriesTime=XmlTime.from_string("08:16:00"), patientPosition=X.patientPositionType.FFS,
        protocolName="spiral_b0",
    )
    header.encoding[0].trajectoryDescription = X.trajectoryDescriptionType(
        identifier="vds_spiral",
        userParameterLong=[X.userParameterLongType(name="interleaves", value=8)],
        userParameterDouble=[X.userParameterDoubleType(name="fov_reduction", value=0.25)],
        comment="variable density",
    )
    header.userParameters = X.userParametersType(
        userParameterString=[X.userParameterStringType(name="site", value="scanner 1")],
        userParameterBase64=[X.userParameterBase64Type(name="blob", value=b"\x00\x01igrog")],
    )
    stream = io.BytesIO()
    mrd2.write_mrd2(stream, X.ToXML(header), [])
    stream.seek(0)
    xml_back, _ = mrd2.read_mrd2(stream)
    _same(header, X.CreateFromDocument(xml_back))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: setattr(a, "trajectory", a.trajectory.T.copy()), "trajectory of shape"),
        (lambda a: setattr(a.head, "channel_order", [0, 5000]), "channel_order"),
        (lambda a: setattr(a, "data", a.data[None]), r"not \(coils, samples\)"),
    ],
    ids=["untransposed-trajectory", "channel-beyond-mask", "data-rank"],
)
def test_inconsistent_mrd2_acquisitions_are_bad_input(change, message):
    """A writer that kept v1's (samples, basis) trajectory, a channel beyond ISMRMRD's mask, data
    of another rank: one error naming it, never a crash."""
    from igrog_gadget.errors import InputDataError

    (acquisition,) = [a for a in read_acquisitions(DATA / "radial_acs.h5") if a.trajectory_dimensions][:1]
    v2 = mrd2.acquisition_to_mrd2(acquisition)
    change(v2)
    with pytest.raises(InputDataError, match=message):
        mrd2.acquisition_from_mrd2(v2)
