"""MRI data simulator: radial/spiral (2D) and kooshball/stack-of-spirals (3D) ISMRMRD test
files with known Cartesian truth. One forward model for both: the phantom, coil maps, B0 map,
NUFFTs and Cartesian truth take a grid's array shape (``(N, N)``, or ``(nz, N, N)``; one size
``N`` is the square 2D grid), positions ``(kx, ky)`` or ``(kx, ky, kz)``.

Grid and Fourier conventions
----------------------------
- Matrix ``N x N`` (encodedSpace ``(N, N, 1)``); k in grid units (cycles/FOV),
  k = 0 at grid index ``N // 2``; Cartesian k-space arrays ``(coils, ny, nx)``
  indexed ``[ky + N//2, kx + N//2]``; images ``[y, x]`` with r = 0 at ``N // 2``.
- ``K = fftshift(fft2(ifftshift(x), norm="ortho"))`` (centred orthonormal FFT).
- The object is simulated on the fine grid ``M = 2 N`` per axis (same FOV); its k-space
  at any k is ``X(k) = (N / M^2) sum_r' x_fine[r'] exp(-2 pi i k . r' / M)``
  (finufft type 2; 3D: ``sqrt(prod N) / prod M``, per-axis ``M``). At integer k this is
  the Cartesian truth.
- Noise: circular complex Gaussian, ``E|n|^2 = noise_std^2`` per sample and
  coil, identical for every readout (noise, ACS, imaging) whatever its dwell;
  ``noise_std = mean(|image|) over the object mask / snr``. In the orthonormal
  convention the image-domain noise std equals ``noise_std``.
- Off-resonance: ``s(k_j, t_j) = X_f(k_j)`` with the extra factor
  ``exp(-2 pi i f(r) t_j)``, ``t_j = i * sample_time_us`` for sample ``i`` of its
  readout (ACS readouts included). The truth is field-free.

ISMRMRD file layout (``simulate_to_file``)
------------------------------------------
1. ``noise_scans`` noise readouts: flag ACQ_IS_NOISE_MEASUREMENT, ``2 N`` samples,
   dwell = imaging dwell, no trajectory, all counters 0.
2. For repetition ``rep``, slice ``s``, contrast ``c`` (in that nesting order):

   - repetition 0 only, when ``acs``: ``acs`` Cartesian lines, flag
     ACQ_IS_PARALLEL_CALIBRATION (+ FIRST_IN_ENCODE_STEP1 on the first,
     LAST_IN_ENCODE_STEP1 on the last), ``kspace_encode_step_1 = ky + N//2`` for
     ``ky = -acs//2 .. acs - acs//2 - 1`` ascending, ``2 N`` samples,
     ``center_sample = N``, sample ``i`` at ``kx = (i - N) / 2``, trajectory_dimensions 0,
     dwell ``radial_sample_time_us`` (2 us).
   - one imaging readout per spoke/interleaf, ``kspace_encode_step_1`` = its index,
     trajectory_dimensions 2, traj ``(samples, 2) = (kx, ky)`` in grid units (or
     ``k / N`` with ``trajectory_units="normalized"``), ``center_sample`` = index of
     k = 0 (radial ``samples // 2``; spiral 0). Flags: first readout
     FIRST_IN_SLICE | FIRST_IN_ENCODE_STEP1 | FIRST_IN_CONTRAST (+ FIRST_IN_REPETITION
     on the repetition's first block); last readout LAST_IN_SLICE |
     LAST_IN_ENCODE_STEP1 | LAST_IN_CONTRAST (+ LAST_IN_REPETITION on the
     repetition's last block, + LAST_IN_MEASUREMENT on the very last readout).

   Every readout: version 1, idx.slice/contrast/repetition, scan_counter 0, 1, 2, ...
   in file order, acquisition_time_stamp in 2.5 ms ticks from 10:00:00, position
   ``(0, 0, (s - (slices - 1) / 2) * slice_thickness_mm)``, read_dir (1,0,0),
   phase_dir (0,1,0), slice_dir (0,0,1), patient_table_position (0,0,0),
   available/active channels = coils (channel mask set). Repetitions reuse the
   trajectory with fresh noise.
3. Optional image series (one image per slice; coil images per slice and contrast):
   "b0map" (float32, Hz, 1 channel, IMTYPE_REAL, series index 1), "coil_images"
   (complex64, channels = coils, IMTYPE_COMPLEX, series 2: ortho IFFT of the
   noiseless field-free truth), "sensitivity_maps" (complex64, series 3); data
   ``[channel, 1, N, N]``, pixel ``[y, x]`` with r = 0 at ``N // 2``.

Stack-of-stars (``partitions > 1``, one slice): the object is a stack of ``partitions``
phantom slices; partition ``p`` is its kz plane (centred unitary FFT along z) with the
same 2D coil maps, written with ``kspace_encode_step_2 = p``; the header's encoded and
recon matrix z = partitions, ``kspace_encoding_step_2`` limits 0..P-1 (centre P // 2).
The noise level is set from the kz = 0 partition's image.

3D scans (``--trajectory kooshball``: golden-means full spokes, matrix N^3; ``stack_of_spirals``:
the spiral interleaves on ``partitions`` integer kz planes, each partition rotated by a golden
angle, matrix N x N x partitions): a 3D phantom (modified 3D Shepp-Logan) and 3D coil maps on the
fine grid 2N per axis; imaging readouts with trajectory_dimensions 3, traj ``(kx, ky, kz)``,
``kspace_encode_step_1`` = readout index, ``kspace_encode_step_2`` = 0 (kooshball) or the
partition ``kz + nz // 2`` (stack); a 3D Cartesian ACS block of ``acs x min(acs, nz)`` lines along
kx at (ky, kz) (ky fastest), ``kspace_encode_step_1 = ky + N//2``, ``kspace_encode_step_2 = kz +
nz//2``; header encodedSpace z = nz with FOV z = fov_mm * nz / N (isotropic voxels), e2 limits
0..nz-1 (centre nz // 2). Truth arrays gain the z axis: ``kspace`` (1, 1, coils, nz, N, N),
``image`` (1, 1, nz, N, N), ``sensitivity_maps`` (coils, nz, N, N), ``object_mask`` (nz, N, N),
``b0map_hz`` (nz, N, N). A 3D scan's optional image series are one 3D image each (data
``[channel, nz, N, N]``, FOV z as the header's): "b0map" (the smooth map in 3D, ``smooth_b0_map``),
"coil_images" (3D ortho IFFT of the noiseless field-free truth), "sensitivity_maps"; with
``b0_max_hz`` its samples carry the 3D off-resonance (``forward_b0``: time-segmented 3D
NUFFTs, segmentation error 1e-6).

Ground truth ``<stem>.truth.npz``: ``kspace`` (planes, contrasts, coils, N, N) (planes =
slices or partitions)
complex64 noiseless field-free Cartesian truth; ``image`` (slices, contrasts, N, N)
complex64 = ortho centred IFFT of the coil-free object's k-space on the N grid
(the k-truncated object); ``sensitivity_maps`` (coils, N, N) complex64
(``sum |S|^2 = 1``); ``object_mask`` (N, N) bool; ``b0map_hz`` (N, N) float32 when
``b0_max_hz > 0``; ``noise_std`` float; ``noise_covariance`` (coils, coils);
``spec`` JSON string of the :class:`SimulationSpec`.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Where each public name lives. The package imports a module when one of its names is first
#: used (PEP 562), so that ``igrog``'s parser (``simulate.cli``) does not import the simulator.
_HOMES = {
    "acquire": ("FINE_FACTOR", "cartesian_kspace", "complex_noise", "direct_forward", "fft2c", "forward_b0",
                "ifft2c", "nufft_forward", "smooth_b0_map"),
    "cli": ("add_simulate_arguments", "run_simulate", "spec_from_args"),
    "coils": ("coil_sensitivities",),
    "phantoms": ("object_support", "phantom"),
    "trajectories": ("GOLDEN_ANGLE_DEG", "GOLDEN_ANGLE_RAD", "cartesian_lines", "radial_golden_angle", "spiral"),
    "spec": ("SimulationSpec", "truth_path_for"),
    "writer": ("build_header", "load_truth", "simulate_to_file"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))


__all__ = [
    "FINE_FACTOR",
    "GOLDEN_ANGLE_DEG",
    "GOLDEN_ANGLE_RAD",
    "SimulationSpec",
    "add_simulate_arguments",
    "build_header",
    "cartesian_kspace",
    "cartesian_lines",
    "coil_sensitivities",
    "complex_noise",
    "direct_forward",
    "fft2c",
    "forward_b0",
    "ifft2c",
    "load_truth",
    "nufft_forward",
    "object_support",
    "phantom",
    "radial_golden_angle",
    "run_simulate",
    "simulate_to_file",
    "smooth_b0_map",
    "spec_from_args",
    "spiral",
    "truth_path_for",
]
