"""``igrog pipe``: MRD v2 and ISMRMRD v1 streams in, the same format out, equal to ``igrog
replay`` of the same data; a consumer nobody here wrote (mrd-python's ``stream_recon``) turns
the output into the expected image; cut and corrupt streams end with one clear error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ismrmrd
import numpy as np
import pytest
from app_helpers import DATA

mrd = pytest.importorskip("mrd", reason="mrd-python (the [mrd] extra) is not installed")

from igrog_gadget.config import load_config  # noqa: E402
from igrog_gadget.gadget import protocol  # noqa: E402
from igrog_gadget.gadget.protocol import StreamFileReader  # noqa: E402
from igrog_gadget.numerics.fft import rss_image  # noqa: E402
from igrog_gadget.io import mrd2  # noqa: E402
from igrog_gadget.io.acquisitions import read_acquisitions, read_header_xml  # noqa: E402
from igrog_gadget.replay import replay_file  # noqa: E402

#: Closed-form kernels: quick and deterministic.
QUICK = ["training.fit=closed_form"]


def _write_mrd2(path: Path, source: Path) -> Path:
    with open(path, "wb") as stream:
        mrd2.write_mrd2(stream, read_header_xml(source).decode(), read_acquisitions(source))
    return path


def _write_ismrmrd_stream(path: Path, source: Path) -> Path:
    """An ISMRMRD v1 stream as ``ismrmrd_hdf5_to_stream`` writes it: HEADER, acquisitions, CLOSE."""
    with open(path, "wb") as stream:
        stream.write(protocol.encode_text_message(protocol.HEADER, read_header_xml(source).decode()))
        for acquisition in read_acquisitions(source):
            stream.write(protocol.encode_acquisition(acquisition))
        stream.write(protocol.encode_close())
    return path


def _igrog(tmp_path: Path, *args: str, stdin: bytes) -> tuple[int, bytes]:
    """``igrog pipe ARGS < stdin`` run in this process (the CLI's ``main``): (exit code, output).
    The CLI fixes the process's native thread count from ``gridding.cpu_threads``: it is given
    this worker's count, so that the pipe and the replays it is compared with (and the tests after
    it in this process) sum in the same order."""
    import torch

    from igrog_gadget.cli import main

    source, output = tmp_path / "stdin.bin", tmp_path / "stdout.bin"
    source.write_bytes(stdin)
    output.unlink(missing_ok=True)
    threads = ["--set", f"gridding.cpu_threads={torch.get_num_threads()}"]
    code = main(["-q", "pipe", "-i", str(source), "-o", str(output), *threads, *args])
    return code, output.read_bytes() if output.exists() else b""


def _mrd2_items(data: bytes) -> tuple[str, list]:
    xml, items = mrd2.read_mrd2(__import__("io").BytesIO(data))
    return xml, [mrd2.item_from_mrd2(item) for item in items]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """radial_multi.h5 (2 slices x 2 repetitions) replayed: its acquisitions (noise, calibration
    lines, frame lines) and the path."""
    output = tmp_path_factory.mktemp("pipe") / "replay.h5"
    replay_file(DATA / "radial_multi.h5", output, load_config("basic", overrides=QUICK))
    return read_acquisitions(output)


def test_mrd2_in_mrd2_out_equals_replay(tmp_path, replayed):
    source = _write_mrd2(tmp_path / "in.mrd", DATA / "radial_multi.h5")
    code, output = _igrog(tmp_path, *sum((["--set", o] for o in QUICK), []), stdin=source.read_bytes())
    assert code == 0
    xml, items = _mrd2_items(output)
    header = ismrmrd.xsd.CreateFromDocument(xml)
    assert header.encoding[0].trajectory == ismrmrd.xsd.trajectoryType.CARTESIAN
    assert (header.encoding[0].encodedSpace.matrixSize.x, header.encoding[0].encodedSpace.matrixSize.y) == (64, 64)
    acquisitions = [i for i in items if isinstance(i, ismrmrd.Acquisition)]
    weights = [i for i in items if isinstance(i, ismrmrd.Image)]
    assert len(acquisitions) == len(replayed) and len(weights) == 4  # one igrog_weights image per frame
    for ours, theirs in zip(acquisitions, replayed):
        assert bytes(ours.getHead()) == bytes(theirs.getHead())
        np.testing.assert_array_equal(ours.data, theirs.data)


def test_ismrmrd_stream_in_and_out_and_converted_to_mrd2(tmp_path):
    source = _write_ismrmrd_stream(tmp_path / "in.bin", DATA / "spiral_acs.h5")
    replay_file(DATA / "spiral_acs.h5", tmp_path / "replay.h5", load_config("basic", overrides=QUICK))
    expected = read_acquisitions(tmp_path / "replay.h5")
    sets = sum((["--set", o] for o in QUICK), [])
    code, output = _igrog(tmp_path, *sets, stdin=source.read_bytes())
    assert code == 0
    reader = StreamFileReader(__import__("io").BytesIO(output))
    messages = []
    while not messages or messages[-1].mid != protocol.CLOSE:
        messages.append(reader.read_message())
    assert messages[0].mid == protocol.HEADER
    lines = [m.value for m in messages if m.mid == protocol.ACQUISITION]
    assert len(lines) == len(expected)
    for ours, theirs in zip(lines, expected):
        np.testing.assert_array_equal(ours.data, theirs.data)
    code, converted = _igrog(tmp_path, "--format", "mrd2", *sets, stdin=source.read_bytes())
    assert code == 0 and converted[:5] == b"yardl"
    _, items = _mrd2_items(converted)
    acquisitions = [i for i in items if isinstance(i, ismrmrd.Acquisition)]
    assert all(np.array_equal(a.data, b.data) for a, b in zip(acquisitions, expected))


@pytest.fixture(scope="module")
def stack_of_stars(tmp_path_factory) -> Path:
    """A small stack-of-stars scan: 4 partitions of 48 x 48, 40 spokes each."""
    from igrog_gadget.simulate import SimulationSpec, simulate_to_file

    path = tmp_path_factory.mktemp("stack") / "stack.h5"
    simulate_to_file(path, SimulationSpec(matrix=48, coils=4, spokes=40, acs=24, partitions=4, seed=9))
    return path


@pytest.mark.parametrize("scan", ["radial_acs", "spiral_acs", "stack_of_stars"])
def test_mrd_pythons_stream_recon_images_the_pipe_output(tmp_path, scan, stack_of_stars):
    """``igrog pipe < in.mrd | python -m mrd.tools.stream_recon``, then ``export_png_images``,
    as a shell runs them, for a radial, a spiral and a stack-of-stars stream: the image equals
    the RSS of replay's gridded k-space (the stack's partitions Fourier-transformed along kz).
    stream_recon stacks every acquisition into its image, flagged or not, so the calibration
    block is left out for it (``output.calibration = false``)."""
    from PIL import Image

    path = stack_of_stars if scan == "stack_of_stars" else DATA / f"{scan}.h5"
    source = _write_mrd2(tmp_path / "in.mrd", path)
    overrides = [*QUICK, "output.calibration=false"]
    python = sys.executable
    recon, png_prefix = tmp_path / "recon.mrd", tmp_path / "image_"
    if scan == "radial_acs":  # the whole shell pipeline once
        sets = " ".join(f"--set {o}" for o in overrides)
        gridding = f"{python} -m igrog_gadget -q pipe {sets} < {source}"
    else:  # the pipe in this process (no second torch start), the consumers as processes
        code, gridded = _igrog(tmp_path, *sum((["--set", o] for o in overrides), []), stdin=source.read_bytes())
        assert code == 0
        gridding = f"cat {tmp_path / 'stdout.bin'}"
    pipeline = (
        f"{gridding} | {python} -m mrd.tools.stream_recon > {recon}"
        f" && {python} -m mrd.tools.export_png_images -i {recon} -o {png_prefix}"
    )
    result = subprocess.run(pipeline, shell=True, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    with open(tmp_path / "recon.mrd", "rb") as stream:
        reader = mrd.BinaryMrdReader(stream)
        reader.read_header()
        (image,) = [item.value for item in reader.read_data()]
    report = replay_file(path, tmp_path / "replay.h5", load_config("basic", overrides=overrides))
    kspace = np.stack([frame.kspace for frame in report.frames], axis=1)  # (coils, partitions, ny, nx)
    expected = np.asarray(rss_image(kspace if kspace.shape[1] > 1 else kspace[:, 0]))
    got = image.data[0] if kspace.shape[1] > 1 else image.data[0, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * float(expected.max()))
    png = np.asarray(Image.open(tmp_path / "image_0000.png"), dtype=np.float64)
    first = expected if expected.ndim == 2 else expected[0]
    assert np.abs(png - first * 255 / expected.max()).max() <= 1.0  # 8-bit rounding


def test_a_stream_cut_inside_an_item_keeps_the_frames_completed_before(tmp_path, replayed, caplog):
    """radial_multi's stream cut in the middle of its last frame: exit code 2, one message, and
    the first three frames (every one completed before the cut) on the output."""
    whole = _write_mrd2(tmp_path / "in.mrd", DATA / "radial_multi.h5").read_bytes()
    cut = whole[: int(len(whole) * 0.9)]
    code, output = _igrog(tmp_path, *sum((["--set", o] for o in QUICK), []), stdin=cut)
    assert code == 2
    (error,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "ends inside item" in error.getMessage() and error.exc_info is None
    _, items = _mrd2_items(output)
    frames = [i for i in items if isinstance(i, ismrmrd.Image)]  # one weights image per frame
    assert len(frames) == 3
    acquisitions = [i for i in items if isinstance(i, ismrmrd.Acquisition)]
    for ours, theirs in zip(acquisitions, replayed):
        np.testing.assert_array_equal(ours.data, theirs.data)


@pytest.mark.parametrize(
    "data, message",
    [(b"not a stream at all", "not an MRD v2 or ISMRMRD v1 stream"), (b"yardl\x01\x00\x00\x00garbage", "MRD v2")],
    ids=["garbage", "bad-mrd2"],
)
def test_bad_streams_get_one_error_and_no_output_file(tmp_path, data, message, caplog):
    code, output = _igrog(tmp_path, stdin=data)
    assert code == 2 and output == b""
    assert not (tmp_path / "stdout.bin").exists()
    (error,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert message in error.getMessage() and error.exc_info is None


def test_replay_reads_mrd2_files(tmp_path, replayed):
    source = _write_mrd2(tmp_path / "in.mrd", DATA / "radial_multi.h5")
    replay_file(source, tmp_path / "out.h5", load_config("basic", overrides=QUICK))
    for ours, theirs in zip(read_acquisitions(tmp_path / "out.h5"), replayed):
        assert bytes(ours.getHead()) == bytes(theirs.getHead())
        np.testing.assert_array_equal(ours.data, theirs.data)


def _pingvin() -> str | None:
    """The command that runs Pingvin: ``$PINGVIN`` (e.g. a wrapper setting its library path), or
    ``pingvin`` on the PATH; None when neither is there."""
    import os
    import shutil

    return os.environ.get("PINGVIN") or shutil.which("pingvin")


@pytest.mark.skipif(_pingvin() is None, reason="no Pingvin here (set PINGVIN to its command; docs/pingvin.md builds one)")
@pytest.mark.parametrize("scan", ["radial_acs", "spiral_acs", "stack_of_stars"])
def test_pingvin_images_the_pipe_output(tmp_path, scan, stack_of_stars):
    """``igrog pipe < in.mrd | pingvin -c default.xml``: Pingvin's Cartesian chain (noise
    adjust, buckets, SimpleRecon) returns the RSS of replay's gridded k-space, the calibration
    block taken as its reference data, the weights images passed through."""
    path = stack_of_stars if scan == "stack_of_stars" else DATA / f"{scan}.h5"
    source = _write_mrd2(tmp_path / "in.mrd", path)
    sets = " ".join(f"--set {o}" for o in QUICK)
    result = subprocess.run(
        f"{sys.executable} -m igrog_gadget -q pipe {sets} < {source} | {_pingvin()} -c default.xml",
        shell=True, capture_output=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    reader = mrd.BinaryMrdReader(__import__("io").BytesIO(result.stdout))
    reader.read_header()
    images = [item.value for item in reader.read_data()]
    (recon,) = [image for image in images if image.head.image_series_index != 99]  # 99: igrog_weights, passed through
    report = replay_file(path, tmp_path / "replay.h5", load_config("basic", overrides=QUICK))
    kspace = np.stack([frame.kspace for frame in report.frames], axis=1)  # (coils, partitions, ny, nx)
    expected = np.asarray(rss_image(kspace if kspace.shape[1] > 1 else kspace[:, 0]))
    got = recon.data[0] if kspace.shape[1] > 1 else recon.data[0, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * float(expected.max()))


def test_images_on_request_and_what_is_not_gridded_passes_through(tmp_path):
    """``--emit images``: the frame's image (as the gadget's ``images`` output makes it); the
    stream's own images (spiral_b0's B0 map, coil images, maps) and a waveform pass through, in order."""
    from igrog_gadget.recon.images import FrameImager

    source = DATA / "spiral_b0.h5"
    dataset = ismrmrd.Dataset(str(source), "dataset", create_if_needed=False)
    try:
        images = [dataset.read_image(s, i) for s in ("b0map", "coil_images") for i in range(dataset.number_of_images(s))]
    finally:
        dataset.close()
    waveform = ismrmrd.Waveform.from_array(np.arange(12, dtype=np.uint32).reshape(2, 6))
    acquisitions = read_acquisitions(source)
    with open(tmp_path / "in.mrd", "wb") as stream:
        mrd2.write_mrd2(stream, read_header_xml(source).decode(), [acquisitions[0], waveform, *images, *acquisitions[1:]])
    code, output = _igrog(tmp_path, "--emit", "images", *sum((["--set", o] for o in QUICK), []), stdin=(tmp_path / "in.mrd").read_bytes())
    assert code == 0
    _, items = _mrd2_items(output)
    kinds = [type(i).__name__ for i in items]
    assert kinds == ["Acquisition", "Waveform", *["Image"] * len(images), "Image"]  # noise, waveform, images, the frame
    np.testing.assert_array_equal(items[1].data, waveform.data)
    for passed, original in zip(items[2:-1], images):
        np.testing.assert_array_equal(passed.data, original.data)
    report = replay_file(source, tmp_path / "replay.h5", load_config("basic", overrides=QUICK))
    expected = FrameImager(load_config("basic").recon).image(report.frames[0])
    picture = items[-1]
    assert picture.meta["ImageProcessingHistory"] == ["IGROG", expected.method.upper()]
    np.testing.assert_allclose(picture.data[0, 0], expected.magnitude, rtol=1e-4, atol=1e-5 * float(expected.magnitude.max()))
