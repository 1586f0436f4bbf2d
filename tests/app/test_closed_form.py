"""Closed-form kernels (``igrog_gadget.core.closed_form``) and the centre fill
(``igrog_gadget.core.centre``): checked against explicit least squares over synthesised
pairs, against the truth of recorded files, and for determinism."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from app_helpers import ACCURATE, DATA

from benchmarks.evaluation import load_case
from igrog_gadget.core.centre import block_interior, fill_from_block, fill_margin
from igrog_gadget.core.closed_form import (
    BlockCorrelation,
    ClosedFormKernelModel,
    ShiftTable,
    _shared_groups,
    closed_form_kernels,
    solve_chunk_samples,
)
from igrog_gadget.environment import pin_native_threads
from igrog_gadget.planning.gridder import FrameGridder
from igrog_gadget.config import load_config
from igrog_gadget.errors import CalibrationError
from igrog_gadget.numerics.calibration import CalibrationBlock, OffGridInterpolator


def random_block(coils: int = 3, side: int = 12, seed: int = 0) -> CalibrationBlock:
    rng = np.random.default_rng(seed)
    kspace = (rng.standard_normal((coils, side, side)) + 1j * rng.standard_normal((coils, side, side))).astype(np.complex64)
    return CalibrationBlock(kspace=kspace, kx0=-side // 2, ky0=-side // 2, source="joint", noise_std=0.1)


def explicit_least_squares(block: CalibrationBlock, offsets: np.ndarray, ridge: float) -> np.ndarray:
    """The kernel minimising sum |t - K s|^2 / points + ridge |K|^2 over every target of the block's
    twice zero-padded grid (the block's values there, zero outside it) with sources sinc-interpolated
    from the same padded block: the problem the closed form solves. offsets (S, 2) → (coils, coils*S)."""
    interpolate = OffGridInterpolator(block, padding=2)
    coils, side = block.kspace.shape[0], block.shape[0]
    ks = np.arange(-side, side)
    ky, kx = np.meshgrid(ks, ks, indexing="ij")
    targets_k = np.stack([kx.ravel(), ky.ravel()], axis=1).astype(np.float64)
    padded = np.zeros((coils, 2 * side, 2 * side), np.complex128)
    padded[:, side // 2 : side // 2 + side, side // 2 : side // 2 + side] = block.kspace
    targets = padded.reshape(coils, -1).T  # (points, coils)
    sources = np.concatenate(
        [interpolate(targets_k + offset)[:, :, None] for offset in offsets], axis=2
    )  # (coils, points, S)
    sources = sources.transpose(1, 0, 2).reshape(targets.shape[0], -1).astype(np.complex128)  # coil-major
    points = block.shape[0] * block.shape[1]
    normal = sources.T @ sources.conj() / points + ridge * np.eye(sources.shape[1])  # E[s s^H]
    cross = targets.T @ sources.conj() / points  # E[t s^H]
    return cross @ np.linalg.inv(normal)


def test_shift_table_interpolates_the_correlation_of_every_coil_pair():
    """The 2D table's interpolated R (single precision: P and a spiral's Q) against R in double
    precision at 1e-12 (finufft), at random shifts of both signs and at table points: within 2e-5
    of R's peak (finufft at the 1e-4 tolerance it replaces: 5.6e-5), including a shift beyond the
    table's first reach (the table is made again, larger)."""
    correlation = BlockCorrelation(random_block(coils=4, side=16, seed=2))
    rng = np.random.default_rng(5)
    shifts = np.concatenate([rng.uniform(-2.7, 2.7, (4000, 2)), [[0.0, 0.0], [1.0, -2.0], [0.0625, 0.5]]])
    exact = correlation._evaluate(shifts, precise=True, eps=1e-12)
    table = correlation(shifts, precise=False)
    assert table.dtype == np.complex64 and table.shape == (shifts.shape[0], 4, 4)
    peak = np.abs(exact).max()
    assert np.abs(table - exact).max() < 2e-5 * peak
    far = np.array([[5.3, -4.1]])
    np.testing.assert_allclose(correlation(far, precise=False), correlation._evaluate(far, True, 1e-12), atol=2e-5 * peak)
    made = ShiftTable(correlation.products, 1.2, 16)
    assert made.covers(1.2) and not made.covers(2.5)


@pytest.mark.parametrize("offsets", [
    np.array([[-0.8, 0.3], [-0.3, 0.1], [0.2, -0.1], [0.7, -0.3]]),  # evenly spaced (a spoke)
    np.array([[0.4, -0.45], [0.1, 0.2], [-0.2, 0.6]]),  # curved (a spiral)
])
def test_kernel_is_the_least_squares_kernel_of_the_block(offsets):
    block = random_block()
    power = float(np.mean(np.abs(block.kspace) ** 2))
    ridge = 0.01 * power
    expected = explicit_least_squares(block, offsets, ridge)
    kernels = closed_form_kernels(BlockCorrelation(block), offsets[None].repeat(5, axis=0), np.full(5, ridge), torch.device("cpu"))
    assert kernels.shape == (5, 3, 3 * offsets.shape[0])
    for kernel in kernels.numpy():
        # P is evaluated at finufft's tolerance 1e-4 (a wrong formula would be off by O(1))
        np.testing.assert_allclose(kernel, expected, rtol=0, atol=1e-3 * np.abs(expected).max())


def test_shared_and_separate_solves_agree():
    """Samples with equal source differences share one factorisation (a radial spoke); the same
    offsets solved one by one give the same kernels."""
    block = random_block(seed=1)
    rng = np.random.default_rng(2)
    step = np.array([0.45, 0.2])
    centres = rng.uniform(-0.5, 0.5, (64, 2))
    offsets = centres[:, None, :] + (np.arange(5) - 2)[None, :, None] * step  # (64, 5, 2), one direction
    ridge = np.full(64, 0.05 * float(np.mean(np.abs(block.kspace) ** 2)))
    correlation = BlockCorrelation(block)
    shared = closed_form_kernels(correlation, offsets, ridge, torch.device("cpu"))
    separate = torch.cat([closed_form_kernels(correlation, offsets[i : i + 1], ridge[i : i + 1], torch.device("cpu")) for i in range(64)])
    np.testing.assert_allclose(shared.numpy(), separate.numpy(), rtol=0, atol=1e-4 * float(separate.abs().max()))


def spoke_offsets(angles: np.ndarray, samples: int) -> np.ndarray:
    """Offsets (spokes * samples, 5, 2) of radial spokes through k = 0 at ``angles``, their
    positions stored in single precision as ISMRMRD stores them (0.5 grid units apart), each
    sample's 5 consecutive readout samples seen from its nearest grid point."""
    radius = (np.arange(samples) - samples // 2) * 0.5
    offsets = []
    for angle in angles:
        positions = (radius[:, None] * np.array([np.cos(angle), np.sin(angle)])).astype(np.float32).astype(np.float64)
        window = np.clip(np.arange(samples) - 2, 0, samples - 5)[:, None] + np.arange(5)  # whole windows at the ends
        targets = np.round(positions)
        offsets.append(positions[window] - targets[:, None, :])
    return np.concatenate(offsets)


def test_a_spokes_samples_share_one_group_although_their_positions_are_single_precision():
    """The source differences of one spoke's samples jitter by about 1e-5 grid units (positions in
    single precision): rounding alone splits a spoke wherever a rounding boundary falls in that
    jitter; the groups are joined again, one per spoke."""
    angles = np.array([0.0, 0.3, 1.1, np.pi / 4, 2.0])
    offsets = spoke_offsets(angles, 256)
    representatives, group = _shared_groups(offsets, span=300)  # several spans
    assert len(representatives) == len(angles)
    per_spoke = group.reshape(len(angles), 256)
    assert np.all(per_spoke == per_spoke[:, :1]) and len(np.unique(per_spoke[:, 0])) == len(angles)


def test_shared_solves_take_each_samples_own_ridge():
    """A spoke's samples share one decomposition of ``Q``, and each takes its own ridge (the
    model's: the ridge over its grid point's hits, rounded to powers of sqrt(2)): each kernel is
    its own least-squares kernel (against one solved in double precision from exact correlations:
    within single precision's 1e-3 of the largest entry, as a spiral's own solve)."""
    block = random_block(seed=3)
    offsets = spoke_offsets(np.array([0.4, 1.3]), 40)
    hits = np.random.default_rng(4).integers(1, 40, offsets.shape[0])
    averaged = ClosedFormKernelModel.averaged(hits)
    half_octaves = 2 * np.log2(averaged)
    assert np.allclose(half_octaves, np.round(half_octaves)) and np.all(np.abs(averaged / hits - 1) < 0.2)
    ridge = 0.05 * float(np.mean(np.abs(block.kspace) ** 2)) / averaged
    correlation = BlockCorrelation(block)
    shared = closed_form_kernels(correlation, offsets, ridge, torch.device("cpu")).numpy()
    for i in range(0, offsets.shape[0], 7):
        expected = double_precision_kernel(correlation, offsets[i], ridge[i])
        # single-precision Q and products at ridges down to 1.6e-3 of the power: 6e-4 at most
        # (a spoke's mean ridge for all of its samples, as two releases before, was 17 % off)
        np.testing.assert_allclose(shared[i], expected, rtol=0, atol=1e-3 * np.abs(expected).max())


def double_precision_kernel(correlation: BlockCorrelation, offsets: np.ndarray, ridge: float) -> np.ndarray:
    """``P (Q + ridge I)^-1`` of one sample, offsets (S, 2), every ``R`` by finufft at 1e-12 and
    the solve in double precision: (coils, coils * S), coil-major sources."""
    coils, count = correlation.coils, offsets.shape[0]
    exact = lambda shifts: correlation._evaluate(np.asarray(shifts, dtype=np.float64).reshape(-1, 2), precise=True, eps=1e-12)
    p = np.concatenate([exact(-offsets[j])[0][:, :, None] for j in range(count)], axis=2).reshape(coils, coils * count)
    q = np.zeros((coils, count, coils, count), dtype=np.complex128)
    for j in range(count):
        for l in range(count):
            q[:, j, :, l] = exact(offsets[j] - offsets[l])[0]
    q = q.reshape(coils * count, coils * count) + ridge * np.eye(coils * count)
    return p @ np.linalg.inv(q)


@pytest.mark.parametrize("use", ["Q precise", "Q single", "P"])
def test_a_shift_and_its_negative_share_one_evaluation(use, monkeypatch):
    """``R(-delta) = R(delta)^H``: outside the 2D table (3D, and every double-precision value) a
    shift and its negative are evaluated once, for ``Q`` and ``P``; each value equals its own
    direct evaluation, for shifts whose first non-zero component is negative, zero components
    and the zero shift too."""
    precise = use == "Q precise"
    rng = np.random.default_rng(6)
    kspace = (rng.standard_normal((3, 8, 8, 8)) + 1j * rng.standard_normal((3, 8, 8, 8))).astype(np.complex64)
    correlation = BlockCorrelation(CalibrationBlock.at(kspace, (-4, -4, -4), "joint", None))
    positive = rng.uniform(-2, 2, (100, 3))
    edges = np.array([[0.0, -1.5, 0.25], [0.0, 1.5, -0.25], [0.0, 0.0, -0.75], [0.0, 0.0, 0.75], [0.0, 0.0, 0.0], [-0.0, 0.0, 0.0]])
    shifts = np.concatenate([positive, -positive[:60], edges])
    evaluated = []
    evaluate = correlation._evaluate
    monkeypatch.setattr(correlation, "_evaluate", lambda rows, *rest: evaluated.append(len(rows)) or evaluate(rows, *rest))
    values = correlation.at_targets(shifts) if use == "P" else correlation(shifts, precise=precise)
    assert evaluated == [100 + 2 + 1]  # the random shifts, two pairs of edges, the zero shift
    monkeypatch.undo()
    direct = correlation._evaluate(shifts, precise=True, eps=1e-12)
    peak = np.abs(direct).max()
    assert values.dtype == (np.complex128 if precise else np.complex64)
    np.testing.assert_allclose(values, direct, rtol=0, atol=(1e-7 if precise else 2e-4) * peak)


def test_separate_solves_do_not_depend_on_the_thread_count():
    """A spiral's samples are solved in chunks, several at once on the CPU: one thread or two
    give the same kernels bit for bit (and the chunks' rows land in place: the same kernels as
    each sample solved alone, to single precision)."""
    block = random_block(coils=8, side=12, seed=4)
    rng = np.random.default_rng(8)
    chunk = solve_chunk_samples(8 * 5, torch.device("cpu"))  # 8 coils, 5 sources
    assert chunk < 2048  # the CPU's chunks are sized to its cache
    count = 2 * chunk + 300  # three chunks
    offsets = rng.uniform(-1.2, 1.2, (count, 5, 2))
    ridge = np.full(count, 0.02 * float(np.mean(np.abs(block.kspace) ** 2)))

    def solve_on_a_thread_of(threads: int) -> tuple[np.ndarray, int]:
        """The kernels solved by a thread of ``threads`` torch and native threads (its own
        thread-local counts), and its torch count after the solve."""
        torch.set_num_threads(threads)
        pin_native_threads(threads)
        kernels = closed_form_kernels(BlockCorrelation(block), offsets, ridge, torch.device("cpu")).numpy()
        return kernels, torch.get_num_threads()

    own = torch.get_num_threads()
    solved = {}
    try:
        for threads in (1, 2):
            with ThreadPoolExecutor(max_workers=1) as caller:
                solved[threads], after = caller.submit(solve_on_a_thread_of, threads).result()
            assert after == threads  # the solve threads' counts are their own
    finally:
        torch.set_num_threads(own)  # the count new threads start with
    assert np.array_equal(solved[1], solved[2])
    correlation = BlockCorrelation(block)
    for i in (0, chunk + 7, count - 1):
        alone = closed_form_kernels(correlation, offsets[i : i + 1], ridge[i : i + 1], torch.device("cpu")).numpy()[0]
        np.testing.assert_allclose(solved[1][i], alone, rtol=0, atol=1e-4 * np.abs(alone).max())


def test_zero_block_is_a_calibration_error():
    block = random_block()
    block.kspace[:] = 0
    with pytest.raises(CalibrationError, match="power 0"):
        closed_form_kernels(BlockCorrelation(block), np.zeros((2, 3, 2)), np.zeros(2), torch.device("cpu"))


def test_fill_replaces_only_sampled_points_inside_the_block_interior():
    block = random_block(coils=2, side=16)
    matrix = (2, 32, 32)
    kspace = np.full(matrix, 7 + 0j, dtype=np.complex64)
    hits = np.ones(matrix[1:], dtype=np.int32)
    hits[16, 16] = 0  # k = 0 not reached: stays as gridded
    fill_from_block(kspace, hits, block, edge_margin=3)
    grid_region, block_region = block_interior(block, 3, matrix[1:])
    assert (grid_region[0].start, grid_region[0].stop) == (16 - 8 + 3, 16 + 8 - 1 - 3 + 1)  # k -5 .. 4
    inside = kspace[(slice(None),) + grid_region]
    values = block.kspace[(slice(None),) + block_region]
    mask = hits[grid_region] > 0
    np.testing.assert_array_equal(inside[:, mask], values[:, mask])
    assert np.all(kspace[:, 16, 16] == 7)
    outside = np.ones(matrix[1:], bool)
    outside[grid_region] = False
    assert np.all(kspace[:, outside] == 7)
    block.source = "self-calibration"
    assert fill_margin(block, 3) == 4.0  # the central half of a self-calibration block


@pytest.fixture(scope="module")
def radial_results():
    """The recorded 64^2 radial file gridded with the closed form (with and without the centre
    fill) and with the network fit (its accurate test settings: 6 epochs of 1024-pair steps)."""
    results = {}
    for name, overrides in {
        "closed": [],
        "closed_no_fill": ["calibration.fill_centre=false"],
        "network": ["training.fit=network", "calibration.fill_centre=false", *ACCURATE],
    }.items():
        config = load_config("basic", overrides=overrides)
        case = load_case("radial", DATA / "radial_acs.h5", config)
        results[name] = FrameGridder(config).grid(case.frame)
    return case, results


def band_error_and_gain(result, truth: np.ndarray, low: float, high: float) -> tuple[float, float]:
    ny, nx = result.hits.shape
    ky, kx = np.meshgrid(np.arange(ny) - ny // 2, np.arange(nx) - nx // 2, indexing="ij")
    mask = (result.hits > 0) & (np.hypot(kx, ky) >= low) & (np.hypot(kx, ky) < high)
    t, g = truth[:, mask].ravel(), result.kspace[:, mask].ravel()
    return float(np.linalg.norm(g - t) / np.linalg.norm(t)), float(np.vdot(t, g).real / np.vdot(t, t).real)


def test_closed_form_is_accurate_and_unbiased_where_the_image_lives(radial_results):
    case, results = radial_results
    closed_error, closed_gain = band_error_and_gain(results["closed"], case.truth, 0, 8)
    no_fill_error, _ = band_error_and_gain(results["closed_no_fill"], case.truth, 0, 8)
    network_error, _ = band_error_and_gain(results["network"], case.truth, 0, 8)
    assert abs(closed_gain - 1) < 0.005, closed_gain
    assert closed_error < 0.5 * no_fill_error < 0.5 * network_error, (closed_error, no_fill_error, network_error)
    assert results["closed"].report.training.steps == 0
    assert results["closed"].report.training.stop == "closed form (no gradient steps)"
    for low, high in ((8, 16), (16, 1e9)):  # no band worse than the network fit's
        closed, _ = band_error_and_gain(results["closed"], case.truth, low, high)
        network, _ = band_error_and_gain(results["network"], case.truth, low, high)
        assert closed <= 1.1 * network, (low, closed, network)


def test_closed_form_gives_the_same_result_twice(radial_results):
    case, results = radial_results
    again = FrameGridder(load_config("basic")).grid(case.frame)
    np.testing.assert_array_equal(again.kspace, results["closed"].kspace)


def test_error_estimate_is_the_noise_of_averaged_samples_plus_the_misfit():
    """Gridded k-space = truth + noise of std sigma / sqrt(hits): the estimate recovers the
    measured NRMSE from the gridded data alone; the misfit adds on the points not filled."""
    from igrog_gadget.core.error_estimate import estimated_nrmse, radius_from_centre

    rng = np.random.default_rng(5)
    coils, n, sigma = 4, 64, 0.05
    radius = radius_from_centre((n, n))
    truth = (rng.standard_normal((coils, n, n)) + 1j * rng.standard_normal((coils, n, n))) / (1 + radius)
    hits = rng.integers(1, 20, (n, n))
    noise = sigma / np.sqrt(hits) * (rng.standard_normal(truth.shape) + 1j * rng.standard_normal(truth.shape)) / np.sqrt(2)
    gridded = truth + noise
    measured = np.linalg.norm(noise) / np.linalg.norm(truth)
    estimate = estimated_nrmse(gridded, hits, sigma, 0.0, None)
    assert abs(estimate / measured - 1) < 0.05, (estimate, measured)
    with_misfit = estimated_nrmse(gridded, hits, sigma, 0.1, None)
    assert with_misfit == pytest.approx(np.hypot(estimate, 0.1), rel=0.05)
    filled = radius < 8  # no kernel misfit where the calibration filled
    partly = estimated_nrmse(gridded, hits, sigma, 0.1, filled)
    assert estimate < partly < with_misfit
    centre = estimated_nrmse(gridded, hits, sigma, 0.1, filled, region=filled)
    centre_noise = np.linalg.norm(noise[:, filled]) / np.linalg.norm(truth[:, filled])
    assert abs(centre / centre_noise - 1) < 0.1, (centre, centre_noise)
    # kernels in fewer virtual coils keep a share of the noise power outside the filled centre
    kept = np.where(filled, 1.0, np.sqrt(0.4))
    shared = estimated_nrmse(truth + noise * kept, hits, sigma, 0.0, filled, kept_noise=0.4)
    measured_shared = np.linalg.norm(noise * kept) / np.linalg.norm(truth)
    assert abs(shared / measured_shared - 1) < 0.05, (shared, measured_shared)
    assert estimated_nrmse(truth + noise * kept, hits, sigma, 0.0, filled) > 1.3 * measured_shared


@pytest.mark.parametrize("name", ["spiral_acs", "radial_acs"])
def test_a_plan_skips_the_samples_whose_points_the_centre_fill_replaces(name):
    """Samples landing inside the block interior that ``fill_from_block`` replaces get no kernel
    (``make_plan(skip=...)``): every other grid point is gridded as with every kernel (a spiral's
    per-sample solves bit for bit; a radial spoke's shared factorisation averages its ridge over
    fewer samples: within 1 %), the hits are unchanged, and the skipped points are left for the fill."""
    from igrog_engine import Inferencer
    from igrog_gadget.app.registry import get_variant
    from igrog_gadget.core.centre import filled_region, samples_in_region
    from igrog_gadget.core.plan import make_plan

    config = load_config("basic")
    case = load_case(name, DATA / f"{name}.h5", config)
    spec = get_variant("basic")
    training = spec.datamodule(case.frame, config, with_training=True)
    training.preprocess()
    model = spec.model(training, config)
    grids = {}
    for skip in (False, True):
        datamodule = spec.datamodule(case.frame, config, with_training=False)
        datamodule.preprocess()
        geometry = datamodule.prepared_geometry
        region = filled_region(datamodule.centre_block(), config.calibration.edge_margin, geometry)
        mask = samples_in_region(geometry, region) if skip else None
        plan = make_plan(model, datamodule, Inferencer("cpu"), keep=True, skip=mask, skipped=region if skip else None)
        grids[skip] = plan.apply(datamodule)
        if skip:
            assert 0.05 < mask.mean() < 0.5 and plan.kernels.rows.shape[0] == geometry.num_samples - mask.sum()
    inside = np.zeros(grids[True].hits.shape, bool)
    inside[region] = True
    np.testing.assert_array_equal(grids[True].hits, grids[False].hits)
    assert np.all(grids[True].kspace[:, inside & (grids[True].hits > 0)] == 0)
    kept, full = grids[True].kspace[:, ~inside], grids[False].kspace[:, ~inside]
    if name.startswith("spiral"):
        np.testing.assert_array_equal(kept, full)
    else:
        assert np.linalg.norm(kept - full) < 0.01 * np.linalg.norm(full)
