"""One output geometry for every front end, 2D and 3D: built from real headers (the recorded 2D
radial scan, a simulated stack-of-stars and kooshball), and written alike by replay's header and
weights images, ``igrog pipe``'s stream header, and the gadget's ReconData, images and acquisitions."""

from __future__ import annotations

from pathlib import Path

import ismrmrd
import numpy as np
import pytest

from igrog_gadget.config import load_config
from igrog_gadget.gadget.images import ImagesOutput
from igrog_gadget.gadget.recondata import decode_recon_data, encode_frame, frame_in_recon_fov
from igrog_gadget.io import OutputGeometry, cartesian_output_header, output_recon_space, parse_header, read_dataset
from igrog_gadget.io.acquisitions_output import AcquisitionsOutput
from igrog_gadget.io.frame_images import weights_image
from igrog_gadget.numerics.fft import centred_fftn
from igrog_gadget.pipe import stream_output_header
from igrog_gadget.scan import GriddedFrame
from igrog_gadget.simulate import SimulationSpec, simulate_to_file

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """name -> the dataset as read: the recorded 2D radial scan, a stack-of-stars, a kooshball."""
    folder = tmp_path_factory.mktemp("geometry")
    specs = {
        "stack_of_stars": SimulationSpec(trajectory="radial", matrix=16, coils=2, spokes=16, partitions=4, acs=8, seed=1),
        "kooshball": SimulationSpec(trajectory="kooshball", matrix=12, coils=2, spokes=60, acs=8, seed=2),
    }
    found = {"radial": read_dataset(DATA / "radial_acs.h5")}
    for name, spec in specs.items():
        simulate_to_file(folder / f"{name}.h5", spec)
        found[name] = read_dataset(folder / f"{name}.h5")
    return found


def _frame(dataset, shape: tuple[int, ...], coils: int = 2, seed: int = 0) -> GriddedFrame:
    """A gridded frame of ``shape`` (array axes) with random k-space, templated on an imaging readout."""
    rng = np.random.default_rng(seed)
    template = next(r for r in dataset.readouts if r.is_imaging())
    kspace = (rng.standard_normal((coils, *shape)) + 1j * rng.standard_normal((coils, *shape))).astype(np.complex64)
    hits = rng.integers(0, 4, shape).astype(np.int32)
    return GriddedFrame(kspace=kspace, hits=hits, frame_key=template.frame_key(), template=template)


def test_a_plane_of_the_recorded_radial_scan(scans):
    header = scans["radial"].header  # encoded 64 x 64 x 1 over 256 x 256 x 5 mm, recon the same
    plain = OutputGeometry.of_frames(header, 1.0, (64, 64))
    assert (plain.matrix, plain.fov_mm, plain.profile.dims) == ((64, 64, 1), (256.0, 256.0, 5.0), 2)
    assert plain.recon_space == ((64, 64, 1), (256.0, 256.0, 5.0))
    oversampled = OutputGeometry.of_frames(header, 2.0, (128, 128))
    assert (oversampled.matrix, oversampled.fov_mm) == ((128, 128, 1), (512.0, 512.0, 5.0))  # a plane's z: its slice
    assert oversampled.recon_space == ((64, 64, 1), (256.0, 256.0, 5.0))  # the recon FOV in the output's voxels
    region, fov = oversampled.recon_region()
    assert region == (slice(32, 96), slice(32, 96)) and fov == (256.0, 256.0, 5.0)


def test_the_planes_of_a_stack_state_its_partitions(scans):
    header = scans["stack_of_stars"].header  # encoded 16 x 16 x 4
    stacked = OutputGeometry.of_frames(header, 1.0, (16, 16), stacked=True)
    assert stacked.matrix == (16, 16, 4) and stacked.fov_mm == tuple(header.encoded_fov_mm)
    assert OutputGeometry.of_frames(header, 1.0, (16, 16)).matrix == (16, 16, 1)
    assert stacked.recon_space == output_recon_space((16, 16, 4), stacked.fov_mm, header.recon_fov_mm)


def test_a_volume_scales_z_with_the_grid_and_crops_it_to_the_recon_fov(scans):
    header = scans["kooshball"].header  # encoded 12^3 over fov^3 (isotropic), recon the same
    fx, fy, fz = header.encoded_fov_mm
    geometry = OutputGeometry.of_frames(header, 1.5, (18, 18, 18), stacked=True)  # stacked: not for a volume
    assert geometry.profile.dims == 3 and geometry.matrix == (18, 18, 18)
    assert geometry.fov_mm == (fx * 1.5, fy * 1.5, fz * 1.5)
    assert geometry.recon_space == ((12, 12, 12), (fx, fy, fz))
    kspace = _frame(scans["kooshball"], (18, 18, 18)).kspace
    cropped, fov = geometry.crop_kspace(kspace)
    assert cropped.shape == (2, 12, 12, 12) and fov == pytest.approx((fx, fy, fz))
    region, _ = geometry.recon_region()
    image = centred_fftn(kspace, (1, 2, 3), inverse=True)
    np.testing.assert_allclose(centred_fftn(cropped, (1, 2, 3), inverse=True), image[(slice(None),) + region], atol=1e-5)


@pytest.mark.parametrize("name, factor, shape, cropped", [
    ("radial", 2.0, (128, 128), (64, 64)),
    ("stack_of_stars", 1.0, (16, 16), (16, 16)),
    ("kooshball", 1.5, (18, 18, 18), (12, 12, 12)),
])
def test_every_front_end_writes_the_same_geometry(scans, name, factor, shape, cropped):
    dataset = scans[name]
    header = dataset.header
    config = load_config("basic", overrides=[f"gridding.grid_oversampling={factor}", "recon.image=rss"])
    frame = _frame(dataset, shape)
    geometry = OutputGeometry.of_frames(header, factor, shape, stacked=header.encoded_matrix[2] > 1)
    region_fov = geometry.recon_region()[1]

    # replay's output header and igrog pipe's stream header
    replay = parse_header(cartesian_output_header(dataset.header_xml, geometry, {}, {}))
    stream = parse_header(stream_output_header(dataset.header_xml, header, config, frame))
    for written in (replay, stream):
        assert written.encoded_matrix == geometry.matrix and written.encoded_fov_mm == pytest.approx(geometry.fov_mm)
        recon_matrix, recon_fov = geometry.recon_space
        assert written.recon_matrix == recon_matrix and written.recon_fov_mm == pytest.approx(recon_fov)
    # the weights image (replay's series, the acquisitions output): the frame grid's FOV
    assert tuple(weights_image(frame, geometry, 1).source.field_of_view) == pytest.approx(geometry.fov_mm)
    *_, image = AcquisitionsOutput(calibration=False, weights=True).items(frame, geometry)
    assert isinstance(image, ismrmrd.Image) and tuple(image.field_of_view) == pytest.approx(geometry.fov_mm)
    # the gadget's ReconData and images: cropped to the recon FOV
    buffer = decode_recon_data(encode_frame(*frame_in_recon_fov(frame, geometry))[2:]).bits[0].data
    nz, ny, nx = (1, *cropped) if len(cropped) == 2 else cropped
    assert buffer.sampling.encoded_matrix == (nx, ny, nz) and buffer.data.shape[:3] == (nx, ny, nz)
    assert buffer.sampling.encoded_fov_mm == pytest.approx(region_fov)
    picture = ImagesOutput(config.recon, "cpu").image(frame, geometry)
    assert tuple(picture.matrix_size) == (nx, ny, nz) and tuple(picture.field_of_view) == pytest.approx(region_fov)
