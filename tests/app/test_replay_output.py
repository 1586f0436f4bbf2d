"""igrog replay on recorded files: the Cartesian ISMRMRD output, its header and layout."""

from __future__ import annotations

import ismrmrd
import numpy as np
import pytest
from app_helpers import DATA, FAST

from igrog_gadget.config import load_config
from igrog_gadget.replay import replay_file


def read_output(path):
    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    header = ismrmrd.xsd.CreateFromDocument(dataset.read_xml_header())
    acquisitions = [dataset.read_acquisition(i) for i in range(dataset.number_of_acquisitions())]
    dataset.close()
    return header, acquisitions


@pytest.fixture(scope="module")
def radial_acs_replay(tmp_path_factory):
    """radial_acs.h5 replayed once with FAST: (output file, report), looked at by several tests."""
    output = tmp_path_factory.mktemp("replay_output") / "out.h5"
    return output, replay_file(DATA / "radial_acs.h5", output, load_config("basic", overrides=FAST))


def test_output_is_a_cartesian_ismrmrd_file(radial_acs_replay):
    output, report = radial_acs_replay
    header, acquisitions = read_output(output)

    encoding = header.encoding[0]
    assert encoding.trajectory.value == "cartesian"
    assert (encoding.encodedSpace.matrixSize.x, encoding.encodedSpace.matrixSize.y) == (64, 64)
    limits = encoding.encodingLimits.kspace_encoding_step_1
    assert (limits.minimum, limits.maximum, limits.center) == (0, 63, 32)
    parameters = {p.name: p.value for p in header.userParameters.userParameterString}
    assert parameters["igrog.variant"] == "basic"
    assert "[training]" in parameters["igrog.config"]

    noise = [a for a in acquisitions if a.isFlagSet(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)]
    calibration = [a for a in acquisitions if a.isFlagSet(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)]
    lines = [a for a in acquisitions if not a.isFlagSet(ismrmrd.ACQ_IS_NOISE_MEASUREMENT) and a not in calibration]
    assert len(noise) == 1, "the noise scan passes through"
    assert acquisitions[1 : 1 + len(calibration)] == calibration, "the calibration block comes before the frame"
    assert len(lines) == 64
    assert [a.idx.kspace_encode_step_1 for a in lines] == list(range(64))
    assert all(a.number_of_samples == 64 and a.center_sample == 32 and a.active_channels == 4 for a in lines)
    assert all(a.trajectory_dimensions == 0 for a in lines)
    assert lines[0].isFlagSet(ismrmrd.ACQ_FIRST_IN_SLICE) and lines[-1].isFlagSet(ismrmrd.ACQ_LAST_IN_SLICE)
    assert not any(a.isFlagSet(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION) for a in lines)

    stacked = np.stack([a.data for a in lines], axis=1)  # (coils, ky, kx)
    np.testing.assert_allclose(stacked, report.frames[0].kspace, rtol=1e-6, atol=1e-6)
    # k = 0 at index N//2: the centre holds the largest value
    energy = np.sum(np.abs(stacked) ** 2, axis=0)
    assert np.unravel_index(np.argmax(energy), energy.shape) == (32, 32)


def test_points_no_sample_reached_are_zero(radial_acs_replay):
    _, report = radial_acs_replay
    frame = report.frames[0]
    assert np.all(frame.kspace[:, frame.hits == 0] == 0)
    assert np.all(frame.hits[32, 16:48] > 0), "the central disc is sampled"
    assert frame.hits[0, 0] == 0, "the corners lie outside the radial disc"


@pytest.fixture(scope="module")
def radial_multi_replay(tmp_path_factory):
    """radial_multi.h5 (2 slices x 2 repetitions) replayed once with FAST: (output file, report),
    looked at by several tests."""
    output = tmp_path_factory.mktemp("replay_output") / "multi.h5"
    return output, replay_file(DATA / "radial_multi.h5", output, load_config("basic", overrides=FAST))


@pytest.fixture(scope="module")
def radial_multi_output(radial_multi_replay):
    """The output of ``radial_multi_replay`` as ismrmrd reads it: (header, acquisitions), read once
    (ismrmrd reads an acquisition in about 5 ms)."""
    return read_output(radial_multi_replay[0])


def test_several_slices_and_repetitions_train_once_per_slice(radial_multi_replay, radial_multi_output):
    output, report = radial_multi_replay
    keys = [f.frame_key for f in report.frames]
    slices = sorted({k[0] for k in keys})
    repetitions = sorted({k[4] for k in keys})
    assert (slices, repetitions, len(keys)) == ([0, 1], [0, 1], 4)
    paths = [f.report.path for f in report.frames]
    assert paths.count("trained") == 2, f"one training per slice, got {paths}"
    assert paths.count("cached kernels") == 2

    header, acquisitions = radial_multi_output
    lines = [
        a for a in acquisitions
        if not (a.isFlagSet(ismrmrd.ACQ_IS_NOISE_MEASUREMENT) or a.isFlagSet(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION))
    ]
    assert len(lines) == 4 * 64
    assert {(a.idx.slice, a.idx.repetition) for a in lines} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    limits = header.encoding[0].encodingLimits
    assert (limits.slice.minimum, limits.slice.maximum) == (0, 1)
    assert (limits.repetition.minimum, limits.repetition.maximum) == (0, 1)
    # slices differ in position: geometry is copied from the input readouts
    z = {a.idx.slice: a.position[2] for a in lines}
    assert z[0] != z[1]


def test_each_frame_carries_its_weights_as_an_image_series(radial_multi_replay, radial_multi_output):
    """``igrog_weights``: per frame, the samples averaged into each grid point, with its counters
    and slice geometry, read back from the file."""
    output, report = radial_multi_replay
    dataset = ismrmrd.Dataset(str(output), "dataset", create_if_needed=False)
    try:
        images = [dataset.read_image("igrog_weights", i) for i in range(dataset.number_of_images("igrog_weights"))]
    finally:
        dataset.close()
    _, acquisitions = radial_multi_output
    assert len(images) == len(report.frames) == 4
    for number, (image, frame) in enumerate(zip(images, report.frames), start=1):
        head = image.getHead()
        counters = dict(zip(("slice", "contrast", "phase", "set", "repetition", "average"), frame.frame_key))
        assert (head.slice, head.repetition, head.image_index) == (counters["slice"], counters["repetition"], number)
        assert image.data.shape == (1, 1, 64, 64) and image.data.dtype == np.float32
        np.testing.assert_array_equal(image.data[0, 0], frame.hits)
        line = next(a for a in acquisitions if a.idx.slice == head.slice and a.idx.repetition == head.repetition)
        assert tuple(head.position) == tuple(line.position)  # the frame's slice geometry
        hits = image.data[0, 0]
        assert hits[32, 32] >= 32 and hits[32, 32] == hits.max()  # all 32 spokes cross the centre
        assert image.meta["SeriesName"] == "igrog_weights"


@pytest.mark.parametrize("bad", ["training.optimizer=lbfgs", "gridding.num_sources=0", "nosuch.field=1"])
def test_bad_configuration_is_named(bad):
    from igrog_gadget.errors import ConfigError

    with pytest.raises(ConfigError, match=bad.split("=")[0].split(".")[-1]):
        load_config("basic", overrides=[bad])


def _placed_calibration(acquisitions, ny: int, nx: int) -> tuple[np.ndarray, tuple[slice, slice]]:
    """The calibration lines of an output placed on its grid as a downstream reader places them
    (line ``kspace_encode_step_1``, sample ``s`` at column ``s - center_sample + nx // 2``), and
    the rectangle they fill."""
    lines = [a for a in acquisitions if a.isFlagSet(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)]
    kspace = np.zeros((lines[0].active_channels, ny, nx), np.complex64)
    rows, columns = [], []
    for line in lines:
        x0 = nx // 2 - line.center_sample
        kspace[:, line.idx.kspace_encode_step_1, x0 : x0 + line.number_of_samples] = line.data
        rows.append(line.idx.kspace_encode_step_1)
        columns = [x0, x0 + line.number_of_samples]
    return kspace, (slice(min(rows), max(rows) + 1), slice(*columns))


def test_the_calibration_lines_let_a_downstream_reader_calibrate(tmp_path):
    """An 8-interleaf spiral: the passed-on calibration block, read back from the file and placed
    as a Cartesian reader places lines, gives ESPIRiT maps aligned with the true coils (and BART's
    ecalib runs on it when BART is installed); it equals the frame's own calibration block."""
    import shutil
    import subprocess

    import torch

    from igrog_gadget.recon.coil_maps import espirit_maps

    output = tmp_path / "spiral.h5"
    report = replay_file(DATA / "spiral_acs.h5", output, load_config("basic", overrides=FAST))
    _, acquisitions = read_output(output)
    kspace, (rows, columns) = _placed_calibration(acquisitions, 64, 64)
    block = report.frames[0].calibration
    np.testing.assert_array_equal(kspace[:, rows, columns], block.kspace)
    assert (rows.start - 32, columns.start - 32) == (block.ky0, block.kx0)
    truth = np.load(DATA / "spiral_acs.truth.npz")
    maps = espirit_maps(torch.as_tensor(kspace[:, rows, columns]), (64, 64)).numpy()
    unit = truth["sensitivity_maps"] / np.linalg.norm(truth["sensitivity_maps"], axis=0, keepdims=True)
    alignment = np.abs(np.sum(np.conj(maps) * unit, axis=0))
    assert alignment[truth["object_mask"] > 0].min() > 0.99
    if shutil.which("bart"):
        (tmp_path / "calib.hdr").write_text(f"# Dimensions\n64 64 1 {kspace.shape[0]}\n")
        kspace.tofile(tmp_path / "calib.cfl")
        size = str(rows.stop - rows.start)
        subprocess.run(["bart", "ecalib", "-m1", "-r", size, str(tmp_path / "calib"), str(tmp_path / "maps")], check=True, capture_output=True)


def test_calibration_and_weights_can_be_left_out(tmp_path):
    output = tmp_path / "bare.h5"
    replay_file(DATA / "radial_acs.h5", output, load_config("basic", overrides=[*FAST, "output.calibration=false", "output.weights=false"]))
    _, acquisitions = read_output(output)
    assert not any(a.isFlagSet(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION) for a in acquisitions)
    assert len(acquisitions) == 1 + 64
    dataset = ismrmrd.Dataset(str(output), "dataset", create_if_needed=False)
    try:
        assert "igrog_weights" not in dataset.list()
    finally:
        dataset.close()


def test_replay_writes_the_frames_images(tmp_path):
    """``--images``: one igrog_image per frame, SENSE for the undersampled radial_multi frames."""
    output = tmp_path / "multi.h5"
    report = replay_file(DATA / "radial_multi.h5", output, load_config("basic", overrides=FAST), with_images=True)
    dataset = ismrmrd.Dataset(str(output), "dataset", create_if_needed=False)
    try:
        images = [dataset.read_image("igrog_image", i) for i in range(dataset.number_of_images("igrog_image"))]
    finally:
        dataset.close()
    assert len(images) == len(report.frames) == 4
    for image, frame in zip(images, report.frames):
        assert image.meta["ImageProcessingHistory"] == ["IGROG", "SENSE"]
        assert (image.slice, image.repetition) == (frame.template.idx["slice"], frame.template.idx["repetition"])
        assert image.data.shape == (1, 1, 64, 64)
