"""Hostile and malformed inputs to ``igrog replay``: every one a clear error (issue 9, files and CLI).

Each case runs the real CLI entry point and asserts exit code 2, a message naming the problem, and
that no output (nor a partial file, nor the PNG) is left behind. The files are small simulations
edited with h5py; almost every case must be refused before any training.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from igrog_gadget.cli import main

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--set", "training.max_steps=20", "--set", "calibration.num_training_pairs=2000"]
ACS_FLAG_BIT = 1 << (20 - 1)  # ACQ_IS_PARALLEL_CALIBRATION
NOISE_FLAG_BIT = 1 << (19 - 1)  # ACQ_IS_NOISE_MEASUREMENT


@pytest.fixture(scope="module")
def base_file(tmp_path_factory) -> Path:
    """A small valid radial scan: 32 matrix, 2 coils, 24 spokes, 16 ACS lines, one noise scan."""
    from igrog_gadget.simulate import SimulationSpec, simulate_to_file

    path = tmp_path_factory.mktemp("base") / "scan.h5"
    simulate_to_file(path, SimulationSpec(matrix=32, coils=2, spokes=24, acs=16))
    return path


@pytest.fixture
def scan(base_file, tmp_path) -> Path:
    """A private copy of the base scan, to edit."""
    target = tmp_path / "in" / "scan.h5"
    target.parent.mkdir()
    shutil.copy(base_file, target)
    return target


@pytest.fixture(autouse=True)
def no_training(request, monkeypatch):
    """Fails the test if any training starts: the refusal must come before it (except in the
    tests marked ``trains``, whose bad input shows only after the gridding)."""
    from igrog_engine.trainer import Trainer

    if request.node.get_closest_marker("trains"):
        return

    def refuse(self, *args, **kwargs):
        pytest.fail("training started before the bad input was refused", pytrace=False)

    monkeypatch.setattr(Trainer, "fit", refuse)


def replay(caplog, *args, fast=True) -> tuple[int, str]:
    caplog.clear()
    with caplog.at_level(logging.INFO):
        code = main(["-q", "replay", *map(str, args), *(FAST if fast else [])])
    return code, caplog.text


def assert_refused(result, pattern: str, *absent: Path) -> None:
    code, text = result
    assert code == 2, text
    assert re.search(pattern, text, re.IGNORECASE | re.DOTALL), f"{pattern!r} not in: {text}"
    assert "Traceback" not in text, text
    for path in absent:
        assert not path.exists(), f"{path} left behind"
        if path.parent.is_dir():
            assert not list(path.parent.glob(f"*{path.name}*")), "partial or probe file left behind"


# --- file editing helpers ------------------------------------------------------------------
def edit_xml(path: Path, change) -> None:
    """Replace the XML header by ``change(text)`` (str or bytes)."""
    with h5py.File(path, "r+") as h5:
        text = h5["dataset/xml"][()][0].decode("utf-8")
        new = change(text)
        del h5["dataset/xml"]
        raw = new if isinstance(new, bytes) else new.encode("utf-8")
        h5["dataset"].create_dataset("xml", data=np.array([raw], dtype=object), dtype=h5py.string_dtype(length=None))


def sub_xml(path: Path, old: str, new: str, count: int = 0) -> None:
    def change(text):
        assert old in text, old
        return text.replace(old, new, count) if count else text.replace(old, new)

    edit_xml(path, change)


def set_matrix(path: Path, x="32", y="32", z="1") -> None:
    """encodedSpace (the first <matrixSize>) of the header."""
    def change(text):
        pattern = r"<matrixSize>\s*<x>32</x>\s*<y>32</y>\s*<z>1</z>\s*</matrixSize>"
        new = f"<matrixSize><x>{x}</x><y>{y}</y><z>{z}</z></matrixSize>"
        changed, n = re.subn(pattern, new, text, count=1)
        assert n == 1
        return changed

    edit_xml(path, change)


def edit_records(path: Path, change) -> None:
    """Rewrite /dataset/data with ``change(records) -> records`` (structured array, vlen data)."""
    with h5py.File(path, "r+") as h5:
        data = h5["dataset/data"]
        dtype = data.dtype
        records = change(data[()])
        del h5["dataset/data"]
        h5["dataset"].create_dataset("data", data=records, dtype=dtype, maxshape=(None,), chunks=(64,))


def imaging_rows(records) -> np.ndarray:
    flags = records["head"]["flags"]
    return np.flatnonzero((flags & (ACS_FLAG_BIT | NOISE_FLAG_BIT)) == 0)


def edit_data(path: Path, change) -> None:
    """Replace each acquisition's samples (complex, (coils, samples)) by ``change(index, samples)``."""
    def rows(records):
        for i in range(records.shape[0]):
            head = records["head"][i]
            samples = records["data"][i].view(np.complex64).reshape(head["active_channels"], head["number_of_samples"])
            records["data"][i] = np.ascontiguousarray(change(i, samples), dtype=np.complex64).view(np.float32).ravel()
        return records

    edit_records(path, rows)


# --- the input file itself -----------------------------------------------------------------
def test_missing_input(tmp_path, caplog):
    output = tmp_path / "out.h5"
    assert_refused(replay(caplog, tmp_path / "absent.h5", output), r"absent\.h5.*does not exist", output)


def test_directory_as_input(tmp_path, caplog):
    output = tmp_path / "out.h5"
    (tmp_path / "folder.h5").mkdir()
    assert_refused(replay(caplog, tmp_path / "folder.h5", output), r"folder\.h5.*is not a file", output)


def test_not_hdf5(tmp_path, caplog):
    source, output = tmp_path / "scan.h5", tmp_path / "out.h5"
    source.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    assert_refused(replay(caplog, source, output), r"not an HDF5 file", output)


def test_empty_file(tmp_path, caplog):
    source, output = tmp_path / "scan.h5", tmp_path / "out.h5"
    source.write_bytes(b"")
    assert_refused(replay(caplog, source, output), r"not an HDF5 file", output)


def test_truncated_hdf5_file(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    raw = scan.read_bytes()
    scan.write_bytes(raw[: len(raw) // 2])
    assert_refused(replay(caplog, scan, output), r"scan\.h5.*(cannot be read|truncated|not an HDF5)", output)


def test_no_dataset_group(tmp_path, caplog):
    source, output = tmp_path / "scan.h5", tmp_path / "out.h5"
    with h5py.File(source, "w") as h5:
        h5.create_group("measurement")
    assert_refused(replay(caplog, source, output), r"no group 'dataset'.*measurement", output)


def test_empty_acquisition_dataset(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    edit_records(scan, lambda records: records[:0])
    assert_refused(replay(caplog, scan, output), r"no acquisitions", output)


def test_data_of_the_wrong_type(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    with h5py.File(scan, "r+") as h5:
        del h5["dataset/data"]
        h5["dataset"].create_dataset("data", data=np.arange(100, dtype=np.int32))
    assert_refused(replay(caplog, scan, output), r"acquisition|'data'", output)


def test_huge_declared_row_count(scan, tmp_path, caplog):
    """2e8 rows declared in a file of a few hundred kB: refused before anything is allocated."""
    output = tmp_path / "out.h5"
    with h5py.File(scan, "r+") as h5:
        h5["dataset/data"].resize((200_000_000,))
    assert os.path.getsize(scan) < 10_000_000
    assert_refused(replay(caplog, scan, output), r"200000000 acquisitions", output)


def test_more_rows_declared_than_stored(scan, tmp_path, caplog):
    """A table resized past its data (below the row limit): the unwritten rows are not read as acquisitions."""
    output = tmp_path / "out.h5"
    with h5py.File(scan, "r+") as h5:
        h5["dataset/data"].resize((1000,))
    assert_refused(replay(caplog, scan, output), r"declares 1000 acquisitions, but the file .* stores at most 41", output)


def test_two_dimensional_acquisition_table(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    edit = lambda records: np.stack([records, records], axis=1)  # noqa: E731
    with h5py.File(scan, "r+") as h5:
        records, dtype = h5["dataset/data"][()], h5["dataset/data"].dtype
        del h5["dataset/data"]
        h5["dataset"].create_dataset("data", data=edit(records), dtype=dtype)
    assert_refused(replay(caplog, scan, output), r"dataset 'data' has shape \(41, 2\)", output)


def test_no_imaging_acquisitions(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    edit_records(scan, lambda records: records[np.setdiff1d(np.arange(records.shape[0]), imaging_rows(records))])
    assert_refused(replay(caplog, scan, output), r"no imaging acquisitions", output)


def test_only_noise_scans(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    edit_records(scan, lambda records: records[:1])
    assert_refused(replay(caplog, scan, output), r"no imaging acquisitions", output)


# --- the XML header ------------------------------------------------------------------------
def test_no_xml_header(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    with h5py.File(scan, "r+") as h5:
        del h5["dataset/xml"]
    assert_refused(replay(caplog, scan, output), r"no XML header", output)


def test_xml_not_xml(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    edit_xml(scan, lambda text: "<<<this is not XML" + text[:50])
    assert_refused(replay(caplog, scan, output), r"XML header of .*scan\.h5.* is not well-formed XML", output)


def test_xml_not_an_ismrmrd_header(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    edit_xml(scan, lambda text: "<?xml version='1.0'?><html><body>hello</body></html>")
    assert_refused(replay(caplog, scan, output), r"not a valid ISMRMRD header|html", output)


def test_xml_empty(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    edit_xml(scan, lambda text: "   \n")
    assert_refused(replay(caplog, scan, output), r"XML header is empty", output)


def test_xml_not_utf8(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    edit_xml(scan, lambda text: text.replace("igrogphantom", "x").encode("utf-8").replace(b">x<", b">\xff\xfe<", 1))
    assert_refused(replay(caplog, scan, output), r"not valid UTF-8", output)


def test_xml_truncated(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    edit_xml(scan, lambda text: text[: len(text) // 2])
    assert_refused(replay(caplog, scan, output), r"is not well-formed XML: unclosed token", output)


def test_xml_entity_expansion(scan, tmp_path, caplog):
    """A "billion laughs" DOCTYPE in the header: refused, not expanded into memory."""
    output = tmp_path / "out.h5"
    entities = "".join(f'<!ENTITY e{i} "{("&e" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    bomb = f'<?xml version="1.0"?><!DOCTYPE ismrmrdHeader [<!ENTITY e0 "laugh">{entities}]>'

    def change(text):
        body = text.split("?>", 1)[1].replace("<patientID>igrogphantom</patientID>", "<patientID>&e9;</patientID>")
        return bomb + body

    edit_xml(scan, change)
    assert_refused(replay(caplog, scan, output), r"XML header .*(entit|DOCTYPE|not well-formed|not a valid)", output)


def test_receiver_channels_text(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    sub_xml(scan, "<receiverChannels>2</receiverChannels>", "<receiverChannels>lots</receiverChannels>")
    assert_refused(replay(caplog, scan, output), r"receiverChannels.*'lots'", output)


def test_no_encoding(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    edit_xml(scan, lambda text: re.sub(r"<encoding>.*</encoding>", "", text, flags=re.DOTALL))
    assert_refused(replay(caplog, scan, output), r"<encoding>", output)


def test_no_encoded_space(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    edit_xml(scan, lambda text: re.sub(r"<encodedSpace>.*?</encodedSpace>", "", text, count=1, flags=re.DOTALL))
    assert_refused(replay(caplog, scan, output), r"encodedSpace.*missing", output)


def test_fractional_matrix(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    set_matrix(scan, x="64.5", y="64.5")
    assert_refused(replay(caplog, scan, output), r"matrixSize.*64\.5", output)


def test_text_matrix(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    set_matrix(scan, y="large")
    assert_refused(replay(caplog, scan, output), r"matrixSize.*large", output)


@pytest.mark.parametrize("size", ["0", "-1"])
def test_matrix_below_one(scan, tmp_path, caplog, size):
    output = tmp_path / "out.h5"
    set_matrix(scan, x=size)
    assert_refused(replay(caplog, scan, output), r"matrixSize.*must be >= 1", output)


@pytest.mark.parametrize("size", ["65535", "1000000"])
def test_absurd_matrix_refused_before_training(scan, tmp_path, caplog, size):
    output = tmp_path / "out.h5"
    set_matrix(scan, x=size, y=size)
    code, text = replay(caplog, scan, output)
    assert_refused((code, text), rf"matrixSize\.x = {size}.*max_matrix = 1024", output)


def test_absurd_partitions(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    set_matrix(scan, z="100000")
    assert_refused(replay(caplog, scan, output), r"matrixSize\.z = 100000.*max_partitions", output)


def test_matrix_times_oversampling_beyond_limit(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    set_matrix(scan, x="600", y="600")
    assert_refused(
        replay(caplog, scan, output, "--set", "gridding.grid_oversampling=2"), r"1200-point grid.*max_matrix", output
    )


@pytest.mark.parametrize("channels", ["0", "-3"])
def test_receiver_channels_below_one(scan, tmp_path, caplog, channels):
    output = tmp_path / "out.h5"
    sub_xml(scan, "<receiverChannels>2</receiverChannels>", f"<receiverChannels>{channels}</receiverChannels>")
    assert_refused(replay(caplog, scan, output), rf"receiverChannels.*{channels}", output)


def test_receiver_channels_absurd(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    sub_xml(scan, "<receiverChannels>2</receiverChannels>", "<receiverChannels>1000000</receiverChannels>")
    assert_refused(replay(caplog, scan, output), r"receiverChannels = 1000000.*max_coils", output)


# --- the acquisitions ----------------------------------------------------------------------
def test_nan_sample(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    edit_data(scan, lambda i, samples: np.where(i == 30, np.nan, samples))
    assert_refused(replay(caplog, scan, output), r"acquisition 30.*(NaN|non-finite|finite)", output)


def test_infinite_trajectory(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"

    def poison(records):
        row = imaging_rows(records)[3]
        records["traj"][row][5] = np.inf
        return records

    edit_records(scan, poison)
    assert_refused(replay(caplog, scan, output), r"acquisition \d+.*traj", output)


def test_truncated_data_array(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"

    def cut(records):
        row = imaging_rows(records)[2]
        records["data"][row] = records["data"][row][:50]
        return records

    edit_records(scan, cut)
    assert_refused(replay(caplog, scan, output), r"acquisition \d+.*data", output)


def test_odd_float_count(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"

    def cut(records):
        row = imaging_rows(records)[2]
        records["data"][row] = records["data"][row][:-1]
        return records

    edit_records(scan, cut)
    assert_refused(replay(caplog, scan, output), r"odd number", output)


def test_number_of_samples_mismatch(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"

    def lie(records):
        row = imaging_rows(records)[4]
        records["head"]["number_of_samples"][row] = 100
        return records

    edit_records(scan, lie)
    assert_refused(replay(caplog, scan, output), r"acquisition \d+.*(number_of_samples|samples)", output)


def test_trajectory_dimensions_wrong(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"

    def lie(records):
        row = imaging_rows(records)[1]
        records["head"]["trajectory_dimensions"][row] = 3
        return records

    edit_records(scan, lie)
    assert_refused(replay(caplog, scan, output), r"acquisition \d+.*traj", output)


def test_active_channels_absurd(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"

    def lie(records):
        records["head"]["active_channels"][imaging_rows(records)[0]] = 60000
        return records

    edit_records(scan, lie)
    assert_refused(replay(caplog, scan, output), r"active_channels = 60000.*max_coils", output)


def test_all_zero_data(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    edit_data(scan, lambda i, samples: np.zeros_like(samples))
    assert_refused(replay(caplog, scan, output), r"all zero", output)


def test_data_scaled_to_overflow(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    edit_data(scan, lambda i, samples: samples * np.float32(1e36))
    assert_refused(replay(caplog, scan, output), r"frame .*sample magnitudes of \de\+36 overflow float32 arithmetic", output)


def test_calibration_lines_all_zero(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"

    def zero_acs(records):
        for row in np.flatnonzero(records["head"]["flags"] & ACS_FLAG_BIT):
            records["data"][row] = np.zeros_like(records["data"][row])
        return records

    edit_records(scan, zero_acs)
    assert_refused(replay(caplog, scan, output), r"the 16 calibration lines \(ACQ_IS_PARALLEL_CALIBRATION\) are all zero", output)


def test_data_scaled_to_underflow(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    edit_data(scan, lambda i, samples: samples * np.float32(1e-30))
    assert_refused(replay(caplog, scan, output), r"sample magnitudes of \de-30 underflow float32", output)


# --- configuration ---------------------------------------------------------------------------
def test_binary_config(scan, tmp_path, caplog):
    output, config = tmp_path / "out.h5", tmp_path / "config.toml"
    config.write_bytes(bytes(range(256)))
    assert_refused(replay(caplog, scan, output, "--config", config), r"config\.toml.*(UTF-8|text|TOML)", output)


def test_directory_config(scan, tmp_path, caplog):
    output, config = tmp_path / "out.h5", tmp_path / "conf.d"
    config.mkdir()
    assert_refused(replay(caplog, scan, output, "--config", config), r"conf\.d.*is a directory", output)


def test_missing_config(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    assert_refused(replay(caplog, scan, output, "--config", tmp_path / "none.toml"), r"none\.toml.*does not exist", output)


def test_config_invalid_toml(scan, tmp_path, caplog):
    output, config = tmp_path / "out.h5", tmp_path / "config.toml"
    config.write_text("[training\nmax_steps = = 3\n")
    assert_refused(replay(caplog, scan, output, "--config", config), r"config\.toml.*not valid TOML", output)


def test_config_unknown_key(scan, tmp_path, caplog):
    output, config = tmp_path / "out.h5", tmp_path / "config.toml"
    config.write_text("[training]\nmax_stepz = 3\n")
    assert_refused(replay(caplog, scan, output, "--config", config), r"unknown field training\.max_stepz", output)


def test_config_unknown_section(scan, tmp_path, caplog):
    output, config = tmp_path / "out.h5", tmp_path / "config.toml"
    config.write_text("[trainer]\nmax_steps = 3\n")
    assert_refused(replay(caplog, scan, output, "--config", config), r"unknown section 'trainer'", output)


def test_config_wrong_type(scan, tmp_path, caplog):
    output, config = tmp_path / "out.h5", tmp_path / "config.toml"
    config.write_text("[model]\nhidden_width = [1, 2]\n")
    assert_refused(replay(caplog, scan, output, "--config", config), r"model\.hidden_width must be int", output)


def test_config_absurd_size(scan, tmp_path, caplog):
    output, config = tmp_path / "out.h5", tmp_path / "config.toml"
    config.write_text("[model]\nhidden_width = 1000000\n")
    assert_refused(replay(caplog, scan, output, "--config", config), r"hidden_width = 1000000.*max_hidden_width", output)


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("training.max_stepz=3", r"unknown field training\.max_stepz"),
        ("trainer.max_steps=3", r"unknown section 'trainer'"),
        ("training.max_steps", r"section\.field=value"),
        ("training.max_steps=many", r"training\.max_steps: cannot read 'many' as int"),
        ("training.max_seconds=nan", r"training\.max_seconds: cannot read 'nan'"),
        ("model.hidden_width=1e6", r"model\.hidden_width: cannot read '1e6' as int"),
        ("model.hidden_width=1000000", r"model\.hidden_width = 1000000 exceeds .*max_hidden_width = 4096"),
        ("calibration.num_training_pairs=10000000000", r"num_training_pairs = 10000000000 exceeds .*max_training_pairs"),
        ("training.epochs=1000000000", r"training\.epochs = 1000000000 exceeds .*max_epochs"),
        ("training.max_seconds=1e9", r"training\.max_seconds = 1000000000 exceeds .*max_training_seconds = 600"),
        ("training.batch_size=1000000000000", r"training\.batch_size = 1000000000000 exceeds"),
        ("model.hidden_layers=100000", r"model\.hidden_layers = 100000 exceeds"),
        ("gridding.grid_oversampling=1000", r"grid_oversampling = 1000 exceeds .*max_grid_oversampling = 4"),
        ("gridding.num_sources=100000", r"gridding\.num_sources = 100000 exceeds"),
        ("calibration.selfcal_size=100000", r"calibration\.selfcal_size = 100000 needs a calibration solve grid of 200000 .*max_selfcal_grid = 512"),
    ],
)
def test_bad_override(scan, tmp_path, caplog, override, pattern):
    output = tmp_path / "out.h5"
    assert_refused(replay(caplog, scan, output, "--set", override, fast=False), pattern, output)


@pytest.mark.parametrize("factor", ["2", "4"])
def test_oversampled_grid_names_why_the_acs_lines_are_not_used(scan, tmp_path, caplog, factor):
    """An allowed grid_oversampling spreads the 16 ACS lines apart: the message names that, not "no ACS"."""
    output = tmp_path / "out.h5"
    code, text = replay(caplog, scan, output, "--set", f"gridding.grid_oversampling={factor}")
    assert_refused(
        (code, text),
        rf"the 16 calibration lines cannot be used \(they form no block.*grid_oversampling = {factor} places the lines "
        rf"{factor} grid points apart",
        output,
    )
    assert "no ACS lines" not in text


def test_unknown_variant(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    assert_refused(replay(caplog, scan, output, "--variant", "nosuch"), r"variant must be one of.*'nosuch'", output)


def test_bad_device(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    assert_refused(replay(caplog, scan, output, "--device", "tpu"), r"device must be one of auto, cpu, cuda, cuda:N", output)


# --- outputs -------------------------------------------------------------------------------
def test_output_directory_missing(scan, tmp_path, caplog):
    output = tmp_path / "nowhere" / "out.h5"
    assert_refused(replay(caplog, scan, output), r"nowhere.*does not exist", output)


def test_output_parent_is_a_file(scan, tmp_path, caplog):
    (tmp_path / "plain").write_text("x")
    output = tmp_path / "plain" / "out.h5"
    assert_refused(replay(caplog, scan, output), r"plain.*not a directory", tmp_path / "out.h5")


def test_output_path_is_a_directory(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    output.mkdir()
    code, text = replay(caplog, scan, output)
    assert_refused((code, text), r"out\.h5.*is a directory")
    assert output.is_dir() and not any(output.iterdir())


def _make_read_only(directory: Path):
    """Make ``directory`` unwritable, also for root (chattr +i); None when this machine cannot."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return lambda: directory.chmod(0o755)
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode == 0:
        return lambda: subprocess.run(["chattr", "-i", str(directory)], check=True)
    return None


def test_output_directory_read_only(scan, tmp_path, caplog):
    directory = tmp_path / "locked"
    directory.mkdir()
    undo = _make_read_only(directory)
    if undo is None:
        pytest.skip("cannot make a directory read-only here (root without chattr)")
    try:
        output = directory / "out.h5"
        code, text = replay(caplog, scan, output)
        assert_refused((code, text), r"locked.*(not writable|cannot write|permission|not permitted)", output)
        assert not any(directory.iterdir())
    finally:
        undo()


def test_png_into_missing_directory(scan, tmp_path, caplog):
    output, png = tmp_path / "out.h5", tmp_path / "pictures" / "rss.png"
    code, text = replay(caplog, scan, output, "--png", png)
    assert_refused((code, text), r"pictures.*does not exist", output, png)


def test_png_path_is_a_directory(scan, tmp_path, caplog):
    output, png = tmp_path / "out.h5", tmp_path / "rss.png"
    png.mkdir()
    assert_refused(replay(caplog, scan, output, "--png", png), r"rss\.png.*is a directory", output)


def test_png_same_as_output(scan, tmp_path, caplog):
    output = tmp_path / "out.h5"
    assert_refused(replay(caplog, scan, output, "--png", output), r"--png.*same", output)


def test_output_equal_to_input(scan, tmp_path, caplog):
    before = scan.read_bytes()
    code, text = replay(caplog, scan, scan)
    assert code == 2 and "is the input file" in text
    assert scan.read_bytes() == before


@pytest.mark.trains
def test_failure_while_writing_png_leaves_nothing(scan, tmp_path, caplog, monkeypatch):
    """A PNG write that fails after the gridding: neither the .h5 nor a partial PNG remains."""
    import igrog_gadget.preview as preview

    def failing(path, kspaces):
        Path(path).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(preview, "write_png", failing)
    output, png = tmp_path / "out.h5", tmp_path / "rss.png"
    assert_refused(replay(caplog, scan, output, "--png", png), r"rss\.png.*No space left", output, png)


@pytest.mark.trains
def test_failure_while_moving_png_into_place_takes_the_output_back(scan, tmp_path, caplog, monkeypatch):
    """The .h5 is in place when the PNG's rename fails: it is removed again, nothing stays."""
    real_replace = os.replace

    def replace(source, target):
        if str(target).endswith(".png"):
            raise OSError(13, "Permission denied")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    output, png = tmp_path / "out.h5", tmp_path / "rss.png"
    assert_refused(replay(caplog, scan, output, "--png", png), r"cannot write --png .*rss\.png: Permission denied", output, png)


# --- the console script: no traceback on stderr ------------------------------------------------
def _igrog(*args) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("igrog")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "igrog_gadget"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_console_script_bad_header_and_binary_config(scan, tmp_path):
    set_matrix(scan, x="64.5")
    output = tmp_path / "out.h5"
    result = _igrog("-q", "replay", scan, output)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and re.search(r"matrixSize.*64\.5", result.stderr), result.stderr
    assert not output.exists()

    config = tmp_path / "config.toml"
    config.write_bytes(b"\x00\xff\xfe" * 100)
    result = _igrog("-q", "replay", scan, output, "--config", config)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "config.toml" in result.stderr
    assert not output.exists()


def test_console_script_busy_port(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = _igrog("-q", "serve", "--host", "127.0.0.1", "--port", port)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(rf"cannot listen on 127\.0\.0\.1:{port}.*in use", result.stderr), result.stderr


def test_source_whitening_refuses_zero_and_non_finite_sources():
    """The last guard before a Cholesky: no LinAlgError whatever the training pairs hold."""
    from igrog_gadget.core.pairs import source_whitening
    from igrog_gadget.errors import CalibrationError

    with pytest.raises(CalibrationError, match="training sources are all zero"):
        source_whitening(np.zeros((50, 5), np.complex64))
    with pytest.raises(CalibrationError, match="not finite"):
        source_whitening(np.full((50, 5), 1e30, np.complex64) * np.float32(1e10))


def test_an_unwritten_row_inside_the_table(scan, tmp_path, caplog):
    """A row in the middle whose header is the HDF5 fill value (all zero bytes): never written."""
    output = tmp_path / "out.h5"

    def with_unwritten_row(records):
        row = records[:1].copy()
        row["head"] = np.zeros(1, row.dtype["head"])
        row["data"][0], row["traj"][0] = np.zeros(0, np.float32), np.zeros(0, np.float32)
        return np.concatenate([records[:5], row, records[5:]])

    edit_records(scan, with_unwritten_row)
    assert_refused(replay(caplog, scan, output), r"acquisition 5 has an all-zero header", output)
