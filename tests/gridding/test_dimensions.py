"""The dimension profiles: what 2D and 3D differ in, read from real headers and used by the NUFFTs."""

from __future__ import annotations

from pathlib import Path

import finufft
import numpy as np
import pytest

from igrog_gadget.config import load_config
from igrog_gadget.io import parse_header
from igrog_gadget.io.acquisitions import read_header_xml
from igrog_gadget.numerics.dimensions import (
    dimensions,
    dimensions_of_grid,
    dimensions_of_positions,
    volume_shape,
)
from igrog_gadget.numerics.nufft import finufft_points, nufft_adjoint, nufft_forward
from igrog_gadget.simulate import SimulationSpec, simulate_to_file
from igrog_gadget.stream.frames import grid_matrix

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def headers(tmp_path_factory):
    """Parsed headers of a recorded 2D radial scan, a simulated stack-of-stars and a kooshball."""
    folder = tmp_path_factory.mktemp("dimensions")
    specs = {
        "stack_of_stars": SimulationSpec(trajectory="radial", matrix=16, coils=2, spokes=16, partitions=4, acs=8, seed=1),
        "kooshball": SimulationSpec(trajectory="kooshball", matrix=12, coils=2, spokes=60, acs=8, seed=2),
    }
    found = {"radial": parse_header(read_header_xml(DATA / "radial_acs.h5").decode())}
    for name, spec in specs.items():
        simulate_to_file(folder / f"{name}.h5", spec)
        found[name] = parse_header(read_header_xml(folder / f"{name}.h5").decode())
    return found


def test_the_two_profiles_state_their_axes_counters_and_transforms():
    plane, volume = dimensions(2), dimensions(3)
    assert (plane.name, plane.axes, plane.array_axes) == ("2D", ("x", "y"), ("y", "x"))
    assert (volume.name, volume.axes, volume.array_axes) == ("3D", ("x", "y", "z"), ("z", "y", "x"))
    assert plane.encode_counters == ("kspace_encode_step_1",)
    assert volume.encode_counters == ("kspace_encode_step_1", "kspace_encode_step_2")
    assert (plane.array_label(), volume.array_label()) == ("ny x nx", "nz x ny x nx")
    assert plane.nufft_type1() is finufft.nufft2d1 and plane.nufft_type2() is finufft.nufft2d2
    assert volume.nufft_type1() is finufft.nufft3d1 and volume.nufft_type2() is finufft.nufft3d2
    assert (plane.nufft_eps, plane.nufft_real, plane.nufft_complex) == (1e-7, np.float64, np.complex128)
    assert (volume.nufft_eps, volume.nufft_real, volume.nufft_complex) == (1e-5, np.float32, np.complex64)


def test_profiles_are_found_from_a_grid_or_positions_and_refuse_other_dimensions():
    assert dimensions_of_grid((8, 16)) is dimensions(2) and dimensions_of_grid((4, 8, 16)) is dimensions(3)
    assert dimensions_of_positions(np.zeros((5, 3))) is dimensions(3)
    with pytest.raises(ValueError, match="2D or 3D, got 4 dimensions"):
        dimensions(4)
    with pytest.raises(ValueError, match="2D or 3D, got 1 dimensions"):
        volume_shape((16,))
    assert volume_shape((8, 16)) == (1, 8, 16) and volume_shape((4, 8, 16)) == (4, 8, 16)


@pytest.mark.parametrize("name, dims, grid", [
    ("radial", 2, (64, 64)),  # a plane: nz = 1
    ("stack_of_stars", 2, (16, 16)),  # planes of a stack: the partitions are frames, not an axis
    ("kooshball", 3, (12, 12, 12)),
])
def test_the_grid_of_a_real_header(headers, name, dims, grid):
    header = headers[name]
    profile = dimensions(dims)
    assert profile.grid_shape(header.encoded_matrix) == grid
    assert profile.matrix(header.encoded_matrix) == tuple(reversed(grid))
    config = load_config("basic", overrides=["gridding.grid_oversampling=1.5"])
    oversampled = grid_matrix(header, config, dims)
    assert oversampled == tuple(int(round(n * 1.5)) for n in reversed(grid))


def test_finufft_points_pair_the_first_array_axis_with_the_last_column():
    coords = np.array([[1.0, 2.0, 3.0]])  # (kx, ky, kz)
    kz, ky, kx = finufft_points(coords, (8, 16, 32), np.float32)
    assert kz.dtype == np.float32
    np.testing.assert_allclose([kz[0], ky[0], kx[0]], [2 * np.pi * 3 / 8, 2 * np.pi * 2 / 16, 2 * np.pi * 1 / 32], rtol=1e-6)


@pytest.mark.parametrize("dims, tolerance", [(2, 1e-6), (3, 1e-4)])
def test_the_nufft_of_a_profile_is_the_centred_fft_on_integer_positions(dims, tolerance):
    rng = np.random.default_rng(dims)
    shape = (8, 6, 10)[3 - dims :]
    image = (rng.standard_normal((2, *shape)) + 1j * rng.standard_normal((2, *shape))).astype(np.complex64)
    grids = np.meshgrid(*(np.arange(n) - n // 2 for n in shape), indexing="ij")  # ([kz,] ky, kx)
    coords = np.stack([g.reshape(-1) for g in reversed(grids)], axis=-1).astype(np.float64)
    axes = tuple(range(1, dims + 1))
    expected = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(image, axes=axes), axes=axes, norm="ortho"), axes=axes)
    values = nufft_forward(image, coords)
    assert values.dtype == np.complex64
    np.testing.assert_allclose(values.reshape(image.shape), expected, atol=tolerance * np.abs(expected).max())
    back = nufft_adjoint(values, coords, shape)
    np.testing.assert_allclose(back, image, atol=tolerance * np.abs(image).max())
