"""ISMRMRD files written by the simulator read back with ismrmrd.Dataset."""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import ismrmrd
import numpy as np
import pytest

from igrog_gadget.simulate import (
    SimulationSpec,
    add_simulate_arguments,
    cartesian_kspace,
    coil_sensitivities,
    ifft2c,
    load_truth,
    phantom,
    radial_golden_angle,
    run_simulate,
    simulate_to_file,
    spiral,
    truth_path_for,
)

SMALL = dict(matrix=32, coils=4, spokes=24, acs=8, slices=2, repetitions=2, contrasts=2, noise_scans=2, seed=7)


def _read(path: Path) -> tuple[object, list[ismrmrd.Acquisition]]:
    ds = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    try:
        header = ismrmrd.xsd.CreateFromDocument(ds.read_xml_header())
        acqs = [ds.read_acquisition(i) for i in range(ds.number_of_acquisitions())]
    finally:
        ds.close()
    return header, acqs


def _flag_count(acqs: list[ismrmrd.Acquisition], flag: int) -> int:
    return sum(a.is_flag_set(flag) for a in acqs)


_READ_CACHE: dict[Path, tuple[object, list[ismrmrd.Acquisition]]] = {}


@pytest.fixture(scope="module")
def small_radial(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationSpec]:
    spec = SimulationSpec(**SMALL)
    path = tmp_path_factory.mktemp("sim") / "small.h5"
    truth = simulate_to_file(path, spec)
    assert truth == path.with_name("small.truth.npz") and truth.exists()
    _READ_CACHE[path] = _read(path)
    return path, spec


def _cached(path: Path) -> tuple[object, list[ismrmrd.Acquisition]]:
    return _READ_CACHE[path] if path in _READ_CACHE else _read(path)


def test_header_fields(small_radial: tuple[Path, SimulationSpec]) -> None:
    path, spec = small_radial
    header, _ = _cached(path)
    enc = header.encoding[0]
    assert (enc.encodedSpace.matrixSize.x, enc.encodedSpace.matrixSize.y, enc.encodedSpace.matrixSize.z) == (32, 32, 1)
    assert (enc.reconSpace.matrixSize.x, enc.reconSpace.matrixSize.y) == (32, 32)
    assert enc.encodedSpace.fieldOfView_mm.x == 256.0 and enc.encodedSpace.fieldOfView_mm.z == 5.0
    assert enc.trajectory.value == "radial"
    lim = enc.encodingLimits
    assert (lim.kspace_encoding_step_1.minimum, lim.kspace_encoding_step_1.maximum) == (0, 23)
    assert lim.slice.maximum == 1 and lim.repetition.maximum == 1 and lim.contrast.maximum == 1
    assert lim.kspace_encoding_step_0.center == 32
    assert header.acquisitionSystemInformation.receiverChannels == 4
    assert header.experimentalConditions.H1resonanceFrequency_Hz == 63_870_000
    strings = {p.name: p.value for p in header.userParameters.userParameterString}
    assert strings["trajectory"] == "radial" and strings["trajectory_units"] == "grid"
    longs = {p.name: p.value for p in header.userParameters.userParameterLong}
    assert longs["acs_lines"] == 8 and longs["num_spokes"] == 24 and longs["readout_oversampling"] == 2


def test_acquisition_counts_flags_and_counters(small_radial: tuple[Path, SimulationSpec]) -> None:
    path, spec = small_radial
    _, acqs = _cached(path)
    N = spec.matrix
    noise = [a for a in acqs if a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)]
    acs = [a for a in acqs if a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)]
    imaging = [a for a in acqs if a.trajectory_dimensions == 2]
    assert len(noise) == 2 and all(a is b for a, b in zip(noise, acqs[:2]))
    assert len(acs) == 2 * 2 * 8  # slices x contrasts x lines, repetition 0 only
    assert len(imaging) == 2 * 2 * 2 * 24
    assert len(acqs) == len(noise) + len(acs) + len(imaging)
    assert [a.scan_counter for a in acqs] == list(range(len(acqs)))
    stamps = [a.acquisition_time_stamp for a in acqs]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    for a in acqs:
        assert a.version == 1 and a.active_channels == 4 and a.available_channels == 4
        assert tuple(a.read_dir) == (1, 0, 0) and tuple(a.phase_dir) == (0, 1, 0) and tuple(a.slice_dir) == (0, 0, 1)
    # ACS lines: Cartesian, right ky, first in each (slice, contrast) block before its imaging readouts
    assert all(a.idx.repetition == 0 and a.trajectory_dimensions == 0 for a in acs)
    assert all(a.number_of_samples == 2 * N and a.center_sample == N for a in acs)
    assert sorted({a.idx.kspace_encode_step_1 for a in acs}) == list(range(N // 2 - 4, N // 2 + 4))
    per_block = Counter((a.idx.slice, a.idx.contrast, a.idx.repetition) for a in imaging)
    assert set(per_block.values()) == {24} and len(per_block) == 8
    assert _flag_count(acqs, ismrmrd.ACQ_FIRST_IN_SLICE) == 8
    assert _flag_count(acqs, ismrmrd.ACQ_LAST_IN_SLICE) == 8
    assert _flag_count(acqs, ismrmrd.ACQ_LAST_IN_REPETITION) == 2
    assert _flag_count(acqs, ismrmrd.ACQ_LAST_IN_MEASUREMENT) == 1 and acqs[-1].is_flag_set(
        ismrmrd.ACQ_LAST_IN_MEASUREMENT
    )
    for i, a in enumerate(acqs):
        if a.is_flag_set(ismrmrd.ACQ_FIRST_IN_SLICE):
            assert a.idx.kspace_encode_step_1 == 0 and a.trajectory_dimensions == 2
            if a.idx.repetition == 0:
                assert acqs[i - 1].is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)
        if a.is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE):
            assert a.idx.kspace_encode_step_1 == 23
    # slice positions along slice_dir
    z = {a.idx.slice: a.position[2] for a in imaging}
    assert z[1] - z[0] == pytest.approx(5.0)


def test_trajectory_and_samples(small_radial: tuple[Path, SimulationSpec]) -> None:
    path, spec = small_radial
    _, acqs = _cached(path)
    traj = radial_golden_angle(24, 64, 32)
    imaging = [a for a in acqs if a.trajectory_dimensions == 2]
    for a in imaging[:24]:
        assert a.number_of_samples == 64 and a.center_sample == 32 and a.sample_time_us == pytest.approx(2.0)
        np.testing.assert_allclose(a.traj, traj[a.idx.kspace_encode_step_1], atol=1e-5)


def test_truth_file_and_noise(small_radial: tuple[Path, SimulationSpec]) -> None:
    path, spec = small_radial
    truth = load_truth(path)
    assert truth["spec"] == spec
    assert truth["kspace"].shape == (2, 2, 4, 32, 32) and truth["kspace"].dtype == np.complex64
    assert truth["image"].shape == (2, 2, 32, 32) and truth["sensitivity_maps"].shape == (4, 32, 32)
    assert "b0map_hz" not in truth
    # kspace is the Cartesian truth of the coil images; image the coil-free object
    x = phantom(64, 1, 1)
    np.testing.assert_allclose(
        truth["kspace"][1, 1], cartesian_kspace(coil_sensitivities(4, 64) * x, 32), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(truth["image"][1, 1], ifft2c(cartesian_kspace(x, 32)), atol=1e-6)
    # noise std as specified: mean |image| over the object / snr
    expected = np.abs(truth["image"][0, 0][truth["object_mask"]]).mean() / 50.0
    assert truth["noise_std"] == pytest.approx(expected, rel=1e-6)
    _, acqs = _cached(path)
    noise = np.concatenate([a.data for a in acqs if a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)], axis=1)
    assert np.sqrt(np.mean(np.abs(noise) ** 2)) == pytest.approx(expected, rel=0.1)
    resid = []
    for a in acqs:
        if a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION):
            row = truth["kspace"][a.idx.slice, a.idx.contrast, :, a.idx.kspace_encode_step_1]
            resid.append(a.data[:, ::2] - row)
    assert np.sqrt(np.mean(np.abs(np.concatenate(resid, axis=1)) ** 2)) == pytest.approx(expected, rel=0.1)
    # repetitions: same trajectory, fresh noise
    rep = {r: a for a in acqs if a.trajectory_dimensions == 2 and a.idx.kspace_encode_step_1 == 3 and a.idx.slice == 0
           and a.idx.contrast == 0 for r in [a.idx.repetition]}
    np.testing.assert_array_equal(rep[0].traj, rep[1].traj)
    diff = rep[0].data - rep[1].data
    assert np.sqrt(np.mean(np.abs(diff) ** 2)) == pytest.approx(np.sqrt(2) * expected, rel=0.25)


def test_noiseless_normalized_units(tmp_path: Path) -> None:
    spec = SimulationSpec(matrix=32, coils=2, spokes=8, acs=4, snr=None, trajectory_units="normalized", noise_scans=0)
    path = tmp_path / "clean.h5"
    simulate_to_file(path, spec)
    header, acqs = _read(path)
    strings = {p.name: p.value for p in header.userParameters.userParameterString}
    assert strings["trajectory_units"] == "normalized"
    truth = load_truth(path)
    assert truth["noise_std"] == 0.0
    assert not any(a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT) for a in acqs)
    imaging = [a for a in acqs if a.trajectory_dimensions == 2]
    traj = radial_golden_angle(8, 64, 32)
    for a in imaging:
        np.testing.assert_allclose(a.traj, traj[a.idx.kspace_encode_step_1] / 32, atol=1e-6)
        assert a.traj.min() >= -0.5 and a.traj.max() < 0.5
        # the k = 0 sample equals the truth at the grid centre
        np.testing.assert_allclose(a.data[:, a.center_sample], truth["kspace"][0, 0, :, 16, 16], rtol=1e-5)
    for a in acqs:
        if a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION):
            np.testing.assert_allclose(
                a.data[:, ::2], truth["kspace"][0, 0, :, a.idx.kspace_encode_step_1], rtol=1e-4, atol=1e-6
            )


def test_spiral_b0_with_image_series(tmp_path: Path) -> None:
    spec = SimulationSpec(
        trajectory="spiral", matrix=32, coils=3, interleaves=4, readout_ms=5.0, acs=None, b0_max_hz=30.0,
        write_b0map=True, write_coil_images=True, write_sensitivity_maps=True, slices=2, snr=None,
    )
    path = tmp_path / "spiral.h5"
    simulate_to_file(path, spec)
    header, acqs = _read(path)
    assert header.encoding[0].trajectory.value == "spiral"
    traj, dwell = spiral(4, 32, 5.0)
    imaging = [a for a in acqs if a.trajectory_dimensions == 2]
    assert len(imaging) == 8 and not any(a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION) for a in acqs)
    for a in imaging:
        assert a.center_sample == 0 and a.sample_time_us == pytest.approx(dwell, abs=1e-4)
        np.testing.assert_allclose(a.traj, traj[a.idx.kspace_encode_step_1], atol=1e-4)
    truth = load_truth(path)
    for a in imaging:
        # sample 0 is k = 0 at t = 0: no off-resonance phase yet, equals the field-free truth
        np.testing.assert_allclose(a.data[:, 0], truth["kspace"][a.idx.slice, 0, :, 16, 16], rtol=1e-5)
    assert truth["b0map_hz"].shape == (32, 32) and np.abs(truth["b0map_hz"]).max() == pytest.approx(30, rel=0.05)
    ds = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    try:
        assert {"b0map", "coil_images", "sensitivity_maps"} <= set(ds.list())
        assert ds.number_of_images("b0map") == 2
        b0 = ds.read_image("b0map", 1)
        assert b0.data.dtype == np.float32 and b0.data.shape == (1, 1, 32, 32)
        assert b0.image_type == ismrmrd.IMTYPE_REAL and b0.slice == 1 and b0.matrix_size == (32, 32, 1)
        np.testing.assert_allclose(b0.data[0, 0], truth["b0map_hz"])
        coil = ds.read_image("coil_images", 0)
        assert coil.data.dtype == np.complex64 and coil.data.shape == (3, 1, 32, 32) and coil.channels == 3
        np.testing.assert_allclose(coil.data[:, 0], ifft2c(truth["kspace"][0, 0]), atol=1e-5)
        maps = ds.read_image("sensitivity_maps", 0)
        np.testing.assert_allclose(maps.data[:, 0], truth["sensitivity_maps"])
        assert tuple(maps.field_of_view) == (256.0, 256.0, 5.0)
        series = {ds.read_image(s, 0).image_series_index for s in ("b0map", "coil_images", "sensitivity_maps")}
        assert series == {1, 2, 3}
    finally:
        ds.close()


def test_spec_validation_and_json() -> None:
    spec = SimulationSpec(matrix=64)
    assert spec.samples_per_spoke == 128
    assert SimulationSpec.from_json(spec.to_json()) == spec
    assert json.loads(spec.to_json())["acs"] == 32
    bad = [
        (dict(trajectory="rosette"), "trajectory"),
        (dict(matrix=63), "matrix"),
        (dict(coils=0), "coils"),
        (dict(acs=0), "acs"),
        (dict(acs=200, matrix=64), "acs"),
        (dict(snr=-1.0), "snr"),
        (dict(trajectory_units="cm"), "trajectory_units"),
        (dict(b0_max_hz=-5.0), "b0_max_hz"),
        (dict(slices=0), "slices"),
        (dict(noise_correlation=1.0), "noise_correlation"),
    ]
    for kwargs, field in bad:
        with pytest.raises(ValueError, match=field):
            SimulationSpec(**kwargs)


def test_overwrite_refused_and_cli(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_simulate_arguments(parser)
    out = tmp_path / "cli.h5"
    argv = [str(out), "--matrix", "16", "--coils", "2", "--spokes", "4", "--acs", "none", "--snr", "20"]
    args = parser.parse_args(argv)
    assert args.acs is None and args.snr == 20.0 and args.trajectory_units == "grid"
    assert run_simulate(args) == 0
    assert out.exists() and truth_path_for(out).exists()
    mtime = out.stat().st_mtime_ns
    assert run_simulate(args) == 1 and out.stat().st_mtime_ns == mtime
    with pytest.raises(FileExistsError):
        simulate_to_file(out, SimulationSpec(matrix=16, acs=8))
    args = parser.parse_args(argv + ["--force", "--units", "normalized", "--slices", "2"])
    assert run_simulate(args) == 0
    assert load_truth(out)["spec"].slices == 2
    assert run_simulate(parser.parse_args([str(tmp_path / "bad.h5"), "--matrix", "15"])) == 2
    assert not (tmp_path / "bad.h5").exists()


def test_default_spec_is_fast(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    simulate_to_file(tmp_path / "default.h5", SimulationSpec())
    assert time.perf_counter() - t0 < 20.0
    ds = ismrmrd.Dataset(str(tmp_path / "default.h5"), "dataset", create_if_needed=False)
    try:
        assert ds.number_of_acquisitions() == 1 + 32 + 200
    finally:
        ds.close()
