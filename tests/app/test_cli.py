"""The igrog command: replay, simulate, PNG preview, and every bad input as a clear error."""

from __future__ import annotations

import logging

import h5py
import numpy as np
from app_helpers import FAST, drop_coils, strip_trajectory

from igrog_gadget.cli import main

FAST_ARGS = [arg for override in FAST for arg in ("--set", override)]
#: A token training (the test asserts only that the sample is found, gridded and written).
TINY_ARGS = [*FAST_ARGS, "--set", "training.max_steps=10", "--set", "calibration.num_training_pairs=2000"]


def replay(args, caplog, settings=FAST_ARGS):
    caplog.clear()
    with caplog.at_level(logging.INFO):
        code = main(["-q", "replay", *map(str, args), *settings])
    return code, caplog.text


def assert_rejected(code, text, output, *phrases):
    assert code == 2, text
    for phrase in phrases:
        assert phrase in text, f"{phrase!r} not in: {text}"
    assert not output.exists(), "no output file on error"
    assert not list(output.parent.glob("*.partial*")), "no partial file left behind"


def test_replay_writes_output_and_png(tmp_path, data_file, caplog):
    output, png = tmp_path / "out.h5", tmp_path / "rss.png"
    code, text = replay([data_file("spiral_acs"), output, "--png", png], caplog)
    assert code == 0, text
    assert output.exists() and png.exists()
    assert png.stat().st_mode & 0o777 == output.stat().st_mode & 0o777  # the usual permissions, not a temp file's 0600
    from PIL import Image

    image = np.asarray(Image.open(png))
    assert image.shape == (64, 64)
    assert image[20:44, 20:44].mean() > 3 * image[:4, :4].mean(), "object in the middle, background dark"


def test_replay_without_input_grids_the_embedded_sample(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    code, text = replay([], caplog, TINY_ARGS)
    assert code == 0, text
    assert (tmp_path / "sample_radial_cartesian.h5").exists()


def test_simulate_command_writes_file_and_truth(tmp_path):
    output = tmp_path / "sim.h5"
    code = main(["simulate", str(output), "--matrix", "32", "--coils", "2", "--spokes", "20", "--acs", "none"])
    assert code == 0
    assert output.exists() and (tmp_path / "sim.truth.npz").exists()
    assert main(["simulate", str(output), "--matrix", "32"]) != 0, "refuses to overwrite"


def test_not_hdf5(tmp_path, caplog):
    source, output = tmp_path / "notes.h5", tmp_path / "out.h5"
    source.write_text("this is not HDF5")
    assert_rejected(*replay([source, output], caplog), output, "not an HDF5 file", str(source))


def test_missing_input(tmp_path, caplog):
    output = tmp_path / "out.h5"
    assert_rejected(*replay([tmp_path / "absent.h5", output], caplog), output, "absent.h5")


def test_no_dataset_group(tmp_path, caplog):
    source, output = tmp_path / "other.h5", tmp_path / "out.h5"
    with h5py.File(source, "w") as handle:
        handle.create_group("measurement")
    assert_rejected(*replay([source, output], caplog), output, "dataset", "measurement")


def test_acquisitions_without_trajectory(tmp_path, data_file, rewrite, caplog):
    source = rewrite(data_file("radial_selfcal"), lambda i, acq: strip_trajectory(acq) if i == 10 else acq)
    output = tmp_path / "out.h5"
    assert_rejected(*replay([source, output], caplog), output, "acquisition 10", "no trajectory")


def test_no_calibration_and_no_dense_centre(tmp_path, caplog):
    from igrog_gadget.simulate import SimulationSpec, simulate_to_file

    source, output = tmp_path / "sparse.h5", tmp_path / "out.h5"
    simulate_to_file(source, SimulationSpec(matrix=64, coils=4, spokes=12, samples_per_spoke=128, acs=None))
    assert_rejected(*replay([source, output], caplog), output, "no calibration data", "not densely sampled")


def test_acquisition_of_another_coil_count_is_passed_through(tmp_path, data_file, rewrite, caplog):
    """One 3-coil acquisition among the 4-coil array data (a body-coil reference, say)."""
    source = rewrite(data_file("radial_acs"), lambda i, acq: drop_coils(acq, 3) if i == 40 else acq)
    output = tmp_path / "out.h5"
    code, text = replay([source, output], caplog)
    assert code == 0, text
    assert "acquisition 40 has 3 coils, the receive array 4" in text and "passed through" in text
    with h5py.File(output, "r") as h5:
        channels = {int(head["active_channels"]) for head in h5["dataset/data"]["head"]}
    assert channels == {3, 4}  # the 4-coil Cartesian frame and the untouched 3-coil acquisition


def test_nan_samples(tmp_path, data_file, rewrite, caplog):
    def poison(index, acq):
        if index == 50:
            acq.data[1, 7] = np.nan
        return acq

    source = rewrite(data_file("radial_acs"), poison)
    output = tmp_path / "out.h5"
    assert_rejected(*replay([source, output], caplog), output, "acquisition 50", "data")


def test_output_equal_to_input_is_refused(tmp_path, data_file, caplog):
    from app_helpers import copy_to

    source = copy_to(tmp_path, data_file("radial_acs"))
    before = source.read_bytes()
    code, text = replay([source, source], caplog)
    assert code == 2 and "is the input file" in text
    assert source.read_bytes() == before


def test_unknown_variant_and_bad_override(tmp_path, data_file, caplog):
    output = tmp_path / "out.h5"
    assert_rejected(*replay([data_file("radial_acs"), output, "--variant", "nosuch"], caplog), output, "nosuch")
    assert_rejected(
        *replay([data_file("radial_acs"), output, "--set", "training.epochs=many"], caplog), output, "training.epochs"
    )
