"""FrameGridder: cancellation and CPU thread choice."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from app_helpers import FAST

from benchmarks.evaluation import load_case
from igrog_gadget.planning.gridder import FrameGridder
from igrog_gadget.config import load_config
from igrog_gadget.errors import GriddingCancelled


def test_cancel_stops_training_promptly_and_refuses_new_work(data_file):
    config = load_config("basic", overrides=["training.fit=network", "training.max_seconds=60", "training.epochs=1000", "training.max_steps=100000"])
    case = load_case("radial", data_file("radial_acs"), config)
    gridder = FrameGridder(config)
    timer = threading.Timer(1.0, gridder.cancel)
    timer.start()
    started = time.monotonic()
    with pytest.raises(GriddingCancelled):
        gridder.grid(case.frame)
    assert time.monotonic() - started < 15, "training noticed the cancellation within a step"
    with pytest.raises(GriddingCancelled):
        gridder.grid(case.frame)


def test_training_leaves_the_thread_count_alone(data_file):
    """Thread counts are set once per process by the entry point, never by a training: a
    configuration asking for another count than the process's leaves the process's count."""
    before = torch.get_num_threads()
    other = 1 if before > 1 else 2
    config = load_config("basic", overrides=FAST + [f"gridding.cpu_threads={other}"])
    assert config.gridding.cpu_threads == other != before
    case = load_case("radial", data_file("radial_acs"), config)
    result = FrameGridder(config).grid(case.frame)
    assert torch.get_num_threads() == before
    assert result.report is not None and result.report.device == "cpu"
