"""The MRD dialect against the reference client: kspaceKelvin/python-ismrmrd-server's own ``client.py``.

The public repository is not part of this project; the test runs its client from a checkout at
``$IGROG_MRD_SERVER_DIR`` (default ``/work/ext/python-ismrmrd-server``) and is skipped without one.
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

CLIENT_DIR = Path(os.environ.get("IGROG_MRD_SERVER_DIR", "/work/ext/python-ismrmrd-server"))


@pytest.mark.skipif(
    not (CLIENT_DIR / "client.py").exists(), reason=f"no python-ismrmrd-server checkout at {CLIENT_DIR}"
)
def test_reference_mrd_client_gets_images(mrd_server, tmp_path: Path):
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
        cwd=CLIENT_DIR,
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
