"""Helpers of the image_based / fieldcorr tests: recorded files, quick settings, file surgery."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import ismrmrd
import numpy as np

from benchmarks.evaluation import Case, load_case, nrmse_on_sampled
from igrog_gadget.planning.gridder import FrameGridder
from igrog_gadget.config import load_config
from igrog_gadget.io.acquisitions import copy_acquisitions, each_acquisition
from igrog_gadget.io.reader import open_dataset_readonly
from igrog_gadget.simulate import ifft2c

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"

#: The batch these epoch counts were sized with (the product's default is 256 pairs at 5e-3).
EPOCH_BATCH = ["training.batch_size=1024", "training.learning_rate=3e-3"]
#: Step-limited (deterministic) training that is quick on 2 busy CPU cores.
FAST = ["training.max_seconds=120", "training.epochs=4", "calibration.num_training_pairs=20000", *EPOCH_BATCH]
#: Enough steps for accuracy comparisons on the 64 x 64 recorded files (fieldcorr's halving of
#: basic's error needs them: 0.48x here, 0.55x with COMPARE).
ACCURATE = ["training.max_seconds=120", "training.epochs=10", "calibration.num_training_pairs=30000", *EPOCH_BATCH]
#: Enough for comparisons of calibration sources of the same model (image_based vs basic).
COMPARE = ["training.max_seconds=120", "training.epochs=5", "calibration.num_training_pairs=20000", *EPOCH_BATCH]


def recorded(name: str) -> Path:
    return DATA / f"{name}.h5"


def truth(name: str) -> dict[str, np.ndarray]:
    with np.load(DATA / f"{name}.truth.npz") as archive:
        return {key: archive[key] for key in archive.files}


def coil_images_of(name: str) -> np.ndarray:
    """Field-free coil images of a recorded file's first slice: (coils, N, N) complex64."""
    return ifft2c(truth(name)["kspace"][0, 0].astype(np.complex128)).astype(np.complex64)


def copy_with(
    tmp_path: Path,
    name: str,
    images: dict[str, np.ndarray] | None = None,
    change: Callable[[int, ismrmrd.Acquisition], ismrmrd.Acquisition | None] | None = None,
    drop_series: tuple[str, ...] = (),
    suffix: str = "",
) -> Path:
    """A copy of a recorded file (and its truth) with acquisitions passed through ``change(index, acq)``
    (None drops one), the image series in ``drop_series`` left out and ``images``
    ({series: (channels, ny, nx) array}) appended as ISMRMRD image series."""
    return copy_with_file(tmp_path, recorded(name), images, change, drop_series, suffix)


def copy_with_file(
    tmp_path: Path,
    source: Path,
    images: dict[str, np.ndarray] | None = None,
    change: Callable[[int, ismrmrd.Acquisition], ismrmrd.Acquisition | None] | None = None,
    drop_series: tuple[str, ...] = (),
    suffix: str = "_copy",
) -> Path:
    """``copy_with`` of any simulated file ``source`` (its truth beside it); ``images`` may be 3D
    ({series: (channels, nz, ny, nx) array})."""
    name = source.stem
    target = tmp_path / f"{name}{suffix}.h5"
    shutil.copy(source.with_name(f"{name}.truth.npz"), tmp_path / f"{name}{suffix}.truth.npz")
    if change is None and not drop_series:
        shutil.copy(source, target)
        dst = ismrmrd.Dataset(str(target), "dataset", create_if_needed=False)
    else:
        copy_acquisitions(source, target, each_acquisition(change) if change is not None else list)
        src = open_dataset_readonly(str(source), "dataset")
        dst = ismrmrd.Dataset(str(target), "dataset", create_if_needed=False)
        for series in src.list():
            if series in ("data", "xml") or series in drop_series:
                continue
            try:
                count = src.number_of_images(series)
            except Exception:  # not an image series
                continue
            for i in range(count):
                dst.append_image(series, src.read_image(series, i))
        src.close()
    for series, array in (images or {}).items():
        data = np.asarray(array)
        data = data if data.ndim == 4 else data.reshape(data.shape[0], 1, *data.shape[-2:])
        image = ismrmrd.Image.from_array(np.ascontiguousarray(data), transpose=False)
        image.image_type = ismrmrd.IMTYPE_COMPLEX if np.iscomplexobj(data) else ismrmrd.IMTYPE_REAL
        dst.append_image(series, image)
    dst.close()
    return target


def grid(variant: str, path: Path, overrides: list[str], frame_hook: Callable | None = None):
    """(result, case) of gridding the first frame of ``path`` with ``variant``."""
    config = load_config(variant, overrides=overrides)
    case = load_case(path.stem, path, config)
    if frame_hook is not None:
        frame_hook(case.frame)
    return FrameGridder(config).grid(case.frame), case


def error(result, case: Case) -> float:
    return nrmse_on_sampled(result.kspace, result.hits, case.truth)
