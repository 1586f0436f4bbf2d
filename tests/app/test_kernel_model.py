"""The kernel model's folded whitening equals the explicit product, and kernel application."""

from __future__ import annotations

import torch

from igrog_gadget.core.kernel_model import KernelModel
from igrog_gadget.core.kernels import apply_kernels
from igrog_gadget.config import ModelConfig


def test_folded_whitening_equals_net_times_whitening():
    torch.manual_seed(0)
    coils, sources = 3, 4
    size = coils * sources
    whitening = torch.randn(size, size, dtype=torch.complex64)
    model = KernelModel(sources, coils, ModelConfig(hidden_width=16, hidden_layers=2), whitening)
    torch.nn.init.normal_(model.net.head.weight, std=0.1)
    torch.nn.init.normal_(model.net.head.bias, std=0.1)
    offsets = torch.randn(7, sources, 2)
    explicit = model.net(offsets) @ whitening
    folded = model({"offsets": offsets})
    assert folded.shape == (7, coils, size)
    torch.testing.assert_close(folded, explicit, rtol=1e-4, atol=1e-5)


def test_apply_kernels_is_the_per_sample_matrix_product():
    kernels = torch.randn(5, 2, 6, dtype=torch.complex64)
    sources = torch.randn(5, 6, dtype=torch.complex64)
    expected = torch.stack([kernels[i] @ sources[i] for i in range(5)])
    torch.testing.assert_close(apply_kernels(kernels, sources), expected)


def test_plan_cache_is_bounded_and_keeps_what_a_cyclic_series_reuses():
    from igrog_gadget.core.plan import GriddingPlan, KernelChunks
    from igrog_gadget.planning.plan_cache import PlanCache

    def plan(name: str) -> GriddingPlan:  # 640 bytes of kernels; the name stands in for its geometry
        return GriddingPlan(geometry=name, kernels=KernelChunks((torch.zeros(10, 4, 2, dtype=torch.complex64),), kept=True))

    cache = PlanCache(max_bytes=1500)
    cache.put(((0,), "a"), plan("slice0"))
    cache.put(((1,), "a"), plan("slice1"))
    assert not cache.admits(640, ((2,), "a"))  # a third slice does not fit beside the two
    cache.put(((2,), "a"), plan("slice2"))
    assert cache.get(((2,), "a")) is None and cache.get(((0,), "a")).geometry == "slice0"
    cache.put(((1,), "b"), plan("slice1 new trajectory"))  # replaces its own key's older set
    assert cache.get(((1,), "a")) is None and cache.get(((1,), "b")).geometry == "slice1 new trajectory"
    assert cache.nbytes <= 1500 and len(cache) == 2
    assert not cache.admits(2000)
    streamed = GriddingPlan(geometry="streamed", kernels=KernelChunks(iter(()), kept=False))
    cache.put(((3,), "a"), streamed)  # a streamed plan grids one frame: never kept
    assert cache.get(((3,), "a")) is None


def test_kernel_model_initialisation_comes_from_the_seed_not_the_global_rng():
    from igrog_gadget.core.kernel_model import KernelModel
    from igrog_gadget.config import load_config

    config = load_config("basic").model
    before = torch.get_rng_state()
    first, second = (KernelModel(5, 3, config, seed=7) for _ in range(2))
    other = KernelModel(5, 3, config, seed=8)
    assert torch.equal(torch.get_rng_state(), before)  # torch's global generator untouched
    for a, b, c in zip(first.state_dict().values(), second.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    assert not torch.equal(first.net.body[0].weight, other.net.body[0].weight)
