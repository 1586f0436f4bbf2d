"""Gridding accuracy measured by downstream images: CG-SENSE of iGROG, a perfect gridder, classic
GROG and nearest neighbour against NUFFT CG-SENSE of the samples.

Usage: python benchmarks/recon_benchmark.py [--cases radial200,radial64,radial32,spiral16,spiral8,radial402_256]
           [--set section.field=value ...] [--workdir DIR] [--iterations 30] [--lambdas 0,1e-4,...]
           [--maps block|truth] [--weight-hits] [--nufft-direct] [--check-bart] [--verbose]
           [--images-only] [--no-images] [--attribute]

Each case is simulated with the project's simulator (128 x 128, 8 coils, image SNR 50, 32 ACS
lines; ``radial402_256``: 256 x 256, 16 coils) and gridded by
  iGROG    ``FrameGridder(load_config("basic", overrides=--set))``;
  perfect  the truth plus complex Gaussian noise of std noise_std / sqrt(hits) on the points
           iGROG's hits > 0 (zero elsewhere, fixed seed): an unbiased gridder that averages
           the noise perfectly;
  GROG     classic GROG from the calibration block iGROG uses (``grog_block``);
  NN       nearest neighbour.
Every gridded k-space is reconstructed by Cartesian CG-SENSE, ``||M F S x - y||^2 + lam ||x||^2``
with M the mask of points with hits > 0, UNWEIGHTED (a point averaged from many samples counts as
much as a point with one; ``--weight-hits``: weighted by hits); the samples themselves by NUFFT
CG-SENSE, ``||N S x - y||^2 + lam ||x||^2`` (imaging samples only, the ACS lines are not used;
iGROG's gridded centre does use them through its calibration block), N^H N applied by its
Toeplitz embedding (``--nufft-direct``: a forward and an adjoint NUFFT per iteration). Same ESPIRiT maps (``bart ecalib -m1`` of the
calibration block, zero-padded; ``--maps truth``: of the truth's central 32 x 32 plus noise of
the data's std), same iteration count, same lambda grid for every method: lam = factor x the
largest eigenvalue of that method's normal operator (power iteration), and each method is scored
at its best factor. ``+`` after an error: the best factor was the largest of the grid.

Image error: ||x - x_true|| / ||x_true|| over the object support (the simulator's object mask
where the maps are non-zero), x_true = sum_c conj(S_c) ifft(truth_c) / sum_c |S_c|^2, no scale
fitted (a biased gain shows). k-space: NRMSE and least-squares gain Re<t, g> / <t, t> against
the truth per |k| band over the points with hits > 0. Times: ``fit s`` and ``grid s`` = iGROG's
training_s and gridding_s (the closed-form fit solves its kernels while gridding, so its fit s is
~0); ``iG+CG s`` = the whole iGROG grid call (calibration, fit, gridding) plus one Cartesian CG
solve; ``NUFFT s`` = one NUFFT CG solve (Toeplitz kernel included); each solve at that method's
best lambda, timed apart in the product's precision (complex64 operators, as ``FrameImager``'s
SENSE and the Toeplitz FFTs compute; the sweeps that score the images run in complex128); the
power iterations are not counted. ``--check-bart`` compares our unweighted Cartesian CG-SENSE of the
first case's iGROG k-space with ``bart pics -l2 -r lam -i N -w 1`` (no data scaling), raw and
after a least-squares complex scale.

The product's own images (second table; ``--images-only``: that table alone, ``--no-images``:
without it): ``igrog_gadget.recon.images.FrameImager`` (the gadget's ``images`` output, ``igrog
replay --png/--images``) on iGROG's gridded frame, with ``[recon]`` as configured: its image
error (magnitude against the truth's RSS inside the object) against today's RSS of the same
gridded k-space; BART ``pics`` on the same gridded data with the product's own ESPIRiT maps, the
same weights (``-p`` W), lambda and iterations (relative difference of
the complex images); BART's NUFFT ``pics -t`` on the samples with the same maps (its own data
scaling, lambda = ``recon.regularization``; magnitude error after a least-squares scale); the
product's seconds for the image of the first frame of a key (ESPIRiT maps + CG), of a later one
(CG only) and of a whole later frame (``+grid s``: its gridding with cached kernels and its
image), against the ``bart pics -t`` process of the same frame (``later/NUFFT``: the whole later
frame over it). A PNG montage per case (truth RSS, NUFFT pics, iGROG + SENSE, today's RSS; their error
maps x5 below) is written to the work directory.

Also printed: iGROG's own error estimate (the frame report's ``estimated_nrmse`` and
``estimated_centre_nrmse``, made without the truth) against the measured k-space NRMSE. With
``--attribute``: each |k| band's share of iGROG's image error (values swapped between iGROG's
and the perfect gridder's k-space, each hybrid at its best lambda) and iGROG's noise alone
beyond |k| = 16 (its plan applied to noise-only samples) against the perfect gridder's, as
k-space energy and as image error at iGROG's lambda.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.baselines import ClassicGrog, grid_nearest_neighbour  # noqa: E402
from benchmarks.cgsense import (  # noqa: E402
    CartesianSense,
    NufftSense,
    bart_nufft_pics,
    bart_pics,
    conjugate_gradient,
    espirit_maps,
    max_eigenvalue,
    pad_block,
)
from benchmarks.evaluation import Case, benchmark_workdir, grog_block, load_case, simulate_once  # noqa: E402
from igrog_gadget.core.error_estimate import CENTRE_RADIUS  # noqa: E402
from igrog_gadget.core.frame import FrameInputs  # noqa: E402
from igrog_gadget.core.pairs import complex_noise  # noqa: E402
from igrog_gadget.planning.gridder import FrameGridder  # noqa: E402
from igrog_gadget.config import IgrogConfig, load_config  # noqa: E402
from igrog_gadget.numerics.calibration import CalibrationBlock  # noqa: E402
from igrog_gadget.numerics.fft import centred_fftn, rss_image  # noqa: E402
from igrog_gadget.recon.images import FrameImager  # noqa: E402
from igrog_gadget.scan import GriddedFrame  # noqa: E402
from igrog_gadget.simulate import SimulationSpec  # noqa: E402

BASE = dict(trajectory="radial", matrix=128, coils=8, acs=32, snr=50.0)
CASES: dict[str, dict] = {
    "radial200": dict(spokes=200),
    "radial64": dict(spokes=64),
    "radial32": dict(spokes=32),
    "spiral16": dict(trajectory="spiral", interleaves=16),
    "spiral8": dict(trajectory="spiral", interleaves=8),
    "radial402_256": dict(matrix=256, coils=16, spokes=402),
}
BANDS: list[tuple[float, float]] = [(0, 3), (3, 8), (8, 16), (16, 32), (32, np.inf)]
GRIDDERS = ("igrog", "perfect", "grog", "nn")
METHODS = GRIDDERS + ("nufft",)
DEFAULT_LAMBDAS = "0,1e-4,1e-3,3e-3,1e-2,3e-2,0.1"


@dataclass
class Recon:
    """Best image of one method over the lambda grid."""

    error: float
    factor: float
    lam: float
    seconds: float
    """Wall time of one CG solve at the best lambda in the product's precision (complex64
    operator; operator set-up and right-hand side included): ``timed_solve``."""
    image: np.ndarray
    errors: list[float] = field(default_factory=list)


@dataclass
class ProductImages:
    """The product's image of one case against today's RSS, BART and NUFFT pics."""

    rss_error: float
    image_error: float
    method: str
    bart_difference: float
    nufft_error: float
    first_s: float
    later_s: float
    later_grid_s: float
    """Gridding a later frame of the same trajectory (kernels cached)."""
    nufft_s: float
    montage: str


@dataclass
class CaseResult:
    name: str
    recons: dict[str, Recon]
    bands: dict[str, list[tuple[float, float]]]
    """Per gridder, per band: (NRMSE, gain)."""
    gain_low: float
    """iGROG's gain over |k| < 8."""
    fit_s: float
    grid_call_s: float
    grid_s: float
    grog_s: float
    lambdas: list[float]
    images: ProductImages | None = None
    attribution: "Attribution | None" = None
    estimates: tuple[float, float, float, float] = (float("nan"),) * 4
    """iGROG's own error estimates against the measured k-space NRMSE: (estimated, measured) over
    the sampled points, then (estimated, measured) over those at |k| < ``CENTRE_RADIUS``."""


@dataclass
class Attribution:
    """Where iGROG's image error over the perfect gridder's comes from (``--attribute``)."""

    swapped_in: list[float]
    """Per band: image error of the perfect k-space with iGROG's values in that band, / perfect's."""
    swapped_out: list[float]
    """Per band: image error of iGROG's k-space with the perfect values in that band, / perfect's."""
    noise_kspace: tuple[float, float]
    """|k| >= 16, noise only: k-space energy relative to the truth's there, (iGROG, perfect)."""
    noise_image: tuple[float, float]
    """The same noise-only k-spaces reconstructed at iGROG's best lambda: image error, (iGROG, perfect)."""


def log(verbose: bool, *parts: object) -> None:
    if verbose:
        print(*parts, file=sys.stderr, flush=True)


def k_radius(matrix: tuple[int, int]) -> np.ndarray:
    """|k| (grid units) of every grid point, (ny, nx)."""
    nx, ny = matrix
    ky, kx = np.meshgrid(np.arange(ny) - ny // 2, np.arange(nx) - nx // 2, indexing="ij")
    return np.hypot(kx, ky)


def band_label(lo: float, hi: float) -> str:
    """``[lo,hi)`` of a |k| band, as the tables print it."""
    return f"[{lo:g},{hi:g})" if np.isfinite(hi) else f"[{lo:g},inf)"


def band_metrics(kspace: np.ndarray, hits: np.ndarray, truth: np.ndarray, select: np.ndarray) -> tuple[float, float]:
    """(NRMSE, least-squares gain Re<t, g> / <t, t>) over points with hits > 0 in ``select``."""
    mask = (hits > 0) & select
    if not mask.any():
        return float("nan"), float("nan")
    t, g = truth[:, mask].astype(np.complex128), kspace[:, mask].astype(np.complex128)
    tt = float(np.real(np.vdot(t, t)))
    return float(np.linalg.norm(g - t) / np.sqrt(tt)), float(np.real(np.vdot(t, g)) / tt)


def sweep(
    normal: Callable[[np.ndarray], np.ndarray],
    adjoint: Callable[[], np.ndarray],
    shape: tuple[int, int],
    factors: list[float],
    iterations: int,
    score: Callable[[np.ndarray], float],
) -> Recon:
    """CG-SENSE at every lambda factor (x the operator's largest eigenvalue); the best image."""
    scale = max_eigenvalue(normal, shape)
    best: Recon | None = None
    errors = []
    for factor in factors:
        image = conjugate_gradient(normal, adjoint(), factor * scale, iterations)
        errors.append(score(image))
        if best is None or errors[-1] < best.error:
            best = Recon(errors[-1], factor, factor * scale, float("nan"), image)
    assert best is not None
    best.errors = errors
    return best


def timed_solve(make_operator: Callable[[], CartesianSense | NufftSense], data: np.ndarray, lam: float, iterations: int) -> float:
    """Seconds of one CG-SENSE solve of ``data`` at ``lam``: the operator made by
    ``make_operator`` (in the product's complex64), its right-hand side and the iterations."""
    start = time.perf_counter()
    operator = make_operator()
    conjugate_gradient(operator.normal, operator.adjoint(data), lam, iterations)
    return time.perf_counter() - start


def sensitivity_maps(case: Case, block: CalibrationBlock, mode: str, workdir: Path) -> np.ndarray:
    """ESPIRiT maps (coils, ny, nx) from the calibration block or the truth's centre + noise."""
    nx, ny = case.frame.matrix[:2]
    if mode == "block":
        padded = pad_block(block.kspace, block.origin, (nx, ny))
        return espirit_maps(padded, min(block.shape), workdir)
    rng = np.random.default_rng(7)
    centre = np.zeros_like(case.truth)
    sy, sx = slice(ny // 2 - 16, ny // 2 + 16), slice(nx // 2 - 16, nx // 2 + 16)
    noise = complex_noise(rng, centre[:, sy, sx].shape)
    centre[:, sy, sx] = case.truth[:, sy, sx] + noise * case.noise_std / np.sqrt(2)
    return espirit_maps(centre, 32, workdir)


def run_case(name: str, path: Path, config: IgrogConfig, args: argparse.Namespace, workdir: Path) -> CaseResult:
    verbose = args.verbose
    case = load_case(name, path, config)
    frame = case.frame
    nx, ny = frame.matrix[:2]
    truth = case.truth
    samples, coords = frame.flat_samples(), frame.flat_coords()
    keep = np.all(np.abs(coords) < 1e4, axis=1)  # drop the padding of ragged readouts, if any
    samples, coords = samples[:, keep], coords[keep]
    object_mask = np.load(path.with_name(path.stem + ".truth.npz"))["object_mask"].astype(bool)

    # --- gridders ---
    gridded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    gridder = FrameGridder(config)
    start = time.perf_counter()
    result = gridder.grid(frame)
    grid_call_s = time.perf_counter() - start
    start = time.perf_counter()
    gridder.grid(frame)  # a later frame of the same trajectory: kernels cached
    later_grid_s = time.perf_counter() - start
    noise_only = gridder.grid(noise_only_frame(frame, case.noise_std)).kspace if args.attribute else None
    gridder.close()
    gridded["igrog"] = (result.kspace, result.hits)
    log(verbose, f"{name}: iGROG {grid_call_s:.2f} s ({result.report.training.seconds if result.report.training else float('nan'):.2f} s fit)")

    images = (
        product_images(name, case, result, config, object_mask, samples, coords, workdir, later_grid_s) if args.images else None
    )
    if args.images_only:
        return CaseResult(name, {}, {}, float("nan"), 0.0, grid_call_s, 0.0, 0.0, [], images)

    mask = result.hits > 0
    rng = np.random.default_rng(12345)
    noise = complex_noise(rng, truth.shape) / np.sqrt(2)
    std = np.where(mask, case.noise_std / np.sqrt(np.maximum(result.hits, 1)), 0.0)
    gridded["perfect"] = ((truth + noise * std).astype(np.complex64) * mask, result.hits)

    start = time.perf_counter()
    block = grog_block(case, config)
    grog = ClassicGrog.from_acs(block.kspace).grid(samples, coords, (nx, ny))
    grog_s = time.perf_counter() - start
    gridded["grog"] = (grog.kspace, grog.hits)
    nn = grid_nearest_neighbour(samples, coords, (nx, ny))
    gridded["nn"] = (nn.kspace, nn.hits)

    # --- maps and target ---
    maps = sensitivity_maps(case, block, args.maps, workdir).astype(np.complex128)
    power = np.sum(np.abs(maps) ** 2, axis=0)
    support = object_mask & (power > 1e-6)
    coil_images = centred_fftn(truth.astype(np.complex128), inverse=True)
    target = np.where(power > 1e-6, np.sum(np.conj(maps) * coil_images, axis=0) / np.maximum(power, 1e-6), 0)
    target_norm = float(np.linalg.norm(target[support]))
    log(verbose, f"{name}: {block.source} block {block.shape}; support {support.sum()} of {object_mask.sum()} object pixels")

    def score(image: np.ndarray) -> float:
        return float(np.linalg.norm((image - target)[support]) / target_norm)

    # --- reconstructions ---
    factors = [float(f) for f in args.lambdas.split(",")]
    recons: dict[str, Recon] = {}
    for method in GRIDDERS:
        kspace, hits = gridded[method]
        op = CartesianSense(maps, hits > 0, hits if args.weight_hits else None)
        recons[method] = sweep(op.normal, lambda: op.adjoint(kspace), (ny, nx), factors, args.iterations, score)
        log(verbose, f"{name}: {method} errors {np.round(recons[method].errors, 4).tolist()}")
    op_nufft = NufftSense(maps, coords, toeplitz=not args.nufft_direct)
    recons["nufft"] = sweep(op_nufft.normal, lambda: op_nufft.adjoint(samples), (ny, nx), factors, args.iterations, score)
    log(verbose, f"{name}: nufft errors {np.round(recons['nufft'].errors, 4).tolist()}")
    # times in the product's precision (the sweeps above are complex128, for their accuracy)
    for method in GRIDDERS:
        kspace, hits = gridded[method]
        recons[method].seconds = timed_solve(
            lambda: CartesianSense(maps, hits > 0, hits if args.weight_hits else None, np.complex64), kspace,
            recons[method].lam, args.iterations,
        )
    recons["nufft"].seconds = timed_solve(
        lambda: NufftSense(maps, coords, not args.nufft_direct, np.complex64), samples, recons["nufft"].lam, args.iterations
    )

    if args.check_bart:
        kspace, hits = gridded["igrog"]
        lam = recons["igrog"].lam
        op = CartesianSense(maps, hits > 0)  # unweighted, as bart pics without -p
        ours = conjugate_gradient(op.normal, op.adjoint(kspace), lam, args.iterations)
        theirs = bart_pics(kspace * (hits > 0), maps.astype(np.complex64), lam, args.iterations, workdir)
        raw = np.linalg.norm(theirs - ours) / np.linalg.norm(ours)
        scale = np.vdot(theirs, ours) / np.vdot(theirs, theirs)
        fitted = np.linalg.norm(scale * theirs - ours) / np.linalg.norm(ours)
        print(
            f"BART check ({name}, iGROG k-space, lam = {lam:.4g}, {args.iterations} iterations, pics -w 1): "
            f"||x_bart - x_ours|| / ||x_ours|| = {raw:.2e}; after a least-squares complex scale "
            f"({abs(scale):.4f}, {np.degrees(np.angle(scale)):.2f} deg): {fitted:.2e}; "
            f"image error of BART's image {score(theirs):.4f} vs ours {score(ours):.4f}"
        )
        args.check_bart = False  # once

    # --- k-space bands ---
    radius = k_radius((nx, ny))
    attribution = None
    if args.attribute:
        assert noise_only is not None
        op = CartesianSense(maps, mask, result.hits if args.weight_hits else None)
        attribution = attribute(
            op, gridded["igrog"][0], gridded["perfect"][0], noise_only, case, result.hits, radius, recons, support, target_norm,
            lambda k: sweep(op.normal, lambda: op.adjoint(k), (ny, nx), factors, args.iterations, score).error,
            args.iterations,
        )
    bands = {
        method: [band_metrics(k, h, truth, (radius >= lo) & (radius < hi)) for lo, hi in BANDS]
        for method, (k, h) in gridded.items()
    }
    gain_low = band_metrics(*gridded["igrog"], truth, radius < 8)[1]
    return CaseResult(
        name,
        recons,
        bands,
        gain_low,
        result.report.training.seconds if result.report.training else float("nan"),
        grid_call_s,
        result.report.gridding_s,
        grog_s,
        factors,
        images,
        attribution,
        (
            nan_if_none(result.report.estimated_nrmse),
            band_metrics(*gridded["igrog"], truth, radius >= 0)[0],
            nan_if_none(result.report.estimated_centre_nrmse),
            band_metrics(*gridded["igrog"], truth, radius < CENTRE_RADIUS)[0],
        ),
    )


def product_images(
    name: str,
    case: Case,
    result,
    config: IgrogConfig,
    object_mask: np.ndarray,
    samples: np.ndarray,
    coords: np.ndarray,
    workdir: Path,
    later_grid_s: float,
) -> ProductImages:
    """The product's image of iGROG's gridded frame (see the module docstring, second table)."""
    from igrog_gadget.recon.sense import CartesianSense as TorchSense
    from igrog_gadget.recon.sense import sense_reconstruct

    import torch

    frame = GriddedFrame(
        kspace=result.kspace, hits=result.hits, frame_key=case.frame.frame_key, template=None,  # type: ignore[arg-type]
        calibration=result.calibration,
    )
    reference = np.asarray(rss_image(case.truth))

    def error(image: np.ndarray) -> float:
        return float(np.linalg.norm((image - reference)[object_mask]) / np.linalg.norm(reference[object_mask]))

    imager = FrameImager(config.recon)
    start = time.perf_counter()
    picture = imager.image(frame)
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    imager.image(frame)
    later_s = time.perf_counter() - start
    rss = np.asarray(rss_image(frame.kspace))
    maps = imager.maps_for(frame)  # the product's own maps (a tensor, or why there are none)
    bart_difference = nufft_error = nufft_s = float("nan")
    nufft_image = np.zeros_like(reference)
    if isinstance(maps, torch.Tensor):
        recon = config.recon
        hits = frame.hits.astype(np.float32)
        weights = hits if recon.weighting == "hits" else (hits > 0).astype(np.float32)
        lam = recon.regularization * float(weights[hits > 0].mean())
        ours = sense_reconstruct(
            torch.as_tensor(frame.kspace), TorchSense(maps, torch.as_tensor(weights)), lam, recon.iterations
        ).numpy()
        theirs = bart_pics(frame.kspace * (hits > 0), maps.numpy(), lam, recon.iterations, workdir, weights=weights)
        bart_difference = float(np.linalg.norm(theirs - ours) / np.linalg.norm(ours))
        nufft, nufft_s = bart_nufft_pics(samples, coords, maps.numpy(), recon.regularization, recon.iterations, workdir)
        magnitude = np.abs(nufft)
        scale = float(np.vdot(magnitude[object_mask], reference[object_mask]).real / max(np.vdot(magnitude[object_mask], magnitude[object_mask]).real, 1e-30))
        nufft_image = magnitude * scale
        nufft_error = error(nufft_image)
    montage = workdir / f"recon_{name}.png"
    write_montage(montage, reference, [nufft_image, picture.magnitude, rss], object_mask)
    return ProductImages(
        error(rss), error(picture.magnitude), picture.method, bart_difference, nufft_error, first_s, later_s,
        later_grid_s, nufft_s, str(montage),
    )


def write_montage(path: Path, reference: np.ndarray, images: list[np.ndarray], object_mask: np.ndarray) -> None:
    """Top row: the reference and ``images`` (scaled to the reference's 99.5th percentile); bottom
    row: blank under the reference, each image's |error| x5 (same scale)."""
    from PIL import Image

    top = float(np.percentile(reference, 99.5)) or 1.0
    tiles = [np.clip(reference / top, 0, 1)] + [np.clip(np.nan_to_num(image) / top, 0, 1) for image in images]
    errors = [np.zeros_like(reference)] + [np.clip(5 * np.abs(np.nan_to_num(image) - reference) / top, 0, 1) for image in images]
    rows = [np.concatenate([np.pad(t, ((0, 2), (0, 2))) for t in row], axis=1) for row in (tiles, errors)]
    Image.fromarray((np.concatenate(rows, axis=0) * 255).astype(np.uint8)).save(path)


def print_image_table(rows: list[CaseResult]) -> None:
    """The product's images (see the module docstring, second table)."""
    print("The product's image of the gridded frame vs today's RSS, BART pics on the same data, NUFFT pics")
    header = (
        f"{'case':<14} {'method':>6} {'RSS err':>8} {'image err':>9} {'img/RSS':>7} {'vs BART':>8} {'NUFFT err':>9} "
        f"{'first s':>7} {'later s':>7} {'+grid s':>7} {'NUFFT s':>7} {'later/NUFFT':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        p = r.images
        if p is None:
            continue
        print(
            f"{r.name:<14} {p.method:>6} {p.rss_error:8.4f} {p.image_error:9.4f} {p.image_error / p.rss_error:7.3f} "
            f"{p.bart_difference:8.1e} {p.nufft_error:9.4f} {p.first_s:7.3f} {p.later_s:7.3f} "
            f"{p.later_s + p.later_grid_s:7.3f} {p.nufft_s:7.3f} {(p.later_s + p.later_grid_s) / p.nufft_s:11.3f}"
        )
    print("montages: " + ", ".join(r.images.montage for r in rows if r.images is not None))


def nan_if_none(value: float | None) -> float:
    """``value``, nan for None (an estimate the fit does not make)."""
    return float("nan") if value is None else float(value)


def noise_only_frame(frame: FrameInputs, noise_std: float, seed: int = 7) -> FrameInputs:
    """``frame`` with its samples and calibration lines replaced by complex Gaussian noise of the
    data's std (same trajectory, same calibration key: gridded with the same plan)."""
    rng = np.random.default_rng(seed)

    def noise(shape: tuple[int, ...]) -> np.ndarray:
        return (complex_noise(rng, shape) * noise_std / np.sqrt(2)).astype(np.complex64)

    samples = noise(frame.samples.shape) * (frame.samples != 0)
    lines = [(noise(data.shape), positions) for data, positions in frame.calibration_lines]
    return dataclasses.replace(frame, samples=samples, calibration_lines=lines)


def attribute(
    op: CartesianSense, igrog: np.ndarray, perfect: np.ndarray, noise_only: np.ndarray, case: Case, hits: np.ndarray,
    radius: np.ndarray, recons: dict[str, Recon], support: np.ndarray, target_norm: float,
    best_error: Callable[[np.ndarray], float], iterations: int,
) -> Attribution:
    """``Attribution`` of one case: each |k| band's share of iGROG's image error (values swapped
    between iGROG's and the perfect gridder's k-space, each hybrid at its best lambda), and the
    noise alone beyond |k| = 16 (iGROG's plan applied to noise-only samples, against the perfect
    gridder's noise of the same std over each point's hits), reconstructed at iGROG's lambda."""
    perfect_error = recons["perfect"].error
    swapped_in, swapped_out = [], []
    for lo, hi in BANDS:
        band = (radius >= lo) & (radius < hi)
        swapped_in.append(best_error(np.where(band, igrog, perfect)) / perfect_error)
        swapped_out.append(best_error(np.where(band, perfect, igrog)) / perfect_error)
    outer = (hits > 0) & (radius >= 16)
    rng = np.random.default_rng(11)
    white = complex_noise(rng, case.truth.shape) / np.sqrt(2)
    noises = (np.where(outer, noise_only, 0), np.where(outer, white * case.noise_std / np.sqrt(np.maximum(hits, 1)), 0))
    truth_energy = float(np.linalg.norm(case.truth[:, outer]))
    kspace = tuple(float(np.linalg.norm(n)) / truth_energy for n in noises)
    lam = recons["igrog"].lam
    images = tuple(
        float(np.linalg.norm(conjugate_gradient(op.normal, op.adjoint(n.astype(np.complex64)), lam, iterations)[support])) / target_norm
        for n in noises
    )
    return Attribution(swapped_in, swapped_out, (kspace[0], kspace[1]), (images[0], images[1]))


def print_attribution(rows: list[CaseResult]) -> None:
    """The ``--attribute`` table."""
    print("Where iGROG's image error comes from: the perfect k-space with iGROG's values in one band (in),")
    print("iGROG's with the perfect values in one band (out), image error / perfect's, each at its best lambda;")
    print("noise alone at |k| >= 16: k-space energy / truth's there and image error, iGROG's plan vs perfect averaging")
    header = f"{'case':<14} " + " ".join(f"{band_label(lo, hi):>15}" for lo, hi in BANDS) + f" {'noise k iG/perf':>17} {'noise image iG/perf':>20}"
    print(header)
    print("-" * len(header))
    for r in rows:
        a = r.attribution
        if a is None:
            continue
        cells = " ".join(f"{i:7.3f}/{o:7.3f}" for i, o in zip(a.swapped_in, a.swapped_out))
        print(f"{r.name:<14} {cells} {a.noise_kspace[0]:8.4f}/{a.noise_kspace[1]:.4f} {a.noise_image[0]:10.4f}/{a.noise_image[1]:.4f}")


def print_tables(rows: list[CaseResult], verbose: bool) -> None:
    def err(r: CaseResult, method: str) -> str:
        recon = r.recons[method]
        edge = "+" if recon.factor == max(r.lambdas) else " "
        return f"{recon.error:7.4f}{edge}"

    header = (
        f"{'case':<14} {'iGROG':>8} {'perfect':>8} {'GROG':>8} {'NN':>8} {'NUFFT':>8} {'iG/perf':>7} "
        f"{'iG/NUFFT':>8} {'gain<8':>7} {'fit s':>6} {'grid s':>6} {'iG+CG s':>7} {'NUFFT s':>7}"
    )
    print("Image error ||x - x_true|| / ||x_true|| in the object, each method at its best lambda")
    print(header)
    print("-" * len(header))
    for r in rows:
        ig = r.recons["igrog"]
        print(
            f"{r.name:<14} " + " ".join(err(r, m) for m in METHODS)
            + f" {ig.error / r.recons['perfect'].error:7.3f} {ig.error / r.recons['nufft'].error:8.3f}"
            f" {r.gain_low:7.4f} {r.fit_s:6.2f} {r.grid_s:6.2f} {r.grid_call_s + ig.seconds:7.2f} {r.recons['nufft'].seconds:7.2f}"
        )
    print()
    print("k-space NRMSE and gain Re<t,g>/<t,t> per |k| band, points with hits > 0: iGROG vs perfect")
    header = (
        f"{'case':<14} {'|k| band':<9} {'iG NRMSE':>9} {'perf NRMSE':>10} {'ratio':>6} "
        f"{'iG gain':>8} {'perf gain':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        for (lo, hi), (ie, ig), (pe, pg) in zip(BANDS, r.bands["igrog"], r.bands["perfect"]):
            print(f"{r.name:<14} {band_label(lo, hi):<9} {ie:9.4f} {pe:10.4f} {ie / pe:6.2f} {ig:8.4f} {pg:9.4f}")
    print()
    print("iGROG's own error estimate (report.estimated_nrmse, no truth) against the measured k-space NRMSE;")
    print(f"all sampled points and those at |k| < {CENTRE_RADIUS:g}")
    header = f"{'case':<14} {'estimate':>9} {'measured':>9} {'est/meas':>8} {'centre est':>10} {'centre meas':>11} {'est/meas':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        est, meas, c_est, c_meas = r.estimates
        print(f"{r.name:<14} {est:9.4f} {meas:9.4f} {est / meas:8.2f} {c_est:10.4f} {c_meas:11.4f} {c_est / c_meas:8.2f}")
    if verbose:
        print()
        print("Details: best lambda factor per method; per-band NRMSE/gain of GROG and NN; times (s)")
        for r in rows:
            factors = " ".join(f"{m}={r.recons[m].factor:g}" for m in METHODS)
            cg = " ".join(f"{m}={r.recons[m].seconds:.3f}" for m in METHODS)
            print(f"{r.name}: factors {factors}; CG solve s {cg}; iGROG call {r.grid_call_s:.2f} "
                  f"(fit {r.fit_s:.2f}, gridding {r.grid_s:.3f}); GROG {r.grog_s:.2f}")
            for m in ("grog", "nn"):
                cells = " ".join(f"{e:.4f}/{g:.4f}" for e, g in r.bands[m])
                print(f"  {m:<5} {cells}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help="comma list of " + ", ".join(CASES))
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="section.field=value for load_config")
    parser.add_argument("--workdir", default=None, help="keep the simulated files here")
    parser.add_argument("--iterations", type=int, default=30, help="CG iterations of every reconstruction")
    parser.add_argument("--lambdas", default=DEFAULT_LAMBDAS, help="lambda factors (x the normal operator's largest eigenvalue)")
    parser.add_argument("--maps", choices=("block", "truth"), default="block", help="ESPIRiT from the calibration block or the truth centre + noise")
    parser.add_argument("--weight-hits", action="store_true", help="Cartesian data term weighted by hits (default: unweighted mask)")
    parser.add_argument("--nufft-direct", action="store_true", help="NUFFT normal operator as forward + adjoint NUFFT (default: its Toeplitz embedding)")
    parser.add_argument("--check-bart", action="store_true", help="compare our Cartesian CG-SENSE with bart pics once")
    parser.add_argument("--images-only", action="store_true", help="only the table of the product's images")
    parser.add_argument("--no-images", dest="images", action="store_false", help="without the table of the product's images")
    parser.add_argument("--attribute", action="store_true", help="where iGROG's image error comes from: per |k| band, and its noise alone")
    parser.add_argument("--verbose", "-v", action="store_true", help="progress on stderr and a details table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    names = args.cases.split(",")
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    workdir = benchmark_workdir(args.workdir, "igrog-recon-")
    config = load_config("basic", overrides=args.overrides)
    rows = []
    for name in names:
        path = workdir / f"{name}.h5"
        seconds = simulate_once(path, SimulationSpec(**{**BASE, **CASES[name]}))
        log(args.verbose, f"{name}: simulated in {seconds:.1f} s" if seconds else f"{name}: reused {path}")
        rows.append(run_case(name, path, config, args, workdir))
    if not args.images_only:
        print_tables(rows, args.verbose)
        print()
        if args.attribute:
            print_attribution(rows)
            print()
    if args.images:
        print_image_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
