"""The same pipeline on CUDA (skipped without a GPU): results agree with the CPU's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from app_helpers import FAST

from benchmarks.evaluation import load_case
from igrog_gadget.planning.gridder import FrameGridder
from igrog_gadget.config import load_config

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_cuda_gridding_matches_cpu_with_the_same_kernels(data_file):
    config = load_config("basic", overrides=FAST + ["training.fit=network", "gridding.device=cuda"])
    case = load_case("radial", data_file("radial_acs"), config)
    gridder = FrameGridder(config)
    on_gpu = gridder.grid(case.frame)
    assert on_gpu.report.device.startswith("cuda")
    # the model trained on the GPU, moved to the CPU, must give the same gridding
    trained = gridder.training.trained(case.frame.calibration_key)
    cpu_config = load_config("basic", overrides=FAST + ["training.fit=network", "gridding.device=cpu"])
    cpu_gridder = FrameGridder(cpu_config)
    cpu_gridder.training.adopt(case.frame.calibration_key, dataclasses.replace(trained, model=trained.model.cpu(), used=False))
    on_cpu = cpu_gridder.grid(case.frame)
    np.testing.assert_allclose(on_gpu.kspace, on_cpu.kspace, rtol=1e-3, atol=1e-3 * np.abs(on_cpu.kspace).max())


def test_closed_form_kernels_on_cuda_match_the_cpus(data_file):
    """The default closed-form fit solves on the GPU (correlations by finufft on the CPU)."""
    results = {}
    for device in ("cuda", "cpu"):
        config = load_config("basic", overrides=[f"gridding.device={device}"])
        case = load_case("radial", data_file("radial_acs"), config)
        results[device] = FrameGridder(config).grid(case.frame)
    assert results["cuda"].report.device.startswith("cuda") and results["cuda"].report.training.steps == 0
    reference = results["cpu"].kspace
    np.testing.assert_allclose(results["cuda"].kspace, reference, rtol=1e-3, atol=1e-4 * np.abs(reference).max())
