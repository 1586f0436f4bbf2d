"""The recorded simulator files (tests/data, igrog_gadget/data) match their specs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import ismrmrd
import numpy as np
import pytest

from igrog_gadget.io.reader import open_dataset_readonly
from igrog_gadget.simulate import load_truth, simulate_to_file

ROOT = Path(__file__).resolve().parents[2]


def _make_data() -> ModuleType:
    spec = importlib.util.spec_from_file_location("igrog_make_data", ROOT / "tests" / "data" / "make_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKE_DATA = _make_data()


@pytest.mark.parametrize("rel", sorted(MAKE_DATA.FILES))
def test_recorded_file_matches_spec(rel: str) -> None:
    path = ROOT / rel
    assert path.exists(), f"{rel} missing: run python tests/data/make_data.py"
    spec = MAKE_DATA.FILES[rel]
    truth = load_truth(path)
    assert truth["spec"] == spec
    N = spec.matrix
    assert truth["kspace"].shape == (spec.slices, spec.contrasts, spec.coils, N, N)
    if rel.startswith("tests/"):
        assert path.stat().st_size < 1_000_000
    ds = open_dataset_readonly(str(path), "dataset")  # committed files: never opened for writing
    try:
        readouts = spec.spokes if spec.trajectory == "radial" else spec.interleaves
        expected = spec.noise_scans + spec.slices * spec.contrasts * (
            (spec.acs or 0) + spec.repetitions * readouts
        )
        assert ds.number_of_acquisitions() == expected
        last = ds.read_acquisition(expected - 1)
        assert last.is_flag_set(ismrmrd.ACQ_LAST_IN_MEASUREMENT)
        assert last.trajectory_dimensions == 2
        if spec.trajectory_units == "normalized":
            assert np.abs(last.traj).max() <= 0.5
        else:
            assert np.abs(last.traj).max() > 1.0
        for series, wanted in (
            ("b0map", spec.write_b0map),
            ("coil_images", spec.write_coil_images),
            ("sensitivity_maps", spec.write_sensitivity_maps),
        ):
            assert (series in ds.list()) == wanted
    finally:
        ds.close()


def test_recorded_file_is_reproducible(tmp_path: Path) -> None:
    rel = "tests/data/radial_acs.h5"
    out = tmp_path / "radial_acs.h5"
    simulate_to_file(out, MAKE_DATA.FILES[rel])
    assert MAKE_DATA._compare(ROOT / rel, out) == []
