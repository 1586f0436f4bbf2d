"""The image of a gridded frame, as a scanner's user expects it.

- :mod:`.coil_maps`: ESPIRiT coil maps of a calibration block (2D and 3D, torch);
- :mod:`.sense`: Cartesian CG-SENSE of gridded k-space with per-point data weights (torch);
- :mod:`.images`: per frame, SENSE of an undersampled frame or the RSS of a fully sampled one,
  the maps cached per calibration key (``[recon]``).
"""
