"""PCA vs geometric coil compression (GCC) at the same number of virtual coils.

Usage: python benchmarks/coil_compression_benchmark.py [--matrix 256] [--coils 32] [--workdir DIR]

Both compressions are learned from the simulated file's Cartesian ACS lines (fully sampled
along the oversampled readout, as GCC needs), then applied to the file's noiseless Cartesian
truth k-space and undone; printed: the relative error this projection leaves, per number of
virtual coils. PCA (``igrog_gadget.numerics.coils``) uses one matrix for all of k-space; GCC
(Zhang et al., MRM 69:571, 2013) one aligned matrix per readout position x, which needs the
data in the hybrid (x, ky) space: a Cartesian readout. iGROG compresses the non-Cartesian
samples *before* gridding, where no readout is Cartesian, so it uses PCA; this table says
how much GCC would gain on Cartesian data of the same coils.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.evaluation import benchmark_workdir, simulate_once  # noqa: E402
from igrog_gadget.numerics.coils import compression_transform  # noqa: E402
from igrog_gadget.io import read_dataset  # noqa: E402
from igrog_gadget.simulate import SimulationSpec  # noqa: E402


def gcc_matrices(hybrid_acs: np.ndarray, keep: int) -> np.ndarray:
    """Aligned GCC compression matrices (x, keep, coils) from ACS in (coils, lines, x) hybrid space."""
    coils, _, nx = hybrid_acs.shape
    bases = np.empty((nx, coils, keep), dtype=np.complex128)
    for x in range(nx):
        u, _, _ = np.linalg.svd(hybrid_acs[:, :, x], full_matrices=False)
        bases[x] = u[:, :keep]
    centre = nx // 2
    for order in (range(centre + 1, nx), range(centre - 1, -1, -1)):  # align outward from the centre
        for x in order:
            previous = bases[x - 1] if x > centre else bases[x + 1]
            p, _, qh = np.linalg.svd(bases[x].conj().T @ previous)
            bases[x] = bases[x] @ (p @ qh)
    return np.conj(np.transpose(bases, (0, 2, 1)))


def projection_error_pca(truth: np.ndarray, acs: np.ndarray, keep: int) -> float:
    transform = compression_transform(acs.reshape(acs.shape[0], -1), keep, 1.0)
    restored = transform.to_physical(transform.to_virtual(truth))
    return float(np.linalg.norm(restored - truth) / np.linalg.norm(truth))


def projection_error_gcc(truth: np.ndarray, acs: np.ndarray, keep: int) -> float:
    """GCC on the truth (coils, ny, nx); ACS (coils, lines, nx) on the same readout grid."""
    to_hybrid = lambda k: np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(k, axes=-1), axis=-1), axes=-1)  # noqa: E731
    matrices = gcc_matrices(to_hybrid(acs), keep)  # (nx, keep, coils)
    hybrid = to_hybrid(truth)  # (coils, ny, nx)
    virtual = np.einsum("xvc,cyx->vyx", matrices, hybrid)
    restored = np.einsum("xvc,vyx->cyx", matrices.conj(), virtual)
    return float(np.linalg.norm(restored - hybrid) / np.linalg.norm(hybrid))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matrix", type=int, default=256)
    parser.add_argument("--coils", type=int, default=32)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    workdir = benchmark_workdir(args.workdir, "igrog-cc-")
    path = workdir / f"cc_{args.matrix}x{args.coils}.h5"
    simulate_once(path, SimulationSpec(matrix=args.matrix, coils=args.coils, spokes=64, acs=32, snr=None))
    dataset = read_dataset(path)
    lines = [r.data for r in dataset.readouts if r.is_calibration()]
    acs = np.stack(lines, axis=1)  # (coils, lines, 2N): readout oversampled 2x
    n = args.matrix
    acs = np.fft.fftshift(np.fft.fft(np.fft.ifftshift(  # crop the 2x readout oversampling (centre FOV)
        np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(acs, axes=-1), axis=-1), axes=-1)[..., n // 2: n // 2 + n],
        axes=-1), axis=-1), axes=-1)
    truth = np.load(path.with_name(path.stem + ".truth.npz"))["kspace"][0, 0].astype(np.complex128)
    print(f"{'virtual coils':>13} {'PCA error':>10} {'GCC error':>10}")
    for keep in (4, 6, 8, 10, 12, 16):
        if keep >= args.coils:
            break
        print(f"{keep:13d} {projection_error_pca(truth, acs, keep):10.4f} {projection_error_gcc(truth, acs, keep):10.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
