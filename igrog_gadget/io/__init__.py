"""ISMRMRD I/O layer: ISMRMRD objects become typed containers here, and gridded frames ISMRMRD
objects. Besides this package only the wire protocol (``igrog_gadget.gadget``), ``igrog pipe``
(``igrog_gadget.pipe``) and the simulator's file writer (``igrog_gadget.simulate.writer``)
import ``ismrmrd``.

- :mod:`.convert`: pure conversions ISMRMRD objects <-> typed containers (file and stream)
- :mod:`.reader`: :func:`read_dataset` for ISMRMRD HDF5 files
- :mod:`.writer`: :func:`write_cartesian_file`, atomic Cartesian output
- :mod:`.output_geometry`: :class:`OutputGeometry`, the grid every output states (2D and 3D)
- :mod:`.trajectory`: trajectory units and Cartesian readout positions
"""

from igrog_gadget.io.convert import (
    DEFAULT_H1_RESONANCE_HZ,
    acquisition_from_readout,
    cartesian_acquisitions,
    cartesian_output_header,
    header_to_xml,
    image_from_item,
    image_item_from_image,
    image_series_name,
    load_ismrmrd_header,
    parse_header,
    readout_from_acquisition,
    readout_from_header_and_arrays,
)
from igrog_gadget.io.output_geometry import OutputGeometry, output_recon_space
from igrog_gadget.io.reader import RawDataset, read_dataset, read_named_arrays
from igrog_gadget.io.trajectory import TRAJECTORY_UNIT_MODES, cartesian_positions, resolve_trajectory_units
from igrog_gadget.io.writer import write_cartesian_file

__all__ = [
    "DEFAULT_H1_RESONANCE_HZ",
    "OutputGeometry",
    "RawDataset",
    "TRAJECTORY_UNIT_MODES",
    "acquisition_from_readout",
    "cartesian_acquisitions",
    "cartesian_output_header",
    "output_recon_space",
    "cartesian_positions",
    "header_to_xml",
    "image_from_item",
    "image_item_from_image",
    "image_series_name",
    "load_ismrmrd_header",
    "parse_header",
    "read_dataset",
    "read_named_arrays",
    "readout_from_acquisition",
    "readout_from_header_and_arrays",
    "resolve_trajectory_units",
    "write_cartesian_file",
]
