"""The Toeplitz normal operator equals the NUFFT's ``F^H W F`` (2D and 3D)."""

from __future__ import annotations

import numpy as np
import pytest

from igrog_gadget.numerics.nufft import nufft_adjoint, nufft_forward
from igrog_gadget.numerics.toeplitz import ToeplitzNormal


@pytest.mark.parametrize("dims, n, tolerance", [(2, 16, 1e-6), (3, 12, 5e-5)])
def test_toeplitz_normal_equals_forward_then_adjoint(dims, n, tolerance):
    rng = np.random.default_rng(0)
    shape = (n,) * dims
    coords = rng.uniform(-n / 2, n / 2 - 0.5, (3000, dims))
    weights = rng.uniform(0.2, 1.0, 3000)
    image = (rng.standard_normal((2, *shape)) + 1j * rng.standard_normal((2, *shape))).astype(np.complex64)
    reference = nufft_adjoint(weights * nufft_forward(image, coords), coords, shape)
    result = ToeplitzNormal(coords, weights, shape)(image)
    assert result.shape == reference.shape and result.dtype == np.complex64
    assert np.linalg.norm(result - reference) / np.linalg.norm(reference) < tolerance


def test_toeplitz_refuses_positions_of_another_dimension():
    with pytest.raises(ValueError, match="do not fit a 3D grid"):
        ToeplitzNormal(np.zeros((4, 2)), np.ones(4), (8, 8, 8))
