"""The MRD dialect against the reference client: kspaceKelvin/python-ismrmrd-server's own ``client.py``.

The public repository is not part of this project; the test runs its client from a checkout named
by ``$IGROG_MRD_SERVER_DIR`` and is skipped without one (see tests/data/README.md)::

    git clone https://github.com/kspaceKelvin/python-ismrmrd-server /some/where
    IGROG_MRD_SERVER_DIR=/some/where .venv/bin/pytest tests/gadget/test_gadget_mrd_client.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import ismrmrd
import numpy as np
import pytest
from gadget_helpers import data_file

HOW_TO = (
    "git clone https://github.com/kspaceKelvin/python-ismrmrd-server and set IGROG_MRD_SERVER_DIR"
    " to that checkout to run the reference MRD client against igrog serve --mrd"
)


def client_dir() -> Path:
    """The python-ismrmrd-server checkout named by $IGROG_MRD_SERVER_DIR (skips the test without one)."""
    named = os.environ.get("IGROG_MRD_SERVER_DIR", "")
    if not named:
        pytest.skip(f"IGROG_MRD_SERVER_DIR is not set: {HOW_TO}")
    directory = Path(named)
    if not (directory / "client.py").is_file():
        pytest.skip(f"IGROG_MRD_SERVER_DIR={named} has no client.py: {HOW_TO}")
    return directory


def test_reference_mrd_client_gets_images(mrd_server, tmp_path: Path):
    checkout = client_dir()
    source = data_file("radial_multi.h5")  # 2 slices x 2 repetitions
    output = tmp_path / "client_out.h5"
    result = subprocess.run(
        [
            sys.executable,
            "client.py",
            "-a",
            "127.0.0.1",
            "-p",
            str(mrd_server.port),
            "-o",
            str(output),
            "-G",
            "igrog",
            "-c",
            "igrog",
            str(source),
        ],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=180,
    )
    log = result.stdout + result.stderr
    # the client exits 0 whatever happens: judge by what came back
    assert "Received     4 images" in log, log[-3000:]
    assert "Received MRD_MESSAGE_CLOSE" in log
    with h5py.File(output, "r") as h5:
        images = h5["igrog/image_1/data"][()]
        headers = h5["igrog/image_1/header"][()]
    assert images.shape == (4, 1, 1, 64, 64) and images.dtype == np.float32
    assert np.all(images.reshape(4, -1).max(axis=1) > 0)
    slices_reps = sorted((int(h["slice"]), int(h["repetition"])) for h in headers)
    assert slices_reps == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(int(h["image_type"]) == ismrmrd.IMTYPE_MAGNITUDE for h in headers)
    assert all(tuple(h["matrix_size"]) == (64, 64, 1) for h in headers)
    mrd_server.wait_idle(30)
    report = mrd_server.reports[-1]
    assert report.error is None and report.trainings == 2 and report.frames_out == 4
