"""The product's images: ESPIRiT maps of a calibration block, Cartesian CG-SENSE of gridded
k-space, and the choice between SENSE and RSS per frame, on recorded and simulated scans with
known truth."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from igrog_gadget.config import ReconConfig, load_config
from igrog_gadget.numerics.calibration import CalibrationBlock
from igrog_gadget.numerics.fft import centred_fftn, rss_image
from igrog_gadget.recon.coil_maps import espirit_maps
from igrog_gadget.recon.images import FrameImager, sampled_coverage
from igrog_gadget.recon.sense import CartesianSense, sense_reconstruct
from igrog_gadget.replay import replay_file

DATA = Path(__file__).resolve().parents[1] / "data"
#: A quick fit (the images' accuracy, not the kernels', is tested here).
QUICK = ["training.fit=closed_form"]


def _alignment(maps: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """|<m, s / ||s||>| per pixel: 1 where the maps are the true sensitivities up to a phase."""
    unit = truth / np.linalg.norm(truth, axis=0, keepdims=True)
    return np.abs(np.sum(np.conj(maps) * unit, axis=0))


def _error(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    return float(np.linalg.norm((image - reference)[mask]) / np.linalg.norm(reference[mask]))


@pytest.fixture(scope="module")
def undersampled(tmp_path_factory):
    """radial_multi.h5 (64^2, 4 coils, 32 spokes per frame: undersampled) replayed: (report, truth)."""
    output = tmp_path_factory.mktemp("recon") / "out.h5"
    report = replay_file(DATA / "radial_multi.h5", output, load_config("basic", overrides=QUICK))
    return report, np.load(DATA / "radial_multi.truth.npz")


def test_espirit_maps_are_the_coil_sensitivities():
    truth = np.load(DATA / "radial_acs.truth.npz")
    kspace = truth["kspace"][0, 0]  # (coils, 64, 64), fully sampled
    block = torch.as_tensor(kspace[:, 20:44, 20:44])
    maps = espirit_maps(block, (64, 64)).numpy()
    inside = truth["object_mask"] > 0
    alignment = _alignment(maps, truth["sensitivity_maps"])
    assert alignment[inside].min() > 0.995  # 0.99997 measured
    norms = np.linalg.norm(maps, axis=0)
    np.testing.assert_allclose(norms[norms > 0], 1.0, rtol=1e-4)
    assert np.abs(maps[0].imag).max() < 1e-6 and maps[0].real.min() >= 0  # coil 0's phase removed


def test_espirit_maps_in_3d():
    """A 3D block gives 3D maps: smooth synthetic coils around an ellipsoid, 20^3."""
    n = 20
    z, y, x = np.meshgrid(*[np.arange(n) - n // 2] * 3, indexing="ij")
    obj = ((x / 8.0) ** 2 + (y / 7.0) ** 2 + (z / 6.0) ** 2 <= 1).astype(np.float32)
    centres = [(-12, 0, 0), (12, 0, 0), (0, -12, 0), (0, 12, 5)]
    sens = np.stack(
        [np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / 400.0) * np.exp(1j * 0.3 * k) for k, (cx, cy, cz) in enumerate(centres)]
    ).astype(np.complex64)
    kspace = centred_fftn(sens * obj, (-3, -2, -1))
    block = torch.as_tensor(kspace[:, 4:16, 4:16, 4:16])
    maps = espirit_maps(block, (n, n, n), kernel=5).numpy()
    assert maps.shape == (4, n, n, n)
    inner = ((x / 6.0) ** 2 + (y / 5.0) ** 2 + (z / 4.0) ** 2) <= 1  # away from the object's edge
    assert _alignment(maps, sens)[inner].min() > 0.99


def test_sense_solves_the_weighted_normal_equations():
    """CG-SENSE's image satisfies (S^H F^H W F S + lam I) x = S^H F^H W y (checked in numpy)."""
    rng = np.random.default_rng(0)
    coils, ny, nx = 3, 16, 12
    maps = (rng.standard_normal((coils, ny, nx)) + 1j * rng.standard_normal((coils, ny, nx))).astype(np.complex64)
    maps /= np.linalg.norm(maps, axis=0, keepdims=True)
    weights = rng.integers(0, 4, (ny, nx)).astype(np.float32)
    kspace = (rng.standard_normal((coils, ny, nx)) + 1j * rng.standard_normal((coils, ny, nx))).astype(np.complex64)
    operator = CartesianSense(torch.as_tensor(maps).to(torch.complex128), torch.as_tensor(weights))
    lam = 0.05
    image = sense_reconstruct(torch.as_tensor(kspace), operator, lam, 200).numpy()

    def normal(x: np.ndarray) -> np.ndarray:
        k = centred_fftn(maps * x, (-2, -1)) * weights
        return np.sum(np.conj(maps) * centred_fftn(k, (-2, -1), inverse=True), axis=0) + lam * x

    rhs = np.sum(np.conj(maps) * centred_fftn(kspace * weights, (-2, -1), inverse=True), axis=0)
    np.testing.assert_allclose(normal(image), rhs, atol=1e-6 * np.abs(rhs).max())


def test_sense_image_of_an_undersampled_frame_beats_its_rss(undersampled):
    """32 spokes on 64^2: SENSE with the frame's own calibration block, against the truth's RSS."""
    report, truth = undersampled
    frame = report.frames[0]
    reference = np.asarray(rss_image(truth["kspace"][0, 0]))
    inside = truth["object_mask"] > 0
    picture = FrameImager(load_config("basic").recon).image(frame)
    assert picture.method == "sense" and picture.note == ""
    rss_error = _error(np.asarray(rss_image(frame.kspace)), reference, inside)
    sense_error = _error(picture.magnitude, reference, inside)
    assert sense_error < 0.5 * rss_error, (sense_error, rss_error)


def test_maps_are_made_once_per_calibration_key(undersampled, monkeypatch):
    report, _ = undersampled
    made = []
    import igrog_gadget.recon.images as images

    original = images.espirit_maps
    monkeypatch.setattr(images, "espirit_maps", lambda *a, **k: made.append(1) or original(*a, **k))
    imager = FrameImager(ReconConfig(image="sense"))
    pictures = [imager.image(frame) for frame in report.frames]  # 2 slices x 2 repetitions
    assert len(made) == len({frame.calibration_key for frame in report.frames}) == 2
    again = FrameImager(ReconConfig(image="sense")).image(report.frames[-1])
    np.testing.assert_array_equal(again.magnitude, pictures[-1].magnitude)  # same input, same image


def test_fully_sampled_frames_keep_their_rss_image(tmp_path):
    report = replay_file(DATA / "radial_acs.h5", tmp_path / "out.h5", load_config("basic", overrides=QUICK))
    frame = report.frames[0]  # 100 spokes on 64^2
    assert sampled_coverage(frame.hits) >= 0.95
    picture = FrameImager(ReconConfig()).image(frame)
    assert picture.method == "rss"
    np.testing.assert_array_equal(picture.magnitude, rss_image(frame.kspace))


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda block: None, "no calibration block"),
        (lambda block: dataclasses.replace(block, kspace=block.kspace[:, :6, :6]), "too small"),
        (lambda block: dataclasses.replace(block, kspace=block.kspace[:2]), "coils"),
    ],
    ids=["none", "tiny", "other-coils"],
)
def test_a_frame_without_usable_calibration_falls_back_to_rss(undersampled, change, reason, caplog):
    report, _ = undersampled
    frame = dataclasses.replace(report.frames[0], calibration=change(report.frames[0].calibration))
    picture = FrameImager(ReconConfig(image="sense")).image(frame)
    assert picture.method == "rss" and reason in picture.note
    np.testing.assert_array_equal(picture.magnitude, rss_image(frame.kspace))
    assert any("RSS images instead of SENSE" in r.getMessage() and reason in r.getMessage() for r in caplog.records)


def test_maps_cropped_away_everywhere_fall_back_to_rss(undersampled):
    report, _ = undersampled
    empty = np.zeros_like(report.frames[0].calibration.kspace)
    block = CalibrationBlock(empty, -12, -12, "acs")  # nothing to calibrate from: every eigenvalue 0
    frame = dataclasses.replace(report.frames[0], calibration=block)
    picture = FrameImager(ReconConfig(image="sense")).image(frame)
    assert picture.method == "rss" and "cover only" in picture.note


@pytest.mark.skipif(shutil.which("bart") is None, reason="BART (apt-get install bart) is not installed")
def test_sense_agrees_with_bart_pics(undersampled, tmp_path):
    """Mask weighting, the same maps and lambda: BART ``pics -l2 -r lam -w 1`` gives our image
    (the issue's target: within 2 %; 1e-5 measured)."""
    report, _ = undersampled
    frame = report.frames[0]
    maps = espirit_maps(torch.as_tensor(frame.calibration.kspace), frame.kspace.shape[1:]).numpy()
    mask = (frame.hits > 0).astype(np.float32)
    lam, iterations = 0.01, 30
    ours = sense_reconstruct(
        torch.as_tensor(frame.kspace), CartesianSense(torch.as_tensor(maps), torch.as_tensor(mask)), lam, iterations
    ).numpy()
    coils, ny, nx = frame.kspace.shape
    for name, array in (("k", frame.kspace * mask), ("s", maps)):
        Path(tmp_path / f"{name}.hdr").write_text(f"# Dimensions\n{nx} {ny} 1 {coils}\n")
        np.ascontiguousarray(array, np.complex64).tofile(tmp_path / f"{name}.cfl")
    subprocess.run(
        ["bart", "pics", "-l2", "-r", repr(lam), "-i", str(iterations), "-w", "1", str(tmp_path / "k"), str(tmp_path / "s"), str(tmp_path / "x")],
        check=True, capture_output=True,
    )
    theirs = np.fromfile(tmp_path / "x.cfl", np.complex64).reshape(ny, nx)
    assert np.linalg.norm(ours - theirs) / np.linalg.norm(theirs) < 0.02


def test_sense_of_an_undersampled_kooshball(tmp_path):
    """3D: a 20^3 kooshball of 60 spokes (27 % of the sampled ball's points hit) gets a 3D SENSE
    image with 3D ESPIRiT maps of its calibration block, at 0.6x the RSS image's error at most
    (0.48x measured; the truth's k-space corners beyond the sampled ball bound both)."""
    from igrog_gadget.simulate import SimulationSpec, simulate_to_file

    path = tmp_path / "koosh.h5"
    simulate_to_file(path, SimulationSpec(trajectory="kooshball", matrix=20, coils=4, spokes=60, acs=12, seed=11))
    volume = ["training.volume.fit=closed_form", "gridding.neighbour_sources=0", "calibration.edge_margin=2"]
    (frame,) = replay_file(path, tmp_path / "out.h5", load_config("basic", overrides=volume)).frames
    assert frame.kspace.ndim == 4 and frame.calibration.dims == 3
    truth = np.load(path.with_name("koosh.truth.npz"))
    reference = np.asarray(rss_image(truth["kspace"].reshape(4, 20, 20, 20)))
    inside = truth["object_mask"].reshape(20, 20, 20) > 0
    picture = FrameImager(load_config("basic").recon).image(frame)
    assert picture.method == "sense" and picture.magnitude.shape == (20, 20, 20)
    rss_error = _error(np.asarray(rss_image(frame.kspace)), reference, inside)
    assert _error(picture.magnitude, reference, inside) < 0.6 * rss_error


def test_maps_are_the_same_whatever_the_slab(monkeypatch):
    """The per-pixel operator is evaluated a slab of planes at a time (memory bounded whatever
    the grid): one plane at a time gives the maps of the whole grid at once."""
    import igrog_gadget.recon.coil_maps as coil_maps

    truth = np.load(DATA / "radial_acs.truth.npz")
    block = torch.as_tensor(truth["kspace"][0, 0][:, 20:44, 20:44])
    whole = espirit_maps(block, (64, 64)).numpy()
    monkeypatch.setattr(coil_maps, "SLAB_BYTES", 1)
    np.testing.assert_allclose(espirit_maps(block, (64, 64)).numpy(), whole, atol=1e-5)  # float32 sums in another order
