"""ISMRMRD HDF5 reader (igrog_gadget.io.reader)."""

from __future__ import annotations

import h5py
import ismrmrd
import numpy as np
import pytest

from igrog_gadget.errors import InputDataError
from igrog_gadget.io.reader import array_coil_count
from igrog_gadget.io import RawDataset, read_dataset
from igrog_gadget.scan import IDX_FIELDS


def _assert_readout_matches(readout, acq, index):
    assert readout.scan_counter == index
    np.testing.assert_array_equal(readout.data, acq.data)
    assert readout.data.dtype == np.complex64
    if acq.trajectory_dimensions:
        assert readout.traj is not None and readout.traj.dtype == np.float32
        np.testing.assert_array_equal(readout.traj, acq.traj)
    else:
        assert readout.traj is None
    assert readout.flags == acq.flags
    assert readout.idx == {name: int(getattr(acq.idx, name)) for name in IDX_FIELDS}
    assert readout.center_sample == acq.center_sample
    assert readout.sample_time_us == pytest.approx(acq.sample_time_us)
    assert (readout.discard_pre, readout.discard_post) == (acq.discard_pre, acq.discard_post)
    assert bytes(readout.source_header) == bytes(acq.getHead())


def test_round_trip_all_fields(synthetic_file):
    raw = read_dataset(synthetic_file.path)

    assert isinstance(raw, RawDataset)
    assert raw.path == str(synthetic_file.path)
    assert raw.header_xml == synthetic_file.xml
    assert raw.header.encoded_matrix == (32, 32, 1)
    assert raw.header.trajectory == "radial" and raw.header.num_coils == 4
    assert raw.header.user_parameters["nspokes"] == 6

    assert len(raw.readouts) == len(synthetic_file.acquisitions) == 9
    for i, (readout, acq) in enumerate(zip(raw.readouts, synthetic_file.acquisitions)):
        _assert_readout_matches(readout, acq, i)
    assert raw.readouts[0].is_noise()
    assert [r.is_calibration() for r in raw.readouts[1:3]] == [True, True]
    assert all(r.is_imaging() for r in raw.readouts[3:])
    assert raw.readouts[-1].is_last_in_slice()

    assert [item.series for item in raw.images] == ["b0map", "b0map", "coil_images"]
    expected_images = synthetic_file.images["b0map"] + synthetic_file.images["coil_images"]
    for item, image in zip(raw.images, expected_images):
        assert item.data.shape == image.data.shape
        np.testing.assert_array_equal(item.data, image.data)
        assert item.data.dtype == image.data.dtype
        assert isinstance(item.source, ismrmrd.Image)
        assert item.source.image_index == image.image_index
    assert raw.images[0].meta == {"ImageType": "b0map", "Units": ["Hz", "rad/s"]}

    assert len(raw.waveforms) == 2
    for waveform, expected in zip(raw.waveforms, synthetic_file.waveforms):
        assert isinstance(waveform, ismrmrd.Waveform)
        assert waveform == expected


def test_fast_path_equals_ismrmrd_reader(synthetic_file):
    fast = read_dataset(synthetic_file.path, fast=True)
    slow = read_dataset(synthetic_file.path, fast=False)
    dataset = ismrmrd.Dataset(str(synthetic_file.path), "dataset", create_if_needed=False)
    try:
        reference = [dataset.read_acquisition(i) for i in range(dataset.number_of_acquisitions())]
    finally:
        dataset.close()
    assert len(fast.readouts) == len(slow.readouts) == len(reference)
    for i, (a, b, acq) in enumerate(zip(fast.readouts, slow.readouts, reference)):
        _assert_readout_matches(a, acq, i)
        _assert_readout_matches(b, acq, i)


def test_file_without_images_and_waveforms(tmp_path, file_writer):
    raw = read_dataset(file_writer(tmp_path / "plain.h5", with_images=False, with_waveforms=False).path)
    assert raw.images == [] and raw.waveforms == []
    assert len(raw.readouts) == 9


def test_other_group_name(tmp_path, synthetic_file):
    path = tmp_path / "renamed.h5"
    with h5py.File(synthetic_file.path, "r") as src, h5py.File(path, "w") as dst:
        src.copy("dataset", dst, name="scan1")
    raw = read_dataset(path, group="scan1")
    assert len(raw.readouts) == 9 and len(raw.images) == 3 and len(raw.waveforms) == 2


# --- errors -----------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(InputDataError, match=r"input file '.*nothere\.h5' does not exist"):
        read_dataset(tmp_path / "nothere.h5")


def test_not_hdf5(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("not an hdf5 file")
    with pytest.raises(InputDataError, match=r"'.*text\.h5' is not an HDF5 file"):
        read_dataset(path)


def test_missing_group_lists_groups(tmp_path, synthetic_file):
    with h5py.File(synthetic_file.path, "a") as h5:
        h5.create_group("other")
    with pytest.raises(InputDataError, match=r"has no group 'scan'; groups present: \['dataset', 'other'\]"):
        read_dataset(synthetic_file.path, group="scan")


def test_no_xml_header(tmp_path):
    path = tmp_path / "noxml.h5"
    with h5py.File(path, "w") as h5:
        h5.create_group("dataset")
    with pytest.raises(InputDataError, match=r"'.*noxml\.h5': group 'dataset' has no XML header"):
        read_dataset(path)


def test_no_acquisitions(tmp_path, xml_builder):
    path = tmp_path / "empty.h5"
    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    dataset.write_xml_header(xml_builder().encode("utf-8"))
    dataset.close()
    with pytest.raises(InputDataError, match=r"'.*empty\.h5': group 'dataset' has no acquisitions"):
        read_dataset(path)


def test_invalid_header_names_file(tmp_path, file_writer, xml_builder):
    xml = xml_builder()
    start, end = xml.index("<encoding>"), xml.index("</encoding>") + len("</encoding>")
    path = file_writer(tmp_path / "noenc.h5", xml=xml[:start] + xml[end:]).path
    with pytest.raises(InputDataError, match=r"XML header of '.*noenc\.h5' has no <encoding> element"):
        read_dataset(path)


def test_acquisitions_of_another_coil_count_are_read_and_the_array_is_named(tmp_path, file_writer, acquisition_builder):
    """A 2-coil (body-coil) acquisition among the 4-coil array data: read; the array has 4 coils."""
    acquisitions = acquisition_builder(np.random.default_rng(0))
    acquisitions[5] = ismrmrd.Acquisition.from_array(np.ones((2, 64), np.complex64), np.zeros((64, 2), np.float32))
    path = file_writer(tmp_path / "coils.h5", acquisitions=acquisitions).path
    dataset = read_dataset(path)
    assert dataset.readouts[5].num_coils == 2
    assert array_coil_count(dataset.readouts, dataset.header) == 4


def test_coil_count_above_receiver_channels(tmp_path, file_writer, xml_builder):
    path = file_writer(tmp_path / "rx.h5", xml=xml_builder(receiver_channels=2)).path
    with pytest.raises(
        InputDataError, match=r"acquisition \d \((imaging|calibration)\) has 4 coils.*receiverChannels = 2"
    ):
        read_dataset(path)


def test_fewer_coils_than_receiver_channels_are_read(tmp_path, file_writer, xml_builder):
    """Coils reduced upstream (PCACoilGadget + CoilReductionGadget): active_channels < receiverChannels."""
    path = file_writer(tmp_path / "rx.h5", xml=xml_builder(receiver_channels=8)).path
    dataset = read_dataset(path)
    assert dataset.header.num_coils == 8
    assert {r.num_coils for r in dataset.readouts if r.is_imaging()} == {4}


@pytest.mark.parametrize("fast", [True, False])
def test_non_finite_sample_in_file(tmp_path, file_writer, acquisition_builder, fast):
    acquisitions = acquisition_builder(np.random.default_rng(0))
    acquisitions[4].data[1, 3] = np.nan
    path = file_writer(tmp_path / "nan.h5", acquisitions=acquisitions).path
    with pytest.raises(InputDataError, match=r"'.*nan\.h5': acquisition 4: field 'data' contains 1 non-finite"):
        read_dataset(path, fast=fast)


def test_inconsistent_traj_length_in_file(tmp_path, synthetic_file):
    with h5py.File(synthetic_file.path, "a") as h5:
        data = h5["dataset/data"]
        record = data[6]
        record["traj"] = np.zeros(10, np.float32)
        data[6] = record
    with pytest.raises(InputDataError, match=r"acquisition 6: field 'traj' holds 10 values"):
        read_dataset(synthetic_file.path)


def test_unreadable_image_series(tmp_path, synthetic_file):
    with h5py.File(synthetic_file.path, "a") as h5:
        attributes = h5["dataset/b0map/attributes"]
        attributes[1] = "<not-meta>"
    with pytest.raises(InputDataError, match=r"image series 'b0map' cannot be read"):
        read_dataset(synthetic_file.path)


def test_image_series_without_header_rows(tmp_path, synthetic_file):
    with h5py.File(synthetic_file.path, "a") as h5:
        del h5["dataset/coil_images/data"]
        h5["dataset/coil_images"].create_dataset("data", data=np.zeros((0, 1, 1, 2, 2), np.float32))
    with pytest.raises(InputDataError, match=r"image series 'coil_images' cannot be read"):
        read_dataset(synthetic_file.path)
