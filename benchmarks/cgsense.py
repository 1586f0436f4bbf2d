"""CG-SENSE reconstructions and BART glue for ``benchmarks/recon_benchmark.py``.

Conventions: images and maps are (ny, nx) / (coils, ny, nx) with pixel r = 0 at index n // 2;
k-space is (coils, ny, nx) with k = 0 at index n // 2, related to the coil images by the centred
orthonormal FFT (``igrog_gadget.numerics.fft.centred_fftn``); non-Cartesian samples are
(coils, n) at positions (n, 2) = (kx, ky) in grid units, transformed by
``igrog_gadget.numerics.nufft`` (the same FFT on integer k).

Both reconstructions minimise ``||A S x - y||^2 + lam ||x||^2`` by conjugate gradients on the
normal equations ``(S^H A^H A S + lam I) x = S^H A^H y`` from x = 0, a fixed number of
iterations: ``A = M F`` (M: the mask of gridded points, unweighted) for gridded k-space,
``A`` = the NUFFT for the samples.

BART (``/usr/bin/bart``): ESPIRiT maps (``bart ecalib``) and a reference ``bart pics`` solve; a
BART array of dims (nx, ny, 1, coils) is stored column-major, i.e. exactly the bytes of a C-order
numpy array (coils, 1, ny, nx).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from igrog_gadget.numerics.nufft import nufft_adjoint, nufft_forward
from igrog_gadget.numerics.solve import conjugate_gradients
from igrog_gadget.numerics.toeplitz import ToeplitzNormal

BART = shutil.which("bart") or "/usr/bin/bart"

Operator = Callable[[np.ndarray], np.ndarray]


# --- .cfl / .hdr ---------------------------------------------------------------------------------
def write_cfl(base: Path, array: np.ndarray, dims: Sequence[int]) -> None:
    """Write ``array`` (C-order bytes = column-major of ``dims``) as ``base.cfl`` + ``base.hdr``."""
    dims = [int(d) for d in dims]
    if int(np.prod(dims)) != array.size:
        raise ValueError(f"{array.shape} does not fit BART dims {dims}")
    padded = dims + [1] * (16 - len(dims))
    Path(f"{base}.hdr").write_text("# Dimensions\n" + " ".join(str(d) for d in padded) + "\n")
    np.ascontiguousarray(array, dtype=np.complex64).tofile(f"{base}.cfl")


def read_cfl(base: Path) -> tuple[np.ndarray, list[int]]:
    """The flat complex64 data of ``base.cfl`` (column-major) and its dims (trailing 1s dropped)."""
    lines = Path(f"{base}.hdr").read_text().splitlines()
    dims = [int(d) for d in lines[1].split()]
    while len(dims) > 1 and dims[-1] == 1:
        dims.pop()
    data = np.fromfile(f"{base}.cfl", dtype=np.complex64)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{base}.cfl holds {data.size} values, its header says {dims}")
    return data, dims


def _bart(*args: str) -> None:
    subprocess.run([BART, *args], check=True, capture_output=True, text=True)


def write_coil_array(base: Path, array: np.ndarray) -> None:
    """(coils, ny, nx) as BART (nx, ny, 1, coils)."""
    coils, ny, nx = array.shape
    write_cfl(base, array, [nx, ny, 1, coils])


def read_coil_array(base: Path, coils: int, ny: int, nx: int) -> np.ndarray:
    """BART (nx, ny, 1, coils) as (coils, ny, nx) complex64."""
    data, _ = read_cfl(base)
    return data.reshape(coils, ny, nx)


# --- sensitivity maps ----------------------------------------------------------------------------
def pad_block(block: np.ndarray, origin: tuple[int, int], matrix: tuple[int, int]) -> np.ndarray:
    """A calibration block (coils, ay, ax) whose [0, 0] lies at k = origin = (kx0, ky0), zero-padded
    to the (coils, ny, nx) grid of ``matrix = (nx, ny)`` (k = 0 at n // 2)."""
    coils, ay, ax = block.shape
    nx, ny = matrix
    out = np.zeros((coils, ny, nx), np.complex64)
    y0, x0 = origin[1] + ny // 2, origin[0] + nx // 2
    if y0 < 0 or x0 < 0 or y0 + ay > ny or x0 + ax > nx:
        raise ValueError(f"block {block.shape} at k = {origin} does not fit the matrix {matrix}")
    out[:, y0 : y0 + ay, x0 : x0 + ax] = block
    return out


def espirit_maps(kspace: np.ndarray, calibration_size: int, workdir: Path | None = None) -> np.ndarray:
    """``bart ecalib -m1 -r calibration_size`` of zero-padded k-space (coils, ny, nx): maps
    (coils, ny, nx) complex64 (zero where ESPIRiT crops them)."""
    coils, ny, nx = kspace.shape
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        base = Path(tmp)
        write_coil_array(base / "calib", kspace)
        _bart("ecalib", "-m1", "-r", str(int(calibration_size)), str(base / "calib"), str(base / "maps"))
        return read_coil_array(base / "maps", coils, ny, nx)


def bart_pics(
    kspace: np.ndarray,
    maps: np.ndarray,
    lam: float,
    iterations: int,
    workdir: Path | None = None,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """``bart pics -l2 -r lam -i iterations -w 1`` (``-w 1``: no data scaling, so ``lam`` is the
    same Tikhonov weight as ours) of gridded k-space (coils, ny, nx); image (ny, nx). BART takes
    the sampling pattern from the non-zero k-space points; with ``weights`` W (ny, nx) the data
    term is ``||W^(1/2) (F S x - y)||^2``: pattern ``-p W`` (BART applies the pattern once in its
    normal operator, ``S^H F^H P F S``, and in its right-hand side, ``S^H F^H P y``)."""
    coils, ny, nx = kspace.shape
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        base = Path(tmp)
        options = []
        if weights is not None:
            write_cfl(base / "p", np.asarray(weights, np.complex64), [nx, ny])
            options = ["-p", str(base / "p")]
        write_coil_array(base / "k", kspace)
        write_coil_array(base / "s", maps)
        _bart("pics", "-l2", "-r", repr(float(lam)), "-i", str(int(iterations)), "-w", "1", *options,
              str(base / "k"), str(base / "s"), str(base / "x"))
        data, _ = read_cfl(base / "x")
        return data.reshape(ny, nx)


def bart_nufft_pics(
    samples: np.ndarray, coords: np.ndarray, maps: np.ndarray, lam: float, iterations: int, workdir: Path | None = None
) -> tuple[np.ndarray, float]:
    """``bart pics -t traj -l2 -r lam -i iterations`` (BART's NUFFT CG-SENSE) of non-Cartesian
    samples (coils, n) at ``coords`` (n, 2) grid units, with maps (coils, ny, nx): (image (ny, nx),
    seconds of the ``bart pics`` process). BART scales the data itself (no ``-w``): compare its
    image after a least-squares complex scale."""
    coils, ny, nx = maps.shape
    n = coords.shape[0]
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        base = Path(tmp)
        traj = np.zeros((n, 3), np.complex64)  # BART [3, n]: column-major = C-order (n, 3)
        traj[:, :2] = coords
        write_cfl(base / "t", traj, [3, n])
        write_cfl(base / "k", np.ascontiguousarray(samples, np.complex64), [1, n, 1, coils])
        write_coil_array(base / "s", maps)
        start = time.perf_counter()
        _bart("pics", "-t", str(base / "t"), "-l2", "-r", repr(float(lam)), "-i", str(int(iterations)),
              str(base / "k"), str(base / "s"), str(base / "x"))
        seconds = time.perf_counter() - start
        data, _ = read_cfl(base / "x")
        return data.reshape(ny, nx), seconds


# --- operators -----------------------------------------------------------------------------------
class CartesianSense:
    """``A = M F S`` for gridded k-space: M the mask of gridded points (unweighted), or with
    ``weights`` (ny, nx) the weighted data term ``||W^(1/2) (F S x - y)||^2`` (e.g. W = hits).
    The product's operator (``igrog_gadget.recon.sense.CartesianSense``, in torch) on numpy
    arrays in the centred order, computed in ``dtype``: complex128 for the accuracy sweeps,
    complex64 as the product computes it (``FrameImager``) for the times; images come back
    complex128 for the CG's sums."""

    def __init__(
        self, maps: np.ndarray, mask: np.ndarray, weights: np.ndarray | None = None, dtype: type = np.complex128
    ) -> None:
        import torch

        from igrog_gadget.recon.sense import CartesianSense as ProductSense

        self._torch = torch
        self._dtype = dtype
        data_weights = mask.astype(np.float64) if weights is None else np.where(mask, weights, 0).astype(np.float64)
        self._operator = ProductSense(torch.as_tensor(maps.astype(dtype)), torch.as_tensor(data_weights))

    def _apply(self, method: Callable, array: np.ndarray) -> np.ndarray:
        tensor = self._operator.to_origin_first(self._torch.as_tensor(np.asarray(array, self._dtype)))
        return self._operator.to_centred(method(tensor)).numpy().astype(np.complex128, copy=False)

    def adjoint(self, kspace: np.ndarray) -> np.ndarray:
        """``S^H F^H M y``: (coils, ny, nx) → (ny, nx)."""
        return self._apply(self._operator.adjoint, kspace)

    def normal(self, image: np.ndarray) -> np.ndarray:
        """``S^H F^H M F S x``."""
        return self._apply(self._operator.normal, image)


class NufftSense:
    """``A = N S`` for the non-Cartesian samples: N the NUFFT at ``coords`` (n, 2). ``toeplitz``:
    ``N^H N`` applied as its Toeplitz embedding (``igrog_gadget.numerics.toeplitz``: two FFTs of
    the doubled grid in complex64, the same operator to ~1e-7) instead of a type-2 and a type-1
    NUFFT. The maps are applied in ``dtype`` (complex128 for the accuracy sweeps, complex64 for
    the times, as ``CartesianSense``); images come back complex128."""

    def __init__(self, maps: np.ndarray, coords: np.ndarray, toeplitz: bool = True, dtype: type = np.complex128) -> None:
        self.maps: np.ndarray = maps.astype(dtype)
        self.coords = np.asarray(coords, np.float64)
        self.shape = maps.shape[1:]
        self._toeplitz = ToeplitzNormal(self.coords, np.ones(len(self.coords)), self.shape) if toeplitz else None

    def adjoint(self, samples: np.ndarray) -> np.ndarray:
        """``S^H N^H y``: (coils, n) → (ny, nx)."""
        return np.sum(np.conj(self.maps) * nufft_adjoint(samples, self.coords, self.shape), axis=0).astype(np.complex128, copy=False)

    def normal(self, image: np.ndarray) -> np.ndarray:
        """``S^H N^H N S x``."""
        if self._toeplitz is not None:
            coil_images = self._toeplitz(self.maps * image.astype(self.maps.dtype, copy=False))
            return np.sum(np.conj(self.maps) * coil_images, axis=0).astype(np.complex128, copy=False)
        samples = nufft_forward(self.maps * image, self.coords)
        return np.sum(np.conj(self.maps) * nufft_adjoint(samples, self.coords, self.shape), axis=0).astype(np.complex128, copy=False)


def max_eigenvalue(normal: Operator, shape: tuple[int, ...], iterations: int = 20, seed: int = 0) -> float:
    """Largest eigenvalue of a Hermitian positive semi-definite operator (power iteration)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    x /= np.linalg.norm(x)
    value = 0.0
    for _ in range(iterations):
        y = normal(x)
        value = float(np.real(np.vdot(x, y)))
        x = y / np.linalg.norm(y)
    return value


def conjugate_gradient(normal: Operator, rhs: np.ndarray, lam: float, iterations: int) -> np.ndarray:
    """``iterations`` CG steps on ``(normal + lam I) x = rhs`` from x = 0 (complex128), by the
    package's solver (``igrog_gadget.numerics.solve.conjugate_gradients``)."""
    return conjugate_gradients(
        lambda x: normal(x) + lam * x, rhs.astype(np.complex128), iterations, stop=lambda rr: rr == 0
    )
