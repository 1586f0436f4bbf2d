"""``ReadoutBuffer`` on plain lists of readouts: when a frame is complete (the header's readouts
per frame, LAST flags, the end of the stream), duplicates, calibration lines, and 2D and 3D
numbering. No file, no gridding: milliseconds."""

from __future__ import annotations

import numpy as np

from igrog_gadget.scan import (
    FLAG_IS_PARALLEL_CALIBRATION,
    FLAG_LAST_IN_SLICE,
    FRAME_KEY_FIELDS,
    Readout,
    flag_mask,
)
from igrog_gadget.stream.buffer import ReadoutBuffer

_counter = iter(range(10**6))


def readout(e1: int, *, e2: int = 0, slice_: int = 0, flags: int = 0, kz: float | None = None) -> Readout:
    """A 2-coil, 4-sample readout; ``kz``: a 3-column trajectory in that kz plane."""
    traj = np.zeros((4, 2), np.float32) if kz is None else np.column_stack([np.arange(4.0), np.zeros(4), np.full(4, kz)]).astype(np.float32)
    idx = {name: 0 for name in FRAME_KEY_FIELDS} | {"kspace_encode_step_1": e1, "kspace_encode_step_2": e2, "slice": slice_}
    return Readout(data=np.ones((2, 4), np.complex64), traj=traj, flags=flags, idx=idx, scan_counter=next(_counter))


def feed(buffer: ReadoutBuffer, readouts: list[Readout]) -> list[list[int]]:
    """The e1 values of each frame the readouts complete, in order."""
    return [[r.idx["kspace_encode_step_1"] for r in frame.readouts] for item in readouts for frame in buffer.add(item)]


def test_a_frame_is_complete_with_the_headers_readout_count_and_duplicates_are_dropped():
    buffer = ReadoutBuffer(readouts_per_frame=4)
    assert feed(buffer, [readout(0), readout(1), readout(1), readout(3)]) == []
    assert buffer.duplicates == 1
    assert feed(buffer, [readout(2)]) == [[0, 1, 3, 2]]  # arrival order kept
    assert buffer.buffered_samples == 0 and buffer.close() == []


def test_a_last_flag_completes_a_frame_only_when_it_holds_most_of_its_readouts():
    last = flag_mask(FLAG_LAST_IN_SLICE)
    buffer = ReadoutBuffer(readouts_per_frame=10)
    assert feed(buffer, [readout(e1) for e1 in range(4)] + [readout(4, flags=last)]) == []  # mid-scan in an interleaved order
    assert feed(buffer, [readout(e1) for e1 in range(5, 8)] + [readout(8, flags=last)]) == [list(range(9))]  # 9 of 10


def test_without_limits_the_last_flag_or_the_end_of_the_stream_completes_frames():
    buffer = ReadoutBuffer()
    assert feed(buffer, [readout(0), readout(1, flags=flag_mask(FLAG_LAST_IN_SLICE))]) == [[0, 1]]
    assert feed(buffer, [readout(0, slice_=1), readout(1, slice_=1)]) == []
    (rest,) = buffer.close()
    assert rest.frame_key[FRAME_KEY_FIELDS.index("slice")] == 1 and len(rest.readouts) == 2


def test_slices_complete_independently_with_their_own_calibration():
    calibration = flag_mask(FLAG_IS_PARALLEL_CALIBRATION)
    buffer = ReadoutBuffer(readouts_per_frame=2)
    lines = [readout(7, slice_=s, flags=calibration) for s in (0, 1)]
    assert feed(buffer, lines) == []  # calibration lines are not imaging readouts
    completed = [frame for item in [readout(0, slice_=1), readout(0), readout(1, slice_=1), readout(1)] for frame in buffer.add(item)]
    assert [frame.frame_key[FRAME_KEY_FIELDS.index("slice")] for frame in completed] == [1, 0]
    assert [frame.calibration for frame in completed] == [[lines[1]], [lines[0]]]


def test_3d_frames_count_e1_across_the_volume():
    buffer = ReadoutBuffer(readouts_per_frame=6, partitions_per_frame=2, volumetric=True)
    spokes = [readout(e1, kz=0.3 * e1 - 0.5) for e1 in range(6)]  # a kooshball: e1 numbers the volume's spokes
    assert feed(buffer, spokes) == [list(range(6))]


def test_3d_frames_count_e1_per_partition_when_it_repeats():
    buffer = ReadoutBuffer(readouts_per_frame=3, partitions_per_frame=2, volumetric=True)
    planes = [readout(e1, e2=e2, kz=float(e2)) for e2 in range(2) for e1 in range(3)]  # a stack: 3 interleaves per plane
    (frame,) = feed(buffer, planes)
    assert len(frame) == 6 and buffer.duplicates == 0
    calibration = flag_mask(FLAG_IS_PARALLEL_CALIBRATION)
    buffer = ReadoutBuffer(readouts_per_frame=3, partitions_per_frame=2, volumetric=True)
    lines = [readout(5, e2=e2, flags=calibration) for e2 in range(2)]
    completed = [frame for item in lines + planes for frame in buffer.add(item)]
    assert len(completed) == 1 and completed[0].calibration == lines  # the ACS lines of every kz plane
