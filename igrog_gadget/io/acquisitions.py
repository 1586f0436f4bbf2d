"""ISMRMRD acquisition tables read and written in bulk.

``/<group>/data`` is one compound HDF5 dataset (``ismrmrd.hdf5.acquisition_dtype``: head,
traj, data). ``ismrmrd.Dataset.read_acquisition`` / ``append_acquisition`` touch it one row
at a time (reading the record several times, resizing the table on every append: about 4 ms a
16-coil acquisition); here a table is read with one HDF5 read and written in batches.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable

import h5py
import ismrmrd
import ismrmrd.hdf5
import numpy as np

#: Bytes of one acquisition header.
HEADER_SIZE = ismrmrd.hdf5.acquisition_header_dtype.itemsize
#: Rows per HDF5 chunk of a written acquisition table.
CHUNK_ROWS = 1024


class AcquisitionSink:
    """Appends acquisitions to a new ``/<group>/data`` table in ismrmrd's compound layout:
    ``append`` writes a list at once, ``add`` buffers one and writes every ``CHUNK_ROWS``
    (``flush`` writes the rest)."""

    def __init__(self, group: h5py.Group) -> None:
        self._dataset = group.create_dataset(
            "data",
            shape=(0,),
            maxshape=(None,),
            dtype=ismrmrd.hdf5.acquisition_dtype,
            chunks=(CHUNK_ROWS,),
        )
        self.count = 0
        """Acquisitions written (not those ``add`` holds)."""
        self._pending: list[ismrmrd.Acquisition] = []

    def append(self, acquisitions: list[ismrmrd.Acquisition]) -> None:
        """Write ``acquisitions`` (each data (coils, samples), traj (samples, dims)) in one write."""
        if not acquisitions:
            return
        n = len(acquisitions)
        records = np.empty(n, dtype=ismrmrd.hdf5.acquisition_dtype)
        heads = b"".join(bytes(acq.getHead()) for acq in acquisitions)
        records["head"] = np.frombuffer(heads, dtype=ismrmrd.hdf5.acquisition_header_dtype)
        data = records["data"]
        traj = records["traj"]
        for i, acq in enumerate(acquisitions):
            data[i] = np.ascontiguousarray(acq.data, dtype=np.complex64).view(np.float32).reshape(-1)
            traj[i] = np.ascontiguousarray(acq.traj, dtype=np.float32).reshape(-1)
        self._dataset.resize(self.count + n, axis=0)
        self._dataset[self.count : self.count + n] = records
        self.count += n

    def add(self, acquisition: ismrmrd.Acquisition) -> None:
        """Buffer ``acquisition``; a full batch of ``CHUNK_ROWS`` is written."""
        self._pending.append(acquisition)
        if len(self._pending) == CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write the acquisitions ``add`` holds."""
        self.append(self._pending)
        self._pending = []


def read_records(data: h5py.Dataset) -> np.ndarray:
    """The whole table ``data`` in one HDF5 read: (acquisitions,) ``acquisition_dtype`` records
    (members matched by name; each row's head, traj and data as stored)."""
    records = np.empty(data.shape, dtype=ismrmrd.hdf5.acquisition_dtype)
    data.read_direct(records)
    return records


def read_acquisitions(path: str | os.PathLike[str], group: str = "dataset") -> list[ismrmrd.Acquisition]:
    """Every acquisition of an ISMRMRD file as ``ismrmrd.Acquisition`` objects, in file order."""
    with h5py.File(path, "r") as h5:
        records = read_records(h5[f"{group}/data"])
    heads = np.ascontiguousarray(records["head"])
    acquisitions = []
    for i, record in enumerate(records):
        acquisition = ismrmrd.Acquisition(ismrmrd.AcquisitionHeader.from_buffer_copy(heads, i * HEADER_SIZE))
        acquisition.data[:] = np.asarray(record["data"], np.float32).view(np.complex64).reshape(acquisition.data.shape)
        acquisition.traj[:] = np.asarray(record["traj"], np.float32).reshape(acquisition.traj.shape)
        acquisitions.append(acquisition)
    return acquisitions


def write_acquisitions(
    path: str | os.PathLike[str],
    header_xml: str | bytes,
    acquisitions: Iterable[ismrmrd.Acquisition],
    group: str = "dataset",
) -> None:
    """A new ISMRMRD file (replacing ``path``) holding ``header_xml`` and ``acquisitions``
    (written in batches of ``CHUNK_ROWS``). Images and waveforms can be added afterwards with
    ``ismrmrd.Dataset``."""
    with h5py.File(path, "w") as h5:
        sink = AcquisitionSink(h5.create_group(group))
        for acquisition in acquisitions:
            sink.add(acquisition)
        sink.flush()
    dataset = ismrmrd.Dataset(str(path), group, create_if_needed=True)
    try:
        dataset.write_xml_header(header_xml if isinstance(header_xml, bytes) else header_xml.encode("utf-8"))
    finally:
        dataset.close()


def read_header_xml(path: str | os.PathLike[str], group: str = "dataset") -> bytes:
    """The ISMRMRD XML header of a file, as stored."""
    with h5py.File(path, "r") as h5:
        xml = h5[f"{group}/xml"][0]
    return xml if isinstance(xml, bytes) else str(xml).encode("utf-8")


def copy_acquisitions(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    edit: Callable[[list[ismrmrd.Acquisition]], Iterable[ismrmrd.Acquisition]] = list,
    header_xml: str | bytes | None = None,
    group: str = "dataset",
) -> None:
    """``target`` = the header (or ``header_xml``) and the acquisitions ``edit(acquisitions of
    source)`` (reordered, changed, left out, added: what a test or another writer makes of a
    file). Images and waveforms are not copied."""
    header = read_header_xml(source, group) if header_xml is None else header_xml
    write_acquisitions(target, header, edit(read_acquisitions(source, group)), group)


def each_acquisition(
    change: Callable[[int, ismrmrd.Acquisition], ismrmrd.Acquisition | None],
) -> Callable[[list[ismrmrd.Acquisition]], list[ismrmrd.Acquisition]]:
    """An ``edit`` of :func:`copy_acquisitions` that passes every acquisition through
    ``change(index, acquisition)``; those it returns None for are left out."""

    def edit(acquisitions: list[ismrmrd.Acquisition]) -> list[ismrmrd.Acquisition]:
        results = (change(index, acquisition) for index, acquisition in enumerate(acquisitions))
        return [acquisition for acquisition in results if acquisition is not None]

    return edit
