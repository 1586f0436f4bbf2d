"""Atomic Cartesian ISMRMRD writer (igrog_gadget.io.writer)."""

from __future__ import annotations

import os

import ismrmrd
import ismrmrd.xsd as xsd
import numpy as np
import pytest

from igrog_gadget.io import OutputGeometry, cartesian_output_header, read_dataset, write_cartesian_file
from igrog_gadget.scan import GriddedFrame

NY, NX, COILS = 12, 16, 4


def _frames(raw, rng, *, broken_after=None):
    """One frame per slice of the radial readouts; raises after ``broken_after`` frames if set."""
    templates = {}
    for readout in raw.readouts:
        if readout.is_imaging():
            templates.setdefault(readout.idx["slice"], readout)
    for count, (slice_index, template) in enumerate(sorted(templates.items())):
        if broken_after is not None and count == broken_after:
            raise RuntimeError("gridding failed midway")
        kspace = (rng.standard_normal((COILS, NY, NX)) + 1j * rng.standard_normal((COILS, NY, NX))).astype(np.complex64)
        kspace[:, ::3, :] = 0  # lines without samples
        hits = (np.abs(kspace[0]) > 0).astype(np.int32)
        yield GriddedFrame(kspace=kspace, hits=hits, frame_key=template.frame_key(), template=template)


def _output_xml(raw):
    return cartesian_output_header(
        raw.header_xml,
        OutputGeometry((NY, NX), (256.0, 192.0, 5.0), raw.header.recon_fov_mm),
        limits={"slice": (0, 1, 0), "repetition": (0, 1, 0)},
        user_parameters={"igrog.variant": "implicit", "igrog.config": '{"kernel": 3}'},
    )


def _leftovers(directory):
    return sorted(name for name in os.listdir(directory) if ".partial-" in name)


def test_written_file_reads_back_with_ismrmrd(tmp_path, synthetic_file):
    raw = read_dataset(synthetic_file.path)
    frames = list(_frames(raw, np.random.default_rng(5)))
    noise = [r for r in raw.readouts if r.is_noise()]
    target = tmp_path / "out" / "cartesian.h5"
    target.parent.mkdir()

    count = write_cartesian_file(
        target,
        _output_xml(raw),
        iter(frames),
        passthrough_acquisitions=noise,
        images=raw.images,
        waveforms=raw.waveforms,
    )

    assert count == 1 + 2 * NY
    assert sorted(os.listdir(target.parent)) == ["cartesian.h5"]
    dataset = ismrmrd.Dataset(str(target), "dataset", create_if_needed=False)
    try:
        header = xsd.CreateFromDocument(dataset.read_xml_header())
        acquisitions = [dataset.read_acquisition(i) for i in range(dataset.number_of_acquisitions())]
        b0 = [dataset.read_image("b0map", i) for i in range(dataset.number_of_images("b0map"))]
        coil = [dataset.read_image("coil_images", i) for i in range(dataset.number_of_images("coil_images"))]
        waveforms = [dataset.read_waveform(i) for i in range(dataset.number_of_waveforms())]
    finally:
        dataset.close()

    enc = header.encoding[0]
    assert enc.trajectory == xsd.trajectoryType.CARTESIAN
    assert (enc.encodedSpace.matrixSize.x, enc.encodedSpace.matrixSize.y, enc.encodedSpace.matrixSize.z) == (NX, NY, 1)
    step1 = enc.encodingLimits.kspace_encoding_step_1
    assert (step1.minimum, step1.maximum, step1.center) == (0, NY - 1, NY // 2)
    assert (enc.encodingLimits.slice.minimum, enc.encodingLimits.slice.maximum) == (0, 1)
    strings = {p.name: p.value for p in header.userParameters.userParameterString}
    assert strings["igrog.variant"] == "implicit" and strings["igrog.config"] == '{"kernel": 3}'
    assert header.subjectInformation.patientName == "Phantom Müller"

    assert len(acquisitions) == 1 + 2 * NY
    assert acquisitions[0].is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
    np.testing.assert_array_equal(acquisitions[0].data, noise[0].data)
    for f, frame in enumerate(frames):
        lines = acquisitions[1 + f * NY : 1 + (f + 1) * NY]
        for ky, acq in enumerate(lines):
            assert acq.idx.kspace_encode_step_1 == ky
            assert acq.idx.slice == frame.template.idx["slice"] == f
            assert acq.idx.contrast == 1
            assert acq.scan_counter == 1 + f * NY + ky
            assert acq.trajectory_dimensions == 0
            assert acq.number_of_samples == NX and acq.center_sample == NX // 2
            assert acq.active_channels == COILS
            np.testing.assert_array_equal(acq.data, frame.kspace[:, ky, :])
            assert acq.is_flag_set(ismrmrd.ACQ_FIRST_IN_SLICE) == (ky == 0)
            assert acq.is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE) == (ky == NY - 1)
            assert acq.is_flag_set(ismrmrd.ACQ_LAST_IN_REPETITION) == (ky == NY - 1)
            assert not acq.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)
            assert list(acq.position) == list(frame.template.source_header.position)
        zero_lines = [ky for ky, acq in enumerate(lines) if not np.any(acq.data)]
        assert zero_lines == list(range(0, NY, 3))

    assert len(b0) == 2 and len(coil) == 1
    np.testing.assert_array_equal(b0[1].data, raw.images[1].data)
    assert b0[0].meta["ImageType"] == "b0map"
    np.testing.assert_array_equal(coil[0].data, raw.images[2].data)
    assert waveforms == raw.waveforms

    again = read_dataset(target)
    assert again.header.trajectory == "cartesian" and again.header.encoded_matrix == (NX, NY, 1)
    assert len(again.readouts) == 1 + 2 * NY and len(again.images) == 3 and len(again.waveforms) == 2


def test_failing_frames_generator_leaves_no_file(tmp_path, synthetic_file):
    raw = read_dataset(synthetic_file.path)
    target = tmp_path / "cartesian.h5"
    frames = _frames(raw, np.random.default_rng(0), broken_after=1)  # first frame fine, then raises
    with pytest.raises(RuntimeError, match="gridding failed midway"):
        write_cartesian_file(target, _output_xml(raw), frames, images=raw.images, waveforms=raw.waveforms)
    assert not target.exists()
    assert _leftovers(tmp_path) == []


def test_failure_keeps_existing_target(tmp_path, synthetic_file):
    raw = read_dataset(synthetic_file.path)
    target = tmp_path / "cartesian.h5"
    target.write_bytes(b"previous result")
    with pytest.raises(RuntimeError):
        write_cartesian_file(target, _output_xml(raw), _frames(raw, np.random.default_rng(0), broken_after=1))
    assert target.read_bytes() == b"previous result"
    assert _leftovers(tmp_path) == []

    write_cartesian_file(target, _output_xml(raw), _frames(raw, np.random.default_rng(0)))
    assert len(read_dataset(target).readouts) == 2 * NY
    assert _leftovers(tmp_path) == []


def test_frame_shape_mismatch_leaves_no_file(tmp_path, synthetic_file):
    raw = read_dataset(synthetic_file.path)
    xml = cartesian_output_header(raw.header_xml, OutputGeometry((NY + 2, NX), (256.0, 256.0, 5.0), raw.header.recon_fov_mm), {}, {})
    target = tmp_path / "cartesian.h5"
    with pytest.raises(ValueError, match=r"kspace shape \(4, 12, 16\) does not match \(coils, ny=14, nx=16\)"):
        write_cartesian_file(target, xml, _frames(raw, np.random.default_rng(0)))
    assert os.listdir(tmp_path) == [synthetic_file.path.name]


def test_bad_passthrough_type_leaves_no_file(tmp_path, synthetic_file):
    raw = read_dataset(synthetic_file.path)
    target = tmp_path / "cartesian.h5"
    with pytest.raises(TypeError, match="pass-through acquisitions"):
        write_cartesian_file(target, _output_xml(raw), [], passthrough_acquisitions=["noise"])
    assert not target.exists() and _leftovers(tmp_path) == []
