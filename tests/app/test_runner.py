"""VariantGridder: cancellation and CPU thread choice."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from app_helpers import FAST

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.evaluation import load_case  # noqa: E402
from igrog_gadget.app.runner import VariantGridder  # noqa: E402
from igrog_gadget.config import load_config  # noqa: E402
from igrog_gadget.errors import GriddingCancelled  # noqa: E402


def test_cancel_stops_training_promptly_and_refuses_new_work(data_file):
    config = load_config("basic", overrides=["training.max_seconds=60", "training.epochs=1000"])
    case = load_case("radial", data_file("radial_acs"), config)
    gridder = VariantGridder(config)
    timer = threading.Timer(3.0, gridder.cancel)
    timer.start()
    started = time.monotonic()
    with pytest.raises(GriddingCancelled):
        gridder.grid(case.frame)
    assert time.monotonic() - started < 15, "training noticed the cancellation within a step"
    with pytest.raises(GriddingCancelled):
        gridder.grid(case.frame)


def test_training_leaves_the_thread_count_alone(data_file):
    """Thread counts are set once per process by the entry point, never by a training."""
    before = torch.get_num_threads()
    config = load_config("basic", overrides=FAST)
    case = load_case("radial", data_file("radial_acs"), config)
    result = VariantGridder(config).grid(case.frame)
    assert torch.get_num_threads() == before
    assert "cpu_threads" not in result.info
