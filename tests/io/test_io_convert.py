"""Pure ISMRMRD <-> container conversions (igrog_gadget.io.convert)."""

from __future__ import annotations

import logging

import ismrmrd
import ismrmrd.xsd as xsd
import numpy as np
import pytest

from igrog_gadget.errors import InputDataError
from igrog_gadget.io import (
    DEFAULT_H1_RESONANCE_HZ,
    OutputGeometry,
    acquisition_from_readout,
    cartesian_acquisitions,
    cartesian_output_header,
    output_recon_space,
    image_from_item,
    image_item_from_image,
    parse_header,
    readout_from_acquisition,
    readout_from_header_and_arrays,
)
from igrog_gadget.scan import IDX_FIELDS, GriddedFrame

FIRST_IN_ENCODE_STEP1 = ismrmrd.ACQ_FIRST_IN_ENCODE_STEP1
LAST_IN_ENCODE_STEP1 = ismrmrd.ACQ_LAST_IN_ENCODE_STEP1


@pytest.fixture
def radial_acquisitions(acquisition_builder):
    return acquisition_builder(np.random.default_rng(1))


# --- readout_from_acquisition ------------------------------------------------------------
def test_readout_from_radial_acquisition_copies_all_fields(radial_acquisitions):
    acq = radial_acquisitions[5]
    readout = readout_from_acquisition(acq, scan_counter=5, source="x.h5")

    assert readout.data.dtype == np.complex64 and readout.data.shape == (4, 64)
    np.testing.assert_array_equal(readout.data, acq.data)
    assert readout.traj is not None and readout.traj.dtype == np.float32 and readout.traj.shape == (64, 2)
    np.testing.assert_array_equal(readout.traj, acq.traj)
    assert readout.flags == acq.flags
    assert readout.idx == {name: int(getattr(acq.idx, name)) for name in IDX_FIELDS}
    assert readout.idx["slice"] == 0 and readout.idx["kspace_encode_step_1"] == 2 and readout.idx["segment"] == 3
    assert readout.center_sample == 32
    assert readout.sample_time_us == pytest.approx(2.5)
    assert readout.scan_counter == 5
    assert isinstance(readout.source_header, ismrmrd.AcquisitionHeader)
    assert bytes(readout.source_header) == bytes(acq.getHead())

    # independent copies: changing the acquisition leaves the readout alone
    acq.data[:] = 0
    acq.position[0] = 99.0
    assert np.any(readout.data != 0)
    assert readout.source_header.position[0] == pytest.approx(1.0)


def test_readout_without_trajectory_and_discards(radial_acquisitions):
    acs = radial_acquisitions[1]
    readout = readout_from_acquisition(acs, scan_counter=1)
    assert readout.traj is None
    assert readout.is_calibration() and not readout.is_imaging()
    assert (readout.discard_pre, readout.discard_post) == (2, 3)
    noise = readout_from_acquisition(radial_acquisitions[0], scan_counter=0)
    assert noise.is_noise() and noise.data.shape == (4, 128)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_data_names_source_index_and_field(radial_acquisitions, bad):
    acq = radial_acquisitions[4]
    acq.data[2, 7] = bad
    with pytest.raises(InputDataError, match=r"'scan\.h5': acquisition 7: field 'data' contains 1 non-finite"):
        readout_from_acquisition(acq, scan_counter=7, source="scan.h5")


def test_non_finite_traj_names_field(radial_acquisitions):
    acq = radial_acquisitions[4]
    acq.traj[3, 1] = np.nan
    with pytest.raises(InputDataError, match=r"acquisition 4: field 'traj' contains 1 non-finite"):
        readout_from_acquisition(acq, scan_counter=4, source="scan.h5")


def test_inconsistent_sizes_name_the_field(radial_acquisitions):
    acq = radial_acquisitions[4]
    head = acq.getHead()
    with pytest.raises(InputDataError, match=r"acquisition 3: field 'traj' holds 100 values.*64 x trajectory_dimensions=2"):
        readout_from_header_and_arrays(head, acq.data, np.zeros(100, np.float32), 3, "f.h5")
    with pytest.raises(InputDataError, match=r"acquisition 3: field 'data' holds 10 complex samples"):
        readout_from_header_and_arrays(head, np.zeros(10, np.complex64), acq.traj, 3, "f.h5")
    no_traj_head = radial_acquisitions[1].getHead()
    with pytest.raises(InputDataError, match=r"field 'traj' holds 4 values but trajectory_dimensions is 0"):
        readout_from_header_and_arrays(no_traj_head, radial_acquisitions[1].data, np.zeros(4, np.float32), 3)


def test_acquisition_from_readout_round_trip(radial_acquisitions):
    for i, acq in enumerate(radial_acquisitions):
        back = acquisition_from_readout(readout_from_acquisition(acq, i))
        assert back == acq


# --- parse_header ---------------------------------------------------------------------------
def test_parse_header_fields(xml_builder):
    header = parse_header(xml_builder(), source="in.h5")
    assert header.encoded_matrix == (32, 32, 1)
    assert header.encoded_fov_mm == (256.0, 256.0, 5.0)
    assert header.recon_matrix == (16, 16, 1)
    assert header.recon_fov_mm == (250.0, 250.0, 5.0)
    assert header.trajectory == "radial"
    assert header.num_coils == 4
    assert header.user_parameters == {"nspokes": 6, "TE_ms": 2.5, "scanner": "test"}
    assert "Müller" in header.xml


def test_parse_header_spiral_without_receiver_channels(xml_builder):
    header = parse_header(xml_builder(receiver_channels=None, trajectory="spiral"))
    assert header.trajectory == "spiral"
    assert header.num_coils is None


def test_parse_header_adds_missing_experimental_conditions(xml_builder, strip_conditions, caplog):
    xml = strip_conditions(xml_builder())
    assert "experimentalConditions" not in xml
    with caplog.at_level(logging.WARNING, logger="igrog_gadget.io.convert"):
        header = parse_header(xml, source="old.h5")
    assert header.encoded_matrix == (32, 32, 1)
    assert any("experimentalConditions" in r.getMessage() for r in caplog.records)


def test_parse_header_accepts_ascii_declaration_with_non_ascii_text(xml_builder):
    # ismrmrd's default ToXML declares encoding="ascii" even for non-ASCII content
    xml = xml_builder().replace('encoding="utf-8"', 'encoding="ascii"')
    assert parse_header(xml).trajectory == "radial"


def test_parse_header_missing_encoding(xml_builder):
    xml = xml_builder()
    start, end = xml.index("<encoding>"), xml.index("</encoding>") + len("</encoding>")
    with pytest.raises(InputDataError, match=r"XML header of 'in\.h5' has no <encoding> element"):
        parse_header(xml[:start] + xml[end:], source="in.h5")


def test_parse_header_missing_encoded_space(xml_builder):
    xml = xml_builder()
    start, end = xml.index("<encodedSpace>"), xml.index("</encodedSpace>") + len("</encodedSpace>")
    with pytest.raises(InputDataError, match=r"required element 'encodedSpace' missing in <encodingType>"):
        parse_header(xml[:start] + xml[end:], source="in.h5")


@pytest.mark.parametrize(
    "xml, message",
    [
        ("<ismrmrdHeader", "not well-formed XML"),
        ("", "empty"),
        ("<foo/>", "expected <ismrmrdHeader>"),
    ],
)
def test_parse_header_invalid(xml, message):
    with pytest.raises(InputDataError, match=message):
        parse_header(xml, source="in.h5")


# --- cartesian_output_header ----------------------------------------------------------------
def _limit(limit):
    return (limit.minimum, limit.maximum, limit.center)


def _geometry(xml, frame_shape, fov_mm):
    """The output geometry of frames gridded onto ``frame_shape`` over ``fov_mm`` from the scan of ``xml``."""
    return OutputGeometry(frame_shape, fov_mm, parse_header(xml).recon_fov_mm)


def test_cartesian_output_header(xml_builder):
    xml = cartesian_output_header(
        xml_builder(),
        _geometry(xml_builder(), (36, 40), (300.0, 270.0, 5.0)),
        limits={"slice": (0, 1, 0), "repetition": (0, 3, 0), "contrast": (0, 1, 0)},
        user_parameters={"igrog.variant": "implicit", "igrog.config": "kernel=3"},
    )
    out = xsd.CreateFromDocument(xml)
    enc = out.encoding[0]
    assert enc.trajectory == xsd.trajectoryType.CARTESIAN
    assert enc.trajectoryDescription is None
    assert (enc.encodedSpace.matrixSize.x, enc.encodedSpace.matrixSize.y, enc.encodedSpace.matrixSize.z) == (40, 36, 1)
    assert (enc.encodedSpace.fieldOfView_mm.x, enc.encodedSpace.fieldOfView_mm.y) == (300.0, 270.0)
    # the input's 250 mm recon FOV on the output's 7.5 mm voxels: 33 voxels, 247.5 mm
    assert (enc.reconSpace.matrixSize.x, enc.reconSpace.matrixSize.y) == (33, 33)
    assert (enc.reconSpace.fieldOfView_mm.x, enc.reconSpace.fieldOfView_mm.y) == (247.5, 247.5)
    limits = enc.encodingLimits
    assert _limit(limits.kspace_encoding_step_0) == (0, 39, 20)
    assert _limit(limits.kspace_encoding_step_1) == (0, 35, 18)
    assert _limit(limits.kspace_encoding_step_2) == (0, 0, 0)
    assert _limit(limits.slice) == (0, 1, 0)
    assert _limit(limits.repetition) == (0, 3, 0)
    assert _limit(limits.contrast) == (0, 1, 0)
    strings = {p.name: p.value for p in out.userParameters.userParameterString}
    assert strings == {"scanner": "test", "igrog.variant": "implicit", "igrog.config": "kernel=3"}
    assert [p.name for p in out.userParameters.userParameterLong] == ["nspokes"]
    assert out.experimentalConditions.H1resonanceFrequency_Hz == 123_200_000
    assert out.subjectInformation.patientName == "Phantom Müller"
    assert parse_header(xml).trajectory == "cartesian"


def test_cartesian_output_header_3d_and_overwrite(xml_builder):
    xml = cartesian_output_header(
        xml_builder(),
        _geometry(xml_builder(), (8, 32, 32), (256.0, 256.0, 40.0)),
        limits={"kspace_encode_step_2": (0, 7, 3)},
        user_parameters={"scanner": "replaced"},
    )
    out = xsd.CreateFromDocument(xml)
    assert _limit(out.encoding[0].encodingLimits.kspace_encoding_step_2) == (0, 7, 3)
    assert [(p.name, p.value) for p in out.userParameters.userParameterString] == [("scanner", "replaced")]
    xml = cartesian_output_header(xml_builder(), _geometry(xml_builder(), (8, 32, 32), (256.0, 256.0, 40.0)), {}, {})
    assert _limit(xsd.CreateFromDocument(xml).encoding[0].encodingLimits.kspace_encoding_step_2) == (0, 7, 4)


def test_cartesian_output_header_2d_keeps_input_step2_limits(xml_builder):
    stack_of_stars = xml_builder().replace(
        "<slice>", "<kspace_encoding_step_2><minimum>0</minimum><maximum>15</maximum><center>8</center>"
        "</kspace_encoding_step_2><slice>"
    )
    xml = cartesian_output_header(stack_of_stars, _geometry(stack_of_stars, (32, 32), (256.0, 256.0, 5.0)), {}, {})
    assert _limit(xsd.CreateFromDocument(xml).encoding[0].encodingLimits.kspace_encoding_step_2) == (0, 15, 8)


def test_cartesian_output_header_adds_experimental_conditions(xml_builder, strip_conditions, caplog):
    with caplog.at_level(logging.WARNING, logger="igrog_gadget.io.convert"):
        xml = cartesian_output_header(
            strip_conditions(xml_builder()), _geometry(xml_builder(), (32, 32), (256.0, 256.0, 5.0)), {}, {}
        )
    assert xsd.CreateFromDocument(xml).experimentalConditions.H1resonanceFrequency_Hz == DEFAULT_H1_RESONANCE_HZ
    assert any("experimentalConditions" in r.getMessage() for r in caplog.records)


def test_cartesian_output_header_rejects_bad_limits(xml_builder):
    with pytest.raises(ValueError, match="unknown encoding limit 'slices'"):
        cartesian_output_header(xml_builder(), _geometry(xml_builder(), (32, 32), (256.0, 256.0, 5.0)), {"slices": (0, 1, 0)}, {})
    with pytest.raises(ValueError, match="min <= center <= max"):
        cartesian_output_header(xml_builder(), _geometry(xml_builder(), (32, 32), (256.0, 256.0, 5.0)), {"slice": (0, 1, 4)}, {})


# --- cartesian_acquisitions -------------------------------------------------------------------
def test_cartesian_acquisitions(radial_acquisitions):
    template = readout_from_acquisition(radial_acquisitions[6], scan_counter=6)  # slice 1, repetition 0
    template.idx.update(average=2, set=1, phase=3, kspace_encode_step_2=4)
    rng = np.random.default_rng(3)
    coils, ny, nx = 4, 6, 10
    kspace = (rng.standard_normal((coils, ny, nx)) + 1j * rng.standard_normal((coils, ny, nx))).astype(np.complex64)
    kspace[:, 0, :] = 0  # an empty line
    hits = np.ones((ny, nx), np.int32)
    frame = GriddedFrame(kspace=kspace, hits=hits, frame_key=template.frame_key(), template=template)

    acquisitions = cartesian_acquisitions(frame, first_scan_counter=20)

    assert len(acquisitions) == ny
    source = radial_acquisitions[6]
    for ky, acq in enumerate(acquisitions):
        assert acq.data.shape == (coils, nx)
        np.testing.assert_array_equal(acq.data, kspace[:, ky, :])
        assert acq.number_of_samples == nx and acq.center_sample == nx // 2
        assert acq.trajectory_dimensions == 0 and acq.traj.size == 0
        assert acq.active_channels == coils and acq.available_channels == coils
        assert acq.sample_time_us == pytest.approx(2.5)
        assert (acq.discard_pre, acq.discard_post) == (0, 0)
        assert acq.scan_counter == 20 + ky
        assert acq.idx.kspace_encode_step_1 == ky
        assert (acq.idx.slice, acq.idx.contrast, acq.idx.repetition) == (1, 1, 0)
        assert (acq.idx.average, acq.idx.set, acq.idx.phase, acq.idx.kspace_encode_step_2) == (2, 1, 3, 4)
        assert acq.idx.segment == 0
        for name in ("position", "read_dir", "phase_dir", "slice_dir", "patient_table_position", "physiology_time_stamp"):
            assert list(getattr(acq, name)) == list(getattr(source, name)), name
        assert acq.acquisition_time_stamp == source.acquisition_time_stamp
        assert acq.measurement_uid == 4242 and acq.version == 1
        assert not acq.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)
        assert not acq.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)
        # flag numbers from ismrmrd (the standard), not igrog_gadget.scan
        assert acq.is_flag_set(ismrmrd.ACQ_FIRST_IN_SLICE) == (ky == 0)
        assert acq.is_flag_set(FIRST_IN_ENCODE_STEP1) == (ky == 0)
        assert acq.is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE) == (ky == ny - 1)
        assert acq.is_flag_set(ismrmrd.ACQ_LAST_IN_REPETITION) == (ky == ny - 1)
        assert acq.is_flag_set(LAST_IN_ENCODE_STEP1) == (ky == ny - 1)
        expected = 0
        if ky == 0:
            expected |= 1 << (ismrmrd.ACQ_FIRST_IN_SLICE - 1) | 1 << (FIRST_IN_ENCODE_STEP1 - 1)
        if ky == ny - 1:
            expected |= (
                1 << (ismrmrd.ACQ_LAST_IN_SLICE - 1)
                | 1 << (ismrmrd.ACQ_LAST_IN_REPETITION - 1)
                | 1 << (LAST_IN_ENCODE_STEP1 - 1)
            )
        assert acq.flags == expected
    assert not np.any(acquisitions[0].data)


def test_cartesian_acquisitions_of_a_3d_frame(radial_acquisitions):
    """One line per (ky, kz), kz outer: encode step 1 and 2 are the line's, FIRST/LAST_IN_ENCODE_STEP1
    on every partition's first/last ky, the slice and step-2 flags on the volume's first/last line."""
    template = readout_from_acquisition(radial_acquisitions[6], scan_counter=6)
    template.idx.update(kspace_encode_step_2=7)  # a 3D frame's own counter is replaced by the line's kz
    rng = np.random.default_rng(4)
    coils, nz, ny, nx = 2, 3, 4, 5
    kspace = (rng.standard_normal((coils, nz, ny, nx)) + 1j * rng.standard_normal((coils, nz, ny, nx))).astype(np.complex64)
    frame = GriddedFrame(kspace=kspace, hits=np.ones((nz, ny, nx), np.int32), frame_key=template.frame_key(), template=template)

    acquisitions = cartesian_acquisitions(frame, first_scan_counter=10)

    assert len(acquisitions) == nz * ny
    flag = {name: 1 << (getattr(ismrmrd, f"ACQ_{name}") - 1) for name in (
        "FIRST_IN_SLICE", "LAST_IN_SLICE", "LAST_IN_REPETITION", "FIRST_IN_ENCODE_STEP1", "LAST_IN_ENCODE_STEP1",
        "FIRST_IN_ENCODE_STEP2", "LAST_IN_ENCODE_STEP2",
    )}
    for number, acq in enumerate(acquisitions):
        kz, ky = divmod(number, ny)
        np.testing.assert_array_equal(acq.data, kspace[:, kz, ky, :])
        assert (acq.idx.kspace_encode_step_1, acq.idx.kspace_encode_step_2, acq.scan_counter) == (ky, kz, 10 + number)
        expected = (flag["FIRST_IN_ENCODE_STEP1"] if ky == 0 else 0) | (flag["LAST_IN_ENCODE_STEP1"] if ky == ny - 1 else 0)
        if (kz, ky) == (0, 0):
            expected |= flag["FIRST_IN_SLICE"] | flag["FIRST_IN_ENCODE_STEP2"]
        if (kz, ky) == (nz - 1, ny - 1):
            expected |= flag["LAST_IN_SLICE"] | flag["LAST_IN_REPETITION"] | flag["LAST_IN_ENCODE_STEP2"]
        assert acq.flags == expected, (kz, ky)


def test_cartesian_acquisitions_without_source_header(radial_acquisitions):
    template = readout_from_acquisition(radial_acquisitions[3], scan_counter=3)
    template.source_header = None
    frame = GriddedFrame(
        kspace=np.ones((2, 1, 4), np.complex64), hits=np.ones((1, 4), np.int32), frame_key=(), template=template
    )
    (only,) = cartesian_acquisitions(frame)
    assert only.version == 1
    assert only.is_flag_set(ismrmrd.ACQ_FIRST_IN_SLICE) and only.is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE)


# --- images ---------------------------------------------------------------------------------
def test_image_item_round_trip():
    data = np.arange(2 * 1 * 3 * 4, dtype=np.float32).reshape(2, 1, 3, 4)
    image = ismrmrd.Image.from_array(data)
    image.image_series_index = 7
    image.meta["ImageType"] = "b0map"
    item = image_item_from_image(image, "b0map")
    assert item.series == "b0map" and item.source is image
    assert item.data.shape == (2, 1, 3, 4)
    np.testing.assert_array_equal(item.data, data)
    assert item.meta == {"ImageType": "b0map"}

    back = image_from_item(item)
    assert back.image_series_index == 7
    np.testing.assert_array_equal(back.data, data)
    assert dict(back.meta) == {"ImageType": "b0map"}


@pytest.mark.parametrize(
    "matrix, fov, recon_fov, expected",
    [
        ((128, 128, 1), (128.0, 128.0, 5.0), (64.0, 64.0, 5.0), ((64, 64, 1), (64.0, 64.0, 5.0))),  # 2x grid oversampling
        ((256, 128, 1), (512.0, 256.0, 5.0), (256.0, 256.0, 5.0), ((128, 128, 1), (256.0, 256.0, 5.0))),  # readout os
        ((64, 64, 16), (256.0, 256.0, 80.0), (256.0, 256.0, 80.0), ((64, 64, 16), (256.0, 256.0, 80.0))),  # stack-of-stars
        ((64, 64, 1), (256.0, 256.0, 5.0), (0.0, 0.0, 0.0), ((64, 64, 1), (256.0, 256.0, 5.0))),  # no recon FOV stated
    ],
)
def test_output_recon_space_has_the_output_voxels(matrix, fov, recon_fov, expected):
    recon_matrix, recon_fov_out = output_recon_space(matrix, fov, recon_fov)
    assert (recon_matrix, recon_fov_out) == expected
    for axis in range(2):  # voxel size a reader computes = the output grid's
        assert recon_fov_out[axis] / recon_matrix[axis] == pytest.approx(fov[axis] / matrix[axis])
