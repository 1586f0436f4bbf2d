"""Noise prewhitening and coil compression (virtual coils).

Gridding cost grows with the square of the coil count (a kernel maps ``coils * sources``
source values to ``coils`` targets), so many-channel data are gridded in a few *virtual*
coils: ``virtual = compress @ physical`` with ``compress = A W``, where ``W`` prewhitens the
noise (when noise scans are present; identity otherwise) and ``A`` holds the leading
principal directions of the calibration data (PCA / SVD coil compression).
The compression is undone on the Cartesian side with ``expand = W^-1 A^H``: the output is
the data's projection onto the kept subspace, in the input's own coil basis.

References:
    Buehrer, Pruessmann, Boesiger, Kozerke, "Array compression for MRI with large coil
    arrays", MRM 57:1131 (2007); Huang, Vijayakumar, Li, Hertel, Duensing, "A software
    channel compression technique for faster reconstruction with many channels", MRI 26:133 (2008).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from igrog_gadget.errors import InputDataError


@dataclass(frozen=True)
class CoilTransform:
    """A linear map between physical and virtual coils."""

    compress: np.ndarray
    """Shape (virtual, physical), complex64: ``virtual = compress @ physical``."""
    expand: np.ndarray
    """Shape (physical, virtual), complex64: ``physical ≈ expand @ virtual`` (a projection)."""
    prewhitened: bool
    """Whether ``compress`` includes noise prewhitening from noise scans."""
    kept_energy: float
    """Share of the (prewhitened) calibration energy the virtual coils keep."""

    @property
    def num_virtual(self) -> int:
        return int(self.compress.shape[0])

    @property
    def num_physical(self) -> int:
        return int(self.compress.shape[1])

    @property
    def is_identity(self) -> bool:
        return self.num_virtual == self.num_physical and not self.prewhitened and np.allclose(self.compress, np.eye(self.num_physical))

    @staticmethod
    def identity(coils: int) -> "CoilTransform":
        eye = np.eye(coils, dtype=np.complex64)
        return CoilTransform(eye, eye, prewhitened=False, kept_energy=1.0)

    def to_virtual(self, data: np.ndarray) -> np.ndarray:
        """(physical, ...) → (virtual, ...), complex64."""
        return _mix(self.compress, data)

    def to_physical(self, data: np.ndarray) -> np.ndarray:
        """(virtual, ...) → (physical, ...), complex64."""
        return _mix(self.expand, data)

    def covariance_to_virtual(self, covariance: np.ndarray) -> np.ndarray:
        """The noise covariance of the virtual coils: ``compress @ covariance @ compress^H``,
        (physical, physical) → (virtual, virtual), complex128."""
        compress = self.compress.astype(np.complex128)
        return compress @ np.asarray(covariance, dtype=np.complex128) @ compress.conj().T

    def kept_projection(self) -> np.ndarray:
        """``expand @ compress`` (physical, physical), complex128: what a physical-coil signal
        keeps after compressing and expanding (a projection, oblique when prewhitened)."""
        return self.expand.astype(np.complex128) @ self.compress.astype(np.complex128)

    def complement(self) -> "CoilTransform":
        """The channels the compression discards: ``physical - virtual`` channels whose
        ``expand @ compress`` is ``I - self.expand @ self.compress``, so that physical data are
        their virtual part expanded plus their complement part expanded. A frame whose virtual
        part is fitted already needs only the complement's channels fitted to have all of it
        (``igrog_gadget.planning.gridder``). Its channels are orthonormal combinations of the
        physical coils (``compress`` has orthonormal rows), not prewhitened; ``kept_energy`` is the
        share of the calibration energy they hold."""
        coils = self.num_physical
        rest = np.eye(coils) - self.kept_projection()
        left, singular, right = np.linalg.svd(rest)
        count = coils - self.num_virtual  # the rank of I - expand @ compress (compress @ expand = I)
        return CoilTransform(
            compress=right[:count].astype(np.complex64),
            expand=(left[:, :count] * singular[:count]).astype(np.complex64),
            prewhitened=False,
            kept_energy=max(0.0, 1.0 - self.kept_energy),
        )

    def kept_noise_share(self, covariance: np.ndarray | None = None) -> float:
        """Share of the physical coils' noise power that passes through the virtual coils and back
        (``expand @ compress``, the physical output of data gridded in virtual coils):
        ``trace(P C P^H) / trace(C)`` for the noise covariance ``C`` (physical, physical), white
        noise when None; 1 for the identity. White noise in 16 coils kept in 10 orthonormal
        virtual coils keeps 10 / 16 of its power."""
        if self.is_identity:
            return 1.0
        coils = self.num_physical
        noise = np.eye(coils) if covariance is None else np.asarray(covariance, dtype=np.complex128)
        projection = self.kept_projection()
        total = float(np.real(np.trace(noise)))
        if total <= 0:
            return 1.0
        return float(np.real(np.trace(projection @ noise @ projection.conj().T))) / total


def _mix(matrix: np.ndarray, data: np.ndarray) -> np.ndarray:
    flat = np.asarray(data, dtype=np.complex64).reshape(data.shape[0], -1)
    return (matrix @ flat).reshape(matrix.shape[0], *data.shape[1:]).astype(np.complex64, copy=False)


@dataclass
class NoiseCovariance:
    """Running noise covariance of noise-scan readouts (memory: coils x coils)."""

    sum_outer: np.ndarray | None = None
    """Shape (coils, coils), complex128: sum of ``n n^H`` over noise samples."""
    count: int = 0
    dwell_us: float = 0.0
    """The noise readouts' dwell time (``sample_time_us``); 0 when unknown or when they differ."""

    def add(self, noise: np.ndarray, dwell_us: float = 0.0) -> None:
        """Accumulate one noise readout, shape (coils, samples), sampled every ``dwell_us`` (0:
        unknown); other coil counts start over."""
        noise = np.asarray(noise)
        outer = np.zeros((noise.shape[0], noise.shape[0]), dtype=np.complex128)
        for start in range(0, noise.shape[1], 1024):  # in chunks: a huge readout costs no extra copy of itself
            chunk = noise[:, start : start + 1024].astype(np.complex128)
            outer += chunk @ chunk.conj().T
        if self.sum_outer is None or self.sum_outer.shape != outer.shape:
            self.sum_outer, self.count, self.dwell_us = outer, 0, float(dwell_us)
        else:
            self.sum_outer = self.sum_outer + outer
            if float(dwell_us) != self.dwell_us:
                self.dwell_us = 0.0
        self.count += noise.shape[1]

    def covariance(self, coils: int, dwell_us: float = 0.0) -> np.ndarray | None:
        """Covariance (coils, coils) of one sample taken every ``dwell_us`` when noise of that coil
        count was seen, else None. White receiver noise has a variance proportional to the
        sampling bandwidth, ``1 / dwell``: the noise scans' covariance is scaled by their dwell
        over ``dwell_us`` when both are known (noise scans are often sampled at another bandwidth
        than the imaging readouts), as it stands otherwise."""
        if self.sum_outer is None or self.sum_outer.shape[0] != coils or self.count < 2 * coils:
            return None
        covariance = self.sum_outer / self.count
        if self.dwell_us > 0 and dwell_us > 0:
            covariance = covariance * (self.dwell_us / float(dwell_us))
        return covariance


def noise_std_of(covariance: np.ndarray) -> float:
    """Complex noise std of one sample, the coils' mean: ``sqrt(trace(covariance) / coils)``."""
    return float(np.sqrt(max(float(np.real(np.trace(covariance))), 0.0) / covariance.shape[0]))


def noise_prewhitener(covariance: np.ndarray) -> np.ndarray:
    """Prewhitening matrix (coils, coils) complex128 for a noise covariance (coils, coils).

    ``W = s L^-1`` with ``L L^H = covariance`` and ``s`` the RMS noise level, so whitened noise
    is uncorrelated with the data's mean noise variance (the data keep their scale).

    Raises:
        InputDataError: the covariance is not positive definite (dead or duplicated channels).
    """
    scale = noise_std_of(covariance)
    if not np.isfinite(scale) or scale <= 0 or not np.all(np.isfinite(covariance)):
        raise InputDataError(
            "the noise scans hold no usable noise (zero or non-finite); "
            "set gridding.prewhiten = false to grid without prewhitening"
        )
    try:
        factor = np.linalg.cholesky(covariance / scale**2)
    except np.linalg.LinAlgError:
        raise InputDataError(
            "the noise scans' coil covariance is not positive definite (a dead or duplicated channel?); "
            "set gridding.prewhiten = false to grid without prewhitening"
        ) from None
    return np.linalg.inv(factor)


def compression_transform(
    calibration: np.ndarray,
    num_virtual: int,
    energy: float,
    prewhitener: np.ndarray | None = None,
    min_virtual: int = 1,
) -> CoilTransform:
    """PCA coil compression from calibration data.

    Args:
        calibration: shape (coils, m), complex: samples whose coil covariance defines the
            subspace (e.g. every sample of the first frame of a calibration key).
        num_virtual: virtual coils to keep (0: the fewest that keep ``energy``, at least ``min_virtual``).
        energy: share of the calibration energy to keep when ``num_virtual`` is 0.
        min_virtual: fewest virtual coils the energy rule may choose.
        prewhitener: (coils, coils) noise prewhitening applied first, or None.
    """
    coils = calibration.shape[0]
    data = np.asarray(calibration, dtype=np.complex128)
    whiten = np.eye(coils) if prewhitener is None else prewhitener
    data = whiten @ data
    covariance = data @ data.conj().T
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
    eigenvalues, eigenvectors = np.clip(eigenvalues[::-1], 0, None), eigenvectors[:, ::-1]
    total = float(eigenvalues.sum()) or 1.0
    cumulative = np.cumsum(eigenvalues) / total
    keep = num_virtual if num_virtual > 0 else max(int(np.searchsorted(cumulative, energy) + 1), min_virtual)
    keep = max(1, min(keep, coils))
    basis = eigenvectors[:, :keep]  # (coils, keep), orthonormal columns
    basis = basis * np.exp(-1j * np.angle(basis[0:1, :]))  # deterministic phase: first entry real
    compress = basis.conj().T @ whiten
    expand = np.linalg.inv(whiten) @ basis
    return CoilTransform(
        compress=compress.astype(np.complex64),
        expand=expand.astype(np.complex64),
        prewhitened=prewhitener is not None,
        kept_energy=float(cumulative[keep - 1]),
    )
