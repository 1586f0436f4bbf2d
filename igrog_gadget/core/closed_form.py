"""Closed-form kernels: the least-squares GRAPPA kernel of every sample, solved from the
calibration block's autocorrelation.

The gradient-trained network learns ``offsets → kernel`` by minimising the prediction error over
pairs synthesised from the calibration block. That error has a closed-form minimiser for each
sample. Take the block's coil images ``m_c(r)`` (zero-padded, so its k-space ``x_c(k)`` is the
block's sinc interpolation) and their cross-products ``m_c(r) conj(m_d(r))``: the block's mean
autocorrelation at any shift is

    R_cd(delta) = mean_k x_c(k + delta) conj(x_d(k)) = NUFFT{m_c conj(m_d)}(delta) / block points

so, for a sample whose sources lie at offsets ``o_1 .. o_S`` from its target grid point,

    E[t s^H]  = P,  P[c, (d, j)]        = R_cd(-o_j)
    E[s s^H]  = Q,  Q[(d, j), (e, l)]   = R_de(o_j - o_l)
    kernel K  = P (Q + lambda I)^-1       (coil-major sources, index d * S + j)

This is what an infinite set of training pairs drawn over the whole block would train, with the
loss weighted by the block's energy (where the image's energy is), and without the pairs' noise.
``lambda`` is the ridge a source noise of variance ``loading * noise_variance / hits`` adds: the
noise of the samples a kernel reads, divided by the samples averaged into its grid point (a
point many samples reach averages their kernels' noise gain down; a lone sample far out in
k-space does not; ``hits`` rounded to powers of sqrt(2)). Samples whose source differences
``o_j - o_l`` agree (every sample of a radial spoke: its samples are evenly spaced) share one
eigendecomposition of ``Q``, and those of them with one ridge one ``(Q + lambda I)^-1``.

References:
    Griswold et al., "Generalized autocalibrating partially parallel acquisitions (GRAPPA)",
    MRM 47:1202 (2002) (the least-squares kernel); Seiberlich et al., "Self-calibrating GRAPPA
    operator gridding for radial and spiral trajectories", MRM 59:930 (2008).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from igrog_gadget.environment import native_threads, pin_native_threads
from igrog_gadget.errors import CalibrationError, ConfigError
from igrog_gadget.numerics.calibration import CalibrationBlock
from igrog_gadget.numerics.dimensions import dimensions
from igrog_gadget.numerics.fft import centred_fftn
from igrog_gadget.numerics.nufft import finufft_options, finufft_points

if TYPE_CHECKING:  # the datamodule imports the model's callers, not this module
    from igrog_gadget.core.datamodule import GriddingDataModule
    from igrog_gadget.config import IgrogConfig

#: Samples whose ``Q`` is assembled and factored at once on a GPU (memory: 8 * (coils * sources)^2
#: bytes each in single precision), and at most on the CPU (``solve_chunk_samples``).
SOLVE_CHUNK = 2048
#: On the CPU, the single-precision ``Q`` of a chunk fits this many bytes: a chunk's matrices stay in
#: the cache between their assembly, factorisation and solve, and its buffers are reused rather than
#: mapped anew (128² spiral, 8 coils, 5 sources: 512 samples a chunk, 0.9x the CPU time of 2048 and
#: 0.65x the peak memory; 256 and 128 measured the same as 512).
CPU_SOLVE_CHUNK_BYTES = 8 * 2**20
#: Bytes the chunks solved at once may hold in matrices (``_run_chunks``: each holds about three
#: of ``Q``'s size: its entries, ``Q`` and its factor), so that many cores do not multiply a
#: scan's memory: binds only where a chunk's 64 samples exceed ``CPU_SOLVE_CHUNK_BYTES`` (``Q``
#: larger than 128 x 128: 21 such chunks at once at 128).
SOLVE_MEMORY = 512 * 2**20
#: Largest calibration block (points) the correlation is computed from: its central part beyond
#: (2D: 64 x 64, 3D: 16^3; the product grid is twice that per side, per coil pair).
CORRELATION_MAX_POINTS = 4096
#: Correlation values (shifts x coils^2) a span of samples evaluates in one finufft call (8 bytes
#: each): every call transforms the whole product grid, so few large calls.
EVALUATION_VALUES = 2**24
#: Source differences equal to this many grid units share one factorisation.
SHARED_DIFFERENCE_TOLERANCE = 1e-4
#: Smallest ridge, relative to the mean source power: bounds ``Q``'s condition number where the
#: calibration gives no noise estimate (an ACS block alone) or many samples share a point, so that
#: kernels solved from single-precision correlations (``_EPS_SINGLE``) are the least-squares
#: kernels they stand for. A 3D stack of spirals calibrated from its 16 x 16 ACS block alone (9
#: sources, 4 coils): at 1e-6, cond(Q) ~ 5e5 and kernels 3-17 % off the double-precision solve,
#: their k-space error 0.30 or 0.12 depending on rounding alone; at 1e-3, cond ~ 1.5e4, 0.3-3 %
#: off, error 0.10 (a 16^3 kooshball from its 12^3 ACS: 0.086 → 0.053). The joint blocks' noise
#: ridges lie above it (128² radial and spiral: 2e-3 and more; 192², 16 coils: 1.7 % of samples
#: at 8e-4).
MIN_RELATIVE_LOADING = 1e-3
#: ``ShiftTable`` (2D): table points per grid unit of shift. Cubic Lagrange interpolation between
#: them: largest error 7e-6 of ``R``'s peak at 16 (embedded sample's block, 100 000 random shifts,
#: against finufft at 1e-12), below finufft's 5.6e-5 at a tolerance of 1e-4 and 8.4e-6 at 1e-5.
TABLE_POINTS_PER_UNIT = 16
#: Grid units the shifts of ``BlockCorrelation`` are rounded to (far below finufft's precision).
SHIFT_QUANTUM = 2.0**-30
#: finufft precision of the correlations: ``Q`` in double precision, and in single precision
#: (3D; 2D reads the ``ShiftTable``) with ``P`` at 1e-4. 1e-4 against 1e-5: k-space NRMSE the same
#: to its 4th digit on radial, spiral and kooshball (``P``), and on a 32³ kooshball, a 3D stack of
#: spirals and a 16³ kooshball calibrated from its ACS (``Q``, basic, image_based, fieldcorr);
#: kernels as far from the double-precision solve (the ridge floor, ``MIN_RELATIVE_LOADING``, lies
#: ten times above the error and keeps ``Q`` positive definite); 1.4x (2D) to 1.7x (3D) fewer
#: interpolation taps (32³ kooshball: 35 → 30 CPU-s, 24 → 18 s).
_EPS_Q = 1e-8
_EPS_SINGLE = 1e-4


class BlockCorrelation:
    """``R_cd(delta)`` of a calibration block at arbitrary shifts (see the module docstring).

    ``padding``: zero-padding factor of the block's images (2 keeps its autocorrelation, twice
    the block's width, free of wrap-around).
    """

    def __init__(self, block: CalibrationBlock, padding: int = 2) -> None:
        block = central_part(block, CORRELATION_MAX_POINTS)
        coils = block.kspace.shape[0]
        self.coils = coils
        self.dims = block.dims
        self.grid = tuple(int(padding * n) for n in block.shape)  # ([az,] ay, ax)
        padded = np.zeros((coils, *self.grid), dtype=np.complex128)
        corner = tuple(reversed(block.origin))
        region = tuple(slice(g // 2 + o, g // 2 + o + n) for g, o, n in zip(self.grid, corner, block.shape))
        padded[(slice(None),) + region] = block.kspace
        images = centred_fftn(padded, tuple(range(-self.dims, 0)), inverse=True)
        # sum_r m_c conj(m_d) exp(-2 pi i delta r) = sum over the block's points (Parseval)
        self.products = np.ascontiguousarray(
            (images[:, None] * images[None].conj()).reshape(coils * coils, *self.grid) / math.prod(block.shape)
        )
        """Shape (coils * coils, [az,] ay, ax), complex128: ``m_c conj(m_d)`` over the padded image grid."""
        self._products_single = self.products.astype(np.complex64)
        self._table: ShiftTable | None = None
        """Made at the first single-precision evaluation in 2D (``_evaluate``)."""
        self.at_zero = self(np.zeros((1, self.dims)), precise=True)[0]
        """``R(0)`` (coils, coils), complex128: the block's mean coil covariance."""
        self.power = float(np.real(np.trace(self.at_zero))) / coils
        """Mean source power ``tr R(0) / coils`` (data units squared)."""
        if not (math.isfinite(self.power) and self.power > 0):
            raise CalibrationError(f"the calibration block has power {self.power:g}: it cannot calibrate kernels")

    def __call__(self, shifts: np.ndarray, precise: bool) -> np.ndarray:
        """``R(shifts)`` for ``Q``: shifts (m, dims) grid units → (m, coils, coils), complex128 at
        1e-8 relative when ``precise``, else complex64 at 1e-4 (2D: the ``ShiftTable``; 3D: finufft, on the CPU)."""
        if shifts.shape[0] == 0:
            return np.zeros((0, self.coils, self.coils), dtype=np.complex128 if precise else np.complex64)
        if self._tabulated(precise):  # a few multiply-adds per value: cheaper than finding the repeats
            return self._evaluate(np.asarray(shifts, dtype=np.float64), precise, _EPS_SINGLE)
        return self._evaluate_distinct(shifts, precise, _EPS_Q if precise else _EPS_SINGLE)

    def at_targets(self, shifts: np.ndarray) -> np.ndarray:
        """``R(shifts)`` for ``P``: shifts (m, dims) grid units (a sample's sources seen from its
        target) → (m, coils, coils), complex64 at 1e-4. Where finufft evaluates them (3D), each
        distinct shift once (``_evaluate_distinct``): the samples that share a grid point share
        most of their sources (consecutive readout samples)."""
        shifts = np.asarray(shifts, dtype=np.float64)
        if self._tabulated(precise=False):
            return self._evaluate(shifts, False, _EPS_SINGLE)
        return self._evaluate_distinct(shifts, False, _EPS_SINGLE)

    def _evaluate_distinct(self, shifts: np.ndarray, precise: bool, eps: float) -> np.ndarray:
        """``_evaluate`` of each distinct shift up to its sign, once: shifts (m, dims) → (m, coils,
        coils). Equal shifts recur (the same two samples in the windows of neighbouring samples, a
        readout's source spacing seen from each of its targets); they are quantised to
        ``SHIFT_QUANTUM`` first, so that a difference computed from two targets' offsets matches
        to the bit. A shift and its negative share one evaluation, ``R(-delta) = R(delta)^H``
        (32³ kooshball: of 2.0 million shifts of ``Q``, 0.96 million distinct, 0.57 million up to
        sign; of 0.49 million of ``P``, 0.32 and 0.18 million). finufft interpolates each point
        on its own, so a value does not depend on which others are evaluated with it."""
        shifts = np.round(np.asarray(shifts, dtype=np.float64) / SHIFT_QUANTUM) * SHIFT_QUANTUM
        negated = _in_negative_half(shifts)
        shifts[negated] *= -1
        shifts += 0.0  # -0.0 → 0.0: equal shifts are equal bytes
        first, inverse = _distinct_rows(shifts)
        values = self._evaluate(shifts[first], precise, eps)[inverse]
        values[negated] = values[negated].transpose(0, 2, 1).conj()
        return values

    def tabulate(self, reach: float) -> bool:
        """Make the 2D ``ShiftTable`` cover shifts up to ``reach`` grid units (largest |component|)
        now, so that single-precision evaluations of such shifts only read it (from any thread);
        False in 3D (finufft evaluates)."""
        if self.dims != 2:
            return False
        if self._table is None or not self._table.covers(reach):
            self._table = ShiftTable(self.products, reach, TABLE_POINTS_PER_UNIT)
        return True

    def _tabulated(self, precise: bool) -> bool:
        """Whether single-precision values come from the 2D ``ShiftTable``."""
        return not precise and self.dims == 2

    def _evaluate(self, shifts: np.ndarray, precise: bool, eps: float) -> np.ndarray:
        """``R(shifts)``: in double precision at finufft tolerance ``eps`` when ``precise``; else
        in single precision, from the 2D ``ShiftTable`` (one set of interpolation weights per
        shift for every coil pair) or, in 3D, finufft at ``eps``."""
        if shifts.shape[0] == 0:
            return np.zeros((0, self.coils, self.coils), dtype=np.complex128 if precise else np.complex64)
        if self._tabulated(precise):
            self.tabulate(float(np.max(np.abs(shifts))))
            assert self._table is not None
            return self._table(shifts).reshape(-1, self.coils, self.coils)
        dtype = np.float64 if precise else np.float32
        points = finufft_points(shifts, self.grid, dtype)
        data = self.products if precise else self._products_single
        values = dimensions(self.dims).nufft_type2()(*points, data, eps=eps, isign=-1, **finufft_options())
        return np.ascontiguousarray(values.T).reshape(-1, self.coils, self.coils)


class ShiftTable:
    """``R(shift)`` of every coil pair on a fine 2D grid of shifts around 0, interpolated.

    The table holds ``R`` at shifts ``-reach .. reach`` grid units in steps of ``1 / points_per_unit``
    on both axes (one separable DFT of the block's image products: ``R(d) = sum_r p(r) e^{-2 pi i
    d r / G}``). A shift's value is the cubic (4-point) Lagrange interpolation of its 4 x 4
    neighbouring table points, the same 16 weights for every coil pair: one weighted sum of 16
    table rows per shift evaluates all pairs at once (finufft would interpolate each pair on its
    own). ``R`` is band-limited to half a cycle per grid unit (the image products live on the
    field of view), so the interpolation error is about ``(pi h)^4 / 43`` relative, ``h`` the step.
    The sums are torch's ``embedding_bag``: each shift's 16 rows added in order, whatever the
    thread count (the values do not depend on it), without the GIL (the solve threads interpolate
    in parallel; scipy's sparse product, 3-4x slower on one thread, held it).
    """

    def __init__(self, products: np.ndarray, reach: float, points_per_unit: int) -> None:
        """``products``: (pairs, ay, ax) complex, the block's image products (``BlockCorrelation.products``);
        ``reach``: largest |shift| component (grid units) to evaluate."""
        pairs, *grid = products.shape
        self.points_per_unit = int(points_per_unit)
        self.reach = int(math.ceil(reach)) + 1  # room for the 4-point stencil
        shifts = np.arange(-self.reach * self.points_per_unit, self.reach * self.points_per_unit + 1) / self.points_per_unit
        self.size = shifts.size
        # e^{-2 pi i d k / n} for the modes k = -n/2 .. n/2 - 1 of each axis (finufft's order)
        ey, ex = (np.exp(-2j * np.pi * np.outer(shifts, np.arange(n) - n // 2) / n) for n in grid)
        # two matrix products: over x (pairs * ay, ax) @ (ax, shift x), then over y
        table = (products.reshape(-1, grid[1]) @ np.ascontiguousarray(ex.T)).reshape(pairs, grid[0], self.size)
        table = np.ascontiguousarray(table.transpose(0, 2, 1)).reshape(-1, grid[0]) @ np.ascontiguousarray(ey.T)
        table = table.reshape(pairs, self.size, self.size).transpose(0, 2, 1)  # (pairs, shift y, shift x)
        values = table.reshape(pairs, -1).T.astype(np.complex64)  # (shift y * size + shift x, pairs)
        self.table = torch.from_numpy(np.ascontiguousarray(values).view(np.float32))
        """Shape (size * size, 2 * pairs), float32 on the CPU: real and imaginary parts of ``R``."""

    def covers(self, reach: float) -> bool:
        """Whether shifts up to ``reach`` (largest |component|) lie inside the table's stencil range."""
        return reach <= self.reach - 1

    def __call__(self, shifts: np.ndarray) -> np.ndarray:
        """``R(shifts)``: shifts (m, 2) grid units (x, y) → (m, pairs) complex64."""
        m = shifts.shape[0]
        position = (np.asarray(shifts, dtype=np.float64) + self.reach) * self.points_per_unit
        base = np.floor(position).astype(np.int64)
        fraction = position - base
        wx, wy = _lagrange4(fraction[:, 0]), _lagrange4(fraction[:, 1])  # (m, 4) each
        taps = np.arange(-1, 3)
        rows = (base[:, 1, None] + taps)[:, :, None] * self.size + (base[:, 0, None] + taps)[:, None, :]  # (m, 4, 4)
        weights = (wy[:, :, None] * wx[:, None, :]).astype(np.float32)
        with torch.no_grad():
            values = torch.nn.functional.embedding_bag(
                torch.from_numpy(rows.reshape(m, 16)), self.table, per_sample_weights=torch.from_numpy(weights.reshape(m, 16)),
                mode="sum",
            )
        return values.numpy().view(np.complex64)


def _lagrange4(fraction: np.ndarray) -> np.ndarray:
    """Cubic Lagrange weights of the nodes -1, 0, 1, 2 at ``fraction`` in [0, 1): (m,) → (m, 4)."""
    u = fraction
    return np.stack([-u * (u - 1) * (u - 2) / 6, (u + 1) * (u - 1) * (u - 2) / 2, -(u + 1) * u * (u - 2) / 2, (u + 1) * u * (u - 1) / 6], -1)


def central_part(block: CalibrationBlock, max_points: int) -> CalibrationBlock:
    """The part of ``block`` around k = 0 with at most ``max_points ** (1 / dims)`` points per side
    (the block itself when it is that small)."""
    side = int(math.floor(max_points ** (1.0 / block.dims) + 1e-9))
    if max(block.shape) <= side:
        return block
    origin, slices = [], []
    for low, extent in zip(block.origin, block.extent):  # (x, y[, z]) order
        start = min(max(low, -(side // 2)), low + extent - min(side, extent)) if extent > side else low
        origin.append(start)
        slices.append(slice(start - low, start - low + min(side, extent)))
    region = (slice(None),) + tuple(reversed(slices))
    return CalibrationBlock.at(np.ascontiguousarray(block.kspace[region]), origin, block.source, block.noise_std)


def closed_form_kernels(
    correlation: BlockCorrelation, offsets: np.ndarray, loading: np.ndarray, device: torch.device
) -> torch.Tensor:
    """The least-squares kernel of every sample (see the module docstring).

    Args:
        correlation: the calibration block's ``R``.
        offsets: shape (n, sources, dims), grid units: source positions minus target grid point.
        loading: shape (n,), data units squared: ridge ``lambda`` of each sample.
        device: where the solves run.
    Returns:
        shape (n, coils, coils * sources), complex64 on ``device``: the transpose of a contiguous
        (n, coils * sources, coils) tensor, the layout ``igrog_gadget.core.plan.KernelChunks``
        keeps (its ``contiguous()`` of the transpose then copies nothing).
    """
    n, num_sources, dims = offsets.shape
    coils = correlation.coils
    stored = torch.empty((n, coils * num_sources, coils), dtype=torch.complex64, device=device)
    shifts_per_sample = num_sources * (num_sources + 1) // 2  # targets and source differences
    span = max(SOLVE_CHUNK, EVALUATION_VALUES // (coils * coils * shifts_per_sample))
    ridge = np.maximum(loading, MIN_RELATIVE_LOADING * correlation.power)
    shared = _shared_solve(correlation, offsets, span, device)
    for start in range(0, n, span):
        stop = min(start + span, n)
        span_shared = None if shared is None else dataclasses.replace(shared, group=shared.group[start:stop])
        _solve_span(correlation, offsets[start:stop].astype(np.float64), ridge[start:stop], stored[start:stop], span_shared)
    return stored.transpose(1, 2)


def solve_chunk_samples(matrix_size: int, device: torch.device) -> int:
    """Samples solved together in one chunk (``_solve_span``) when each ``Q`` is ``matrix_size``
    square (coils * sources): ``SOLVE_CHUNK`` on a GPU; on the CPU as many as fit
    ``CPU_SOLVE_CHUNK_BYTES`` in single precision, a multiple of 64 from 64 to ``SOLVE_CHUNK``."""
    if device.type != "cpu":
        return SOLVE_CHUNK
    fitting = CPU_SOLVE_CHUNK_BYTES // (8 * matrix_size * matrix_size)
    return int(min(SOLVE_CHUNK, max(64, fitting // 64 * 64)))


def _source_differences(offsets: np.ndarray) -> np.ndarray:
    """``o_j - o_l`` of each sample's source pairs ``j < l`` (``np.triu_indices`` order): offsets
    (b, S, dims) → (b, pairs, dims) float64."""
    upper = np.triu_indices(offsets.shape[1], 1)
    offsets = offsets.astype(np.float64, copy=False)
    return offsets[:, upper[0]] - offsets[:, upper[1]]


@dataclass(frozen=True)
class SharedSolve:
    """The eigendecomposition ``Q = V diag(values) V^H`` shared by samples with equal source
    differences (``_shared_solve``), so that each sample's ``(Q + lambda_i I)^-1`` =
    ``V diag(1 / (values + lambda_i)) V^H`` takes its own ridge."""

    adjoint: torch.Tensor
    """Shape (groups, S * coils, S * coils), complex64: ``V^H``, columns source-major."""
    coil_major: torch.Tensor
    """Shape (groups, coils * S, S * coils), complex64: ``V`` with its rows coil-major."""
    values: torch.Tensor
    """Shape (groups, S * coils), float32: the eigenvalues, at least 0."""
    group: np.ndarray
    """Shape (n,), int64: each sample's group."""


def _shared_solve(
    correlation: BlockCorrelation, offsets: np.ndarray, span: int, device: torch.device
) -> SharedSolve | None:
    """The ``SharedSolve`` of samples with equal source differences (every sample of a radial
    spoke: its samples are evenly spaced), when there are at most a quarter as many distinct ones
    as samples; None otherwise (each sample solves its own ``Q``).

    The groups are found span by span (``span`` samples at a time, ``_shared_groups``), and every
    group's ``Q`` is made and decomposed at once, in single precision like a spiral's (2D: read
    from the ``ShiftTable``; 3D: one finufft evaluation). The ridge floor
    (``MIN_RELATIVE_LOADING``, 1e-3 of the source power) lies far above single precision's
    rounding of ``Q`` (about 1e-7 of its largest eigenvalue), so ``(Q + lambda I)^-1`` moves by
    about 1e-4 of itself: 128² radial, 200 spokes, k-space NRMSE 0.0266744 → 0.0266741 against
    double precision; 192² x 16 coils, 300 spokes, 0.0293676 → 0.0293667, the grid call's CPU
    0.86-1.09x (4 alternating pairs) and 0.86x in another run. A group's ``Q`` comes from its
    first member's own differences (rounded values would not be the differences of one set of
    positions). Its samples' ridges differ (each is divided by its grid point's hits: many near
    the centre, one or two far out), hence a decomposition rather than one inverse."""
    grouping = _shared_groups(offsets, span)
    if grouping is None:
        return None
    representatives, group = grouping
    q = _source_correlation(correlation, representatives, np.zeros(len(representatives)), precise=False, device=device)
    values, vectors = torch.linalg.eigh(q, UPLO="U")  # source-major rows and columns
    groups, size, _ = vectors.shape
    coils = correlation.coils
    coil_major = vectors.view(groups, size // coils, coils, size).transpose(1, 2).reshape(groups, size, size)
    return SharedSolve(
        adjoint=vectors.mH.to(torch.complex64).contiguous(),
        coil_major=coil_major.to(torch.complex64),
        values=values.clamp(min=0).to(torch.float32),
        group=group,
    )


def _shared_groups(offsets: np.ndarray, span: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Samples whose source differences agree within ``SHARED_DIFFERENCE_TOLERANCE``:
    ``(representatives (groups, pairs, dims): each group's first member's differences, group (n,)
    int64)``, or None when there are more groups than a quarter of the samples.

    Trajectories are stored in single precision, so the differences of one spoke's samples jitter
    by about 1e-5 grid units: rounding them to the tolerance splits a spoke wherever a rounding
    boundary falls inside that jitter. The rounded rows are therefore only a first grouping;
    groups whose representatives lie within the tolerance of each other (largest component) are
    then joined (``_near_components``)."""
    n = offsets.shape[0]
    group = np.empty(n, dtype=np.int64)
    known: dict[bytes, int] = {}
    representatives: list[np.ndarray] = []
    for start in range(0, n, span):
        differences = _source_differences(offsets[start : start + span])
        rounded = np.round(differences.reshape(differences.shape[0], -1) / SHARED_DIFFERENCE_TOLERANCE).astype(np.int64)
        first, local = _distinct_rows(rounded)
        if (len(known) + len(first)) * 4 > n and len(first) * 4 > len(rounded):  # (a spiral: all distinct)
            return None
        numbers = np.empty(len(first), dtype=np.int64)
        for index, row in enumerate(first):
            numbers[index] = known.setdefault(rounded[row].tobytes(), len(known))
            if numbers[index] == len(representatives):
                representatives.append(differences[row])
        group[start : start + span] = numbers[local]
        if len(known) * 4 > n:
            return None
    if not representatives:
        return None
    stacked = np.stack(representatives)
    component = _near_components(stacked.reshape(len(stacked), -1), SHARED_DIFFERENCE_TOLERANCE)
    count = int(component.max()) + 1
    if count * 4 > n:
        return None
    _, first_of_component = np.unique(component, return_index=True)  # components numbered 0 .. count - 1
    return stacked[first_of_component], component[group]


def _near_components(rows: np.ndarray, tolerance: float) -> np.ndarray:
    """Rows (g, m) joined where they agree within ``tolerance`` (largest component difference),
    and joined rows' rows in turn: each row's component, (g,) int64, numbered 0, 1, ... in the
    order of each component's first row.

    Rows that agree have sums within ``m * tolerance``: in the order of their sums each row is
    compared with the few that follow within that reach (union-find over the agreeing pairs)."""
    count, width = rows.shape
    parent = np.arange(count)

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = int(parent[index])
        return index

    sums = rows.sum(axis=1)
    order = np.argsort(sums, kind="stable")
    ends = np.searchsorted(sums[order], sums[order] + width * tolerance, side="right")
    for position, index in enumerate(order):
        others = order[position + 1 : ends[position]]
        for other in others[np.max(np.abs(rows[others] - rows[index]), axis=1, initial=0.0) <= tolerance]:
            parent[root(int(other))] = root(int(index))
    roots = np.array([root(index) for index in range(count)], dtype=np.int64)
    _, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)]


def _solve_span(
    correlation: BlockCorrelation, offsets: np.ndarray, ridge: np.ndarray, out: torch.Tensor,
    shared: SharedSolve | None,
) -> None:
    """``closed_form_kernels`` of a span of samples into ``out`` (b, coils * S, coils), the
    kernels transposed: offsets (b, S, dims) float64, ridge (b,). The solves run in chunks of
    ``solve_chunk_samples`` samples (``_run_chunks``: several at once on the CPU). In 2D each chunk reads
    its correlations from the block's ``ShiftTable``; in 3D finufft evaluates the span's together
    first (each call transforms the whole product grid once).

    Inside, sources are ordered source-major (index ``j * coils + d``): ``R(o_j)`` of a sample's
    sources, as evaluated (rows ``j``, each a coils x coils block), is then ``P^H`` as it stands
    (``_targets_conjugated``), with no transposition. ``Q`` is assembled in the same order.

    ``shared``: the decompositions of the samples' groups (``_shared_solve``, ``group`` (b,)). Else
    each sample has its own ``Q`` (a spiral), made and factored in single precision (twice as
    fast); a sample whose single-precision ``Q`` does not factor is solved again in double
    precision.
    """
    b, num_sources, dims = offsets.shape
    coils = correlation.coils
    device = out.device
    differences = _source_differences(offsets)  # (b, pairs, dims)
    pairs_per_sample = differences.shape[1]
    chunk = solve_chunk_samples(coils * num_sources, device)
    tabulated = correlation.tabulate(max(float(np.max(np.abs(offsets))), float(np.max(np.abs(differences), initial=0.0))))
    if not tabulated:  # finufft, on this thread (its FFT plans are made one at a time)
        r_targets = correlation.at_targets(offsets.reshape(-1, dims))
        if shared is None:
            r_pairs = correlation(differences.reshape(-1, dims), precise=False).reshape(b, pairs_per_sample, coils, coils)

    def targets_of(rows: slice | np.ndarray) -> torch.Tensor:
        """``P^H`` of the samples ``rows``, source-major (``_targets_conjugated``)."""
        if tabulated:
            r = correlation.at_targets(offsets[rows].reshape(-1, dims))
        else:
            r = r_targets.reshape(b, -1)[rows]
        return _targets_conjugated(r, num_sources, coils).to(device)

    def solve_chunk(start: int) -> np.ndarray:
        """The chunk at ``start`` solved into ``out``; the rows whose single-precision ``Q`` did not factor."""
        rows = slice(start, min(start + chunk, b))
        if shared is not None:  # in (group, ridge) order, put in place after
            order = np.lexsort((ridge[rows], shared.group[rows]))
            solved = torch.empty_like(out[rows])
            _store_shared_solutions(targets_of(start + order), shared, shared.group[rows][order], ridge[rows][order], solved)
            torch.index_select(solved, 0, torch.from_numpy(np.argsort(order)).to(device), out=out[rows])
            return np.zeros(0, dtype=np.int64)
        p_conjugated = targets_of(rows)
        if tabulated:
            pairs = correlation(differences[rows].reshape(-1, dims), precise=False).reshape(-1, pairs_per_sample, coils, coils)
        else:
            pairs = r_pairs[rows]
        q = _assemble_source_correlation(pairs, correlation.at_zero, ridge[rows], torch.complex64, device)
        factor, info = torch.linalg.cholesky_ex(q, upper=True)
        _store_solution(torch.cholesky_solve(p_conjugated, factor, upper=True), out[rows])
        return start + torch.nonzero(info > 0).reshape(-1).cpu().numpy()

    chunk_bytes = 3 * chunk * (coils * num_sources) ** 2 * 8
    failed = np.concatenate(_run_chunks(solve_chunk, range(0, b, chunk), device, max(1, SOLVE_MEMORY // chunk_bytes)))
    if failed.size:  # in double precision (finufft: on this thread)
        q = _source_correlation(correlation, differences[failed], ridge[failed], precise=True, device=device)
        solved = torch.cholesky_solve(targets_of(failed).to(q.dtype), _cholesky(q), upper=True)
        stored = torch.empty((failed.size, *out.shape[1:]), dtype=out.dtype, device=device)
        _store_solution(solved, stored)  # (copy_ rounds to out's single precision)
        out[torch.from_numpy(failed).to(device)] = stored


def _targets_conjugated(r_sources: np.ndarray, num_sources: int, coils: int) -> torch.Tensor:
    """``P^H`` of samples, source-major, from ``R`` at their source offsets ``o_j`` (not negated):
    r_sources (m * S, coils, coils) or (m, S * coils * coils) → (m, S * coils, coils), entry
    ``[(j, d), c] = conj(P[c, (d, j)]) = conj(R_cd(-o_j)) = R_dc(o_j)``, a view (no copy)."""
    return torch.from_numpy(np.ascontiguousarray(r_sources)).view(-1, num_sources * coils, coils)


def _store_solution(solution: torch.Tensor, out: torch.Tensor) -> None:
    """Kernels into ``out`` (m, coils * S, coils), the stored (transposed) layout, from ``Q^-1 P^H``
    (``K^H``) source-major, solution (m, S * coils, coils): ``out[(d, j), c] = K[c, (d, j)] =
    conj(solution[(j, d), c])``."""
    m, rows, coils = solution.shape
    num_sources = rows // coils
    out.view(m, coils, num_sources, coils).copy_(solution.view(m, num_sources, coils, coils).transpose(1, 2).conj())


def _store_shared_solutions(
    p_conjugated: torch.Tensor, shared: SharedSolve, group: np.ndarray, ridge: np.ndarray, out: torch.Tensor
) -> None:
    """Kernels of samples that share their group's decomposition, into ``out`` (m, coils * S,
    coils) in the stored layout: p_conjugated (m, S * coils, coils) source-major
    (``_targets_conjugated``), group (m,), ridge (m,), the samples in ``(group, ridge)`` order
    (the model's ridges take few values: ``ClosedFormKernelModel.averaged``).

    Each run of samples with one group and ridge takes ``M = V diag(1 / (values + ridge)) V^H``
    with ``V``'s rows coil-major (the runs' ``M`` made together): ``M P^H`` is ``K^H`` with
    coil-major rows, the conjugate of the stored layout. One product per run, written in place."""
    m = p_conjugated.shape[0]
    breaks = np.flatnonzero((np.diff(group) != 0) | (np.diff(ridge) != 0)) + 1
    starts, stops = np.concatenate([[0], breaks]), np.concatenate([breaks, [m]])
    numbers = torch.from_numpy(group[starts]).to(p_conjugated.device)
    levels = torch.from_numpy(ridge[starts].astype(np.float32)).to(p_conjugated.device)
    weights = 1.0 / (shared.values[numbers] + levels[:, None])  # (runs, S * coils)
    solves = torch.matmul(shared.coil_major[numbers] * weights[:, None, :], shared.adjoint[numbers])  # (runs, coils * S, S * coils)
    for run, (start, stop) in enumerate(zip(starts, stops)):
        torch.matmul(solves[run], p_conjugated[start:stop], out=out[start:stop])
    out.conj_physical_()


def _run_chunks(
    solve: Callable[[int], np.ndarray], starts: range, device: torch.device, max_workers: int
) -> list[np.ndarray]:
    """``[solve(start) for start in starts]``: on the CPU in as many threads as the calling thread
    may use (``native_threads``), at most ``max_workers`` (the chunks that fit ``SOLVE_MEMORY``),
    each with one torch thread (a chunk's work is thousands of small LAPACK factorisations and
    sparse products, one matrix at a time: a second torch thread inside a chunk only adds
    wake-ups). Each chunk writes its own rows and is computed the same
    way whichever thread runs it and with whatever torch thread count (per-matrix factorisations,
    element-wise copies), so the result does not depend on the thread count."""
    workers = min(native_threads(), len(starts), max_workers)
    if device.type != "cpu" or workers <= 1:
        return [solve(start) for start in starts]
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()
    own = torch.get_num_threads()

    def one_thread(start: int) -> np.ndarray:  # autograd modes and torch's thread count are per thread
        torch.set_num_threads(1)
        pin_native_threads(1)
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return solve(start)

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="igrog-solve") as pool:
            return list(pool.map(one_thread, starts))  # re-raises a chunk's error
    finally:
        # torch.set_num_threads also sets the count threads start with: back to this thread's
        torch.set_num_threads(own)


def _source_correlation(
    correlation: BlockCorrelation, differences: np.ndarray, ridge: np.ndarray, precise: bool, device: torch.device
) -> torch.Tensor:
    """The upper triangle of ``Q + ridge I`` of samples whose sources differ by ``differences``
    (m, pairs, dims) (pairs ``j < l`` in ``np.triu_indices`` order): (m, S * coils, S * coils),
    source-major, complex128 when ``precise``, else complex64 (see ``_assemble_source_correlation``)."""
    m, pairs, dims = differences.shape
    coils = correlation.coils
    r_pairs = correlation(differences.reshape(-1, dims), precise=precise).reshape(m, pairs, coils, coils)
    dtype = torch.complex128 if precise else torch.complex64
    return _assemble_source_correlation(r_pairs, correlation.at_zero, ridge, dtype, device)


def _assemble_source_correlation(
    r_pairs: np.ndarray, at_zero: np.ndarray, ridge: np.ndarray, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """The upper triangle of ``Q + ridge I`` from ``R(o_j - o_l)`` of each sample's source pairs
    ``j < l`` (``np.triu_indices`` order), r_pairs (m, pairs, coils, coils), and ``R(0)`` (coils,
    coils): (m, S * coils, S * coils) of ``dtype``, source-major: entry ``Q[(d, j), (e, l)]`` at
    row ``j * coils + d``, column ``l * coils + e`` (the order ``_solve_span`` solves in).

    Source-major, ``Q`` is an S x S grid of coils x coils blocks: ``R(0)`` on the diagonal and
    ``R(o_j - o_l)`` above it, one plain copy per block for every sample at once. Below the
    diagonal blocks the entries are left unset: ``Q`` is Hermitian, and its readers
    (``torch.linalg.cholesky_ex(upper=True)``, ``torch.linalg.eigh(UPLO="U")``) read its upper
    triangle only."""
    m, pairs, coils, _ = r_pairs.shape
    num_sources = int(round((1 + math.sqrt(1 + 8 * pairs)) / 2))
    r = torch.from_numpy(np.ascontiguousarray(r_pairs)).to(device=device, dtype=dtype)
    q = torch.empty((m, num_sources, coils, num_sources, coils), dtype=dtype, device=device)
    zero = torch.from_numpy(np.ascontiguousarray(at_zero)).to(device=device, dtype=dtype)
    for source in range(num_sources):
        q[:, source, :, source, :] = zero
    for pair, (j, l) in enumerate(zip(*np.triu_indices(num_sources, 1))):
        q[:, j, :, l, :] = r[:, pair]
    q = q.view(m, num_sources * coils, num_sources * coils)
    q.diagonal(dim1=-2, dim2=-1).add_(torch.from_numpy(ridge).to(device=device, dtype=q.real.dtype)[:, None])
    return q


def _in_negative_half(shifts: np.ndarray) -> np.ndarray:
    """Shifts (m, dims) whose first non-zero component is negative: (m,) bool (0 is in neither half)."""
    negative = np.zeros(shifts.shape[0], dtype=bool)
    undecided = np.ones(shifts.shape[0], dtype=bool)
    for axis in range(shifts.shape[1]):
        negative |= undecided & (shifts[:, axis] < 0)
        undecided &= shifts[:, axis] == 0
    return negative


def _distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exactly equal rows of ``rows`` (b, m): ``(first (u,), inverse (b,))``, the index of each
    distinct row's first occurrence and each row's distinct row (one sort of the rows as bytes)."""
    rows = np.ascontiguousarray(rows)
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(-1)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


def _cholesky(matrices: torch.Tensor) -> torch.Tensor:
    """Upper Cholesky factors ``U`` (``A = U^H U``) of Hermitian positive definite (m, n, n)
    matrices ``A``, of which only the upper triangle is read."""
    factor, info = torch.linalg.cholesky_ex(matrices, upper=True)
    if bool((info > 0).any()):
        raise CalibrationError(
            "the calibration block's source correlation is not positive definite: it cannot calibrate kernels "
            "(a block of repeated or constant values?)"
        )
    return factor


class ClosedFormKernelModel(nn.Module):
    """The engine's model for closed-form kernels: nothing to train, ``model(batch)`` solves.

    Input: ``batch["offsets"]`` (batch, sources, dims) grid units; ``batch["hits"]`` (batch,):
    samples averaged into each target grid point (absent: 1, e.g. training pairs). Output:
    kernels (batch, coils, coils * sources), complex64, for raw (unwhitened) sources, on the
    model's device (the correlations are evaluated on the CPU, from the 2D shift table or by
    finufft in 3D; the solves run there).
    """

    def __init__(self, block: CalibrationBlock, noise_variance: float, loading: float) -> None:
        """``noise_variance``: the data's noise variance per sample (data units squared);
        ``loading``: multiple of it the ridge takes (``calibration.closed_form_noise`` squared)."""
        super().__init__()
        self.correlation = BlockCorrelation(block)
        self.ridge = float(noise_variance) * float(loading)
        self._device_marker: torch.Tensor
        self.register_buffer("_device_marker", torch.zeros(0))  # follows .to(device): where the solves run

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        offsets = batch["offsets"].detach().cpu().numpy()
        hits = batch.get("hits")
        averaged = np.ones(offsets.shape[0]) if hits is None else self.averaged(hits.detach().cpu().numpy())
        return closed_form_kernels(self.correlation, offsets, self.ridge / averaged, self._device_marker.device)

    @staticmethod
    def averaged(hits: np.ndarray) -> np.ndarray:
        """The samples a kernel's grid point averages, as its ridge counts them: ``hits`` (n,)
        rounded to powers of sqrt(2) (its logarithm to half octaves; at least 1), (n,) float64.
        A radial spoke's samples then take few ridges, and the runs of one spoke and one ridge
        share one solve (``_store_shared_solutions``). k-space NRMSE against the exact counts
        (128² radial, 64 and 200 spokes; 192² x 16 coils, 300 spokes): the same to 3 digits."""
        counts = np.maximum(np.asarray(hits, dtype=np.float64), 1.0)
        return np.exp2(np.round(2.0 * np.log2(counts)) / 2.0)


def closed_form_model(datamodule: "GriddingDataModule", config: "IgrogConfig") -> nn.Module:
    """``ClosedFormKernelModel`` of the datamodule's calibration block, its ridge the noise of
    ``calibration.closed_form_noise`` times the data's noise std."""
    block = datamodule.calibration_block()
    if block is None:
        raise ConfigError(f"variant {config.variant!r} has no calibration block to solve kernels from: set training.fit = network")
    loading = config.calibration.closed_form_noise**2
    return ClosedFormKernelModel(block, datamodule.noise_std**2, loading)
