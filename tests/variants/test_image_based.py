"""The image_based variant: coil images from a series, a file or the data; accuracy; bad input."""

from __future__ import annotations

import logging

import h5py
import ismrmrd
import numpy as np
import pytest
from variants_helpers import ACCURATE, COMPARE, FAST, coil_images_of, copy_with, error, grid, recorded, truth

from igrog_gadget.core.frame import FrameInputs, FrameTrajectory
from igrog_gadget.app.image_based.sources import calibration_images, coil_images_from_data
from igrog_gadget.cli import main
from igrog_gadget.config import ImageCalibrationConfig, load_config
from igrog_gadget.errors import CalibrationError, ConfigError
from igrog_gadget.numerics.fft import centred_fft2


def central_acs(lines: int):
    """Acquisition filter keeping only the central ``lines`` ACS lines of a 64-matrix file."""

    def change(index, acq):
        if acq.isFlagSet(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION):
            ky = acq.idx.kspace_encode_step_1 - 32
            return acq if -lines // 2 <= ky < lines // 2 else None
        return acq

    return change


@pytest.fixture(scope="module")
def radial_with_images(tmp_path_factory):
    """radial_acs.h5 plus a coil_images series (its field-free truth), and a 16-line-ACS copy."""
    folder = tmp_path_factory.mktemp("image_based")
    images = {"coil_images": coil_images_of("radial_acs")}
    full = copy_with(folder, "radial_acs", images=images)
    small = copy_with(folder, "radial_acs", images=images, change=central_acs(16), suffix="_acs16")
    return full, small


def test_series_coil_images_match_basic_with_full_and_small_acs(radial_with_images):
    # basic's joint calibration uses the dense radial centre too, so the margin with a small ACS
    # is modest on radial data (0.9x here); on spirals it is about 0.7x (benchmarks/variants_benchmark.py)
    full, small = radial_with_images
    basic_full, case = grid("basic", full, COMPARE)
    image_full, _ = grid("image_based", full, COMPARE)
    assert image_full.report.training.calibration == "images (series:coil_images)"
    assert error(image_full, case) <= 1.03 * error(basic_full, case), (error(image_full, case), error(basic_full, case))

    basic_small, small_case = grid("basic", small, COMPARE)
    basic_acs, _ = grid("basic", small, COMPARE + ["calibration.source=acs"])
    image_small, _ = grid("image_based", small, COMPARE)
    best_basic = min(error(basic_small, small_case), error(basic_acs, small_case))
    # with the network fit image_based scored 0.9x of basic here; basic's closed-form kernels and
    # its centre from the joint fit (radial data's dense centre) now match it
    assert error(image_small, small_case) <= 1.03 * best_basic, (error(image_small, small_case), best_basic)


def test_images_made_from_the_data_match_basic_self_calibration():
    path = recorded("radial_selfcal")
    basic, case = grid("basic", path, COMPARE)
    image, _ = grid("image_based", path, COMPARE)
    assert image.report.training.calibration == "images (data)"
    assert error(image, case) <= 1.05 * error(basic, case), (error(image, case), error(basic, case))


def test_coil_images_from_data_reproduce_the_central_kspace():
    config = load_config("image_based")
    from benchmarks.evaluation import load_case

    case = load_case("radial_selfcal", recorded("radial_selfcal"), config)
    images, noise_std = coil_images_from_data(case.frame.flat_samples(), case.frame.flat_coords(), size=32)
    assert images.shape == (4, 32, 32)
    kspace = centred_fft2(images)[:, 8:24, 8:24]  # k in [-8, 8)
    reference = case.truth[:, 24:40, 24:40]
    assert np.linalg.norm(kspace - reference) / np.linalg.norm(reference) < 0.05
    assert 0.7 * case.noise_std < noise_std < 1.4 * case.noise_std, (noise_std, case.noise_std)


def test_sensitivity_maps_with_reference_image(tmp_path):
    t = truth("radial_acs")
    images = {"sensitivity_maps": t["sensitivity_maps"], "reference_image": t["image"][0, 0][None]}
    path = copy_with(tmp_path, "radial_acs", images=images, change=central_acs(16))
    result, case = grid("image_based", path, ACCURATE)
    assert result.report.training.calibration == "images (series:sensitivity_maps+reference image)"
    assert error(result, case) < 0.07


def frame_with(images: dict[str, np.ndarray], coils: int = 4, matrix: int = 64) -> FrameInputs:
    """A minimal frame for the image-source logic (no samples needed when images are given)."""
    traj = np.zeros((1, 8, 2), dtype=np.float32)
    return FrameInputs(
        samples=np.zeros((coils, 1, 8), np.complex64), trajectory=FrameTrajectory(traj, (matrix, matrix)), images=images
    )


def no_noise_estimate(monkeypatch):
    monkeypatch.setattr("igrog_gadget.app.image_based.sources.data_noise_in_image_units", lambda *a: None)


def test_image_file_formats_and_preference(tmp_path, monkeypatch):
    no_noise_estimate(monkeypatch)
    t = truth("radial_acs")
    coil = coil_images_of("radial_acs")
    maps, reference = t["sensitivity_maps"], t["image"][0, 0]
    np.save(tmp_path / "coil.npy", coil)
    np.savez(tmp_path / "maps.npz", sensitivity_maps=maps, reference_image=reference[None])
    with h5py.File(tmp_path / "plain.h5", "w") as handle:
        handle["coil_images"] = coil
    mrd = copy_with(tmp_path, "radial_acs", images={"coil_images": coil})

    for name, expected in (("coil.npy", coil), ("plain.h5", coil), (mrd.name, coil)):
        found = calibration_images(frame_with({}), ImageCalibrationConfig(image_file=str(tmp_path / name)))
        assert found.source == f"file:{tmp_path / name}"
        np.testing.assert_allclose(found.images, expected, rtol=1e-6, atol=1e-7)
    found = calibration_images(frame_with({}), ImageCalibrationConfig(image_file=str(tmp_path / "maps.npz")))
    assert found.source.endswith("+reference image")
    # The maps times the reference (plus 10 % white noise, see broadband_reference) is close to the coil images.
    assert np.linalg.norm(found.images - maps * reference) < 0.15 * np.linalg.norm(maps * reference)

    # An image series in the input wins over the file.
    series = coil * 2
    found = calibration_images(frame_with({"coil_images": series}), ImageCalibrationConfig(image_file=str(tmp_path / "coil.npy")))
    assert found.source == "series:coil_images"
    np.testing.assert_array_equal(found.images, series)


@pytest.mark.parametrize(
    "images, phrases",
    [
        ({"coil_images": np.ones((3, 64, 64), np.complex64)}, ["'coil_images'", "3 channels", "4 coils"]),
        ({"coil_images": np.ones((4, 80, 80), np.complex64)}, ["'coil_images'", "matrix 80 x 80", "64 x 64"]),
        ({"coil_images": np.full((4, 64, 64), np.nan, np.complex64)}, ["'coil_images'", "non-finite"]),
        ({"coil_images": np.ones((4, 64, 64, 2), np.complex64)}, ["'coil_images'", "shape (4, 64, 64, 2)"]),
        (
            {"sensitivity_maps": np.ones((4, 64, 64), np.complex64), "reference_image": np.ones((2, 64, 64), np.complex64)},
            ["'reference_image'", "one channel"],
        ),
    ],
)
def test_bad_image_series_are_clear_errors(images, phrases):
    with pytest.raises(CalibrationError) as caught:
        calibration_images(frame_with(images), ImageCalibrationConfig())
    for phrase in phrases:
        assert phrase in str(caught.value), str(caught.value)


def test_bad_image_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        calibration_images(frame_with({}), ImageCalibrationConfig(image_file=str(tmp_path / "missing.npy")))
    (tmp_path / "images.txt").write_text("1 2 3")
    with pytest.raises(ConfigError, match="unknown format"):
        calibration_images(frame_with({}), ImageCalibrationConfig(image_file=str(tmp_path / "images.txt")))
    np.savez(tmp_path / "other.npz", something=np.ones(3))
    with pytest.raises(ConfigError, match="holds none of"):
        calibration_images(frame_with({}), ImageCalibrationConfig(image_file=str(tmp_path / "other.npz")))


def replay(args, caplog):
    caplog.clear()
    with caplog.at_level(logging.INFO):
        code = main(["-q", "replay", *map(str, args), *[a for o in FAST for a in ("--set", o)]])
    return code, caplog.text


def test_replay_with_image_based_and_wrong_series_shape(tmp_path, caplog):
    good = copy_with(tmp_path, "radial_acs", images={"coil_images": coil_images_of("radial_acs")})
    output = tmp_path / "out.h5"
    code, text = replay([good, output, "--variant", "image_based"], caplog)
    assert code == 0, text
    assert output.exists()

    bad = copy_with(tmp_path, "radial_acs", images={"coil_images": coil_images_of("radial_acs")[:2]}, suffix="_bad")
    output = tmp_path / "bad_out.h5"
    code, text = replay([bad, output, "--variant", "image_based"], caplog)
    assert code == 2, text
    assert "'coil_images'" in text and "2 channels" in text, text
    assert not output.exists()
    assert not list(tmp_path.glob("bad_out*.partial*"))


def test_no_images_and_undersampled_centre_is_a_calibration_error(tmp_path):
    # Keep one spoke in four: the centre is no longer densely sampled and there is no image series.
    path = copy_with(tmp_path, "radial_selfcal", change=lambda i, acq: acq if i % 4 == 1 else None, suffix="_sparse")
    with pytest.raises(CalibrationError, match="cannot make coil images from the data"):
        grid("image_based", path, FAST)


def test_image_series_are_chosen_by_slice_and_contrast():
    from types import SimpleNamespace

    from igrog_gadget.scan import ImageItem
    from igrog_gadget.stream.pipeline import GriddingPipeline

    def item(series, value, slice_index=None, contrast=None, channels=1):
        source = None
        if slice_index is not None:
            source = ismrmrd.Image.from_array(np.zeros((channels, 1, 4, 4), np.complex64), transpose=False)
            source.slice, source.contrast = slice_index, contrast or 0
        return ImageItem(series=series, data=np.full((channels, 1, 4, 4), value, np.complex64), source=source)

    inputs = {
        "coil_images": [item("coil_images", s * 10 + c, s, c, channels=2) for s in (0, 1) for c in (0, 1)],
        "b0map": [item("b0map", 7.0)],  # untagged: fits every frame
        "sensitivity_maps": [item("sensitivity_maps", 1.0, 0), item("sensitivity_maps", 2.0, 0)],  # one per coil
    }
    pipeline = SimpleNamespace(image_inputs=inputs)
    chosen = GriddingPipeline.images_for(pipeline, SimpleNamespace(calibration_key=(1, 1, 0)))
    assert chosen["coil_images"].shape == (2, 4, 4) and np.all(chosen["coil_images"] == 11)
    assert chosen["b0map"].shape == (1, 4, 4) and np.all(chosen["b0map"] == 7)
    # No map tagged with slice 1: all of them, stacked along channels in arrival order.
    assert chosen["sensitivity_maps"].shape == (2, 4, 4)
    assert chosen["sensitivity_maps"][1, 0, 0] == 2


def test_variants_are_registered():
    from igrog_gadget.app.registry import get_variant

    assert get_variant("image_based").name == "image_based"
    assert get_variant("fieldcorr").name == "fieldcorr"


def test_sensitivity_maps_without_reference_are_a_last_resort(monkeypatch):
    from benchmarks.evaluation import load_case

    maps = truth("radial_acs")["sensitivity_maps"]
    case = load_case("radial_acs", recorded("radial_acs"), load_config("image_based"))
    case.frame.images = {"sensitivity_maps": maps}
    assert calibration_images(case.frame, ImageCalibrationConfig()).source == "data"
    no_noise_estimate(monkeypatch)
    # The data cannot give images (no samples): maps x white noise.
    found = calibration_images(frame_with({"sensitivity_maps": maps}), ImageCalibrationConfig())
    assert found.source == "series:sensitivity_maps+white reference"
    assert calibration_images(frame_with({"sensitivity_maps": maps}), ImageCalibrationConfig(source="series")).weak
