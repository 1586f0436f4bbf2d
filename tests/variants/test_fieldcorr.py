"""The fieldcorr variant: accuracy against the field-free truth, B0 inputs, the correction, bad input."""

from __future__ import annotations

import dataclasses
import logging

import h5py
import ismrmrd
import numpy as np
import pytest
from variants_helpers import ACCURATE, COMPARE, FAST, copy_with, error, grid, recorded, truth

from igrog_gadget.core.frame import FrameInputs, FrameTrajectory
from igrog_gadget.app.fieldcorr.correction import correct_field
from igrog_gadget.app.fieldcorr.fieldmap import field_map, sample_times_s
from igrog_gadget.numerics.segmentation import frequency_histogram, segments_for_tolerance, time_segmentation
from igrog_gadget.planning.gridder import FrameGridder
from igrog_gadget.cli import main
from igrog_gadget.config import FieldCorrectionConfig, load_config
from igrog_gadget.errors import ConfigError, InputDataError
from igrog_gadget.numerics.fft import centred_fft2


@pytest.fixture(scope="module")
def spiral_b0_results():
    """basic, fieldcorr hybrid (default) and kernel mode on spiral_b0.h5 (B0 up to 50 Hz, 10 ms)."""
    path = recorded("spiral_b0")
    basic, case = grid("basic", path, ACCURATE)
    hybrid, _ = grid("fieldcorr", path, ACCURATE)
    kernel, _ = grid("fieldcorr", path, ACCURATE + ["fieldcorr.mode=kernel"])
    return case, basic, hybrid, kernel


def test_default_mode_halves_the_error_of_basic(spiral_b0_results):
    case, basic, hybrid, _ = spiral_b0_results
    assert hybrid.report.field_correction.mode == "hybrid" and hybrid.report.field_correction.b0map == "series:b0map"
    assert error(hybrid, case) <= 0.5 * error(basic, case), (error(hybrid, case), error(basic, case))


def test_kernel_mode_beats_basic_but_not_hybrid(spiral_b0_results):
    case, basic, hybrid, kernel = spiral_b0_results
    assert kernel.report.field_correction.mode == "kernel"
    assert error(hybrid, case) < error(kernel, case) < 0.8 * error(basic, case)


def test_no_worse_than_basic_without_off_resonance(tmp_path):
    zeros = tmp_path / "zero_b0.npy"
    np.save(zeros, np.zeros((64, 64), np.float32))
    path = recorded("spiral_acs")
    fieldcorr, case = grid("fieldcorr", path, COMPARE + [f"fieldcorr.b0map_file={zeros}"])
    assert fieldcorr.report.field_correction.b0map == f"file:{zeros}"
    # with no field, the kernels of its calibration images (made from the data) and nothing else
    image_based, _ = grid("image_based", path, COMPARE + ["image_calibration.source=data", "calibration.fill_centre=false"])
    assert error(fieldcorr, case) <= 1.001 * error(image_based, case), (error(fieldcorr, case), error(image_based, case))
    # basic's kernels come from its joint k-space fit instead (fieldcorr keeps the gridded centre:
    # a fit of the samples holds their off-resonance): 4.6 % lower error here
    basic, _ = grid("basic", path, COMPARE + ["calibration.fill_centre=false"])
    assert error(fieldcorr, case) <= 1.06 * error(basic, case), (error(fieldcorr, case), error(basic, case))


def frame(images: dict | None = None, matrix: int = 64, dwell_us: float = 5.0, readouts: int = 2, samples: int = 16) -> FrameInputs:
    times = np.tile(np.arange(samples, dtype=np.float32) * dwell_us, (readouts, 1))
    return FrameInputs(
        samples=np.zeros((4, readouts, samples), np.complex64),
        trajectory=FrameTrajectory(np.zeros((readouts, samples, 2), np.float32), (matrix, matrix), sample_times_us=times),
        images=images or {},
    )


def test_b0_map_from_series_and_every_file_format(tmp_path):
    b0 = truth("spiral_b0")["b0map_hz"]
    np.save(tmp_path / "b0.npy", b0)
    with h5py.File(tmp_path / "plain.h5", "w") as handle:
        handle["b0map"] = b0
    files = [tmp_path / "b0.npy", recorded("spiral_b0").with_name("spiral_b0.truth.npz"), tmp_path / "plain.h5", recorded("spiral_b0")]
    for file in files:
        found, source = field_map(frame(), FieldCorrectionConfig(b0map_file=str(file)))
        assert source == f"file:{file}"
        np.testing.assert_allclose(found, b0, atol=1e-4)
    # The series in the input wins over the file.
    found, source = field_map(frame({"b0map": b0[None] + 1}), FieldCorrectionConfig(b0map_file=str(tmp_path / "b0.npy")))
    assert source == "series:b0map"
    np.testing.assert_allclose(found, b0 + 1, atol=1e-4)


@pytest.mark.parametrize(
    "b0map, phrases",
    [
        (None, ["needs a B0 map", "b0map_file is empty"]),
        (np.zeros((1, 32, 32), np.float32), ["'b0map'", "32 x 32", "recon grid is 64 x 64"]),
        (np.zeros((2, 64, 64), np.float32), ["'b0map'", "one real channel"]),
        (np.full((1, 64, 64), np.inf, np.float32), ["'b0map'", "non-finite"]),
        (np.full((1, 64, 64), 1j, np.complex64), ["'b0map'", "complex"]),
    ],
)
def test_bad_b0_maps_are_clear_errors(b0map, phrases):
    images = {} if b0map is None else {"b0map": b0map}
    with pytest.raises(InputDataError) as caught:
        field_map(frame(images), FieldCorrectionConfig())
    for phrase in phrases:
        assert phrase in str(caught.value), str(caught.value)


def test_bad_b0_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        field_map(frame(), FieldCorrectionConfig(b0map_file=str(tmp_path / "nope.npy")))
    np.savez(tmp_path / "other.npz", x=np.ones(3))
    with pytest.raises(ConfigError, match="b0map or b0map_hz"):
        field_map(frame(), FieldCorrectionConfig(b0map_file=str(tmp_path / "other.npz")))


def test_missing_sample_times_are_an_error():
    times = sample_times_s(frame())
    assert times.shape == (2, 16) and times[0, 3] == pytest.approx(15e-6)
    with pytest.raises(InputDataError, match="sample_time_us is 0 .* 2 of 2 readouts"):
        sample_times_s(frame(dwell_us=0.0))


def replay(args, caplog):
    caplog.clear()
    with caplog.at_level(logging.INFO):
        code = main(["-q", "replay", *map(str, args), *[a for o in FAST for a in ("--set", o)]])
    return code, caplog.text


def zero_dwell(index: int, acq: ismrmrd.Acquisition) -> ismrmrd.Acquisition:
    if acq.traj.size:  # imaging readouts
        acq.sample_time_us = 0.0
    return acq


@pytest.mark.parametrize(
    "change, drop, images, phrases",
    [
        (None, ("b0map",), None, ["needs a B0 map"]),
        (zero_dwell, (), None, ["sample_time_us is 0"]),
        (None, ("b0map",), {"b0map": np.full((1, 64, 64), np.nan, np.float32)}, ["'b0map'", "4096 non-finite"]),
        (None, ("b0map",), {"b0map": np.zeros((1, 48, 48), np.float32)}, ["'b0map'", "48 x 48"]),
    ],
    ids=["no map", "no sample times", "NaN map", "wrong matrix"],
)
def test_replay_rejects_bad_input_and_writes_nothing(tmp_path, caplog, change, drop, images, phrases):
    source = copy_with(
        tmp_path, "spiral_b0", images=images, change=change or (lambda i, acq: acq), drop_series=drop, suffix="_bad"
    )
    output = tmp_path / "out.h5"
    code, text = replay([source, output, "--variant", "fieldcorr"], caplog)
    assert code == 2, text
    for phrase in phrases:
        assert phrase in text, text
    assert not output.exists()
    assert not list(tmp_path.glob("out*.partial*"))


def test_replay_with_fieldcorr(tmp_path, caplog):
    output = tmp_path / "good.h5"
    code, text = replay([recorded("spiral_b0"), output, "--variant", "fieldcorr"], caplog)
    assert code == 0, text
    assert output.exists()


def smooth_field(n: int, peak_hz: float) -> np.ndarray:
    y, x = (np.mgrid[:n, :n] - n // 2) / n
    return peak_hz * (np.exp(-((x - 0.1) ** 2 + (y + 0.2) ** 2) / 0.05) + 0.5 * x)


def test_time_segmentation_is_accurate():
    field = smooth_field(32, 60.0)
    times = np.linspace(0, 10e-3, 500)
    freqs, weights = frequency_histogram(field)
    coarse = time_segmentation(times, freqs, weights, 4)
    fine = time_segmentation(times, freqs, weights, 12)
    assert fine.max_error < 1e-3 < coarse.max_error
    exact = np.exp(-2j * np.pi * field.reshape(-1, 1) * times[None, :])
    approx = np.exp(-2j * np.pi * field.reshape(-1, 1) * fine.tau_s[None, :]) @ fine.coefficients
    assert np.abs(approx - exact).max() < 5e-3
    assert segments_for_tolerance(times, freqs, weights, 1e-4).max_error <= 1e-4


def test_cartesian_correction_recovers_the_field_free_kspace():
    """Grid points each acquired at their own time (a spiral-like time map): exact forward model by
    brute force, then conjugate phase (and CG) back to the field-free k-space."""
    n, coils = 32, 2
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:n, :n] - n // 2
    image = np.exp(-(x**2 + y**2) / 60.0) * (1 + 0.3 * rng.standard_normal((n, n)))
    images = np.stack([image * (1 + 0.02 * x), image * np.exp(0.05j * y)]).astype(np.complex64)
    field = smooth_field(n, 50.0)
    times = 8e-3 * ((x**2 + y**2) / (n / 2) ** 2).clip(0, 1)  # seconds, grows with |k|
    phased = np.exp(-2j * np.pi * field[None] * times.reshape(-1, 1, 1))  # (n*n, ny, nx)
    kspace_stack = centred_fft2(images[None] * phased[:, None])  # (n*n, coils, ny, nx)
    points = np.arange(n * n)
    data = kspace_stack[points, :, points // n, points % n].T.reshape(coils, n, n)
    truth_k = centred_fft2(images)
    hits = np.ones((n, n), np.int32)
    freqs, weights = frequency_histogram(field)
    segmentation = time_segmentation(times.reshape(-1), freqs, weights, 10)
    segment_weights = segmentation.coefficients.reshape(-1, n, n)

    def nrmse(k):
        return np.linalg.norm(k - truth_k) / np.linalg.norm(truth_k)

    uncorrected = nrmse(data)
    conjugate = nrmse(correct_field(data, hits, field, segmentation.tau_s, segment_weights, 0).numpy())
    refined = nrmse(correct_field(data, hits, field, segmentation.tau_s, segment_weights, 8).numpy())
    assert uncorrected > 0.2
    assert conjugate < 0.3 * uncorrected, (conjugate, uncorrected)
    assert refined < conjugate, (refined, conjugate)
    # No field: the correction is the identity.
    zero = np.zeros_like(field)
    identity = correct_field(data, hits, zero, segmentation.tau_s, segment_weights, 0).numpy()
    np.testing.assert_allclose(identity, data, atol=1e-4 * np.abs(data).max())


def test_kernel_mode_reuses_kernels_only_for_the_same_sample_times():
    # one epoch: what is checked is the path of each frame and equal bits, not the accuracy
    config = load_config("fieldcorr", overrides=FAST + ["fieldcorr.mode=kernel", "training.epochs=1"])
    from benchmarks.evaluation import load_case

    case = load_case("spiral_b0", recorded("spiral_b0"), config)
    gridder = FrameGridder(config)
    first = gridder.grid(case.frame)
    again = gridder.grid(case.frame)
    assert again.report.path == "cached kernels"
    np.testing.assert_array_equal(again.kspace, first.kspace)
    slower_times = dataclasses.replace(case.frame.trajectory, sample_times_us=case.frame.sample_times_us * 1.1)
    slower = gridder.grid(dataclasses.replace(case.frame, trajectory=slower_times))
    assert slower.report.path == "reused model" and gridder.trainings == 1
    # A later frame without a map is an error even when kernels are cached (hybrid mode).
    hybrid = FrameGridder(load_config("fieldcorr", overrides=FAST))
    hybrid.grid(case.frame)
    without_map = dataclasses.replace(case.frame, images={k: v for k, v in case.frame.images.items() if k != "b0map"})
    with pytest.raises(InputDataError, match="needs a B0 map"):
        hybrid.grid(without_map)
