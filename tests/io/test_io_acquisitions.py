"""Bulk acquisition tables (igrog_gadget.io.acquisitions) against ismrmrd's own per-row API."""

from __future__ import annotations

import ismrmrd
import numpy as np

from igrog_gadget.io.acquisitions import CHUNK_ROWS, copy_acquisitions, each_acquisition, read_acquisitions, write_acquisitions


def ismrmrd_acquisitions(path) -> list[ismrmrd.Acquisition]:
    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    try:
        return [dataset.read_acquisition(i) for i in range(dataset.number_of_acquisitions())]
    finally:
        dataset.close()


def assert_same(ours: list[ismrmrd.Acquisition], theirs: list[ismrmrd.Acquisition]) -> None:
    assert len(ours) == len(theirs) > 0
    for mine, other in zip(ours, theirs):
        assert bytes(mine.getHead()) == bytes(other.getHead())
        np.testing.assert_array_equal(mine.data, other.data)
        np.testing.assert_array_equal(mine.traj, other.traj)


def test_written_tables_are_read_back_by_ismrmrd_and_ismrmrd_files_by_us(tmp_path, acquisition_builder, xml_builder):
    """Noise, ACS (no trajectory) and spokes of other coil and sample counts, more than one
    batch: ismrmrd reads our table as written, and we read its table as it does."""
    rng = np.random.default_rng(3)
    acquisitions = acquisition_builder(rng) + acquisition_builder(rng, n_radial=CHUNK_ROWS, coils=2, samples=10)
    ours = tmp_path / "ours.h5"
    write_acquisitions(ours, xml_builder(), acquisitions)
    assert_same(read_acquisitions(ours), acquisitions)
    dataset = ismrmrd.Dataset(str(ours), "dataset", create_if_needed=False)
    assert dataset.number_of_acquisitions() == len(acquisitions)
    rows = [*range(12), CHUNK_ROWS - 1, CHUNK_ROWS, len(acquisitions) - 1]  # both batches (ismrmrd reads a row in ~4 ms)
    assert_same([dataset.read_acquisition(i) for i in rows], [acquisitions[i] for i in rows])
    dataset.close()
    dataset = ismrmrd.Dataset(str(ours), "dataset", create_if_needed=False)
    assert dataset.read_xml_header().decode() == xml_builder()
    dataset.close()

    theirs = tmp_path / "theirs.h5"
    dataset = ismrmrd.Dataset(str(theirs), "dataset", create_if_needed=True)
    dataset.write_xml_header(xml_builder().encode())
    for acquisition in acquisitions[:40]:
        dataset.append_acquisition(acquisition)
    dataset.close()
    assert_same(read_acquisitions(theirs), acquisitions[:40])


def test_a_copy_keeps_the_header_and_applies_the_edit(tmp_path, acquisition_builder, xml_builder):
    rng = np.random.default_rng(4)
    source, target = tmp_path / "source.h5", tmp_path / "target.h5"
    acquisitions = acquisition_builder(rng)
    write_acquisitions(source, xml_builder(), acquisitions)
    copy_acquisitions(source, target, each_acquisition(lambda index, acq: None if index % 2 else acq))
    assert_same(ismrmrd_acquisitions(target), acquisitions[::2])
    copy_acquisitions(source, target, lambda acqs: acqs[::-1])
    assert_same(read_acquisitions(target), acquisitions[::-1])
    dataset = ismrmrd.Dataset(str(target), "dataset", create_if_needed=False)
    assert dataset.read_xml_header().decode() == xml_builder()
    dataset.close()
