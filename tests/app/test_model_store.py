"""Networks kept across scans (``training.warm_start_dir``): the store, its keys, and a second
scan that starts from the first scan's network."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from app_helpers import DATA, FAST, nrmse_on_sampled

from benchmarks.evaluation import load_case
from benchmarks.warm_start_benchmark import mixed_coils
from igrog_gadget.core.frame import PADDING_POSITION
from igrog_gadget.planning.model_store import ModelStore, StoredModelKey, network_signature, trajectory_family
from igrog_gadget.planning.gridder import FrameGridder
from igrog_gadget.config import load_config
from igrog_gadget.errors import ConfigError
from igrog_gadget.gadget.settings import GadgetSettings, PeerFiles

#: The network fit, step-limited, a warm start of 20 steps.
NETWORK = [*FAST, "training.fit=network", "calibration.fill_centre=false", "training.warm_start_steps=20"]


def _key(network: str = "a:2x3") -> StoredModelKey:
    return StoredModelKey("basic", 2, (64, 64), 4, 4, "lines", network)


def test_trajectory_family_tells_straight_from_curved_readouts(data_file):
    config = load_config("basic")
    radial = load_case("radial_acs", data_file("radial_acs"), config).frame
    spiral = load_case("spiral_acs", data_file("spiral_acs"), config).frame
    assert trajectory_family(radial.traj, radial.lengths) == "lines"
    assert trajectory_family(spiral.traj, spiral.lengths) == "curves"
    padded = radial.traj.copy()
    padded[0, -10:] = PADDING_POSITION  # a shorter first readout: its padding is not on its line
    lengths = np.full(padded.shape[0], padded.shape[1])
    lengths[0] -= 10
    assert trajectory_family(padded, lengths) == "lines"
    assert trajectory_family(padded, None) == "curves"


def test_store_round_trip_and_what_it_refuses(tmp_path, caplog):
    state = {"a": torch.arange(6.0).reshape(2, 3)}
    key = _key(network_signature(state))
    store = ModelStore(tmp_path / "models")
    assert store.load(key) is None  # nothing stored yet
    path = store.save(key, state, 0.04)
    assert path == store.path(key) and path.name.startswith("basic-2d-lines-64x64-4c4v-")
    assert [p.name for p in (tmp_path / "models").iterdir()] == [path.name]  # no temporary left
    stored = store.load(key)
    torch.testing.assert_close(stored.state["a"], state["a"])
    assert stored.held_out_error == 0.04
    assert store.load(_key("a:3x2")) is None  # another network shape is another key
    path.write_bytes(b"not a torch file")
    with caplog.at_level(logging.WARNING):
        assert store.load(key) is None
    assert "cannot read" in caplog.text
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    assert ModelStore(blocked).save(key, state, 0.04) is None  # logged, never raised


@pytest.fixture(scope="module")
def first_scan(tmp_path_factory):
    """A first scan (radial_acs) gridded with an empty store: (case, its result, the store it left),
    the start of the tests below (each copies the store)."""
    case = load_case("radial_acs", DATA / "radial_acs.h5", load_config("basic"))
    store = tmp_path_factory.mktemp("first_scan") / "models"
    first = FrameGridder(load_config("basic", overrides=[*NETWORK, f"training.warm_start_dir={store}"])).grid(case.frame)
    return case, first, store


def store_of_the_first_scan(first_scan, tmp_path) -> Path:
    """A copy of the store the first scan left, for this test to use."""
    store = tmp_path / "models"
    shutil.copytree(first_scan[2], store)
    return store


def test_a_second_scan_starts_from_the_first_scans_network(first_scan, tmp_path):
    case, first, _ = first_scan
    store = store_of_the_first_scan(first_scan, tmp_path)
    config = load_config("basic", overrides=[*NETWORK, f"training.warm_start_dir={store}"])
    assert first.report.training.warm_start is False and first.report.training.warm_start_model is None
    (saved,) = store.glob("*.pt")
    snapshot = tmp_path / "snapshot"
    shutil.copytree(store, snapshot)

    second = FrameGridder(config).grid(case.frame)  # the next scan of the protocol
    assert second.report.training.warm_start is True and second.report.training.warm_start_model == saved.stem
    assert second.report.training.steps == 20
    short = FrameGridder(load_config("basic", overrides=[*NETWORK, "training.max_steps=20"])).grid(case.frame)
    errors = [nrmse_on_sampled(r.kspace, r.hits, case.truth) for r in (first, second, short)]
    assert errors[1] <= 1.1 * errors[0], errors  # 20 steps from the store: as good as a whole training
    assert errors[2] >= 1.3 * errors[1], errors  # 20 steps from scratch are not

    again = FrameGridder(load_config("basic", overrides=[*NETWORK, f"training.warm_start_dir={snapshot}"])).grid(case.frame)
    np.testing.assert_array_equal(again.kspace, second.kspace)  # the same store contents: the same bits


def test_a_stored_network_that_misses_the_new_scan_trains_every_step(first_scan, tmp_path):
    case, first, _ = first_scan
    store = store_of_the_first_scan(first_scan, tmp_path)
    config = load_config("basic", overrides=[*NETWORK, f"training.warm_start_dir={store}"])
    moved = FrameGridder(config).grid(mixed_coils(case).frame)  # the array placed differently
    assert moved.report.training.warm_start is True
    assert moved.report.training.steps == first.report.training.steps > 20  # not only a refinement


def test_the_closed_form_neither_reads_nor_writes_the_store(data_file, tmp_path):
    case = load_case("radial_acs", data_file("radial_acs"), load_config("basic"))
    store = tmp_path / "models"
    result = FrameGridder(load_config("basic", overrides=[f"training.warm_start_dir={store}"])).grid(case.frame)
    assert result.report.training.fit == "closed_form" and not store.exists()


def test_a_connection_may_not_set_the_store(tmp_path):
    with pytest.raises(ConfigError, match="training.warm_start_dir is the server's setting"):
        GadgetSettings().merged([("set", "training.warm_start_dir=/tmp/elsewhere")])
    (tmp_path / "peer.toml").write_text('[training]\nwarm_start_dir = "/etc"\n')
    settings = GadgetSettings(files=PeerFiles(data_dir=str(tmp_path)))
    with pytest.raises(ConfigError, match="training.warm_start_dir is the server's setting"):
        settings.merged([("config", "peer.toml")])
    server = GadgetSettings(overrides=[f"training.warm_start_dir={tmp_path}"]).merged([("set", "training.seed=3")])
    assert server.igrog_config().training.warm_start_dir == str(tmp_path)  # the operator's own setting stands
