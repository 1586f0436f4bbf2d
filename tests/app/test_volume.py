"""3D iGROG (basic variant): a small simulated kooshball replayed onto its 3D grid, and bad 3D input."""

from __future__ import annotations

import h5py
import ismrmrd
import numpy as np
import pytest

from benchmarks.baselines3d import grid_nearest_neighbour_3d
from igrog_gadget.config import load_config
from igrog_gadget.errors import InputDataError
from igrog_gadget.io import read_dataset
from igrog_gadget.io.acquisitions import copy_acquisitions, each_acquisition
from igrog_gadget.replay import replay_file
from igrog_gadget.simulate import SimulationSpec, load_truth, simulate_to_file

N = 32
#: Quick deterministic training of the small 3D case (a step count, few pairs, a small solve grid).
#: 150 steps grid the kooshball as well as 400 did (0.273-0.280 of nearest neighbour's error over
#: 3 seeds, 0.276-0.279 with 400; the cosine schedule anneals over the step count).
QUICK_3D = [
    "training.max_seconds=120",
    "training.volume.max_steps=150",
    "calibration.volume.num_training_pairs=12000",
    "calibration.selfcal_grid=32",
    "calibration.edge_margin=2",
]


@pytest.fixture(scope="module")
def kooshball(tmp_path_factory):
    """A 32^3, 4-coil golden-means kooshball of 1200 spokes with a 16 x 16 (ky, kz) ACS block."""
    path = tmp_path_factory.mktemp("volume") / "koosh.h5"
    simulate_to_file(path, SimulationSpec(trajectory="kooshball", matrix=N, coils=4, spokes=1200, acs=16, snr=50.0, seed=3))
    return path


@pytest.fixture(scope="module")
def kooshball_replay(kooshball, tmp_path_factory):
    output = tmp_path_factory.mktemp("volume_out") / "koosh_cart.h5"
    return output, replay_file(kooshball, output, load_config("basic", overrides=QUICK_3D))


def read_volume(path):
    dataset = read_dataset(path)
    nx, ny, nz = dataset.header.encoded_matrix
    lines = [r for r in dataset.readouts if r.is_imaging()]
    volume = np.zeros((lines[0].num_coils, nz, ny, nx), dtype=np.complex64)
    for line in lines:
        volume[:, line.idx["kspace_encode_step_2"], line.idx["kspace_encode_step_1"]] = line.data
    return dataset, lines, volume


def rewrite(source, target, change):
    """Copy an ISMRMRD file through ``change(acq) -> acq | None``."""
    copy_acquisitions(source, target, each_acquisition(lambda _, acq: change(acq)))
    return target


def test_kooshball_is_gridded_onto_its_3d_grid_one_line_per_ky_kz(kooshball_replay):
    output, report = kooshball_replay
    dataset, lines, volume = read_volume(output)
    assert dataset.header.encoded_matrix == (N, N, N)
    assert dataset.header.trajectory == "cartesian"
    assert len(lines) == N * N and {(r.idx["kspace_encode_step_1"], r.idx["kspace_encode_step_2"]) for r in lines} == {
        (ky, kz) for ky in range(N) for kz in range(N)
    }
    assert f"<maximum>{N - 1}</maximum>" in dataset.header_xml.split("kspace_encoding_step_2")[1]
    assert report.frames[0].kspace.shape == (4, N, N, N)


@pytest.fixture(scope="module")
def kooshball_truth_and_nearest_neighbour(kooshball):
    """``(truth (coils, N, N, N), nearest neighbour's k-space (coils, N, N, N), its hits (N, N, N))``."""
    truth = load_truth(kooshball)["kspace"][0, 0]
    dataset = read_dataset(kooshball)
    spokes = [r for r in dataset.readouts if r.is_imaging()]
    samples = np.concatenate([r.data for r in spokes], axis=1)
    coords = np.concatenate([r.traj[:, :3] for r in spokes], axis=0)
    nn, hits = grid_nearest_neighbour_3d(samples, coords, (N, N, N))
    return truth, nn, hits


def test_kooshball_accuracy_beats_nearest_neighbour(kooshball_truth_and_nearest_neighbour, kooshball_replay):
    output, _ = kooshball_replay
    _, _, volume = read_volume(output)
    truth, nn, hits = kooshball_truth_and_nearest_neighbour
    mask = hits > 0
    assert np.array_equal(np.any(volume != 0, axis=0), mask)  # coverage as nearest neighbour's

    def nrmse(kspace):
        return np.linalg.norm((kspace - truth)[:, mask]) / np.linalg.norm(truth[:, mask])

    # 0.28x measured now (0.45x when first recorded)
    assert nrmse(volume) < 0.5 * nrmse(nn)


def test_a_small_kooshball_takes_the_closed_form_and_no_shell_is_worse_than_nearest_neighbour(
    kooshball_truth_and_nearest_neighbour, kooshball_replay
):
    """training.volume.fit = auto: a 32^3 x 4-coil kooshball is within the closed form's work
    limit. No shell of |k| is gridded worse than nearest neighbour, the grid's corners beyond the
    kooshball's sphere (noise only) included, where the network's kernels lost to it."""
    output, report = kooshball_replay
    assert report.frames[0].report.training.fit == "closed_form"
    _, _, volume = read_volume(output)
    truth, nn, hits = kooshball_truth_and_nearest_neighbour
    axis = np.arange(N) - N // 2
    radius = np.sqrt(axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2) / (N / 2)
    for low, high in ((0, 0.5), (0.5, 1.0), (1.0, np.inf)):
        shell = (hits > 0) & (radius >= low) & (radius < high)
        assert shell.any()
        error = np.linalg.norm((volume - truth)[:, shell])
        assert error < np.linalg.norm((nn - truth)[:, shell]), (low, high)


def test_a_3d_frames_geometry_is_built_once_for_its_training_and_gridding(tmp_path, monkeypatch):
    """The training of a whole 3D frame hands its geometry (targets, sources and the neighbour
    sources that cost most) to that frame's gridding; a later frame of the same trajectory grids
    with the cached plan's."""
    import igrog_gadget.app.basic.datamodule as basic_datamodule
    from benchmarks.evaluation import first_frame
    from igrog_gadget.planning.gridder import FrameGridder

    path = tmp_path / "small_koosh.h5"
    simulate_to_file(path, SimulationSpec(trajectory="kooshball", matrix=16, coils=3, spokes=300, acs=12, snr=50.0, seed=4))
    config = load_config("basic", overrides=["training.volume.fit=closed_form", "calibration.edge_margin=2"])
    frame = first_frame(path, config)
    builds = []
    build = basic_datamodule.sample_geometry
    monkeypatch.setattr(basic_datamodule, "sample_geometry", lambda *args: builds.append(1) or build(*args))
    gridder = FrameGridder(config)
    try:
        first = gridder.grid(frame)
        assert len(builds) == 1
        again = gridder.grid(frame)
        assert len(builds) == 1
    finally:
        gridder.close()
    np.testing.assert_array_equal(first.kspace, again.kspace)


def test_two_column_trajectories_in_a_3d_grid_are_refused(tmp_path):
    path = tmp_path / "sos2d.h5"
    simulate_to_file(path, SimulationSpec(trajectory="radial", matrix=16, coils=2, spokes=24, partitions=4, acs=None, snr=None))
    config = load_config("basic", overrides=QUICK_3D + ["gridding.dimensions=3d"])
    with pytest.raises(InputDataError, match="trajectory_dimensions = 2, but the scan is gridded in 3D"):
        replay_file(path, tmp_path / "out.h5", config)
    assert not (tmp_path / "out.h5").exists()


def test_kz_out_of_range_is_refused(tmp_path):
    """A 16^3 kooshball whose header says encodedSpace z = 8: kz reaches +-8, beyond z's +-4."""
    path = tmp_path / "kz.h5"
    simulate_to_file(path, SimulationSpec(trajectory="kooshball", matrix=16, coils=2, spokes=100, acs=None, snr=None, seed=3))
    with h5py.File(path, "r+") as h5:
        xml = h5["dataset/xml"][0].decode()
        xml = xml.replace("<z>16</z>", "<z>8</z>").replace(
            "<kspace_encoding_step_2>\n    <minimum>0</minimum>\n    <maximum>15</maximum>\n    <center>8</center>",
            "<kspace_encoding_step_2>\n    <minimum>0</minimum>\n    <maximum>7</maximum>\n    <center>4</center>",
        )
        assert "<maximum>7</maximum>" in xml
        h5["dataset/xml"][0] = xml.encode()
    with pytest.raises(InputDataError, match=r"acquisition \d+: kz reaches 7\.\d+ grid units, beyond the z range \+-4 of encodedSpace matrixSize.z = 8"):
        replay_file(path, tmp_path / "out.h5", load_config("basic", overrides=QUICK_3D))
    assert not (tmp_path / "out.h5").exists()


def test_a_2d_acs_for_a_3d_grid_is_refused(tmp_path):
    """A 16^3 kooshball whose ACS block keeps only its kz = 0 plane (kspace_encode_step_2 = 8)."""
    source = tmp_path / "koosh16.h5"
    simulate_to_file(source, SimulationSpec(trajectory="kooshball", matrix=16, coils=2, spokes=100, acs=8, snr=None, seed=3))

    def one_plane(acq):
        calibration = acq.isFlagSet(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)
        return None if calibration and acq.idx.kspace_encode_step_2 != 8 else acq

    path = rewrite(source, tmp_path / "acs2d.h5", one_plane)
    with pytest.raises(InputDataError, match="all lie in the kz = 0 plane.*a 2D ACS cannot calibrate a 3D grid"):
        replay_file(path, tmp_path / "out.h5", load_config("basic", overrides=QUICK_3D))
    assert not (tmp_path / "out.h5").exists()


def test_recon_data_carries_the_3d_buffer(kooshball_replay):
    from igrog_gadget.gadget.recondata import ID, ReconBit, ReconData, decode_recon_data, encode_recon_data, recon_buffer_from_frame

    _, report = kooshball_replay
    frame = report.frames[0]
    buffer = recon_buffer_from_frame(frame, (256.0, 256.0, 256.0))
    assert buffer.data.shape == (N, N, N, 4, 1, 1, 1) and buffer.headers.shape == (N, N, 1, 1, 1)
    assert buffer.data[5, 7, 9, 2, 0, 0, 0] == frame.kspace[2, 9, 7, 5]  # [E0=x, E1=y, E2=z, CHA]
    head = buffer.headers[7, 9, 0, 0, 0]
    assert (head.idx.kspace_encode_step_1, head.idx.kspace_encode_step_2) == (7, 9)
    assert buffer.sampling.limits[2] == (0, N // 2, N - 1)
    decoded = decode_recon_data(encode_recon_data(ReconData([ReconBit(buffer)]))[ID.size :])
    assert np.array_equal(decoded.bits[0].data.data, buffer.data)


def test_png_shows_three_central_slices(kooshball_replay, tmp_path):
    from PIL import Image

    from igrog_gadget import preview

    _, report = kooshball_replay
    path = preview.write_rss_png(tmp_path / "volume.png", [report.frames[0].kspace])
    assert Image.open(path).size == (3 * N + 2 * 2, N)


def test_stack_of_spirals_numbering_interleaves_per_partition_is_one_frame(tmp_path):
    """A 16 x 16 x 12 stack-of-spirals (4 interleaves a partition, partition by partition) whose
    e1 numbers the interleaves within each partition (e1 limits 0..3): one frame of all 48
    readouts, gridded as the same file numbered across the volume (e1 limits 0..47)."""
    interleaves, partitions = 4, 12
    source = tmp_path / "sos.h5"
    simulate_to_file(
        source,
        SimulationSpec(trajectory="stack_of_spirals", matrix=16, coils=2, interleaves=interleaves, partitions=partitions,
                       acs=12, snr=None, seed=3),
    )

    def per_partition(acq):
        if not acq.isFlagSet(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION):
            acq.idx.kspace_encode_step_1 = acq.idx.kspace_encode_step_1 % interleaves
        return acq

    path = rewrite(source, tmp_path / "sos_e1_per_partition.h5", per_partition)
    with h5py.File(path, "r+") as h5:
        xml = h5["dataset/xml"][0].decode()
        limits = f"<kspace_encoding_step_1>\n    <minimum>0</minimum>\n    <maximum>{interleaves * partitions - 1}</maximum>"
        assert limits in xml
        h5["dataset/xml"][0] = xml.replace(limits, f"<kspace_encoding_step_1>\n    <minimum>0</minimum>\n    <maximum>{interleaves - 1}</maximum>").encode()
    config = load_config("basic", overrides=QUICK_3D + ["training.volume.max_steps=20", "calibration.volume.num_training_pairs=2000", "calibration.source=acs"])
    reference = replay_file(source, tmp_path / "reference.h5", config)
    report = replay_file(path, tmp_path / "out.h5", config)
    assert len(report.frames) == len(reference.frames) == 1
    assert int(report.frames[0].hits.sum()) == int(reference.frames[0].hits.sum())
    assert np.array_equal(report.frames[0].kspace, reference.frames[0].kspace)
